"""Run profiles, paths and parameter validation.

A *profile* is plain data: a dict of notebook parameters. ``python -m pdc_utils run`` hands each
notebook the profile's values for the parameters that notebook declares in its ``parameters``
cell, so one profile drives the whole series. The notebooks' own defaults are the ``quick``
profile, so a student who opens a notebook in JupyterLab and presses *Run all* gets the same
run as ``make tutorial``.

This module imports no TensorFlow: listing profiles and validating parameters is instant.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Datasets the loaders know (see :mod:`pdc_utils.data`).
DATASETS = ("digits", "cifar10", "imagenette", "imagenet2012")
#: Networks the builder knows (see :mod:`pdc_utils.models`).
NETWORKS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet152",
    "mobilenet_v3_small",
    "efficientnet_b0",
)
ATTACKS = ("fgm", "pgd")
#: ``pixel``: ε in [0, 1] pixel units, images clipped to [0, 1] (the standard threat model).
#: ``paper``: ε in mean/std-normalised units, no clipping (what the seed code does).
PROTOCOLS = ("pixel", "paper")
SCHEDULES = ("cosine", "step", "constant")
#: ``reference``: f2 diverged from the finished f1, which also attacks (the paper's text).
#: ``paper_code``: a chain of ``n_nets`` nets trained interleaved, attacked by an independent
#: f1 (the paper's code, which produced its Table 1). See :mod:`pdc_utils.experiment`.
DESIGNS = ("reference", "paper_code")
#: ``v``: the V-statistic dCor² (the paper's); ``u``: the bias-corrected U-statistic, clamped
#: at 0; ``u_raw``: the U-statistic unclamped (to measure what the clamp does).
PENALTIES = ("v", "u", "u_raw")
#: Notebooks of the series, in the order a run executes them.
NOTEBOOKS = (
    "01_distance_correlation",
    "02_baseline_training",
    "03_diverge_training",
    "04_attack_evaluation",
)

_TRAINING = {
    "dataset": "digits",
    "network": "resnet18",
    "width": 16,
    "epochs": 12,
    "batch_size": 64,
    "learning_rate": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "augment": False,
    "train_limit": 0,
    "test_limit": 0,
    "alpha": 1.0,
    "feature_norm": True,
    "design": "reference",
    "penalty": "v",
    "n_seeds": 3,
    "n_nets": 3,
}
_ATTACK = {
    "attacks": ["fgm", "pgd"],
    "eps_grid": [0.03, 0.05, 0.1],
    "pgd_step": 0.01,
    "pgd_steps": 40,
    "protocol": "pixel",
    "attack_limit": 0,
    "attack_batch_size": 256,
    "n_bootstrap": 1000,
}
_LESSON = {
    "n_demo": 500,
    "n_grid": [5, 10, 20, 50, 100, 200],
    "n_repeats": 200,
    "n_permutations": 500,
    "bench_sizes": [128, 256, 512, 1024],
    "bench_dim": 512,
}

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "Offline: sklearn's 8x8 digits, small-width CIFAR ResNet-18; "
        "the whole series on a 2-core CPU in minutes.",
        "seed": 0,
        **_LESSON,
        **_TRAINING,
        **_ATTACK,
    },
    "smoke": {
        "description": "What the tests use: every code path, seconds per notebook.",
        "seed": 0,
        **_LESSON,
        "n_demo": 100,
        "n_grid": [5, 20],
        "n_repeats": 5,
        "n_permutations": 20,
        "bench_sizes": [64, 128],
        "bench_dim": 32,
        **_TRAINING,
        "width": 4,
        "epochs": 1,
        "batch_size": 64,
        "train_limit": 256,
        "test_limit": 128,
        **_ATTACK,
        "eps_grid": [0.05, 0.1],
        "pgd_steps": 3,
        "attack_batch_size": 64,
        "n_bootstrap": 50,
    },
    "cifar10": {
        "description": "The paper's CIFAR-10 / ResNet-18 row with the seed's hyper-parameters "
        "(200 epochs, cosine, alpha 0.05); a GPU job.",
        "seed": 0,
        **_LESSON,
        **_TRAINING,
        "dataset": "cifar10",
        "network": "resnet18",
        "width": 64,
        "epochs": 200,
        "batch_size": 128,
        "learning_rate": 0.1,
        "schedule": "cosine",
        "augment": True,
        "alpha": 0.05,
        **_ATTACK,
        "attack_batch_size": 500,
    },
    "imagenette": {
        "description": "The ImageNet recipe on the 10-class Imagenette subset (tfds download, "
        "about 1.5 GB); MobileNetV3-Small by default; a GPU job.",
        "seed": 0,
        **_LESSON,
        **_TRAINING,
        "dataset": "imagenette",
        "network": "mobilenet_v3_small",
        "width": 64,
        "epochs": 40,
        "batch_size": 128,
        "learning_rate": 0.1,
        "schedule": "step",
        "augment": True,
        "alpha": 0.05,
        **_ATTACK,
        "attack_batch_size": 128,
    },
    "imagenet2012": {
        "description": "The paper's ImageNet rows (manual download of ILSVRC2012, see "
        "pdc_utils.data); ResNet-34 by default, set -p network=... for the others.",
        "seed": 0,
        **_LESSON,
        **_TRAINING,
        "dataset": "imagenet2012",
        "network": "resnet34",
        "width": 64,
        "epochs": 40,
        "batch_size": 256,
        "learning_rate": 0.1,
        "weight_decay": 1e-4,
        "schedule": "step",
        "augment": True,
        "alpha": 0.05,
        "test_limit": 10000,  # keeps the exact test-set dCor² (an n² computation) tractable
        **_ATTACK,
        "attack_limit": 10000,
        "attack_batch_size": 128,
    },
}


def profile(name: str) -> dict[str, Any]:
    """Return a copy of the named profile's parameters (without its description)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    params = copy.deepcopy(PROFILES[name])
    params.pop("description")
    params["run_name"] = name
    return params


def _choice(params: Mapping[str, Any], key: str, valid: tuple[str, ...]) -> None:
    if key in params and params[key] not in valid:
        raise ValueError(f"unknown {key} {params[key]!r}; valid choices: {', '.join(valid)}")


def _positive_int(params: Mapping[str, Any], key: str, allow_zero: bool = False) -> None:
    if key not in params:
        return
    value = params[key]
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative integer (0 means all)" if allow_zero else "a positive integer"
        raise ValueError(f"{key} must be {what}, got {value!r}")


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check notebook/run parameters before any heavy work and return them as a dict.

    Only the keys present are checked, so each notebook validates what it declares. Raises
    ``ValueError`` naming the parameter, the bad value and the valid choices.
    """
    _choice(params, "dataset", DATASETS)
    _choice(params, "network", NETWORKS)
    _choice(params, "protocol", PROTOCOLS)
    _choice(params, "schedule", SCHEDULES)
    _choice(params, "design", DESIGNS)
    _choice(params, "penalty", PENALTIES)
    for key in ("epochs", "batch_size", "width", "pgd_steps", "attack_batch_size", "n_repeats",
                "n_seeds"):
        _positive_int(params, key)
    for key in ("train_limit", "test_limit", "attack_limit", "n_bootstrap", "seed"):
        _positive_int(params, key, allow_zero=True)
    if "attacks" in params:
        attacks = list(params["attacks"])
        bad = [a for a in attacks if a not in ATTACKS]
        if bad or not attacks:
            raise ValueError(
                f"unknown attacks {bad or attacks!r}; valid choices: {', '.join(ATTACKS)}")
    if "n_nets" in params and (isinstance(params["n_nets"], bool)
                               or not isinstance(params["n_nets"], int) or params["n_nets"] < 2):
        raise ValueError(f"n_nets must be an integer >= 2, got {params['n_nets']!r}")
    alpha = params.get("alpha", 0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0 (0 trains the baseline), got {alpha!r}")
    for key in ("learning_rate", "pgd_step"):
        if key in params and not (isinstance(params[key], int | float) and params[key] > 0):
            raise ValueError(f"{key} must be a number > 0, got {params[key]!r}")
    for key in ("momentum", "weight_decay"):
        if key in params and not (isinstance(params[key], int | float) and 0 <= params[key] < 1):
            raise ValueError(f"{key} must be a number in [0, 1), got {params[key]!r}")
    if "eps_grid" in params:
        eps = list(params["eps_grid"])
        if not eps or any(not isinstance(e, int | float) or not 0 < e <= 1 for e in eps):
            raise ValueError(f"every eps in eps_grid must be in (0, 1], got {eps!r}")
    if "run_name" in params:
        name = params["run_name"]
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"run_name must be a plain folder name like 'quick', got {name!r}")
    return dict(params)


def project_root() -> Path:
    """The folder that holds ``notebooks/`` (a source checkout), else the working directory.

    ``PDC_HOME`` overrides it. Notebooks started from ``notebooks/`` in JupyterLab and runs
    started from the repository root therefore write to the same ``runs/`` and ``figures/``.
    """
    if "PDC_HOME" in os.environ:
        return Path(os.environ["PDC_HOME"]).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd().resolve()


def runs_root() -> Path:
    """Where runs live: ``$PDC_RUNS_DIR`` or ``<project>/runs``."""
    return Path(os.environ.get("PDC_RUNS_DIR", project_root() / "runs")).resolve()


def run_dir(run_name: str) -> Path:
    """``runs/<run_name>/``: models, histories, results and executed notebooks of one run."""
    validate({"run_name": run_name})
    return runs_root() / run_name


def models_dir(run_name: str) -> Path:
    """``runs/<run>/models/``: ``f1.keras``, ``f2_baseline.keras``, ``f2_diverge.keras``."""
    return run_dir(run_name) / "models"


def results_dir(run_name: str) -> Path:
    """``runs/<run>/results/``: CSV/JSON/Markdown result tables and training histories."""
    return run_dir(run_name) / "results"


def figures_dir(run_name: str) -> Path:
    """``figures/<run>/`` (``$PDC_FIGURES_DIR/<run>`` when set): figures of one run."""
    validate({"run_name": run_name})
    root = Path(os.environ.get("PDC_FIGURES_DIR", project_root() / "figures"))
    return root.resolve() / run_name


def data_dir() -> Path | None:
    """The tfds data dir: ``$TFDS_DATA_DIR``, else ``None`` (tfds' ~/tensorflow_datasets)."""
    value = os.environ.get("TFDS_DATA_DIR")
    return Path(value) if value else None


def require(path: Path, notebook: str) -> Path:
    """Return ``path`` if it exists, else stop with an error naming the notebook to run first."""
    path = Path(path)
    if not path.exists():
        run = path.resolve().parent.parent.name  # runs/<run>/<models|results>/<file>
        raise FileNotFoundError(
            f"{path} does not exist: run notebooks/{notebook}.ipynb first with "
            f"run_name={run!r} (or `python -m pdc_utils run --profile PROFILE --run-name {run} "
            f"--notebooks {notebook[:2]}`)."
        )
    return path


def package_file(name: str) -> Path:
    """A data file shipped inside the package, e.g. ``paper_table1.csv`` (the paper's Table 1)."""
    path = Path(__file__).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not a data file of pdc_utils")
    return path

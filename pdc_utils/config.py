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
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
DCOR_PENALTIES = ("v", "u", "u_raw")
#: The dCor² estimators, and ``grad_align``: the squared cosine of the network's and the
#: reference's input gradients (GAL, Kariyappa & Qureshi 2019), the standard way to make
#: adversarial examples transfer less; see :mod:`pdc_utils.objective`.
PENALTIES = (*DCOR_PENALTIES, "grad_align")
#: What the diverged networks of the ``reference`` design are penalised against: ``attacker``
#: (f1, the paper's text) or ``untrained`` (a frozen network of the same architecture with
#: random weights: the control that separates the penalty's regularisation from independence
#: of the attacker).
DIVERGE_FROM = ("attacker", "untrained")
#: Largest ``n_seeds``, ``n_nets`` and ``n_attackers``: their derived seeds stay apart.
MAX_SEEDS, MAX_NETS, MAX_ATTACKERS = 9_999, 50, 9_999
#: ``tf.distribute`` strategies (see :mod:`pdc_utils.distribute`).
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
#: Frozen-reference feature cache (see :mod:`pdc_utils.experiment`): ``auto`` computes a
#: frozen reference's features of the training images once wherever that is valid (design
#: ``reference``, no augmentation applied); ``on`` insists and refuses invalid runs; ``off``
#: runs the references in every step.
FEATURE_CACHE = ("auto", "on", "off")
#: Every seed a run derives from ``seed`` (pairs, attackers, chain nets, controls) is below
#: seed + DERIVED_SEED_SPAN. Seeds reach NumPy and Keras, which take 0 to 2**32 - 1, so
#: ``validate`` refuses a ``seed`` above 2**32 - 1 - DERIVED_SEED_SPAN before any training.
DERIVED_SEED_SPAN = 1_000_000
#: The largest seed a NumPy or Keras random generator takes.
MAX_SEED = 2**32 - 1
#: How a run derives its networks' seeds from ``seed`` (:mod:`pdc_utils.experiment`): pair s
#: uses seed + 1 + s, net k of chain s adds k × CHAIN_SEED_STRIDE, the untrained reference
#: adds UNTRAINED_SEED_OFFSET, independent attacker k adds ATTACKER_SEED_OFFSET + k.
CHAIN_SEED_STRIDE, UNTRAINED_SEED_OFFSET, ATTACKER_SEED_OFFSET = 10_000, 800_000, 900_000
#: Penalties computed with U-statistics, which need 4 samples per batch.
U_PENALTIES = ("u", "u_raw")
#: The longest run name in bytes (UTF-8): the run is a folder under runs/ and figures/, and
#: Linux and macOS file systems take at most 255 bytes for one name.
MAX_RUN_NAME_BYTES = 255
#: Notebooks of the series, in the order a run executes them.
NOTEBOOKS = (
    "01_distance_correlation",
    "02_baseline_training",
    "03_diverge_training",
    "04_attack_evaluation",
    "05_comparing_networks",
    "06_is_the_effect_real",
)

#: The parameters that make a run's networks (notebook 02 declares them and records them in
#: ``runs/<run>/run.json``; notebooks 03-05 read them from there, see
#: :mod:`pdc_utils.run_record`).
TRAINING_KEYS = ("seed", "dataset", "network", "width", "epochs", "batch_size",
                 "learning_rate", "momentum", "weight_decay", "schedule", "augment",
                 "train_limit", "test_limit", "alpha", "penalty", "feature_norm", "design",
                 "n_seeds", "n_nets", "n_attackers", "diverge_from", "keep_dim", "strategy",
                 "feature_cache")

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
    "n_attackers": 1,
    "diverge_from": "attacker",
    "keep_dim": 0.0,
    "strategy": "auto",
    "feature_cache": "auto",
}
_ATTACK = {
    "attacks": ["fgm", "pgd"],
    "eps_grid": [0.03, 0.05, 0.1],
    "pgd_step": 0.01,
    "pgd_steps": 40,
    "protocol": "pixel",
    "attack_limit": 0,
    "attack_batch_size": 512,  # digits: all 360 test images in one batch, one trace per attack
    "n_bootstrap": 1000,
    "compare_limit": 0,
}
_LESSON = {
    "n_demo": 500,
    "n_grid": [5, 10, 20, 50, 100, 200],
    "n_repeats": 200,
    "n_permutations": 200,
    "bench_sizes": [128, 256, 512, 1024],
    "bench_dim": 512,
    # notebook 06: reading the two studies' committed tables
    "study_results": "",
    "test_level": 0.05,
    "n_simulations": 4000,
}

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "Offline: sklearn's 8x8 digits, small-width CIFAR ResNet-18; "
        "the whole series on a 2-core CPU in minutes.",
        # seeds that chose nothing: f1 3000, pairs 3001-3003, attackers 903001-903002 (and
        # 803000 for the untrained control) are disjoint from the validation study's (0, 1-5,
        # 900001-900002), the earlier test-split study's (0-5) and both confirmations' (5000...,
        # 7000...; bench/results/diverge_power.md lists them), so no quick network chose the
        # setting it illustrates
        "seed": 3000,
        **_LESSON,
        **_TRAINING,
        # chosen on the validation split by the written rules of bench/diverge_study.py
        # (bench/results/diverge_selection.json): the reference design's setting (V penalty,
        # alpha 3) and the eps grid where the validation attackers' white-box PGD accuracy is
        # nearest 75 / 40 / 10 %; no test result chose them. 3 pairs are an illustration.
        "alpha": 3.0,
        "penalty": "v",
        "n_attackers": 3,
        **_ATTACK,
        "eps_grid": [0.05, 0.1, 0.2],
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
        "n_seeds": 2,
        "n_attackers": 2,
        **_ATTACK,
        "eps_grid": [0.05, 0.1],
        "pgd_steps": 3,
        "attack_batch_size": 64,
        "n_bootstrap": 50,
    },
    # The full-scale profiles follow the paper's code (docs/design.md): its design
    # (chains of 3 nets, an independent attacker), no augmentation, SGD 0.1 / 0.9 / 5e-4
    # coupled, batch 128, alpha 0.05, V-statistic penalty. Where we differ, on purpose: several
    # seed pairs instead of one unseeded run; the final networks instead of the checkpoint with
    # the best *test* accuracy (model selection on the test set); the pixel threat model by
    # default (-p protocol=paper gives the paper's ε units, no clipping, random PGD start).
    "cifar10": {
        "description": "The paper's CIFAR-10 / ResNet-18 row as its code ran it (chains of 3, "
        "200 epochs, cosine, alpha 0.05, no augmentation); a GPU job.",
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
        "augment": False,
        "alpha": 0.05,
        "design": "paper_code",
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
        "weight_decay": 5e-4,
        "schedule": "step",
        "augment": False,
        "alpha": 0.05,
        "design": "paper_code",
        **_ATTACK,
        "attack_batch_size": 128,
    },
    "imagenet2012": {
        "description": "The paper's ImageNet rows (manual download of ILSVRC2012, see "
        "pdc_utils.data); ResNet-34 by default, set -p network=... for the others. Scores "
        "the first 10,000 of the 50,000 validation images (test_limit, attack_limit; "
        "0 = all 50,000, as the paper).",
        "seed": 0,
        **_LESSON,
        **_TRAINING,
        "dataset": "imagenet2012",
        "network": "resnet34",
        "width": 64,
        "epochs": 40,
        "batch_size": 128,
        "learning_rate": 0.1,
        "weight_decay": 5e-4,
        "schedule": "step",  # x0.1 at epochs 10, 20 and 30 of 40
        "augment": False,
        "alpha": 0.05,
        "design": "paper_code",
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


@dataclass(frozen=True)
class _Kind:
    """What one parameter accepts: a test of a single value and its description for messages.

    A list kind (``is_list``) takes a non-empty list or tuple whose every element passes
    ``accepts``; a scalar kind never takes a list.
    """

    accepts: Callable[[Any], bool]
    description: str
    is_list: bool = False


def _is_integer(value: Any) -> bool:
    """Python or numpy integers, not booleans (``True`` is an ``int`` in Python)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    """Finite real numbers (Python or numpy), not booleans, NaN or ±inf."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_folder_name(value: Any) -> bool:
    """A name that stays one folder below runs/ and figures/, is not hidden and can be read
    and typed: printable characters only (no newline, tab or control character), not blank,
    no leading or trailing whitespace, at most :data:`MAX_RUN_NAME_BYTES` bytes."""
    return (isinstance(value, str) and bool(value.strip()) and value == value.strip()
            and value.isprintable() and "/" not in value and not value.startswith(".")
            and len(value.encode("utf-8", "surrogatepass")) <= MAX_RUN_NAME_BYTES)


def _choice(valid: tuple[str, ...]) -> _Kind:
    """One of the names ``valid``."""
    return _Kind(lambda v: isinstance(v, str) and v in valid,
                 f"one of the valid choices: {', '.join(valid)}")


def _integer(low: int, note: str = "") -> _Kind:
    """An integer >= ``low``; ``note`` adds what a special value means."""
    words = {0: "a non-negative integer", 1: "a positive integer"}
    return _Kind(lambda v: _is_integer(v) and v >= low,
                 words.get(low, f"an integer >= {low}") + note)


def _number(interval: str, inside: Callable[[float], bool], note: str = "") -> _Kind:
    """A finite number for which ``inside`` holds; ``interval`` says which, in words."""
    return _Kind(lambda v: _is_finite_number(v) and inside(v),
                 f"a number {interval} and finite{note}")


def _list_of(element: _Kind) -> _Kind:
    """A non-empty list of values of kind ``element``."""
    return _Kind(element.accepts, f"a non-empty list, each element {element.description}",
                 is_list=True)


_BOOLEAN = _Kind(lambda v: isinstance(v, bool), "True or False (a boolean, not a string)")
_ALL = " (0 means all)"
_POSITIVE = _number("> 0", lambda v: v > 0)
_FRACTION = _number("in [0, 1)", lambda v: 0 <= v < 1)
_SAMPLES = _integer(4, " (U-statistics need 4 samples)")
#: A limit on test images that a notebook computes U-statistics of: 0 (all) or at least 4.
_SAMPLE_LIMIT = _Kind(lambda v: _is_integer(v) and (v == 0 or v >= 4),
                      "0 (all) or an integer >= 4 (U-statistics need 4 samples)")

#: The kind of every parameter a profile or notebook may hold. ``validate`` checks these.
_KINDS: dict[str, _Kind] = {
    "run_name": _Kind(_is_folder_name, "a plain folder name like 'quick' (not empty or blank, "
                      "printable characters only, no '/', no leading or trailing spaces, not "
                      f"starting with '.', at most {MAX_RUN_NAME_BYTES} bytes: the file "
                      "system's limit for a folder name)"),
    "seed": _integer(0),
    "n_seeds": _integer(1),
    "n_nets": _integer(2),
    "n_attackers": _integer(1, " (attacker 0 is f1; the others are independent networks)"),
    "design": _choice(DESIGNS),
    "penalty": _choice(PENALTIES),
    "diverge_from": _choice(DIVERGE_FROM),
    "keep_dim": _number(">= 0", lambda v: v >= 0, " (0: no spread term)"),
    "strategy": _choice(STRATEGIES),
    # notebook 01: the lesson on distance correlation
    "n_demo": _SAMPLES,
    "n_grid": _list_of(_SAMPLES),
    "n_repeats": _integer(1),
    "n_permutations": _integer(1),
    "bench_sizes": _list_of(_SAMPLES),
    "bench_dim": _integer(1),
    # notebooks 02 and 03: training
    "dataset": _choice(DATASETS),
    "network": _choice(NETWORKS),
    "width": _integer(1),
    "epochs": _integer(1),
    "batch_size": _integer(2, " (batch normalisation needs 2 images per batch)"),
    "learning_rate": _POSITIVE,
    "momentum": _FRACTION,
    "weight_decay": _FRACTION,
    "schedule": _choice(SCHEDULES),
    "augment": _BOOLEAN,
    "train_limit": _integer(0, _ALL),
    "test_limit": _SAMPLE_LIMIT,
    "alpha": _number(">= 0", lambda v: v >= 0, " (0 trains the baseline)"),
    "feature_norm": _BOOLEAN,
    "feature_cache": _choice(FEATURE_CACHE),
    # notebook 04: attacks
    "attacks": _list_of(_choice(ATTACKS)),
    "eps_grid": _list_of(_number("in (0, 1]", lambda v: 0 < v <= 1)),
    "pgd_step": _POSITIVE,
    "pgd_steps": _integer(1),
    "protocol": _choice(PROTOCOLS),
    "attack_limit": _integer(0, _ALL),
    "attack_batch_size": _integer(1),
    "n_bootstrap": _integer(1),
    # notebook 05: comparing networks
    "compare_limit": _SAMPLE_LIMIT,
    # notebook 06: reading the studies
    "study_results": _Kind(lambda v: isinstance(v, str),
                           "a folder path as text ('' means the repository's bench/results)"),
    "test_level": _number("in (0, 1)", lambda v: 0 < v < 1),
    "n_simulations": _integer(100),
}


def parameter_names() -> tuple[str, ...]:
    """Every parameter ``validate`` knows the kind of."""
    return tuple(_KINDS)


def describe_parameter(name: str) -> str:
    """What parameter ``name`` accepts, in words (e.g. "one of the valid choices: v, u")."""
    return _KINDS[name].description


def is_list_parameter(name: str) -> bool:
    """Whether parameter ``name`` takes a list (``attacks``, ``eps_grid``, ...)."""
    return name in _KINDS and _KINDS[name].is_list


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with its length when it is longer (a
    300-character run name would bury the message)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}…{size}"


def _problem(key: str, value: Any, kind: _Kind) -> str | None:
    """Why ``value`` is not a valid ``key``, or ``None`` if it is."""
    expected = f"{key} must be {kind.description}, got {_shown(value)}"
    if not kind.is_list:
        return None if kind.accepts(value) else expected
    if not isinstance(value, list | tuple):
        return f"{expected} ({type(value).__name__}, not a list)"
    bad = [v for v in value if not kind.accepts(v)]
    if not value:
        return f"{expected} (empty)"
    return f"{expected} (bad: {', '.join(map(repr, bad))})" if bad else None


def _pgd_step_problem(params: Mapping[str, Any]) -> str | None:
    """PGD's step may not exceed its budget ε (as in cleverhans): check it before attacking."""
    if "pgd" not in params.get("attacks", ()) or not params.get("eps_grid"):
        return None
    if "pgd_step" in params and params["pgd_step"] > min(params["eps_grid"]):
        return (f"pgd_step must not exceed the smallest eps of eps_grid when attacks include "
                f"pgd, got pgd_step={params['pgd_step']!r} and eps_grid={params['eps_grid']!r}")
    return None


def _layout_problems(params: Mapping[str, Any]) -> list[str]:
    """Combinations the experiment cannot run: too many derived networks for the seed layout,
    or a control that the design does not have."""
    problems = []
    for key, high in (("n_seeds", MAX_SEEDS), ("n_nets", MAX_NETS),
                      ("n_attackers", MAX_ATTACKERS)):
        if key in params and params[key] > high:
            problems.append(f"{key} must be at most {high} (derived seeds must stay apart), "
                            f"got {params[key]!r}")
    if params.get("diverge_from") == "untrained" and params.get("design") == "paper_code":
        problems.append("diverge_from='untrained' is a control of the reference design (one "
                        "frozen reference); design paper_code diverges from the earlier nets "
                        "of a chain: use design='reference' or diverge_from='attacker'")
    return problems


def _seed_problem(params: Mapping[str, Any]) -> str | None:
    """Every seed derived from ``seed`` must still be a valid seed: check it before training."""
    highest = MAX_SEED - DERIVED_SEED_SPAN
    if "seed" in params and params["seed"] > highest:
        return (f"seed must be an integer in [0, {highest}], got {params['seed']!r}: the run "
                f"derives seeds up to seed + {DERIVED_SEED_SPAN - 1} (seed pairs, chain nets, "
                f"controls), and every seed must be at most 2**32 - 1 = {MAX_SEED}")
    return None


def _batch_size_problem(params: Mapping[str, Any]) -> str | None:
    """The U-statistic penalty needs 4 rows per batch (batch normalisation's 2 are a kind)."""
    if "batch_size" in params and params.get("penalty") in U_PENALTIES:
        if params["batch_size"] < 4:
            return (f"batch_size must be >= 4 with penalty {params['penalty']!r} (a U-statistic "
                    f"needs 4 samples per batch), got batch_size={params['batch_size']!r}; "
                    f"use a larger batch_size or penalty 'v' (2 or more)")
    return None


#: List parameters whose values must differ: a repeated ε or attack would be a second row of
#: the same setting, which the notebooks' tables (one row per attack and ε) cannot hold.
_DISTINCT = ("eps_grid", "attacks")


def _repeats_problem(params: Mapping[str, Any]) -> str | None:
    """A list of :data:`_DISTINCT` that names a value twice."""
    for key in _DISTINCT:
        values = list(params.get(key, ()))
        repeated = sorted({v for i, v in enumerate(values) if v in values[:i]}, key=str)
        if repeated:
            return (f"{key} must hold distinct values (one row per value in the tables), got "
                    f"{values!r} with {', '.join(map(repr, repeated))} more than once")
    return None


#: Checks of several parameters together, run once every parameter has a valid kind.
_CROSS_CHECKS = (_seed_problem, _batch_size_problem, _pgd_step_problem, _repeats_problem)


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check notebook/run parameters before any heavy work and return them as a dict.

    Every known parameter present is checked against its kind (type, finiteness, range, list
    or scalar, every list element), so each notebook validates what it declares; keys
    ``validate`` does not know are passed through unchecked. All problems are reported at once
    in one ``ValueError``, each naming the parameter, the valid values and the bad value.
    """
    problems = [_problem(key, value, _KINDS[key])
                for key, value in params.items() if key in _KINDS]
    problems = [p for p in problems if p]
    if not problems:
        problems = [p for p in (check(params) for check in _CROSS_CHECKS) if p]
        problems += _layout_problems(params)
    if problems:
        raise ValueError("\n".join(problems))
    return dict(params)


def seed_plan(params: Mapping[str, Any]) -> str:
    """The seeds a run's networks are trained with, in words: f1, the pairs, the independent
    attackers, the chains' later nets and the control's untrained reference (where the run
    has them). ``python -m pdc_utils profiles`` prints it, so anyone can check that two runs
    share no network."""
    seed, n, k = params["seed"], params["n_seeds"], params["n_attackers"]
    parts = [f"f1 {seed}", f"pair {seed + 1}" if n == 1 else f"pairs {seed + 1}–{seed + n}"]
    if k > 1:
        first = seed + ATTACKER_SEED_OFFSET + 1
        parts.append("attacker" + (f" {first}" if k == 2 else f"s {first}–{first + k - 2}"))
    if params.get("design") == "paper_code":
        parts.append(f"chain nets {seed + 1 + CHAIN_SEED_STRIDE}… (+{CHAIN_SEED_STRIDE:,} per "
                     "net)")
    elif params.get("diverge_from") == "untrained":
        parts.append(f"untrained reference {seed + UNTRAINED_SEED_OFFSET}")
    return ", ".join(parts)


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


class MissingPrerequisite(FileNotFoundError):
    """A file that an earlier notebook makes does not exist yet; the message says which
    notebook to run first.

    In IPython (JupyterLab, papermill's kernels) the error shows as its message alone: the
    traceback would only point into pdc_utils, while the message says what to do. IPython shows
    the lines ``_render_traceback_`` returns in place of the traceback; the exception is raised
    as usual, so a cell still fails and a papermill run still stops there.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def require(path: Path, notebook: str) -> Path:
    """Return ``path`` if it exists, else stop with a :class:`MissingPrerequisite` naming the
    notebook to run first."""
    path = Path(path)
    if not path.exists():
        run = path.resolve().parent.parent.name  # runs/<run>/<models|results>/<file>
        raise MissingPrerequisite(
            f"{path} does not exist: run notebook {notebook}.ipynb first (your copy, in the "
            f"folder this notebook is in) with run_name={run!r}, or from the project's folder "
            f"`python -m pdc_utils run --run-name {run} --notebooks {notebook[:2]}` (the "
            "quick profile; add --profile smoke for a smoke run)."
        )
    return path


def package_file(name: str) -> Path:
    """A data file shipped inside the package, e.g. ``paper_table1.csv`` (the paper's Table 1)."""
    path = Path(__file__).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not a data file of pdc_utils")
    return path

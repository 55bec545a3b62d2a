"""What a study trains: its cells (settings), the grids of the two stages and their options.

A *cell* is one setting (design, penalty, α, keep_dim, diverge_from) trained with ``n_seeds``
seed pairs as one run of the series (:mod:`pdc_utils.experiment`) under the study's folder.
The grids, the fresh-seed scheme and the rules are the same for every profile; only the
``smoke`` profile (what the tests run) starts from a smaller grid, and every grid value can be
overridden with ``-p``.

- ``select`` (choose on the validation split): dCor cells design × penalty × α, GAL cells,
  then (phase 2, once the first phase's scores exist) the spread term ``keep_dim`` at the
  reference-design setting that rule 2 chose. Seeds: f1 0, pairs 1…, attackers 900001….
- ``confirm`` (once, on the test split): the chosen settings (``reference``, its ``control``
  against an untrained network, ``keep_dim``, ``grad_align``, ``paper_code``) on fresh seeds
  (base 5000: f1 5000, pairs 5001…, attackers 905001…).

This module imports no TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdc_utils import config

STAGES = ("select", "confirm")
#: The attacks of every study.
ATTACKS = ("fgm", "pgd")
#: The named settings of the confirmatory stage, in report order.
SETTINGS = ("reference", "control", "keep_dim", "grad_align", "paper_code")

#: Every study option (``-p KEY=VALUE``) per stage, with its default. Other keys given with
#: ``-p`` override the profile's parameters (``protocol``, ``epochs``, ...).
SELECT_DEFAULTS: dict[str, Any] = {
    "seed": 0,                    # the validation study's seeds: 0, 1-5, 900001-900002
    "n_seeds": 5,
    "n_attackers": 3,
    "designs": ["reference", "paper_code"],
    "penalties": ["v", "u"],
    "alphas": [0.05, 0.3, 1.0, 3.0],            # reference design
    "paper_code_alphas": [0.3, 1.0, 3.0],       # a chain costs three networks per pair
    "gal_alphas": [0.3, 1.0, 3.0],
    "keep_dims": [0.3, 1.0, 3.0],
    "candidate_eps": [0.03, 0.05, 0.1, 0.2, 0.3],
    "prefix": "select_",
}
CONFIRM_DEFAULTS: dict[str, Any] = {
    "seed": 5000,                 # fresh seeds: f1 5000, pairs 5001-, attackers 905001-
    "n_seeds": 8,
    "n_attackers": 4,
    "settings": list(SETTINGS),
    "margin": None,               # TOST margin in points (None: no equivalence tests)
    "selection": "",              # the select stage's diverge_selection.json ('' = default)
    "prefix": "confirm_",
}
#: The smoke profile's smaller starting grid: a whole stage in minutes on 2 cores.
SMOKE_DEFAULTS: dict[str, dict[str, Any]] = {
    "select": {"n_seeds": 3, "n_attackers": 2, "penalties": ["v"], "alphas": [1.0],
               "paper_code_alphas": [1.0], "gal_alphas": [1.0], "keep_dims": [1.0],
               "candidate_eps": [0.05, 0.1, 0.2]},
    "confirm": {"n_seeds": 3, "n_attackers": 2},
}
_LIST_OPTIONS = ("designs", "penalties", "alphas", "paper_code_alphas", "gal_alphas",
                 "keep_dims", "candidate_eps", "settings")


@dataclass(frozen=True)
class Cell:
    """One setting of a study."""

    design: str
    penalty: str
    alpha: float
    keep_dim: float = 0.0
    diverge_from: str = "attacker"

    @property
    def name(self) -> str:
        extra = (f"_k{self.keep_dim:g}" if self.keep_dim else "") + (
            "_untrained" if self.diverge_from == "untrained" else "")
        return f"{self.design}_{self.penalty}_a{self.alpha:g}{extra}"

    def params(self) -> dict[str, Any]:
        return {"design": self.design, "penalty": self.penalty, "alpha": self.alpha,
                "keep_dim": self.keep_dim, "diverge_from": self.diverge_from}


def _as_list(value: Any) -> list[Any]:
    """A list option from ``-p``: a list, a tuple, ``a,b`` text or one value."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, list | tuple) else [value]


def split_options(stage: str, profile: str, overrides: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(study options, training parameters)`` of a stage: the stage's defaults (the smoke
    profile's smaller grid for ``smoke``) and the profile, each with the ``-p`` overrides that
    belong to it. Raises ``ValueError`` naming a bad stage, profile or value."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
    defaults = dict(SELECT_DEFAULTS if stage == "select" else CONFIRM_DEFAULTS)
    if profile == "smoke":
        defaults.update(SMOKE_DEFAULTS[stage])
    params = config.profile(profile)
    options = dict(defaults)
    for key, value in overrides.items():
        if key in defaults:
            options[key] = _as_list(value) if key in _LIST_OPTIONS else value
        elif key in config.parameter_names() or key in params:
            params[key] = value
        else:
            raise ValueError(
                f"-p {key}: not a study option of stage {stage!r} ({', '.join(defaults)}) nor a "
                f"parameter of profile {profile!r} (python -m pdc_utils profiles lists them)")
    _check_options(stage, options)
    params.update(seed=options["seed"], n_seeds=options["n_seeds"],
                  n_attackers=options["n_attackers"])
    config.validate(params)
    return options, params


def _number(value: Any) -> bool:
    """A finite real number, not a boolean."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_options(stage: str, options: Mapping[str, Any]) -> None:
    """Refuse options the study cannot run, before any work."""
    problems = []
    if not isinstance(options["n_seeds"], int) or options["n_seeds"] < 3:
        problems.append(f"n_seeds must be an integer of at least 3 (a t-test needs 3 pairs), "
                        f"got {options['n_seeds']!r}")
    if not isinstance(options["n_attackers"], int) or options["n_attackers"] < 2:
        problems.append(f"n_attackers must be an integer of at least 2 (f1 and an independent "
                        f"one), got {options['n_attackers']!r}")
    try:
        config.validate({"run_name": f"{options['prefix']}x"})
    except ValueError:
        problems.append(f"prefix must make plain folder names (no '/', not starting with "
                        f"'.'), got {options['prefix']!r}")
    if stage == "select":
        bad = sorted(set(options["designs"]) - set(config.DESIGNS))
        if bad or "reference" not in options["designs"]:
            problems.append(f"designs must be a list of {', '.join(config.DESIGNS)} with "
                            f"reference among them (the confirm stage's settings derive from "
                            f"it), got {options['designs']!r}")
        bad = sorted(set(options["penalties"]) - set(config.DCOR_PENALTIES))
        if bad or not options["penalties"]:
            problems.append(f"penalties must be a non-empty list of "
                            f"{', '.join(config.DCOR_PENALTIES)}, got {options['penalties']!r}")
        for key in ("alphas", "paper_code_alphas", "gal_alphas", "keep_dims"):
            if not options[key] or not all(_number(a) and a > 0 for a in options[key]):
                problems.append(f"{key} must be a non-empty list of numbers > 0, "
                                f"got {options[key]!r}")
        if len(options["candidate_eps"]) < 3 or not all(
                _number(e) and 0 < e <= 1 for e in options["candidate_eps"]):
            problems.append(f"candidate_eps must list at least 3 ε in (0, 1] (rule 1 picks "
                            f"3), got {options['candidate_eps']!r}")
    else:
        chosen = options["settings"]
        if set(chosen) - set(SETTINGS) or "reference" not in chosen:
            problems.append(f"settings must be a list of {', '.join(SETTINGS)} with reference "
                            f"among them (the contrasts are made against it), got {chosen!r}")
        margin = options["margin"]
        if margin is not None and not (_number(margin) and margin > 0):
            problems.append(f"margin must be a number > 0 (points) or None, got {margin!r}")
    if problems:
        raise ValueError("\n".join(problems))


def select_cells(options: Mapping[str, Any]) -> list[Cell]:
    """Phase 1 of ``select``: the dCor cells (design × penalty × α) and the GAL cells."""
    dcor = [Cell(d, p, float(a)) for d in config.DESIGNS if d in options["designs"]
            for p in options["penalties"]
            for a in (options["alphas"] if d == "reference" else options["paper_code_alphas"])]
    gal = [Cell("reference", "grad_align", float(a)) for a in options["gal_alphas"]]
    return dcor + gal


def keep_cells(options: Mapping[str, Any], chosen: Cell) -> list[Cell]:
    """Phase 2 of ``select``: the spread term at the chosen reference-design setting."""
    return [Cell(chosen.design, chosen.penalty, chosen.alpha, keep_dim=float(k))
            for k in options["keep_dims"]]


def confirm_settings(selection: Mapping[str, Any]) -> dict[str, Cell]:
    """The confirmatory settings, named, from the validation study's selection.

    ``grad_align`` is the gradient-alignment penalty: the squared cosine between the diverged
    network's and a *frozen* f1's cross-entropy input gradients, a variant of GAL (Kariyappa &
    Qureshi 2019); the first confirmation's tables call it ``gal``. ``paper_code`` is left out
    when the selection has no setting of that design.
    """
    ref = Cell(**selection["reference"])
    named = {
        "reference": ref,
        "control": Cell(ref.design, ref.penalty, ref.alpha, diverge_from="untrained"),
        "keep_dim": Cell(ref.design, ref.penalty, ref.alpha, keep_dim=selection["keep_dim"]),
        "grad_align": Cell("reference", "grad_align", selection["grad_align_alpha"]),
    }
    if selection.get("paper_code"):
        named["paper_code"] = Cell(**selection["paper_code"])
    return named


def read_selection(path: Path) -> dict[str, Any]:
    """The select stage's choices (``diverge_selection.json``), with a clear error when missing
    or damaged."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the confirm stage takes its settings from the select stage's "
            f"choices. Run the select stage first (python -m pdc_utils study run --stage "
            f"select ... then study report --stage select) or give -p selection=PATH")
    try:
        selection = json.loads(path.read_text())
        Cell(**selection["reference"])
        float(selection["grad_align_alpha"]), float(selection["keep_dim"])
        [float(e) for e in selection["eps_grid"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged or not a selection ({err!r})") from err
    return selection

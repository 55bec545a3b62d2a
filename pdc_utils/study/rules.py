"""The select stage's written rules, fixed before the digits study first ran.

1. **ε grid**: for each target of white-box PGD accuracy 75 %, 40 % and 10 % (mild, medium,
   strong; mean over the validation attackers), the candidate ε closest to it.
2. **Setting, per design**: among the dCor cells of that design whose mean clean-accuracy
   cost (diverged − baseline, over pairs) is at most 1 point, the one with the largest mean
   diverged − baseline accuracy over both attacks, the rule-1 ε and all validation attackers
   (each attacker weighted equally). If none costs at most 1 point, the cheapest.
3. **GAL's α**: the GAL cell whose mean clean cost is closest to that of the chosen
   reference-design setting (ties: the smaller α): GAL at a matched clean-accuracy cost.
4. **keep_dim**: the smallest value whose diverged networks keep a mean effective dimension
   of at least 80 % of their baselines' (validation features); if none does, the largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from pdc_utils import config, evidence
from pdc_utils.study import tables
from pdc_utils.study.grid import ATTACKS, Cell

if TYPE_CHECKING:
    from pdc_utils.study.plan import Plan

WHITE_BOX_TARGETS = (75.0, 40.0, 10.0)
MAX_CLEAN_COST = 1.0
MIN_DIM_SHARE = 0.8


def choose_eps(white_box: pd.DataFrame) -> list[float]:
    """Rule 1: the candidate ε closest to each white-box PGD accuracy target."""
    pgd = white_box[white_box["attack"] == "pgd"].groupby("eps")["accuracy"].mean()
    chosen: list[float] = []
    for target in WHITE_BOX_TARGETS:
        left = pgd.drop(chosen)
        chosen.append(float((left - target).abs().idxmin()))
    return sorted(chosen)


def attack_score(diffs: pd.DataFrame, cell: str, eps: list[float], n_attackers: int) -> float:
    """Mean diverged − baseline over both attacks, ``eps`` and all attackers (equal weight)."""
    rows = diffs[(diffs["cell"] == cell) & diffs["eps"].isin(eps)
                 & diffs["attack"].isin(ATTACKS)]
    weight = rows["attackers"].map({evidence.REFERENCE_ATTACKER: 1,
                                    evidence.OTHER_ATTACKERS: n_attackers - 1})
    return float((rows["difference"] * weight).sum() / weight.sum())


def clean_cost(diffs: pd.DataFrame, cell: str) -> float:
    """Mean diverged − baseline clean accuracy of ``cell`` (points; negative: a cost)."""
    return float(diffs[(diffs["cell"] == cell) & (diffs["attack"] == "clean")]
                 ["difference"].iloc[0])


def choose_setting(diffs: pd.DataFrame, cells: Sequence[Cell], eps: list[float],
                   n_attackers: int) -> Cell:
    """Rule 2 over ``cells`` (one design's dCor cells)."""
    cheap = [c for c in cells if clean_cost(diffs, c.name) >= -MAX_CLEAN_COST]
    if not cheap:
        return max(cells, key=lambda c: clean_cost(diffs, c.name))
    return max(cheap, key=lambda c: attack_score(diffs, c.name, eps, n_attackers))


def choose_gal(diffs: pd.DataFrame, gal_cells: Sequence[Cell], chosen: Cell) -> Cell:
    """Rule 3: GAL at the clean cost closest to the chosen setting's."""
    target = clean_cost(diffs, chosen.name)
    return min(gal_cells, key=lambda c: (abs(clean_cost(diffs, c.name) - target), c.alpha))


def choose_keep_dim(frame: pd.DataFrame, keep_cells: Sequence[Cell]) -> Cell:
    """Rule 4: the smallest keep_dim whose diverged features keep ≥ 80 % of the baselines'
    effective dimension; else the largest."""
    for cell in sorted(keep_cells, key=lambda c: c.keep_dim):
        g = frame[frame["cell"] == cell.name]
        share = (g[g["role"] == "diverge"]["effective_dim"].mean()
                 / g[g["role"] == "baseline"]["effective_dim"].mean())
        if share >= MIN_DIM_SHARE:
            return cell
    return max(keep_cells, key=lambda c: c.keep_dim)


def _phase_one(plan: Plan) -> tuple[list[Cell], list[Cell]]:
    """The dCor cells and the GAL cells of the plan's first phase."""
    cells = [c for s, c in plan.slots.items() if c is not None and not s.startswith("keep_dim=")]
    return ([c for c in cells if c.penalty in config.DCOR_PENALTIES],
            [c for c in cells if c.penalty == "grad_align"])


def attacker_names(white_box: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(white_box["attacker"]))


def choose_reference(plan: Plan, frame: pd.DataFrame, white_box: pd.DataFrame) -> Cell:
    """Rules 1 and 2 for the reference design: the setting phase 2 is trained at."""
    dcor, _ = _phase_one(plan)
    attackers = attacker_names(white_box)
    diffs = tables.differences(frame, plan.eps_grid, attackers)
    eps = choose_eps(white_box)
    return choose_setting(diffs, [c for c in dcor if c.design == "reference"], eps,
                          len(attackers))


def select(plan: Plan, frame: pd.DataFrame, white_box: pd.DataFrame) -> dict[str, Any]:
    """Every rule over the whole select stage's scores: the selection the confirm stage
    reads (``diverge_selection.json``)."""
    dcor, gal = _phase_one(plan)
    attackers = attacker_names(white_box)
    phase_one = frame[frame["cell"].isin([c.name for c in dcor + gal])]
    diffs = tables.differences(phase_one, plan.eps_grid, attackers)
    eps = choose_eps(white_box)
    chosen = {d: choose_setting(diffs, [c for c in dcor if c.design == d], eps, len(attackers))
              for d in config.DESIGNS if any(c.design == d for c in dcor)}
    ref = chosen["reference"]
    keep = [c for s, c in plan.slots.items() if s.startswith("keep_dim=") and c is not None]
    selection = {
        "eps_grid": eps,
        "reference": ref.params(),
        "paper_code": chosen["paper_code"].params() if "paper_code" in chosen else None,
        "grad_align_alpha": choose_gal(diffs, gal, ref).alpha,
        "keep_dim": choose_keep_dim(frame, keep).keep_dim,
        "rules": {"white_box_targets": WHITE_BOX_TARGETS, "max_clean_cost": MAX_CLEAN_COST,
                  "min_dim_share": MIN_DIM_SHARE},
        "split": "validation", "seeds": plan.options["n_seeds"], "attackers": attackers,
    }
    return selection

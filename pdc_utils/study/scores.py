"""Where a study keeps its scores, and which jobs are still to do (no TensorFlow).

Each scoring job writes ``<folder>/scores/<stage>/<cell>.csv`` (one row per network of the
cell, :func:`pdc_utils.study.scoring.score_cell`) and ``<cell>.json`` (the parameters it
scored with and how long it took); the first cell's job also writes ``white_box.csv`` (every
attacker on its own adversarial images). A score counts only when its record matches the plan,
so a changed plan is scored again, never mixed with old numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pdc_utils import artifacts, config

if TYPE_CHECKING:
    from pdc_utils.study.plan import Job, Plan

WHITE_BOX = "white_box.csv"


def paths(plan: Plan, slot: str) -> tuple[Path, Path]:
    """``(<cell>.csv, <cell>.json)`` of a resolved slot."""
    name = plan.slots[slot].name
    folder = plan.scores_dir()
    return folder / f"{name}.csv", folder / f"{name}.json"


def record(plan: Plan, slot: str) -> dict[str, Any]:
    """What a cell's scores depend on: its run's parameters, the split and the ε grid."""
    p = plan.cell_params(slot)
    keys = (*config.TRAINING_KEYS, "run_name", "protocol", "pgd_step", "pgd_steps",
            "attack_limit")
    return {"params": {k: p[k] for k in keys if k in p}, "split": plan.split,
            "eps_grid": plan.eps_grid,
            "first": slot == next(iter(plan.slots))}


def scored(plan: Plan, slot: str) -> bool:
    """Whether the cell's scores are there and were made with this plan's parameters."""
    if plan.slots.get(slot) is None:
        return False
    table, meta = paths(plan, slot)
    if not table.exists() or not meta.exists():
        return False
    if record(plan, slot)["first"] and not (plan.scores_dir() / WHITE_BOX).exists():
        return False
    try:
        return artifacts.read_json(meta).get("record") == _jsonable(record(plan, slot))
    except ValueError:
        return False


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def save(plan: Plan, slot: str, rows: pd.DataFrame, white_box: pd.DataFrame | None,
         seconds: float) -> None:
    """Write a cell's scores atomically (the table, then its record)."""
    table, meta = paths(plan, slot)
    table.parent.mkdir(parents=True, exist_ok=True)
    if white_box is not None:
        artifacts.write_atomic(plan.scores_dir() / WHITE_BOX,
                               lambda tmp: white_box.to_csv(tmp, index=False))
    artifacts.write_atomic(table, lambda tmp: rows.to_csv(tmp, index=False))
    artifacts.write_json_atomic(meta, {"record": record(plan, slot), "seconds": seconds})


def load(plan: Plan, slots: list[str]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``(per-network rows of ``slots`` in plan order, white-box rows)``, or ``None`` while
    any of them is not scored."""
    if not all(scored(plan, s) for s in slots):
        return None
    frame = pd.concat([pd.read_csv(paths(plan, s)[0]) for s in slots], ignore_index=True)
    return frame, pd.read_csv(plan.scores_dir() / WHITE_BOX)


def network_files(plan: Plan, run: str, name: str) -> list[Path]:
    """The files of a finished network (model, record, history) in run ``run`` of the study."""
    models, results = plan.folder / run / "models", plan.folder / run / "results"
    return [models / f"{name}.keras", models / f"{name}.json", results / f"history_{name}.csv"]


def job_done(plan: Plan, job: Job) -> bool:
    """Whether a job's output is there: its networks' files (their parameters are checked
    when they are used), or the cell's scores."""
    if job.kind == "score":
        return scored(plan, job.slot)
    if not job.resolved:
        return False
    return all(p.exists() for n in job.networks for p in network_files(plan, job.run, n))


def missing_jobs(plan: Plan) -> list[Job]:
    """The plan's jobs whose output is not there yet."""
    return [j for j in plan.jobs if not job_done(plan, j)]

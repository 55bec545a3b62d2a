"""A study stage as a plan of independent, idempotent jobs over one shared folder.

``build_plan`` lists every training (one job per network, or per chain of the ``paper_code``
design, each with its run, full parameters and seed) and every scoring job (one per cell); the
jobs run in any process, in any order their ``after`` lists allow, because finished networks
are reused by their parameters, interrupted ones resume and a job is done under its own lock
(:mod:`pdc_utils.study.jobs`). Networks that do not depend on a cell's setting are trained once
in a *home* run and copied where needed: the attackers (home: the first cell) and, under the
``reference`` design, the baselines of every cell with the same penalty (home: the first such
cell), as the studies have always shared them.

The study's folder (``--dir``, default ``runs/study_<profile>``) holds the cells' runs, the
plan (``plan_<stage>.json``), the scores (``scores/<stage>/<cell>.csv``), the job locks and
the reports (``results/``).

The ``select`` stage has two phases: the spread term's cells (phase 2) are trained at the
setting that rule 2 chooses from phase 1's scores, so until those scores exist the phase-2
jobs are listed with their slot (``keep_dim=0.3``) and no run; their ids never change.

It imports TensorFlow only through :mod:`pdc_utils.experiment`'s names and seeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pdc_utils import artifacts, config
from pdc_utils import experiment as experiment_seeds
from pdc_utils.study import grid
from pdc_utils.study.grid import Cell

#: The study's results file names (``--name`` changes the stem) per stage.
DEFAULT_STEMS = {"select": "diverge_study", "confirm": "diverge_confirm"}
SELECTION_FILE = "diverge_selection.json"
#: The digits study's committed choices: the confirm stage of the quick profile reads them
#: when the study folder holds no selection of its own.
COMMITTED_SELECTION = Path("bench") / "results" / SELECTION_FILE
TRAINING_KINDS = ("attacker", "baseline", "diverge", "chain")


@dataclass(frozen=True)
class Job:
    """One job: a training (``attacker``, ``baseline``, ``diverge``, ``chain``) or the scoring
    of one cell (``score``). ``run`` is the run folder (under the study folder) it works in;
    ``networks`` and ``seeds`` what it trains; ``after`` the ids of jobs it needs first."""

    id: str
    kind: str
    slot: str
    phase: int
    run: str = ""
    cell: dict[str, Any] = field(default_factory=dict)
    pair: int | None = None
    attacker: int | None = None
    networks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        return bool(self.run)


@dataclass
class Plan:
    """A stage's jobs and what they share: the training parameters of every cell (``params``,
    before the cell's own), the study options and, once known, each slot's cell."""

    stage: str
    profile: str
    folder: Path
    results: Path
    options: dict[str, Any]
    params: dict[str, Any]
    split: str
    eps_grid: list[float]
    slots: dict[str, Cell | None]
    labels: dict[str, str]
    jobs: list[Job]
    selection: dict[str, Any] | None = None
    pending: str = ""

    def job(self, job_id: str) -> Job:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise KeyError(f"no job {job_id!r} in the {self.stage} plan")

    def run_name(self, slot: str) -> str:
        cell = self.slots[slot]
        return f"{self.options['prefix']}{cell.name}" if cell else ""

    def cell_params(self, slot: str) -> dict[str, Any]:
        """The full parameters of a cell's run (an :class:`pdc_utils.experiment.Experiment`)."""
        cell = self.slots[slot]
        if cell is None:
            raise ValueError(f"cell {slot!r} is not known yet: {self.pending}")
        return {**self.params, **cell.params(), "run_name": self.run_name(slot)}

    def scores_dir(self) -> Path:
        return self.folder / "scores" / self.stage

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "profile": self.profile, "split": self.split,
                "options": self.options, "params": self.params, "eps_grid": self.eps_grid,
                "cells": {s: (c.params() if c else None) for s, c in self.slots.items()},
                "labels": self.labels, "pending": self.pending,
                "jobs": [asdict(j) for j in self.jobs]}


def default_folder(profile: str) -> Path:
    """``runs/study_<profile>`` (under ``$PDC_RUNS_DIR`` when set)."""
    return config.runs_root() / f"study_{profile}"


def selection_path(options: Mapping[str, Any], results: Path, profile: str) -> Path:
    """Where the confirm stage reads the select stage's choices: ``-p selection=PATH``, else
    the study's own results, else (profile ``quick`` only) the digits study's committed
    choices."""
    if options.get("selection"):
        return Path(options["selection"])
    own = results / SELECTION_FILE
    committed = config.project_root() / COMMITTED_SELECTION
    if not own.exists() and profile == "quick" and committed.exists():
        return committed
    return own


def build_plan(stage: str, profile: str, overrides: Mapping[str, Any], folder: Path,
               results: Path | None = None) -> Plan:
    """The plan of ``stage`` for ``profile`` with the ``-p`` ``overrides``, in ``folder``.

    Phase 2 of ``select`` is resolved when phase 1's scores are in ``folder``.
    """
    options, params = grid.split_options(stage, profile, overrides)
    results = results or folder / "results"
    selection = None
    labels: dict[str, str] = {}
    if stage == "select":
        cells = grid.select_cells(options)
        slots: dict[str, Cell | None] = {c.name: c for c in cells}
        slots.update({f"keep_dim={k:g}": None for k in options["keep_dims"]})
        split, eps = "validation", [float(e) for e in options["candidate_eps"]]
    else:
        selection = grid.read_selection(selection_path(options, results, profile))
        named = {k: v for k, v in grid.confirm_settings(selection).items()
                 if k in options["settings"]}
        missing = sorted(set(options["settings"]) - set(named))
        if missing:
            raise ValueError(f"settings {missing} are not in the selection (it has no setting "
                             f"of that design); choose among {', '.join(named)}")
        slots = {c.name: c for c in named.values()}
        labels = {c.name: label for label, c in named.items()}
        split, eps = "test", [float(e) for e in selection["eps_grid"]]
    plan = Plan(stage, profile, Path(folder), Path(results), options, params, split, eps, slots,
                labels, [], selection)
    if stage == "select":
        _resolve_keep_cells(plan)
    plan.jobs = _jobs(plan)
    return plan


def _resolve_keep_cells(plan: Plan) -> None:
    """Fill phase 2's slots from phase 1's scores, if they are all there."""
    from pdc_utils.study import rules, scores  # pandas and the rules: only when needed

    first = [s for s, c in plan.slots.items() if c is not None]
    loaded = scores.load(plan, first)
    if loaded is None:
        plan.pending = ("the keep_dim cells are trained at the reference-design setting rule 2 "
                        "chooses from the first phase's scores, which are not all there yet")
        return
    frame, white_box = loaded
    chosen = rules.choose_reference(plan, frame, white_box)
    for cell in grid.keep_cells(plan.options, chosen):
        plan.slots[f"keep_dim={cell.keep_dim:g}"] = cell


def _jobs(plan: Plan) -> list[Job]:
    """Trainings first (attackers, then every cell's networks), then the scoring jobs, per
    phase; shared networks only in their home run."""
    seed, n_seeds, n_nets = plan.params["seed"], plan.options["n_seeds"], plan.params["n_nets"]
    trainings: dict[int, list[Job]] = {1: [], 2: []}
    scoring: dict[int, list[Job]] = {1: [], 2: []}
    first = next(iter(plan.slots))
    attackers = []
    for k in range(plan.options["n_attackers"]):
        name = experiment_seeds.attacker_name(k)
        attackers.append(Job(f"{first}/{name}", "attacker", first, 1, plan.run_name(first),
                             plan.slots[first].params(), attacker=k, networks=(name,),
                             seeds=(experiment_seeds.attacker_seed(seed, k),)))
    trainings[1] += attackers
    f1 = (attackers[0].id,)
    home_of_baselines: dict[str, str] = {}
    phase1_scores = [f"{s}/score" for s, c in plan.slots.items()
                     if not s.startswith("keep_dim=")]
    for slot, cell in plan.slots.items():
        phase = 2 if slot.startswith("keep_dim=") else 1
        if cell is None:  # phase 2 before its setting is chosen
            own = [Job(f"{slot}/{experiment_seeds.diverge_name(s)}", "diverge", slot, 2,
                       pair=s, networks=(experiment_seeds.diverge_name(s),),
                       seeds=(experiment_seeds.pair_seed(seed, s),),
                       after=tuple(phase1_scores)) for s in range(n_seeds)]
            trainings[2] += own
            scoring[2].append(Job(f"{slot}/score", "score", slot, 2,
                                  after=tuple(j.id for j in own)))
            continue
        run, params = plan.run_name(slot), cell.params()
        needed = [j.id for j in attackers]
        own = []
        if cell.design == "paper_code":
            for s in range(n_seeds):
                names = experiment_seeds.chain_names(s, n_nets)
                own.append(Job(f"{slot}/chain_s{s}", "chain", slot, phase, run, params, pair=s,
                               networks=tuple(names),
                               seeds=tuple(experiment_seeds.chain_seed(seed, s, k)
                                           for k in range(n_nets))))
        else:
            home = home_of_baselines.setdefault(cell.penalty, slot)
            if home == slot:
                own += [Job(f"{slot}/{experiment_seeds.baseline_name(s)}", "baseline", slot,
                            phase, run, params, pair=s,
                            networks=(experiment_seeds.baseline_name(s),),
                            seeds=(experiment_seeds.pair_seed(seed, s),), after=f1)
                        for s in range(n_seeds)]
            else:
                needed += [f"{home}/{experiment_seeds.baseline_name(s)}" for s in range(n_seeds)]
            own += [Job(f"{slot}/{experiment_seeds.diverge_name(s)}", "diverge", slot, phase,
                        run, params, pair=s, networks=(experiment_seeds.diverge_name(s),),
                        seeds=(experiment_seeds.pair_seed(seed, s),), after=f1)
                    for s in range(n_seeds)]
        trainings[phase] += own
        scoring[phase].append(Job(f"{slot}/score", "score", slot, phase, run, params,
                                  after=tuple(needed + [j.id for j in own])))
    return trainings[1] + scoring[1] + trainings[2] + scoring[2]


def write(plan: Plan) -> Path:
    """Write the plan to ``<folder>/plan_<stage>.json`` (atomically)."""
    path = plan.folder / f"plan_{plan.stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return artifacts.write_json_atomic(path, plan.to_json())


def describe(plan: Plan) -> str:
    """The plan in words: the cells with their parameters and seeds, then every job."""
    p, o = plan.params, plan.options
    lines = [f"study {plan.stage} on profile {plan.profile!r} ({p['dataset']}, {p['network']} "
             f"at width {p['width']}, {p['epochs']} epochs, batch {p['batch_size']}, learning "
             f"rate {p['learning_rate']:g}, {p['schedule']} schedule) in {plan.folder}",
             f"scored on the {plan.split} split at ε {plan.eps_grid} ({p['protocol']} protocol, "
             f"FGM and PGD {p['pgd_steps']} steps of {p['pgd_step']:g}); {o['n_seeds']} seed "
             f"pairs per cell, {o['n_attackers']} attackers",
             "seeds: " + config.seed_plan({**p, "design": "reference"}),
             "", "cells:"]
    for slot, cell in plan.slots.items():
        label = f"{plan.labels[cell.name]}: " if cell and cell.name in plan.labels else ""
        if cell is None:
            lines.append(f"  {slot}: at the setting rule 2 chooses (not yet known)")
            continue
        seeds = config.seed_plan({**p, **cell.params()})
        lines.append(f"  {label}{cell.name} (run {plan.run_name(slot)}): design {cell.design}, "
                     f"penalty {cell.penalty}, alpha {cell.alpha:g}, keep_dim "
                     f"{cell.keep_dim:g}, diverge_from {cell.diverge_from}; {seeds}")
    if plan.pending:
        lines.append(f"  note: {plan.pending}")
    lines += ["", f"jobs ({len(plan.jobs)}; `study run --shard K/N` takes every N-th from K):"]
    for i, job in enumerate(plan.jobs):
        what = (", ".join(f"{n} (seed {s})" for n, s in zip(job.networks, job.seeds,
                                                           strict=True))
                if job.kind != "score" else f"score every network of the cell on "
                f"{plan.split}")
        lines.append(f"  {i:4d} {job.id} [{job.kind}, phase {job.phase}]: {what}")
    return "\n".join(lines)


def dumps(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2)

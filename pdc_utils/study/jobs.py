"""Run a plan's jobs: this process's slice of them, safely beside any number of others.

``--shard K/N`` (0 ≤ K < N) takes jobs K, K + N, K + 2N, … of the plan; without it the slice
comes from the cluster's scheduler: a Slurm job array (``SLURM_ARRAY_TASK_ID`` minus
``SLURM_ARRAY_TASK_MIN``, of ``SLURM_ARRAY_TASK_COUNT``) or a Kubernetes indexed Job
(``JOB_COMPLETION_INDEX``, of ``--shards N`` or ``PDC_STUDY_SHARDS``); with none of these,
the whole plan. The project ships no scheduler: the cluster's own starts the N processes.

Every job is done under its own lock (``<folder>/.locks/<job>.lock``, an ``fcntl.flock``
that the kernel frees when its holder dies, SIGKILL included). A job first makes sure of the
jobs it needs (its ``after`` list) — doing them itself, or waiting while another process holds
their lock — then, under its lock, trains or reuses its networks (an interrupted training
resumes from its backup) or scores its cell. A killed process restarted with the same command
therefore finishes its slice, and two processes never do one job at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pdc_utils.study import plan as plan_module
from pdc_utils.study import scores
from pdc_utils.study.plan import Job, Plan


class ShardError(ValueError):
    """A shard specification (option or scheduler variables) that is not valid."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)`` with 0 ≤ K < N."""
    k, sep, n = text.partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise ShardError(f"--shard takes K/N with 0 <= K < N (the K-th of N slices, counted "
                         f"from 0), got {text!r}")
    return index, count


def shard_from_environment(env: Mapping[str, str], shards: int | None = None
                           ) -> tuple[int, int] | None:
    """The slice a Slurm array task or a Kubernetes indexed Job stands for, or ``None``."""
    if "SLURM_ARRAY_TASK_ID" in env:
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError) as err:
            raise ShardError(f"a Slurm array task needs integer SLURM_ARRAY_TASK_ID and "
                             f"SLURM_ARRAY_TASK_COUNT ({err!r}); submit with sbatch --array "
                             f"0-(N-1)") from err
        index = task - first
        if not 0 <= index < count:
            raise ShardError(f"Slurm array task {task} is not one of {count} contiguous tasks "
                             f"from {first}: use --array {first}-{first + count - 1} (no step)")
        return index, count
    if "JOB_COMPLETION_INDEX" in env:
        count = shards if shards is not None else env.get("PDC_STUDY_SHARDS")
        try:
            index, count = int(env["JOB_COMPLETION_INDEX"]), int(count)  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise ShardError("a Kubernetes indexed Job (JOB_COMPLETION_INDEX) needs the number "
                             "of shards: --shards N or PDC_STUDY_SHARDS=N (the Job's "
                             "completions)") from err
        if not 0 <= index < count:
            raise ShardError(f"JOB_COMPLETION_INDEX={index} is not below the {count} shards")
        return index, count
    return None


def choose_shard(option: str | None, env: Mapping[str, str], shards: int | None = None
                 ) -> tuple[int, int]:
    """``--shard`` if given, else the scheduler's variables, else the whole plan ``(0, 1)``."""
    if option:
        return parse_shard(option)
    return shard_from_environment(env, shards) or (0, 1)


def slice_of(plan: Plan, index: int, count: int) -> list[Job]:
    """Jobs ``index``, ``index + count``, … of the plan."""
    return plan.jobs[index::count]


@contextlib.contextmanager
def job_lock(folder: Path, job_id: str) -> Iterator[None]:
    """Hold the job's lock, waiting while another live process holds it."""
    locks = folder / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / (job_id.replace("/", "__").replace("=", "-") + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {job_id}: another process is doing it", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def runs_in(folder: Path) -> Iterator[None]:
    """Runs (``config.run_dir``) resolve inside the study's folder for the block."""
    before = os.environ.get("PDC_RUNS_DIR")
    os.environ["PDC_RUNS_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PDC_RUNS_DIR", None)
        else:
            os.environ["PDC_RUNS_DIR"] = before


def _copy_network(plan: Plan, source: str, target: str, name: str) -> None:
    """Put a finished network of run ``source`` into run ``target`` (atomically, if it is not
    there): the run reuses it only if its record matches what it would train."""
    if source == target:
        return
    for src, dst in zip(scores.network_files(plan, source, name),
                        scores.network_files(plan, target, name), strict=True):
        if src.exists() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)


class Runner:
    """Does jobs of one plan in this process (TensorFlow is imported on the first job)."""

    def __init__(self, plan: Plan, overrides: Mapping[str, Any]) -> None:
        self.plan = plan
        self.overrides = dict(overrides)
        self.done: set[str] = set()
        self._experiments: dict[str, Any] = {}
        self._configured = False

    def _rebuild(self) -> None:
        self.plan = plan_module.build_plan(self.plan.stage, self.plan.profile, self.overrides,
                                           self.plan.folder, self.plan.results)
        self._experiments.clear()

    def _experiment(self, slot: str) -> Any:
        from pdc_utils import experiment, training

        if not self._configured:
            training.configure(self.plan.params["seed"], strategy=self.plan.params["strategy"])
            self._configured = True
        run = self.plan.run_name(slot)
        if run not in self._experiments:
            self._experiments[run] = experiment.Experiment(self.plan.cell_params(slot),
                                                           progress=False)
        return self._experiments[run]

    def ensure(self, job_id: str, own: bool = True) -> None:
        """Make sure job ``job_id`` is done: its prerequisites, then itself under its lock.

        A job of this process's slice (``own``) always runs: a training then reuses finished
        networks only after checking their parameters. A prerequisite training whose files
        are all there is taken as done (the job that uses it checks its parameters on
        loading)."""
        if job_id in self.done:
            return
        job = self.plan.job(job_id)
        if (not own and job.kind in plan_module.TRAINING_KINDS
                and scores.job_done(self.plan, job)):
            self.done.add(job_id)
            return
        if not job.resolved:  # phase 2 of select: its setting comes from phase 1's scores
            for first in job.after:
                self.ensure(first, own=False)
            self._rebuild()
            job = self.plan.job(job_id)
            if not job.resolved:
                raise RuntimeError(f"{job_id}: the first phase is scored but its setting "
                                   f"could not be chosen ({self.plan.pending})")
        for first in job.after:
            self.ensure(first, own=False)
        with job_lock(self.plan.folder, job.id):
            if not (job.kind == "score" and scores.scored(self.plan, job.slot)):
                start = time.perf_counter()
                print(f"{job.id}: started", flush=True)
                self._do(job)
                print(f"{job.id}: done in {time.perf_counter() - start:.0f} s", flush=True)
        self.done.add(job_id)

    def _prerequisite_networks(self, job: Job) -> None:
        """Copy the shared networks the job needs into its run from their home runs."""
        for first in job.after:
            other = self.plan.job(first)
            if other.kind in plan_module.TRAINING_KINDS:
                for name in other.networks:
                    _copy_network(self.plan, other.run, job.run, name)

    def _do(self, job: Job) -> None:
        from pdc_utils.study import scoring

        with runs_in(self.plan.folder):
            self._prerequisite_networks(job)
            exp = self._experiment(job.slot)
            if job.kind == "attacker":
                exp.train_attacker(job.attacker)
            elif job.kind == "chain":
                exp.train_chain(job.pair)
            elif job.kind in ("baseline", "diverge"):
                f1 = exp.train_attacker(0)  # reused: finished, copied from its home run
                train = exp.train_baseline if job.kind == "baseline" else exp.train_diverged
                train(f1, job.pair)
            else:
                start = time.perf_counter()
                cell = self.plan.slots[job.slot]
                rows, white_box = scoring.score_cell(exp, cell, self.plan.split,
                                                     self.plan.eps_grid, self.plan.params)
                first = job.slot == next(iter(self.plan.slots))
                scores.save(self.plan, job.slot, rows, white_box if first else None,
                            time.perf_counter() - start)


def run_slice(plan: Plan, overrides: Mapping[str, Any], index: int, count: int) -> list[str]:
    """Do jobs ``index``, ``index + count``, … of the plan (and whatever they need that no
    other process is doing); the ids done."""
    runner = Runner(plan, overrides)
    ids = [job.id for job in slice_of(plan, index, count)]
    print(f"shard {index}/{count}: {len(ids)} of the plan's {len(plan.jobs)} jobs", flush=True)
    for job_id in ids:
        runner.ensure(job_id)
    return ids

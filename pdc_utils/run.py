"""Run the notebook series end to end with papermill.

Each notebook receives the profile's values for exactly the parameters its ``parameters``
cell declares; ``-p KEY=VALUE`` overrides a profile value for every notebook that declares it.
Executed copies go to ``runs/<run>/notebooks/``; the run stops at the first failure and says
which notebook and cell failed and where the partly executed copy is. A notebook runs into
``NN_name.partial.ipynb``, which becomes ``NN_name.ipynb`` when it succeeds and
``NN_name.failed.ipynb`` when it fails: a failed rerun never replaces the last successful copy,
nor its record of the parameters its tables were made with (``results/made_with_NN_name.json``,
which also holds the tables' SHA-256, so a table changed since, e.g. by hand, is not shown under
the old parameters). Nor does it change what the good run made: the run's ``results/`` and
``figures/<run>/`` are kept aside while a notebook runs and put back if it fails
(:func:`pdc_utils.artifacts.restored_unless_done`), so ``summary.md``, ``verdict.md`` and the
figures always belong to one successful execution; only the training histories of finished
networks stay, with their models. At the end it writes ``runs/<run>/summary.md``.

While the series runs, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) instead
of killing the runner outright, exactly as Ctrl-C does. papermill shuts a notebook's kernel down
only in a ``finally`` block, and that shutdown is what deletes the kernel's connection file
(which holds the session key) from the Jupyter runtime folder; a runner killed by the default
SIGTERM action skips it and leaves the file behind.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pdc_utils import artifacts, config, evidence, locking, run_record
from pdc_utils.quiet import start_up_noise_filtered


class RunError(RuntimeError):
    """The series could not run: a notebook failed (the message names the notebook, cell and
    partly executed copy) or the run or figures folder cannot be written (the message names
    it)."""


class WorkerLost(RunError):
    """A worker of a multi-worker training stopped: TensorFlow's collectives are aborted and
    cannot be used again in this process, which should exit (and be started again)."""


class Terminated(KeyboardInterrupt):
    """The runner received SIGTERM; raised like Ctrl-C's ``KeyboardInterrupt`` so that
    ``finally`` blocks (papermill's kernel shutdown) run. ``signal`` is the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signum}")
        self.signal = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the old handler is restored after.

    Signal handlers can only be set in the main thread; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def notebooks_dir() -> Path:
    """The folder of the series' notebooks (``<project>/notebooks``)."""
    return config.project_root() / "notebooks"


def parse_override(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(key, value)``; the value is a Python literal if it parses as one.

    ``epochs=3`` gives 3, ``eps_grid=[0.03,0.1]`` a list, ``dataset=cifar10`` the string.
    A list parameter given one value is a one-element list: ``attacks=fgm`` gives ``["fgm"]``
    and ``eps_grid=0.05`` gives ``[0.05]`` (a string is never split into its letters); a tuple
    such as ``eps_grid=0.03,0.1`` becomes a list. Whether the values are valid is checked
    later by :func:`pdc_utils.config.validate`.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"parameters are given as KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if config.is_list_parameter(key):
        value = list(value) if isinstance(value, list | tuple) else [value]
    return key, value


def select_notebooks(selection: Iterable[str] | None, directory: Path | None = None) -> list[Path]:
    """The notebooks to run, in series order; ``selection`` holds numbers like ``"02"``.

    ``None`` selects every notebook; a selection without any number (e.g. from
    ``--notebooks ,``) is an error rather than a run of nothing.
    """
    directory = directory or notebooks_dir()
    available = sorted(directory.glob("[0-9][0-9]_*.ipynb"))
    if not available:
        raise FileNotFoundError(f"no numbered notebooks in {directory}")
    by_number = {p.name[:2]: p for p in available}
    if selection is None:
        return available
    wanted = [s.strip().zfill(2) for s in selection if s.strip()]
    if not wanted:
        raise ValueError(f"no notebook numbers in the selection {list(selection)!r}; "
                         f"give some of: {', '.join(sorted(by_number))} (or none for all)")
    unknown = [w for w in wanted if w not in by_number]
    if unknown:
        raise ValueError(f"unknown notebooks {unknown}; valid: {', '.join(sorted(by_number))}")
    return [by_number[w] for w in sorted(set(wanted))]


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares (name -> papermill's description of it)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def resolve_parameters(profile: str, run_name: str | None,
                       overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's parameters with overrides applied, validated before anything runs."""
    params = config.profile(profile)
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; valid: {', '.join(sorted(params))}")
    params.update(overrides)
    if run_name is not None:  # an empty name is an error, not the profile's name
        params["run_name"] = run_name
    return config.validate(params)


def run_series(profile: str = "quick", *, run_name: str | None = None,
               overrides: Mapping[str, Any] | None = None,
               notebooks: Sequence[str] | None = None,
               directory: Path | None = None, progress: bool = True) -> Path:
    """Execute the selected notebooks in order with ``profile``; return the summary's path.

    Parameters, notebook selection and the run and figures folders are checked, and the run's
    lock is taken (:mod:`pdc_utils.locking`), before any kernel starts. While notebooks run,
    SIGTERM raises :class:`Terminated` so that papermill shuts the kernel down and removes its
    connection file (see the module docstring).
    """
    params = resolve_parameters(profile, run_name, overrides or {})
    if params["strategy"] == "multi_worker":
        raise ValueError(
            "the notebooks do not run under strategy 'multi_worker' (each worker would write "
            "the same results and figures): train on all workers with `python -m pdc_utils "
            f"train --profile {profile} -p strategy=multi_worker ...`, then run the series "
            "once, on one machine that sees the same runs/ folder, with the same parameters "
            "and a one-machine strategy (auto, default or mirrored): it reuses the trained "
            "networks (README, Scaling out)")
    paths = select_notebooks(notebooks, directory)
    out_dir = writable_output_dir(params["run_name"])
    writable_results_dirs(params["run_name"])
    writable_figures_dir(params["run_name"])
    timings: dict[str, float] = {}
    with locking.run_lock(params["run_name"], "run"), sigterm_raises(), \
            start_up_noise_filtered():
        run_record.reconcile(params, [p.stem for p in paths], f"python -m pdc_utils run "
                             f"--profile {profile}")
        for index, path in enumerate(paths, start=1):
            print(f"[{index}/{len(paths)}] {path.stem} (run {params['run_name']!r}) -> "
                  f"{out_dir / path.name}", flush=True)
            timings[path.stem] = execute_notebook(path, out_dir / path.name, params, progress)
        return write_summary(profile, params, timings)


def _writable(folder: Path, what: str, root: Path, variable: str, default: str) -> Path:
    """Create ``folder`` and check that a file can be written there; else a :class:`RunError`
    naming it and the environment variable ``variable`` that chooses where ``root`` is."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise RunError(
            f"cannot write the {what} {folder} ({err.strerror or err}). {default.capitalize()} "
            f"are written under {root}, which is ${variable} or <project>/{default}; set "
            f"{variable} to a writable folder and rerun the same command."
        ) from err
    return folder


def writable_output_dir(run: str) -> Path:
    """Create ``runs/<run>/notebooks/`` and check that files can be written there.

    Raises :class:`RunError` naming the folder and how to choose another (``PDC_RUNS_DIR``)
    before any notebook starts, rather than failing inside papermill.
    """
    return _writable(config.run_dir(run) / "notebooks", "run folder", config.runs_root(),
                     "PDC_RUNS_DIR", "runs")


def writable_results_dirs(run: str) -> list[Path]:
    """:func:`writable_output_dir` for ``runs/<run>/results/`` and ``models/``, where the
    notebooks write their tables and networks: checked before any notebook starts, not after
    the work whose results cannot be saved."""
    return [_writable(folder, f"{folder.name} folder", config.runs_root(), "PDC_RUNS_DIR",
                      "runs")
            for folder in (config.results_dir(run), config.models_dir(run))]


def writable_run_dir(run: str) -> Path:
    """:func:`writable_output_dir` for ``runs/<run>/`` itself, where ``train`` writes."""
    return _writable(config.run_dir(run), "run folder", config.runs_root(), "PDC_RUNS_DIR",
                     "runs")


def writable_figures_dir(run: str) -> Path:
    """:func:`writable_output_dir` for ``figures/<run>/`` (``PDC_FIGURES_DIR``), checked before
    any notebook starts rather than when the first figure is saved."""
    folder = config.figures_dir(run)
    return _writable(folder, "figures folder", folder.parent, "PDC_FIGURES_DIR", "figures")


def execute_notebook(path: Path, output: Path, params: Mapping[str, Any],
                     progress: bool) -> float:
    """Run one notebook with the parameters it declares; return its wall time in seconds.

    papermill writes into ``NN_name.partial.ipynb`` beside ``output``; on success that copy
    replaces ``output`` and the parameters are recorded. A failing cell raises
    :class:`RunError` naming the notebook, the cell and the partly executed copy, which is
    renamed ``NN_name.failed.ipynb``; ``output`` and the record of its run stay as they were.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    declared = declared_parameters(path)
    given = {k: v for k, v in params.items() if k in declared}
    partial, failed = (output.with_name(f"{output.stem}.{state}.ipynb")
                       for state in ("partial", "failed"))
    run = params["run_name"]
    start = time.perf_counter()
    try:
        with artifacts.restored_unless_done(
                [config.results_dir(run), config.figures_dir(run)],
                config.run_dir(run) / RESTORE_DIR / path.stem, spare=_kept_with_networks):
            # the kernel's C++ output (TensorFlow's start-up lines) goes to the runner's
            # stderr, where start_up_noise_filtered drops it, not into the executed notebook
            papermill.execute_notebook(str(path), str(partial), parameters=given,
                                       cwd=str(path.parent), kernel_name="python3",
                                       progress_bar=progress, log_output=False,
                                       extra_arguments=["--IPKernelApp.capture_fd_output=False"])
    except BaseException as err:  # a failing cell, Ctrl-C, SIGTERM: keep what ran, aside
        _drop_restore_dir(run)
        if partial.exists():
            os.replace(partial, failed)
        if not isinstance(err, PapermillExecutionError):
            raise
        kept = (f"; the last successful copy {output}, its tables and figures are kept"
                if output.exists() else "; the results and figures it wrote are removed")
        raise RunError(
            f"notebook {path.name} failed in cell [{err.exec_count}] "
            f"({_failed_cell_source(failed)}) with {err.ename}: {err.evalue}\n"
            f"the partly executed copy is {failed}{kept}"
        ) from err
    _drop_restore_dir(run)
    os.replace(partial, output)
    failed.unlink(missing_ok=True)  # an older failure's copy no longer says anything
    record_parameters(params["run_name"], path.stem, given)
    return time.perf_counter() - start


#: Where :func:`execute_notebook` keeps the run's results and figures while a notebook runs
#: (``runs/<run>/.restore/<notebook>/``), to put them back if it fails.
RESTORE_DIR = ".restore"


def _drop_restore_dir(run: str) -> None:
    """Remove ``runs/<run>/.restore/`` once it is empty (no notebook's snapshot in it)."""
    with contextlib.suppress(OSError):
        (config.run_dir(run) / RESTORE_DIR).rmdir()


def _kept_with_networks(path: Path) -> bool:
    """Files a failed notebook leaves in place: a network's training history
    (``results/history_<name>.csv``) belongs with its model file, which training keeps, and
    tells a resumed run that the network is finished."""
    return path.name.startswith("history_") and path.suffix == ".csv"


def _failed_cell_source(executed: Path, limit: int = 80) -> str:
    """The first line of the cell that raised, read back from the executed copy."""
    import nbformat

    notebook = nbformat.read(str(executed), as_version=4)
    for cell in notebook.cells:
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"`{first[:limit]}`"
    return "cell unknown"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


#: The summary's tables: (title, file, the notebook that writes it).
SUMMARY_TABLES = (
    ("Transfer attack (accuracy of each model, %, mean over seed pairs)",
     "transfer_attack.csv", "04_attack_evaluation"),
    ("Diverge − baseline over seed pairs (points, 95% t-interval)",
     "diverge_minus_baseline.csv", "04_attack_evaluation"),
    ("dCor² of penultimate features (whole test set): V, U and feature geometry",
     "feature_dcor.csv", "03_diverge_training"),
    ("Input-gradient cosine to the attacker", "gradient_alignment.csv", "04_attack_evaluation"),
    ("Layer-by-layer dCor² and linear CKA", "layer_dcor.csv", "05_comparing_networks"),
    ("Partial distance correlation, with permutation p-values", "partial_dcor.csv",
     "05_comparing_networks"),
)


def _made_with_path(run: str, notebook: str) -> Path:
    return config.results_dir(run) / f"made_with_{notebook}.json"


def _table_digests(run: str, notebook: str) -> dict[str, str]:
    """SHA-256 of each summary table of ``notebook`` that exists in the run's results."""
    results = config.results_dir(run)
    return {name: hashlib.sha256((results / name).read_bytes()).hexdigest()
            for _, name, made_by in SUMMARY_TABLES
            if made_by == notebook and (results / name).exists()}


def record_parameters(run: str, notebook: str, given: Mapping[str, Any]) -> None:
    """Record the parameters a notebook ran with and the digests of the tables it left, so the
    summary can tell its tables apart (and see a table that a later, failed run rewrote)."""
    artifacts.write_json_atomic(_made_with_path(run, notebook), {
        "parameters": dict(given), "tables": _table_digests(run, notebook)})


def why_not_current(run: str, notebook: str, table: str,
                    params: Mapping[str, Any]) -> str | None:
    """Why ``table`` of ``notebook`` may not be shown under ``params``, or ``None`` if it may:
    it was made with other parameters, or changed since ``notebook`` last succeeded, or no
    record says what it was made with."""
    path = _made_with_path(run, notebook)
    try:
        made_with = artifacts.read_json(path) if path.exists() else {}
    except ValueError:
        made_with = {}
    recorded = made_with.get("parameters")
    if not isinstance(recorded, dict):
        return "not known to be made with these parameters"
    digest = _table_digests(run, notebook).get(table)
    if made_with.get("tables", {}).get(table) != digest:
        return (f"changed after notebook {notebook[:2]} last succeeded (by a run that failed or "
                f"was stopped, or by hand), so its parameters are not known")
    differ = {k: v for k, v in recorded.items() if k in params and params[k] != v}
    return f"made with other parameters ({differ})" if differ else None


def train_networks(profile: str = "quick", *, run_name: str | None = None,
                   overrides: Mapping[str, Any] | None = None,
                   progress: bool = True) -> list[Path]:
    """Train (or reuse) every network of a run without the notebooks; their paths.

    The attackers first (f1 and the independent ones), then every seed pair's baseline and
    diverged network (under
    ``design = "paper_code"`` the chains), exactly as notebooks 02 and 03 would (same names,
    seeds, parameters and backups), so a later ``run`` with the same parameters reuses them.
    It is the entry point of a multi-worker training: every worker runs the same command with
    its own ``TF_CONFIG``; the chief writes the files, so only the chief checks that the run
    folder is writable and holds its lock (:mod:`pdc_utils.locking`).
    """
    params = resolve_parameters(profile, run_name, overrides or {})
    chief = True
    if params["strategy"] == "multi_worker":
        from pdc_utils import distribute

        # a clear error before TensorFlow starts
        chief = distribute.is_chief_task(distribute.cluster_from_environment())
    if chief:
        writable_run_dir(params["run_name"])
    lock = locking.run_lock(params["run_name"], "train") if chief else contextlib.nullcontext()
    with lock, sigterm_raises(), start_up_noise_filtered():
        import tensorflow as tf

        from pdc_utils import experiment, training

        if chief:
            run_record.write(params, f"python -m pdc_utils train --profile {profile}")
        setting = training.configure(params["seed"], strategy=params["strategy"])
        print(f"training run {params['run_name']!r} under strategy {setting['strategy']} "
              f"({setting['replicas']} replica(s))", flush=True)
        networks = experiment.Experiment(params, progress=progress)
        try:
            f1 = networks.attackers()[experiment.ATTACKER]
            networks.baselines(f1)
            networks.diverged(f1)
        except tf.errors.UnavailableError as err:  # another worker stopped or cannot be reached
            raise WorkerLost(
                f"a worker of the training stopped or cannot be reached ({type(err).__name__}). "
                f"Every finished epoch is kept in {config.run_dir(params['run_name'])}/backup: "
                "start the same command again on every worker to resume from there") from err
    names = [*networks.attacker_names, *(n for pair in networks.pairs for n in pair),
             *networks.chain_members]
    return [config.models_dir(params["run_name"]) / f"{name}.keras" for name in names]


def _trained_on(run: str) -> str:
    """Where the run's networks were trained (their ``.json`` records), e.g. "f1, f2_baseline:
    multi_worker, 8 replica(s) on 2 worker(s)"; a `train` command may have
    trained them under another strategy than the notebooks ran with."""
    groups: dict[str, list[str]] = {}
    for path in sorted(config.models_dir(run).glob("*.json")):
        try:
            where = artifacts.read_json(path).get("trained_on")
        except ValueError:
            continue
        if where:
            text = (f"{where['strategy']}, {where['replicas']} replica(s) on "
                    f"{where['workers']} worker(s)")
            groups.setdefault(text, []).append(path.stem)
    if not groups:
        return "not recorded"
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items())


def write_summary(profile: str, params: Mapping[str, Any], timings: Mapping[str, float]) -> Path:
    """Write ``runs/<run>/summary.md``: tables, parameters, versions, device, wall times.

    A table is shown only if the notebook that wrote it last succeeded with these parameters
    and the table is the one it left; any other table is named, with the command that remakes
    it, instead of being shown under parameters it may not belong to.
    """
    run = params["run_name"]
    results = config.results_dir(run)
    lines = [f"# Run `{run}` (profile `{profile}`)", ""]
    pairs = params.get("n_seeds", 0)
    if pairs < evidence.CONFIRMATORY_PAIRS:
        lines += [f"{pairs} seed pair{'s' if pairs != 1 else ''} make an illustration of the "
                  "method, not evidence about it: the confirmatory study (settings chosen on "
                  "validation data, fresh seeds, several attackers, controls, Holm's "
                  "correction) is `bench/results/diverge_confirm.md` in the repository.", ""]
    for title, name, notebook in SUMMARY_TABLES:
        if not (results / name).exists():
            continue
        why = why_not_current(run, notebook, name, params)
        if why:
            lines += [f"## {title}", "", f"Not shown: `{name}` was {why}; remake it with "
                      f"`python -m pdc_utils run --profile {profile} --run-name {run} "
                      f"--notebooks {notebook[:2]}` and the same `-p` options.", ""]
            continue
        lines += [f"## {title}", "", _markdown(pd.read_csv(results / name)), ""]
    environment = results / "environment.json"
    try:
        env = artifacts.read_json(environment) if environment.exists() else {}
    except artifacts.DamagedFile as err:
        env = {"device": f"not known: {err}"}
    versions = env.get("versions", artifacts.package_versions())
    lines += ["## Where and with what", "",
              f"- device: {env.get('device', 'not recorded (notebook 02 records it)')}",
              f"- precision: {env.get('precision_policy', 'n/a')}, seed {params.get('seed')}",
              f"- strategy: {env.get('strategy', 'n/a')}, {env.get('replicas', 'n/a')} "
              f"replica(s)",
              f"- networks trained under: {_trained_on(run)}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
              "## Wall time per notebook", ""]
    lines += [f"- {name}: {seconds:.1f} s" for name, seconds in timings.items()]
    lines += [f"- total: {sum(timings.values()):.1f} s", "", "## Parameters", ""]
    lines += [f"- `{k}` = `{v!r}`" for k, v in sorted(params.items())]
    return artifacts.write_text_atomic(config.run_dir(run) / "summary.md", "\n".join(lines) + "\n")


def describe_profiles() -> str:
    """A readable listing of every profile and its parameters, then what each parameter
    accepts (so the choices, e.g. every penalty, are listed too)."""
    blocks = []
    for name, values in config.PROFILES.items():
        params = config.profile(name)
        body = "\n".join(f"    {k} = {v!r}" for k, v in sorted(params.items()))
        blocks.append(f"{name}: {values['description']}\n    seeds: "
                      f"{config.seed_plan(params)}\n{body}")
    accepts = "\n".join(f"    {k}: {config.describe_parameter(k)}"
                        for k in sorted(config.parameter_names()))
    blocks.append(f"What each parameter accepts (-p KEY=VALUE):\n{accepts}")
    return "\n\n".join(blocks)


LECTURER_ONLY_TAGS = frozenset({"solution", "lecturer"})
"""Tags of the cells that student copies leave out."""


def write_student_copies(out_dir: str | os.PathLike, directory: Path | None = None, *,
                         force: bool = False) -> list[Path]:
    """Write every notebook of the series to ``out_dir`` without its cells tagged ``solution``
    (the reference answers) or ``lecturer`` (notes that speak to the lecturer), outputs
    cleared: the copies a lecturer hands out. Files get the permissions the umask allows.

    Nothing is written when ``out_dir`` is empty or blank, when it is the folder of the series'
    notebooks (``directory``; compared as resolved paths, so ``./notebooks/`` and
    ``<repo>/notebooks/../notebooks`` count) or when a copy would replace an existing file
    and ``force`` is not set: the originals' solutions and a student's work are never lost.
    """
    import nbformat

    if not str(out_dir).strip():
        raise ValueError("the folder for the student copies (--out) is empty; give a folder "
                         "such as --out handout (it is created if missing)")
    source = (directory or notebooks_dir()).resolve()
    out = Path(out_dir).expanduser()
    if out.resolve() == source or (out.is_dir() and os.path.samefile(out, source)):
        raise ValueError(f"the folder for the student copies (--out) {out_dir!r} is the folder "
                         f"of the series' notebooks ({source}): the copies would replace the "
                         "originals and their solutions. Give another folder, e.g. --out "
                         "handout")
    if out.exists() and not out.is_dir():
        raise ValueError(f"the folder for the student copies (--out) {out_dir!r} is a file, "
                         "not a folder; give a new or existing folder, e.g. --out handout")
    paths = select_notebooks(None, directory)
    existing = [out / p.name for p in paths if (out / p.name).exists()]
    if existing and not force:
        raise FileExistsError(
            f"{out} already holds {', '.join(p.name for p in existing)}: a student's work may "
            "be in them. Give an empty or new folder, or add --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        notebook = nbformat.read(str(path), as_version=4)
        notebook.cells = [c for c in notebook.cells
                          if not LECTURER_ONLY_TAGS & set(c.get("metadata", {}).get("tags", []))]
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        target = out / path.name
        artifacts.write_text_atomic(target, nbformat.writes(notebook) + "\n")
        written.append(target)
    return written

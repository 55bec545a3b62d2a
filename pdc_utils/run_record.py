"""A run's record of what its networks are trained with: written where training starts, read
by the notebooks that use the networks.

Notebook 02 declares every training parameter (data, network, recipe, design, seeds, α and
the penalty) and writes them to ``runs/<run>/run.json`` before it trains; ``python -m
pdc_utils train`` does the same. Notebooks 03–05 declare only their own choices (the run's
name, the attacks, ...) and take the training parameters from this record, so a student
cannot give them values the networks were not trained with, and their parameters cells stay
short. ``python -m pdc_utils run`` checks ``-p`` values of training parameters against the
record before any kernel starts when notebook 02 is not part of the run.

The record holds :data:`pdc_utils.config.TRAINING_KEYS`. Two of them say *how* to train,
not *what* (:data:`HOW_KEYS`: the ``tf.distribute`` strategy and the feature cache change no
number beyond float rounding), so a run may change them without retraining.

This module imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pdc_utils import artifacts, config

#: Training parameters that change how networks are trained, not what they are.
HOW_KEYS = ("strategy", "feature_cache")
#: The notebook that writes the record, and those that read it.
WRITER = "02_baseline_training"
READERS = ("03_diverge_training", "04_attack_evaluation", "05_comparing_networks")


def path(run_name: str) -> Path:
    """``runs/<run>/run.json``."""
    return config.run_dir(run_name) / "run.json"


def training_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The training parameters of ``params`` (:data:`pdc_utils.config.TRAINING_KEYS`)."""
    missing = [k for k in config.TRAINING_KEYS if k not in params]
    if missing:
        raise ValueError(f"the training parameters lack {', '.join(missing)}")
    return {k: params[k] for k in config.TRAINING_KEYS}


def write(params: Mapping[str, Any], written_by: str) -> Path:
    """Validate ``params`` and record their training parameters for ``params["run_name"]``."""
    params = config.validate(params)
    record = {"parameters": training_parameters(params), "written_by": written_by,
              "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return artifacts.write_json_atomic(path(params["run_name"]), record)


def read(run_name: str, notebook: str) -> dict[str, Any]:
    """The recorded training parameters of run ``run_name``, validated.

    A missing record stops with :class:`pdc_utils.config.MissingPrerequisite` naming the
    notebook beside ``notebook`` to run first (and the command that does it); a record of the
    wrong shape is named as damaged.
    """
    file = path(run_name)
    if not file.exists():
        raise config.MissingPrerequisite(
            f"run {run_name!r} has no record of its training parameters ({file}): run the "
            f"notebook {WRITER}.ipynb (beside this one) with run_name = {run_name!r} first, "
            f"or, from the project folder, `.venv/bin/python -m pdc_utils run --profile quick "
            f"--run-name {run_name} --notebooks 02` (then {notebook}.ipynb again).")
    try:
        recorded = artifacts.read_json(file).get("parameters")
    except artifacts.DamagedFile as err:
        raise artifacts.DamagedFile(f"{err}: run {WRITER}.ipynb with run_name = {run_name!r} "
                                    "again to rewrite it (finished networks are reused)"
                                    ) from None
    problem = None
    if not isinstance(recorded, dict):
        problem = "it holds no parameters object"
    elif missing := [k for k in config.TRAINING_KEYS if k not in recorded]:
        problem = f"it lacks {', '.join(missing)}"
    if problem:
        raise ValueError(f"{file} is damaged ({problem}): run {WRITER}.ipynb with run_name = "
                         f"{run_name!r} again to rewrite it (finished networks are reused)")
    try:
        return config.validate({**training_parameters(recorded), "run_name": run_name})
    except ValueError as err:
        raise ValueError(f"{file} is damaged (a value is not valid: {err}): run {WRITER}.ipynb "
                         f"with run_name = {run_name!r} again to rewrite it") from None


def differences(recorded: Mapping[str, Any], asked: Mapping[str, Any]) -> dict[str, tuple]:
    """``{key: (recorded value, asked value)}`` for the training parameters that identify the
    networks (all but :data:`HOW_KEYS`) and differ."""
    return {k: (recorded[k], asked[k]) for k in config.TRAINING_KEYS
            if k not in HOW_KEYS and k in asked and recorded[k] != asked[k]}


def describe(params: Mapping[str, Any]) -> str:
    """One line naming what a run's networks are, for a notebook to print."""
    p = params
    objective = (f"α {p['alpha']:g} with penalty {p['penalty']}"
                 + (f", keep_dim {p['keep_dim']:g}" if p["keep_dim"] else "")
                 + (", against an untrained network" if p["diverge_from"] == "untrained"
                    else ""))
    limits = "".join(f", {key} {p[key]}" for key in ("train_limit", "test_limit") if p[key])
    return (f"{p['dataset']}, {p['network']} width {p['width']}, {p['epochs']} "
            f"epoch{'s' if p['epochs'] != 1 else ''} of batch "
            f"{p['batch_size']} (SGD lr {p['learning_rate']:g}, {p['schedule']}), design "
            f"{p['design']}, {p['n_seeds']} seed pair{'s' if p['n_seeds'] != 1 else ''}, "
            f"{p['n_attackers']} attacker{'s' if p['n_attackers'] != 1 else ''}, {objective}, "
            f"seed {p['seed']}{limits}")


def profile_of(recorded: Mapping[str, Any]) -> str | None:
    """The profile whose training parameters are ``recorded`` (all but :data:`HOW_KEYS`), or
    ``None``: lets a refusal say "this run was trained with profile smoke"."""
    for name in config.PROFILES:
        if not differences(recorded, config.profile(name)):
            return name
    return None


def _trained_with(run: str, recorded: Mapping[str, Any]) -> str:
    """Words naming the profile run ``run`` was trained with, if one matches its record."""
    name = profile_of(recorded)
    return (f" Run {run!r} was trained with profile {name!r}: give --profile {name}."
            if name else "")


def reconcile(params: Mapping[str, Any], notebooks: list[str], command: str) -> None:
    """Before ``python -m pdc_utils run`` executes ``notebooks`` that read the record without
    notebook 02: refuse ``params`` whose training parameters differ from the record (naming
    each difference and what to do), take their :data:`HOW_KEYS` into the record, and write a
    record from ``params`` where none exists (a run trained before records existed; loading
    its networks still checks each one's own record)."""
    if WRITER in notebooks or not set(notebooks) & set(READERS):
        return
    run = params["run_name"]
    if not path(run).exists():
        write(params, command)
        return
    recorded = read(run, notebooks[0])
    differ = differences(recorded, params)
    if differ:
        listed = ", ".join(f"{k} = {old!r} (this command: {new!r})"
                           for k, (old, new) in differ.items())
        raise ValueError(
            f"run {run!r} was trained with other training parameters than this command gives: "
            f"{listed} ({path(run)}).{_trained_with(run, recorded)} Give the run's values (the "
            f"profile and -p options it was trained with), or include notebook 02 "
            f"(--notebooks 02,...) to train networks with the new values (finished networks "
            f"that match are reused), or use another --run-name.")
    if any(recorded[k] != params[k] for k in HOW_KEYS):
        write({**recorded, **{k: params[k] for k in HOW_KEYS}, "run_name": run}, command)


def for_notebook(run_name: str, notebook: str, **own: Any) -> dict[str, Any]:
    """A notebook's parameters: the run's recorded training parameters and the notebook's
    own choices ``own`` (validated), after printing where the training parameters come from.
    """
    recorded = read(run_name, notebook)
    params = config.validate({**recorded, **own, "run_name": run_name})
    print(f"run {run_name!r}: {describe(params)} (from {path(run_name)})")
    return params

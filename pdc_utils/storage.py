"""Where a run keeps its networks, and how it tells finished work from work to redo.

Per network, under ``runs/<run>/``: ``models/<name>.keras`` (the plain network),
``models/<name>.json`` (what it was trained with: every parameter that changes its weights,
the references' weight digests, and where it was trained) and ``results/history_<name>.csv``;
while a group trains, ``backup/<group>/`` (:class:`Backup`). Files are written atomically
(:mod:`pdc_utils.artifacts`); finished files made with other parameters are moved aside to
``replaced/``, never overwritten silently.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from pdc_utils import artifacts, config
from pdc_utils.objective import DivergeModel


def weights_digest(network: keras.Model) -> str:
    """SHA-1 of a network's weights: names the exact reference a model was trained against."""
    digest = hashlib.sha1()
    for weight in network.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def save_network(network: keras.Model, path: str | os.PathLike) -> Path:
    """Save a network as a ``.keras`` file atomically (written beside it, then renamed)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model files end in .keras, got {path}")
    return artifacts.write_atomic(path, lambda tmp: network.save(tmp))


def load_network(path: str | os.PathLike, notebook: str | None = None) -> keras.Model:
    """Load a saved network; if it is missing, say which notebook makes it; if it cannot be
    read, say that the file is damaged (not missing) and how to remake it."""
    path = Path(path)
    if notebook:
        config.require(path, notebook)
    try:
        return keras.models.load_model(path)
    except Exception as err:  # Keras raises many types for a truncated or foreign file
        if not path.exists():
            raise
        raise ValueError(
            f"{path} exists but cannot be read as a Keras model ({type(err).__name__}): it is "
            f"damaged or truncated. Delete it and rerun the notebook that makes it"
            + (f" (notebooks/{notebook}.ipynb)." if notebook else ".")) from err


def read_params(path: str | os.PathLike, notebook: str) -> dict[str, Any]:
    """The parameters a model was trained with (its ``.json``), with clear errors when the file
    is missing or damaged."""
    path = config.require(Path(path), notebook)
    try:
        return artifacts.read_json(path)
    except artifacts.DamagedFile as err:
        raise artifacts.DamagedFile(f"{err}: delete it and rerun notebooks/{notebook}.ipynb"
                                    ) from None


def member_paths(run_name: str, name: str) -> dict[str, Path]:
    models_dir = config.models_dir(run_name)
    return {"model": models_dir / f"{name}.keras", "params": models_dir / f"{name}.json",
            "history": config.results_dir(run_name) / f"history_{name}.csv"}


#: The key of a model's ``.json`` that says where it was trained (strategy, replicas,
#: workers): a record for the reader, not a parameter (a network trained on 8 GPUs is reused
#: by a one-GPU run with the same parameters).
TRAINED_ON = "trained_on"


def finished(run_name: str, name: str, params: dict[str, Any]) -> bool:
    paths = member_paths(run_name, name)
    if not all(p.exists() for p in paths.values()):
        return False
    try:
        pd.read_csv(paths["history"])
        recorded = artifacts.read_json(paths["params"])
        recorded.pop(TRAINED_ON, None)  # where it ran does not change what it is
        return recorded == params
    except (ValueError, pd.errors.ParserError):  # a damaged file: retrain, keep it aside
        return False


def keep_aside(run_name: str, names: Sequence[str]) -> Path | None:
    """Move finished files of ``names`` made with other parameters to ``runs/<run>/replaced/``.

    Finished work is never deleted silently: it is kept aside and the user is told where.
    """
    moved = [p for name in names for p in member_paths(run_name, name).values() if p.exists()]
    if not moved:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = config.run_dir(run_name) / "replaced" / stamp
    target.mkdir(parents=True, exist_ok=True)
    for path in moved:
        shutil.move(str(path), target / path.name)
    print(f"note: {', '.join(p.name for p in moved)} were made with other parameters; "
          f"kept in {target}")
    return target


class Backup:
    """The resumable state of a training group: ``runs/<run>/backup/<group>/``.

    After every (epoch, member) step the member's weights and optimiser state are written under
    new file names, then ``state.json`` is replaced to name them (the atomic step), then the
    files it no longer names are removed. A kill at any instant leaves a state.json whose files
    are complete, so a resume restores exactly the weights, optimiser moments and histories of
    the last finished step. In a multi-worker run only the chief writes (``writer``) and every
    worker restores from the chief's files, so ``runs/`` must be a folder all workers see.
    """

    def __init__(self, run_name: str, group: str, params: dict[str, Any],
                 writer: bool = True) -> None:
        self.dir = config.run_dir(run_name) / "backup" / group
        self.params = params
        self.writer = writer  # False on the non-chief workers of a multi-worker run
        self.state_path = self.dir / "state.json"

    def load(self) -> dict[str, Any] | None:
        """The saved state if it belongs to a training with these parameters, else ``None``."""
        if not self.state_path.exists():
            return None
        try:
            state = artifacts.read_json(self.state_path)
        except ValueError:
            state = None
        if not state or state.get("params") != self.params or not all(
                (self.dir / f).exists() for f in state.get("files", [])):
            if self.writer:
                print(f"note: discarding {self.dir}, the unfinished backup of a training with "
                      "other parameters (or a damaged one)")
                shutil.rmtree(self.dir, ignore_errors=True)
            return None
        return state

    def restore(self, state: dict[str, Any], models: dict[str, DivergeModel]) -> None:
        for name, files in state["members"].items():
            model = models[name]
            model.network.load_weights(self.dir / files["weights"])
            model.optimizer.build(model.network.trainable_variables)
            with np.load(self.dir / files["optimizer"]) as saved:
                values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            for variable, value in zip(model.optimizer.variables, values, strict=True):
                variable.assign(value)

    def save(self, step: int, models: dict[str, DivergeModel],
             histories: dict[str, list[dict[str, float]]], changed: str) -> None:
        if not self.writer:
            return
        old = self.load_files()
        members = dict(old.get("members", {}))
        model = models[changed]
        weights = f"{changed}.step{step}.weights.h5"
        optimizer = f"{changed}.step{step}.optimizer.npz"
        artifacts.write_atomic(self.dir / weights, model.network.save_weights)
        values = [np.asarray(v) for v in model.optimizer.variables]
        artifacts.write_atomic(self.dir / optimizer, lambda tmp: np.savez(tmp, *values))
        members[changed] = {"weights": weights, "optimizer": optimizer}
        files = sorted(f for m in members.values() for f in m.values())
        artifacts.write_json_atomic(self.state_path, {
            "params": self.params, "next_step": step + 1, "members": members,
            "histories": histories, "files": files})
        for stale in set(old.get("files", [])) - set(files):
            (self.dir / stale).unlink(missing_ok=True)

    def load_files(self) -> dict[str, Any]:
        return artifacts.read_json(self.state_path) if self.state_path.exists() else {}

    def remove(self) -> None:
        if self.writer:
            shutil.rmtree(self.dir, ignore_errors=True)


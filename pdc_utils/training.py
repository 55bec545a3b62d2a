"""Training: the diverge objective as one ``keras.Model``, its optimiser, and resumable fits.

Diverge training (Zhen et al., ECCV 2022) trains a network f2 with

    L(x, y) = CE(f2(x), y) + α · (1/R) Σ_r dCor²(φ2(x), φ_r(x))

where φ are the global-pooled penultimate features and f_1 … f_R are frozen reference
networks. With α = 0 it is ordinary training, so the baseline and the diverged network share
one code path (:class:`DivergeModel`). References passed with α = 0 are only *monitored*: their
dCor² is reported but adds nothing to the loss or its gradient.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

# a text bar on stdout: it updates in place live and a saved notebook keeps its last state
# (a widget bar would be saved as its first, empty state)
from tqdm import tqdm

from pdc_utils import artifacts, config, distribute
from pdc_utils.distance import distance_correlation_sqr, u_distance_correlation_sqr


def on_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def configure(seed: int, *, strategy: str = "default",
              mixed_precision: bool | None = None) -> dict[str, Any]:
    """Seed everything and choose devices and numeric policy; call first, once per process.

    - The ``tf.distribute`` strategy is made before anything else (``PDC_LOGICAL_CPUS``
      must split the CPU before the devices start); later
      :func:`pdc_utils.distribute.make_strategy` calls return the same object.
    - ``keras.utils.set_random_seed(seed)`` seeds Python, NumPy and TensorFlow.
    - On CPU, TensorFlow op determinism is switched on, so a run with the same seed gives the
      same numbers. (On GPU some kernels have no deterministic version; it stays off there.)
    - Mixed precision (``mixed_float16``) defaults to on with a GPU and off on CPU, where
      float16 is slower. dCor² is always computed in float32 whatever the policy.

    Returns a record of the choices (seed, strategy and replicas, policy, device, versions)
    for the run's results.
    """
    logical_cpus = distribute.split_cpu_from_environment()  # must precede any device use
    replicas = distribute.make_strategy(strategy).num_replicas_in_sync
    keras.utils.set_random_seed(seed)
    # Keras' per-epoch fits and the per-network attack functions retrace by design; TF's
    # "triggered tf.function retracing" warnings would only be noise in a notebook.
    tf.get_logger().setLevel("ERROR")
    gpu = on_gpu()
    if not gpu:
        tf.config.experimental.enable_op_determinism()
    if mixed_precision is None:
        mixed_precision = gpu
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    return {
        "seed": seed,
        "precision_policy": keras.mixed_precision.global_policy().name,
        "deterministic": not gpu,
        "xla": gpu,
        "device": artifacts.device_description(),
        "logical_cpus": logical_cpus,
        "strategy": strategy,
        "replicas": replicas,
        "versions": artifacts.package_versions(),
    }


def feature_penalty(features: tf.Tensor, references: Sequence[tf.Tensor],
                    feature_norm: bool = True, penalty: str = "v") -> tf.Tensor:
    """The diverge penalty ``(1/R) Σ_r D(φ, φ_r)`` over a batch, in float32.

    ``D`` is the estimator named by ``penalty`` (see :data:`pdc_utils.config.PENALTIES`):

    - ``v``: the V-statistic dCor² (the paper's). Biased upwards, and the more so the higher
      the features' effective dimension, so minimising it also rewards collapsing φ onto a few
      directions, whatever its dependence on φ_r.
    - ``u``: the bias-corrected U-statistic ``max(0, dCor²_u)``. Its expectation is ~0 for
      independent features at any dimension; it can be negative on a batch, and a negative
      estimate is noise, not "less than independent", so the penalty stops at 0 (no gradient
      pushes it further; notebook 03 shows the measurement behind this choice).
    - ``u_raw``: the U-statistic unclamped, kept to measure what the clamp changes.

    With ``feature_norm`` each feature row is scaled to unit L2 norm first, as the paper's
    PyTorch code does (its TensorFlow port does not). A batch with fewer than 4 rows (the U
    statistic needs n > 3) contributes 0 instead of failing, e.g. a last batch of one image.
    """
    config.validate({"penalty": penalty})

    def prepare(f: tf.Tensor) -> tf.Tensor:
        f = tf.cast(f, tf.float32)
        return tf.math.l2_normalize(f, axis=1) if feature_norm else f

    def estimate(own: tf.Tensor, ref: tf.Tensor) -> tf.Tensor:
        if penalty == "v":
            return distance_correlation_sqr(own, ref)
        value = u_distance_correlation_sqr(own, ref)
        return tf.maximum(value, 0.0) if penalty == "u" else value

    own = prepare(features)
    enough = tf.shape(own)[0] >= 4
    values = [tf.cond(enough, lambda r=ref: estimate(own, prepare(r)), lambda: tf.constant(0.0))
              for ref in references]
    return tf.add_n(values) / float(len(values))


class DivergeModel(keras.Model):
    """Trains ``network`` with CE + α · the mean dCor² penalty to ``references``.

    ``network`` maps [0, 1] images to ``(logits, features)`` (see :mod:`pdc_utils.models`).
    The references always run in inference mode and their features are cut from the gradient
    (``tf.stop_gradient``), so training this network never changes them; they may still be
    trained by someone else, as the earlier nets of a chain are (``design = "paper_code"``).
    Weight decay is the coupled L2 penalty of PyTorch's SGD (gradient ``+ wd · w`` for every
    trainable variable, fed through momentum), which the paper's code uses; Keras' own
    ``weight_decay`` is decoupled and would be a different regulariser. Metrics: ``loss``
    (CE + α·penalty, without the L2 term), ``ce``, ``accuracy`` and, when there are references,
    ``dcor_sqr`` (the batch penalty's value; with α = 0 it is only monitored).

    A batch is ``(x, y)`` or ``(x, y, cached)``: ``cached`` holds, for frozen references, their
    features of exactly these images, precomputed once (one ``[batch, d_r]`` tensor per
    reference; see ``feature_cache`` in :mod:`pdc_utils.experiment`). The step then uses them
    instead of running the references, which makes it cost about a plain step; the values
    are the same up to float rounding. It is only right for references that do not change
    and images that are not augmented.
    """

    def __init__(self, network: keras.Model, references: Sequence[keras.Model] = (),
                 alpha: float = 0.0, feature_norm: bool = True, weight_decay: float = 0.0,
                 penalty: str = "v", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config.validate({"alpha": alpha, "weight_decay": weight_decay, "penalty": penalty})
        if alpha > 0 and not references:
            raise ValueError("alpha > 0 needs at least one reference network to diverge from")
        self.network = network
        # not tracked as sub-layers (object.__setattr__ bypasses Keras' tracking): the
        # references' weights are not the wrapper's, so its optimiser never builds slots
        # for them and a tf.distribute strategy never treats them as its own
        object.__setattr__(self, "_references", tuple(references))
        self.alpha = float(alpha)
        self.feature_norm = bool(feature_norm)
        self.weight_decay = float(weight_decay)
        self.penalty = penalty
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.dcor_tracker = keras.metrics.Mean(name="dcor_sqr")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = network.built  # a functional network is built: so is the wrapper

    @property
    def references(self) -> tuple[keras.Model, ...]:
        return self._references

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        trackers = [self.loss_tracker, self.ce_tracker, self.accuracy_tracker]
        return trackers + ([self.dcor_tracker] if self._references else [])

    def call(self, x: tf.Tensor, training: bool = False):
        return self.network(x, training=training)

    def _penalty(self, x: tf.Tensor, features: tf.Tensor,
                 cached: tuple[tf.Tensor, ...] | None = None) -> tf.Tensor:
        """The penalty on the **global** batch: under a multi-replica ``tf.distribute``
        strategy every replica all-gathers the features of all replicas first, so each gets
        the value of the single-device computation on the whole batch (dCor² is not a mean
        over examples: a per-replica value would be another, more biased estimator), and the
        gradient flows back to every replica's own examples through the gather.

        ``cached``, when given, holds the references' features of exactly the images ``x``
        (one ``[batch, d_r]`` tensor per reference, in the order of ``references``) and
        replaces running the references; it is cut from the gradient and gathered like the
        live features."""
        if not self._references:
            return tf.constant(0.0)
        if cached is None:
            reference_features = [ref(x, training=False)[1] for ref in self._references]
        else:
            reference_features = list(cached)
        reference_features = [tf.stop_gradient(r) for r in reference_features]
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            features = context.all_gather(features, axis=0)
            reference_features = [context.all_gather(r, axis=0) for r in reference_features]
        return feature_penalty(features, reference_features, self.feature_norm, self.penalty)

    @staticmethod
    def _cross_entropy(y: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(this replica's share, the global batch's mean)`` of the cross-entropy.

        The global batch's CE is ``Σ_i ce_i / n`` over all n rows of all replicas. Each replica
        contributes the sum over its own rows divided by n, so the shares add up to it (and
        their gradients to its gradient) however unevenly the rows are split; with one device
        the share is the mean.
        """
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32))
        local = tf.stack([tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)])
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            mean = local[0] / local[1]
            return mean, mean
        total = context.all_reduce("sum", tf.stop_gradient(local))
        return local[0] / total[1], total[0] / total[1]

    def _record(self, y, logits, ce, dcor) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(ce + self.alpha * dcor)
        self.ce_tracker.update_state(ce)
        if self._references:
            self.dcor_tracker.update_state(dcor)
        self.accuracy_tracker.update_state(y, tf.cast(logits, tf.float32))
        return {m.name: m.result() for m in self.metrics}

    def _unpack(self, data) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...] | None]:
        """A batch as ``(x, y, cached)``: ``(x, y)``, or ``(x, y, cached)`` whose third element
        is a tuple of the references' precomputed features of these images (see
        :func:`pdc_utils.data.load_split`'s ``extra``), **not** a sample weight. Keras'
        ``train_on_batch(x, y)`` hands over ``(x, y, None)``: no cache."""
        if not (isinstance(data, tuple | list) and len(data) == 3):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            return x, y, None
        x, y, cached = data
        if cached is None:
            return x, y, None
        if not isinstance(cached, tuple | list) or len(cached) != len(self._references):
            raise ValueError(
                "the third element of a training batch must be the cached reference features: "
                f"a tuple of {len(self._references)} tensor(s) [batch, d_r], one per reference "
                f"network (sample weights are not supported); got {type(cached).__name__}"
                + (f" of length {len(cached)}" if isinstance(cached, tuple | list) else ""))
        return x, y, tuple(cached)

    def train_step(self, data):
        x, y, cached = self._unpack(data)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits, features = self.network(x, training=True)
            ce_share, ce = self._cross_entropy(y, logits)
            whole = tf.constant(0.0)  # terms each replica computes in full, from the global batch
            if self.alpha > 0:
                dcor = self._penalty(x, features, cached)
                whole = whole + self.alpha * dcor
            if self.weight_decay > 0:
                squares = [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables]
                whole = whole + 0.5 * self.weight_decay * tf.add_n(squares)
            # the replicas' gradients are summed: each adds its CE share and 1/R of the rest
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(ce_share + whole / replicas)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        if self.alpha == 0:  # monitored only: outside the tape, no backward pass through it
            dcor = self._penalty(x, tf.stop_gradient(features), cached)
        return self._record(y, logits, ce, dcor)

    def test_step(self, data):
        x, y, cached = self._unpack(data)
        logits, features = self.network(x, training=False)
        dcor = self._penalty(x, features, cached)
        return self._record(y, logits, self._cross_entropy(y, logits)[1], dcor)


def learning_rate_schedule(
    learning_rate: float, schedule: str, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate as a function of the step.

    - ``cosine``: lr · ½(1 + cos(π t / T)) over all T = epochs · steps_per_epoch steps (the
      seed's CIFAR schedule, there stepped per epoch);
    - ``step``: lr × 0.1 after each quarter of training (the seed's ImageNet schedule: 40
      epochs, ×0.1 at 10, 20 and 30);
    - ``constant``: lr.
    """
    config.validate({"schedule": schedule, "learning_rate": learning_rate, "epochs": epochs})
    total = epochs * steps_per_epoch
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
    if schedule == "step":
        boundaries = [int(total * q) for q in (0.25, 0.5, 0.75)]
        values = [learning_rate * 0.1**k for k in range(4)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return learning_rate


def make_optimizer(learning_rate: float, momentum: float, schedule: str, epochs: int,
                   steps_per_epoch: int) -> keras.optimizers.SGD:
    """SGD with momentum (weight decay is applied by :class:`DivergeModel`)."""
    config.validate({"momentum": momentum})
    lr = learning_rate_schedule(learning_rate, schedule, epochs, steps_per_epoch)
    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)


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
    except ValueError as err:
        raise ValueError(f"{path} is damaged ({err}); delete it and rerun "
                         f"notebooks/{notebook}.ipynb") from err


TrainData = tf.data.Dataset | Callable[[int], tf.data.Dataset]


@dataclass
class Member:
    """One network of a training group (see :func:`train_group`).

    ``data`` is the training data: a function ``epoch -> dataset`` (one epoch of a fixed
    sequence, so a resumed training sees the batches an uninterrupted one would; see
    :func:`pdc_utils.data.load_split`'s ``epoch``) or one dataset reused every epoch.
    ``references`` are frozen networks outside the group (e.g. f1) or the names of *earlier*
    members of the group, which are used as they are at that moment of the training.
    """

    name: str
    network: keras.Model
    data: TrainData
    alpha: float = 0.0
    references: Sequence[keras.Model | str] = ()
    fingerprint: dict[str, Any] = field(default_factory=dict)


class _GroupProgress:
    """One tqdm bar over (epoch, member) steps, showing the last member's metrics."""

    SHOWN = ("loss", "accuracy", "dcor_sqr", "val_accuracy", "val_dcor_sqr")

    def __init__(self, total: int, done: int, description: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=done, desc=description, unit="epoch", file=sys.stdout,
                        disable=not enabled, mininterval=1.0)

    def step(self, name: str, row: dict[str, float]) -> None:
        shown = {k: f"{row[k]:.3f}" for k in self.SHOWN if k in row}
        self.bar.set_postfix({"net": name, **shown}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _member_paths(run_name: str, name: str) -> dict[str, Path]:
    models_dir = config.models_dir(run_name)
    return {"model": models_dir / f"{name}.keras", "params": models_dir / f"{name}.json",
            "history": config.results_dir(run_name) / f"history_{name}.csv"}


#: The key of a model's ``.json`` that says where it was trained (strategy, replicas,
#: workers): a record for the reader, not a parameter (a network trained on 8 GPUs is reused
#: by a one-GPU run with the same parameters).
TRAINED_ON = "trained_on"


def _finished(run_name: str, name: str, params: dict[str, Any]) -> bool:
    paths = _member_paths(run_name, name)
    if not all(p.exists() for p in paths.values()):
        return False
    try:
        pd.read_csv(paths["history"])
        recorded = artifacts.read_json(paths["params"])
        recorded.pop(TRAINED_ON, None)  # where it ran does not change what it is
        return recorded == params
    except (ValueError, pd.errors.ParserError):  # a damaged file: retrain, keep it aside
        return False


def _keep_aside(run_name: str, names: Sequence[str]) -> Path | None:
    """Move finished files of ``names`` made with other parameters to ``runs/<run>/replaced/``.

    Finished work is never deleted silently: it is kept aside and the user is told where.
    """
    moved = [p for name in names for p in _member_paths(run_name, name).values() if p.exists()]
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


class _Backup:
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


def train_group(members: Sequence[Member], test_data: tf.data.Dataset, *, group: str,
                run_name: str, epochs: int, learning_rate: float, momentum: float,
                weight_decay: float, schedule: str, penalty: str = "v",
                feature_norm: bool = True, progress: bool = True,
                strategy: tf.distribute.Strategy | None = None,
                ) -> dict[str, tuple[keras.Model, pd.DataFrame]]:
    """Train the members **interleaved**, epoch by epoch, and save each as ``<name>.keras``.

    Epoch e trains member 0 for one epoch, then member 1, and so on: member k's penalty sees
    earlier members as they are at that moment, which is how the paper's code trains its chain
    of networks (``design = "paper_code"``). A group of one member is an ordinary training.

    Files, under ``runs/<run_name>/``: ``models/<name>.keras`` (the plain network),
    ``models/<name>.json`` (what it was trained with and against: parameters, seed, the
    references' weight digests or chain names; and, as a record only, ``trained_on``: strategy,
    replicas, workers), ``results/history_<name>.csv`` (per-epoch
    metrics and learning rate), ``tensorboard/<name>/`` (the same metrics, live, for
    ``tensorboard --logdir runs/<run_name>/tensorboard``) and, while training,
    ``backup/<group>/`` (see ``_Backup``): a killed training resumes from its last finished
    (epoch, member) step and ends with the weights an uninterrupted one would have on CPU.

    Under a ``strategy`` (see :mod:`pdc_utils.distribute`; build the networks in its scope
    too) the wrappers and optimisers are made in its scope, each batch is split over the
    replicas and the penalty is computed on the global batch (each epoch runs in an
    :class:`EpochRunner`). Under ``multi_worker`` every worker calls this with the same
    arguments; only the chief writes files.

    If every member's files exist and were made with the same parameters, nothing is trained
    and the saved networks are returned: rerunning a notebook does not redo finished work.
    Files of the same names made with other parameters are moved aside, never overwritten
    silently. Returns ``{name: (network, history)}``.
    """
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"member names must be unique, got {names}")
    fit_params = dict(epochs=epochs, learning_rate=learning_rate, momentum=momentum,
                      weight_decay=weight_decay, schedule=schedule, penalty=penalty,
                      feature_norm=feature_norm)
    config.validate(fit_params)
    params = {}
    for index, member in enumerate(members):
        config.validate({"alpha": member.alpha})
        references = []
        for ref in member.references:
            if isinstance(ref, str):
                if ref not in names[:index]:
                    raise ValueError(f"{member.name}: reference {ref!r} must be an earlier "
                                     f"member of the group {names[:index]}")
                references.append(f"member:{ref}")
            else:
                references.append(weights_digest(ref))
        # the estimator matters only to a member that has references (penalised or monitored)
        used = {k: v for k, v in fit_params.items() if k != "penalty" or references}
        params[member.name] = {**member.fingerprint, **used, "alpha": member.alpha,
                               "references": references, "group": group}
    if all(_finished(run_name, m.name, params[m.name]) for m in members):
        for m in members:
            print(f"{m.name}: reusing {_member_paths(run_name, m.name)['model']} "
                  "(trained earlier with the same parameters)")
        return {m.name: (load_network(_member_paths(run_name, m.name)["model"]),
                         pd.read_csv(_member_paths(run_name, m.name)["history"]))
                for m in members}
    _keep_aside(run_name, names)

    strategy = strategy or tf.distribute.get_strategy()
    chief = distribute.is_chief(strategy)  # on other workers of a multi-worker run: no files
    trained_on = {"strategy": distribute.strategy_name(strategy),
                  "replicas": strategy.num_replicas_in_sync,
                  "workers": distribute.num_workers(strategy)}
    if chief:
        _keep_aside(run_name, names)
    models: dict[str, DivergeModel] = {}
    with strategy.scope():
        for member in members:
            refs = [models[r].network if isinstance(r, str) else r for r in member.references]
            model = DivergeModel(member.network, refs, alpha=member.alpha,
                                 feature_norm=feature_norm, weight_decay=weight_decay,
                                 penalty=penalty, name=f"train_{member.name}")
            steps = _steps_per_epoch(member.data)
            model.compile(optimizer=make_optimizer(learning_rate, momentum, schedule, epochs,
                                                   steps))
            model.optimizer.build(member.network.trainable_variables)
            models[member.name] = model
    steps_of = {name: EpochRunner(model, strategy) for name, model in models.items()}

    backup = _Backup(run_name, group, params, writer=chief)
    state = backup.load()
    histories: dict[str, list[dict[str, float]]] = {m.name: [] for m in members}
    first_step = 0
    if state:
        backup.restore(state, models)
        histories, first_step = state["histories"], state["next_step"]
        print(f"{group}: resuming from {backup.dir} at epoch {first_step // len(members) + 1}")
    bar = _GroupProgress(epochs * len(members), first_step, group, progress)
    board = config.run_dir(run_name) / "tensorboard"
    writers = {m.name: tf.summary.create_file_writer(str(board / m.name))
               for m in members} if chief else {}
    for step in range(first_step, epochs * len(members)):
        epoch, index = divmod(step, len(members))
        member = members[index]
        model = models[member.name]
        data = member.data(epoch) if callable(member.data) else member.data
        runner = steps_of[member.name]
        row = {"epoch": epoch, **runner.train(data), **runner.evaluate(test_data, "val_"),
               "learning_rate": _current_learning_rate(model.optimizer)}
        histories[member.name].append(row)
        if chief:
            with writers[member.name].as_default(step=epoch):  # tensorboard --logdir runs/<run>
                for key, value in row.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value)
            writers[member.name].flush()
        backup.save(step, models, histories, member.name)
        bar.step(member.name, row)
    bar.close()

    results = {}
    for member in members:
        paths = _member_paths(run_name, member.name)
        names = [m.name for m in models[member.name].metrics]  # the order fit's history had
        columns = ["epoch", *names, *(f"val_{n}" for n in names), "learning_rate"]
        history = pd.DataFrame(histories[member.name], columns=columns)  # also after a resume
        if chief:
            save_network(member.network, paths["model"])
            artifacts.write_csv_atomic(paths["history"], history)
            artifacts.write_json_atomic(paths["params"],
                                        {**params[member.name], TRAINED_ON: trained_on})
        results[member.name] = (member.network, history)
    backup.remove()
    return results


class EpochRunner:
    """One model's training and evaluation epochs under a ``tf.distribute`` strategy.

    A plain loop in place of Keras' ``fit``, which fails under ``MultiWorkerMirroredStrategy``
    in Keras 3 (keras-team/keras#20585): each global batch is split over the replicas
    (:func:`pdc_utils.distribute.distribute_dataset`) and every replica runs the model's
    ``train_step`` (``test_step``) on its slice; the metrics are reset at the start of an epoch
    and read, summed over replicas and workers, at its end. The steps are compiled with XLA on
    a GPU, as ``fit`` would. On one device it gives the weights ``fit`` gives, bit for bit.
    """

    def __init__(self, model: DivergeModel, strategy: tf.distribute.Strategy) -> None:
        self.model, self.strategy = model, strategy
        #: compiled ``iterator -> bool``: one distributed step on the iterator's next batch,
        #: False (and nothing done) when it is exhausted
        self.train_step = self._compiled(model.train_step)
        self.test_step = self._compiled(model.test_step)

    def _compiled(self, step: Callable) -> Callable:
        replica_step = tf.function(step, jit_compile=True) if on_gpu() else step

        @tf.function
        def distributed_step(iterator) -> tf.Tensor:
            batch = iterator.get_next_as_optional()
            if batch.has_value():
                self.strategy.run(replica_step, args=(batch.get_value(),))
            return batch.has_value()

        return distributed_step

    def _epoch(self, step: Callable, data: tf.data.Dataset, prefix: str) -> dict[str, float]:
        for metric in self.model.metrics:
            metric.reset_state()
        iterator = iter(distribute.distribute_dataset(self.strategy, data))
        while step(iterator):  # the batches are fetched inside the compiled step, as in fit
            pass
        return {prefix + m.name: float(m.result()) for m in self.model.metrics}

    def train(self, data: tf.data.Dataset) -> dict[str, float]:
        """One training epoch; the mean metrics over its batches. Afterwards the replicas'
        batch-normalisation statistics are averaged (:func:`distribute.average_over_replicas`)."""
        logs = self._epoch(self.train_step, data, "")
        distribute.average_over_replicas(self.strategy,
                                         self.model.network.non_trainable_variables)
        return logs

    def evaluate(self, data: tf.data.Dataset, prefix: str = "") -> dict[str, float]:
        """The metrics on ``data`` (no update), names prefixed with ``prefix``."""
        return self._epoch(self.test_step, data, prefix)


def _steps_per_epoch(data: TrainData) -> int:
    steps = int((data(0) if callable(data) else data).cardinality())
    if steps <= 0:
        raise ValueError("training data must be a finite, batched dataset with at least one "
                         "batch")
    return steps


def _current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    rate = optimizer.learning_rate
    value = rate(optimizer.iterations) if callable(rate) else rate
    return float(keras.ops.convert_to_numpy(value))  # also for a mirrored variable


def train_network(network: keras.Model, train_data: TrainData, test_data: tf.data.Dataset,
                  *, name: str, run_name: str, epochs: int, learning_rate: float,
                  momentum: float, weight_decay: float, schedule: str,
                  references: Sequence[keras.Model] = (), alpha: float = 0.0,
                  penalty: str = "v", feature_norm: bool = True,
                  fingerprint: dict[str, Any] | None = None, progress: bool = True,
                  strategy: tf.distribute.Strategy | None = None,
                  ) -> tuple[keras.Model, pd.DataFrame]:
    """Train one network (a group of one, see :func:`train_group`); ``(network, history)``.

    ``references`` are frozen networks: with ``alpha > 0`` the network diverges from them,
    with ``alpha = 0`` their batch dCor² is only monitored.
    """
    member = Member(name, network, train_data, alpha=alpha, references=list(references),
                    fingerprint=dict(fingerprint or {}))
    return train_group([member], test_data, group=name, run_name=run_name, epochs=epochs,
                       learning_rate=learning_rate, momentum=momentum,
                       weight_decay=weight_decay, schedule=schedule, penalty=penalty,
                       feature_norm=feature_norm, progress=progress, strategy=strategy)[name]

"""Training: devices and seeds, the optimiser and its schedule, and the epoch loop.

The objective (CE + α · penalty, :class:`pdc_utils.objective.DivergeModel`) is trained by
:func:`train_group`, which runs networks interleaved epoch by epoch under a ``tf.distribute``
strategy (:class:`EpochRunner`), evaluates each epoch on the **validation** split, and keeps
its files and backups through :mod:`pdc_utils.storage`, so a killed training resumes and a
finished one is reused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import pandas as pd
import tensorflow as tf

from pdc_utils import artifacts, config, distribute, storage
from pdc_utils.objective import DivergeModel


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


TrainData = tf.data.Dataset | Callable[[int], tf.data.Dataset]


@dataclass
class Member:
    """One network of a training group (see :func:`train_group`).

    ``data`` is the training data: a function ``epoch -> dataset`` (one epoch of a fixed
    sequence, so a resumed training sees the batches an uninterrupted one would; see
    :func:`pdc_utils.data.load_split`'s ``epoch``) or one dataset reused every epoch.
    ``references`` are frozen networks outside the group (e.g. f1) or the names of *earlier*
    members of the group, which are used as they are at that moment of the training.
    ``keep_dim`` weighs the spread term (it acts only with ``alpha > 0``); ``fingerprint``
    holds what else made the network (dataset, split, architecture, seed, ...).
    """

    name: str
    network: keras.Model | None
    data: TrainData | None
    alpha: float = 0.0
    references: Sequence[keras.Model | str] = ()
    fingerprint: dict[str, Any] = field(default_factory=dict)
    keep_dim: float = 0.0


def member_records(members: Sequence[Member], fit_params: dict[str, Any], group: str
                   ) -> dict[str, dict[str, Any]]:
    """What each member's ``.json`` records: every value that changes its weights.

    The member's fingerprint, the fit parameters, α, the spread weight (when α > 0), the
    references (a frozen network by the SHA-1 of its weights, an earlier member of the group
    by ``member:<name>``) and the group. The estimator (``penalty``) is recorded only for a
    member with references (penalised or monitored). A finished network is reused only when
    its record equals this, so no network is ever used under parameters it was not trained
    with.
    """
    names = [m.name for m in members]
    config.validate(fit_params)
    records = {}
    for index, member in enumerate(members):
        config.validate({"alpha": member.alpha, "keep_dim": member.keep_dim})
        references = []
        for ref in member.references:
            if isinstance(ref, str):
                if ref not in names[:index]:
                    raise ValueError(f"{member.name}: reference {ref!r} must be an earlier "
                                     f"member of the group {names[:index]}")
                references.append(f"member:{ref}")
            else:
                references.append(storage.weights_digest(ref))
        used = {k: v for k, v in fit_params.items() if k != "penalty" or references}
        spread = {"keep_dim": member.keep_dim} if member.alpha > 0 else {}
        records[member.name] = {**member.fingerprint, **used, "alpha": member.alpha, **spread,
                                "references": references, "group": group}
    return records


class _GroupProgress:
    """Plain lines, flushed as they come, that show a training as it happens, in JupyterLab and
    in a notebook run by papermill (no progress bar: a bar's redraws would fill an executed
    notebook). A group of one network is one line that starts with its name, role (from
    :func:`pdc_utils.plots.role`) and epochs, grows by the validation accuracy after each
    epoch and ends with the time it took; an interleaved group has a line when it starts, one
    per epoch and one when it ends."""

    def __init__(self, members: Sequence[str], epochs: int, done: int, enabled: bool) -> None:
        from pdc_utils.plots import role

        self.members, self.epochs, self.enabled = list(members), epochs, enabled
        self.start = time.perf_counter()
        self.epoch_start = self.start
        self.scores: list[str] = []
        first = done // len(self.members) + 1
        resumed = f", from epoch {first}" if done else ""
        named = ", ".join(f"{name} ({role(name)})" for name in self.members)
        if len(self.members) == 1:
            self._say(f"{named}: {epochs} epoch{'s' * (epochs > 1)}{resumed}; validation "
                      "accuracy after each:", end="")
        else:
            self._say(f"training {named} interleaved, {epochs} epochs each{resumed}")

    def _say(self, text: str, end: str = "\n") -> None:
        if self.enabled:
            print(text, end=end, flush=True)

    def step(self, name: str, epoch: int, row: dict[str, float]) -> None:
        score = f"{100 * row['val_accuracy']:.0f} %" if "val_accuracy" in row else "-"
        if len(self.members) == 1:
            self._say(f" {score}", end="")
            return
        self.scores.append(f"{name} {score}")
        if name == self.members[-1]:
            now = time.perf_counter()
            self._say(f"  epoch {epoch + 1}/{self.epochs}: {', '.join(self.scores)} "
                      f"({now - self.epoch_start:.1f} s)")
            self.scores, self.epoch_start = [], now

    def close(self) -> None:
        took = f"{time.perf_counter() - self.start:.1f} s"
        if len(self.members) == 1:
            self._say(f" - done in {took}")
        else:
            self._say(f"{', '.join(self.members)}: done in {took}")


def train_group(members: Sequence[Member], validation_data: tf.data.Dataset, *, group: str,
                run_name: str, epochs: int, learning_rate: float, momentum: float,
                weight_decay: float, schedule: str, penalty: str = "v",
                feature_norm: bool = True, progress: bool = True,
                strategy: tf.distribute.Strategy | None = None,
                ) -> dict[str, tuple[keras.Model, pd.DataFrame]]:
    """Train the members **interleaved**, epoch by epoch, and save each as ``<name>.keras``.

    Epoch e trains member 0 for one epoch, then member 1, and so on, and after each epoch
    evaluates the member on ``validation_data`` (the ``val_`` columns of its history; pass the
    validation split, never the test split, which is kept for reporting): member k's penalty sees
    earlier members as they are at that moment, which is how the paper's code trains its chain
    of networks (``design = "paper_code"``). A group of one member is an ordinary training.

    Files, under ``runs/<run_name>/``: ``models/<name>.keras`` (the plain network),
    ``models/<name>.json`` (what it was trained with and against: parameters, seed, the
    references' weight digests or chain names; and, as a record only, ``trained_on``: strategy,
    replicas, workers), ``results/history_<name>.csv`` (per-epoch
    metrics and learning rate), ``tensorboard/<name>/`` (the same metrics, live, for
    ``tensorboard --logdir runs/<run_name>/tensorboard``) and, while training,
    ``backup/<group>/`` (see :class:`pdc_utils.storage.Backup`): a killed training resumes from
    its last finished (epoch, member) step and ends with the weights an uninterrupted one
    would have on CPU.

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
    params = member_records(members, dict(
        epochs=epochs, learning_rate=learning_rate, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule, penalty=penalty,
        feature_norm=feature_norm), group)
    if all(storage.finished(run_name, m.name, params[m.name]) for m in members):
        for m in members:
            print(f"{m.name}: reusing {storage.member_paths(run_name, m.name)['model']} "
                  "(trained earlier with the same parameters)")
        return {m.name: (storage.load_network(storage.member_paths(run_name, m.name)["model"]),
                         pd.read_csv(storage.member_paths(run_name, m.name)["history"]))
                for m in members}

    strategy = strategy or tf.distribute.get_strategy()
    chief = distribute.is_chief(strategy)  # on other workers of a multi-worker run: no files
    trained_on = {"strategy": distribute.strategy_name(strategy),
                  "replicas": strategy.num_replicas_in_sync,
                  "workers": distribute.num_workers(strategy)}
    if chief:
        storage.keep_aside(run_name, names)
    models: dict[str, DivergeModel] = {}
    with strategy.scope():
        for member in members:
            refs = [models[r].network if isinstance(r, str) else r for r in member.references]
            model = DivergeModel(member.network, refs, alpha=member.alpha,
                                 feature_norm=feature_norm, weight_decay=weight_decay,
                                 penalty=penalty, keep_dim=member.keep_dim,
                                 name=f"train_{member.name}")
            steps = _steps_per_epoch(member.data)
            model.compile(optimizer=make_optimizer(learning_rate, momentum, schedule, epochs,
                                                   steps))
            model.optimizer.build(member.network.trainable_variables)
            models[member.name] = model
    steps_of = {name: EpochRunner(model, strategy) for name, model in models.items()}

    backup = storage.Backup(run_name, group, params, writer=chief)
    state = backup.load()
    histories: dict[str, list[dict[str, float]]] = {m.name: [] for m in members}
    first_step = 0
    if state:
        backup.restore(state, models)
        histories, first_step = state["histories"], state["next_step"]
        print(f"{group}: resuming from {backup.dir} at epoch {first_step // len(members) + 1}")
    bar = _GroupProgress(names, epochs, first_step, progress)
    board = config.run_dir(run_name) / "tensorboard"
    writers = {m.name: tf.summary.create_file_writer(str(board / m.name))
               for m in members} if chief else {}
    for step in range(first_step, epochs * len(members)):
        epoch, index = divmod(step, len(members))
        member = members[index]
        model = models[member.name]
        data = member.data(epoch) if callable(member.data) else member.data
        runner = steps_of[member.name]
        row = {"epoch": epoch, **runner.train(data), **runner.evaluate(validation_data, "val_"),
               "learning_rate": _current_learning_rate(model.optimizer)}
        histories[member.name].append(row)
        if chief:
            with writers[member.name].as_default(step=epoch):  # tensorboard --logdir runs/<run>
                for key, value in row.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value)
            writers[member.name].flush()
        backup.save(step, models, histories, member.name)
        bar.step(member.name, epoch, row)
    bar.close()

    results = {}
    for member in members:
        paths = storage.member_paths(run_name, member.name)
        names = [m.name for m in models[member.name].metrics]  # the order fit's history had
        columns = ["epoch", *names, *(f"val_{n}" for n in names), "learning_rate"]
        history = pd.DataFrame(histories[member.name], columns=columns)  # also after a resume
        if chief:
            storage.save_network(member.network, paths["model"])
            artifacts.write_csv_atomic(paths["history"], history)
            artifacts.write_json_atomic(paths["params"],
                                        {**params[member.name], storage.TRAINED_ON: trained_on})
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

    With ``PDC_EAGER_STEPS=1`` in the environment and one replica, the steps run eagerly
    instead: for the test suite's smoke runs (four steps per network), where tracing a step
    costs seconds and running it milliseconds. The compiled path is the one runs use.
    """

    def __init__(self, model: DivergeModel, strategy: tf.distribute.Strategy) -> None:
        self.model, self.strategy = model, strategy
        #: compiled ``iterator -> bool``: one distributed step on the iterator's next batch,
        #: False (and nothing done) when it is exhausted
        self.train_step = self._compiled(model.train_step)
        self.test_step = self._compiled(model.test_step)

    def _compiled(self, step: Callable) -> Callable:
        replica_step = tf.function(step, jit_compile=True) if on_gpu() else step

        def distributed_step(iterator) -> tf.Tensor:
            batch = iterator.get_next_as_optional()
            if batch.has_value():
                self.strategy.run(replica_step, args=(batch.get_value(),))
            return batch.has_value()

        eager = (os.environ.get("PDC_EAGER_STEPS") == "1"
                 and self.strategy.num_replicas_in_sync == 1)
        return distributed_step if eager else tf.function(distributed_step)

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


def train_network(network: keras.Model, train_data: TrainData, validation_data: tf.data.Dataset,
                  *, name: str, run_name: str, epochs: int, learning_rate: float,
                  momentum: float, weight_decay: float, schedule: str,
                  references: Sequence[keras.Model] = (), alpha: float = 0.0,
                  penalty: str = "v", feature_norm: bool = True, keep_dim: float = 0.0,
                  fingerprint: dict[str, Any] | None = None, progress: bool = True,
                  strategy: tf.distribute.Strategy | None = None,
                  ) -> tuple[keras.Model, pd.DataFrame]:
    """Train one network (a group of one, see :func:`train_group`); ``(network, history)``.

    ``references`` are frozen networks: with ``alpha > 0`` the network diverges from them,
    with ``alpha = 0`` their batch dCor² is only monitored.
    """
    member = Member(name, network, train_data, alpha=alpha, references=list(references),
                    fingerprint=dict(fingerprint or {}), keep_dim=keep_dim)
    return train_group([member], validation_data, group=name, run_name=run_name, epochs=epochs,
                       learning_rate=learning_rate, momentum=momentum,
                       weight_decay=weight_decay, schedule=schedule, penalty=penalty,
                       feature_norm=feature_norm, progress=progress, strategy=strategy)[name]

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from pdc_utils import artifacts, config
from pdc_utils.distance import distance_correlation_sqr


def on_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def configure(seed: int, *, mixed_precision: bool | None = None) -> dict[str, Any]:
    """Seed everything and choose the numeric policy; call once before building networks.

    - ``keras.utils.set_random_seed(seed)`` seeds Python, NumPy and TensorFlow.
    - On CPU, TensorFlow op determinism is switched on, so a run with the same seed gives the
      same numbers. (On GPU some kernels have no deterministic version; it stays off there.)
    - Mixed precision (``mixed_float16``) defaults to on with a GPU and off on CPU, where
      float16 is slower. dCor² is always computed in float32 whatever the policy.

    Returns a record of the choices (seed, policy, device, versions) for the run's results.
    """
    keras.utils.set_random_seed(seed)
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
        "versions": artifacts.package_versions(),
    }


def mean_feature_dcor_sqr(features: tf.Tensor, references: Sequence[tf.Tensor],
                          feature_norm: bool = True) -> tf.Tensor:
    """(1/R) Σ_r dCor²(φ, φ_r) over a batch, in float32.

    With ``feature_norm`` each feature row is scaled to unit L2 norm first, as the paper's
    PyTorch code does (its TensorFlow port does not). dCor² is invariant to one global scale
    but not to per-row scaling, so the choice changes the number.
    """
    def prepare(f: tf.Tensor) -> tf.Tensor:
        f = tf.cast(f, tf.float32)
        return tf.math.l2_normalize(f, axis=1) if feature_norm else f

    own = prepare(features)
    values = [distance_correlation_sqr(own, prepare(ref)) for ref in references]
    return tf.add_n(values) / float(len(values))


class DivergeModel(keras.Model):
    """Trains ``network`` with CE + α · mean dCor² to frozen ``references``.

    ``network`` maps [0, 1] images to ``(logits, features)`` (see :mod:`pdc_utils.models`).
    The references are frozen (``trainable = False``) and always run in inference mode, so
    training never changes them. Weight decay is the coupled L2 penalty of PyTorch's SGD
    (gradient ``+ wd · w`` for every trainable variable, fed through momentum), which the
    paper's code uses; Keras' own ``weight_decay`` is decoupled and would be a different
    regulariser. Metrics: ``loss`` (CE + α·dCor², without the L2 term), ``ce``, ``dcor_sqr``
    (batch mean over references; 0 without references) and ``accuracy``.
    """

    def __init__(self, network: keras.Model, references: Sequence[keras.Model] = (),
                 alpha: float = 0.0, feature_norm: bool = True, weight_decay: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config.validate({"alpha": alpha, "weight_decay": weight_decay})
        if alpha > 0 and not references:
            raise ValueError("alpha > 0 needs at least one reference network to diverge from")
        self.network = network
        self.references = list(references)
        for reference in self.references:
            reference.trainable = False
        self.alpha = float(alpha)
        self.feature_norm = bool(feature_norm)
        self.weight_decay = float(weight_decay)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.dcor_tracker = keras.metrics.Mean(name="dcor_sqr")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = network.built  # a functional network is built: so is the wrapper

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.ce_tracker, self.dcor_tracker, self.accuracy_tracker]

    def call(self, x: tf.Tensor, training: bool = False):
        return self.network(x, training=training)

    def _dcor_sqr(self, x: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
        if not self.references:
            return tf.constant(0.0)
        reference_features = [ref(x, training=False)[1] for ref in self.references]
        return mean_feature_dcor_sqr(features, reference_features, self.feature_norm)

    @staticmethod
    def _cross_entropy(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32)))

    def _record(self, y, logits, ce, dcor) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(ce + self.alpha * dcor)
        self.ce_tracker.update_state(ce)
        self.dcor_tracker.update_state(dcor)
        self.accuracy_tracker.update_state(y, tf.cast(logits, tf.float32))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits, features = self.network(x, training=True)
            ce = self._cross_entropy(y, logits)
            objective = ce
            if self.alpha > 0:
                dcor = self._dcor_sqr(x, features)
                objective = objective + self.alpha * dcor
            if self.weight_decay > 0:
                squares = [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables]
                objective = objective + 0.5 * self.weight_decay * tf.add_n(squares)
            scaled = self.optimizer.scale_loss(objective)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        if self.alpha == 0:  # monitored only: outside the tape, no backward pass through it
            dcor = self._dcor_sqr(x, tf.stop_gradient(features))
        return self._record(y, logits, ce, dcor)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits, features = self.network(x, training=False)
        return self._record(y, logits, self._cross_entropy(y, logits), self._dcor_sqr(x, features))


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


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar over epochs, showing the latest metrics: readable in notebooks and logs."""

    def __init__(self, epochs: int, description: str) -> None:
        super().__init__()
        self.epochs = epochs
        self.description = description
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.epochs, desc=self.description, unit="epoch")

    def on_epoch_begin(self, epoch, logs=None):
        if self.bar.n < epoch:  # resumed from a backup: skip the epochs already done
            self.bar.update(epoch - self.bar.n)

    def on_epoch_end(self, epoch, logs=None):
        shown = ("loss", "accuracy", "dcor_sqr", "val_accuracy", "val_dcor_sqr")
        self.bar.set_postfix({k: f"{logs[k]:.3f}" for k in shown if k in (logs or {})})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


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
    """Load a saved network; if it is missing, say which notebook makes it."""
    path = Path(path)
    if notebook:
        config.require(path, notebook)
    return keras.models.load_model(path)


def train_network(network: keras.Model, train_data: tf.data.Dataset, test_data: tf.data.Dataset,
                  *, name: str, run_name: str, epochs: int, learning_rate: float,
                  momentum: float, weight_decay: float, schedule: str,
                  references: Sequence[keras.Model] = (), alpha: float = 0.0,
                  feature_norm: bool = True, fingerprint: dict[str, Any] | None = None,
                  callbacks: Sequence[keras.callbacks.Callback] = (),
                  progress: bool = True) -> tuple[keras.Model, pd.DataFrame]:
    """Train ``network`` (or reuse an identical earlier result) and save it as ``<name>.keras``.

    Files, under ``runs/<run_name>/``: ``models/<name>.keras`` (the plain network),
    ``models/<name>.json`` (the parameters it was trained with), ``results/history_<name>.csv``
    (per-epoch metrics) and, while training, ``backup/<name>/`` (``BackupAndRestore``: an
    interrupted fit resumes from its last finished epoch instead of starting again; a backup
    left by a training with other parameters is discarded).

    If the model file exists and was trained with the same parameters (``fingerprint`` plus
    the arguments here), training is skipped and the saved network and history are returned:
    re-running a notebook does not redo finished work. Returns ``(network, history)``.
    """
    models_dir = config.models_dir(run_name)
    model_path = models_dir / f"{name}.keras"
    params_path = models_dir / f"{name}.json"
    history_path = config.results_dir(run_name) / f"history_{name}.csv"
    backup_dir = config.run_dir(run_name) / "backup" / name
    params = {
        **(fingerprint or {}), "epochs": epochs, "learning_rate": learning_rate,
        "momentum": momentum, "weight_decay": weight_decay, "schedule": schedule,
        "alpha": alpha, "feature_norm": feature_norm,
        "references": [weights_digest(ref) for ref in references],
    }
    config.validate(params)
    if (model_path.exists() and params_path.exists() and history_path.exists()
            and artifacts.read_json(params_path) == params):
        print(f"{name}: reusing {model_path} (trained earlier with the same parameters)")
        return keras.models.load_model(model_path), pd.read_csv(history_path)

    backup_params = backup_dir / "params.json"
    if backup_dir.exists() and (not backup_params.exists()
                                or artifacts.read_json(backup_params) != params):
        shutil.rmtree(backup_dir)  # the backup of a training with other parameters
    if not backup_dir.exists() and history_path.exists():
        history_path.unlink()  # a fresh start: the old history belongs to another model
    history_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_json_atomic(backup_params, params)
    steps = int(train_data.cardinality())
    if steps <= 0:
        raise ValueError("train_data must be a finite, batched dataset with at least one batch")
    model = DivergeModel(network, references, alpha=alpha, feature_norm=feature_norm,
                         weight_decay=weight_decay, name=f"train_{name}")
    model.compile(optimizer=make_optimizer(learning_rate, momentum, schedule, epochs, steps),
                  jit_compile=on_gpu())
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        *callbacks,
    ]
    if progress:
        all_callbacks.append(EpochProgress(epochs, name))
    model.fit(train_data, validation_data=test_data, epochs=epochs, verbose=0, shuffle=False,
              callbacks=all_callbacks)
    save_network(network, model_path)
    artifacts.write_json_atomic(params_path, params)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return network, pd.read_csv(history_path)


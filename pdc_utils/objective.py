"""The diverge objective: the penalties and the model that trains with them.

Diverge training (Zhen et al., ECCV 2022) trains a network f2 with

    L(x, y) = CE(f2(x), y) + α · (1/R) Σ_r D(f2, f_r; x, y) + κ · S(φ2(x))

over frozen reference networks f_1 … f_R, where φ are the global-pooled penultimate features:

- ``D`` is a dCor² estimator of φ2 and φ_r on the batch (penalty ``v``, ``u``, ``u_raw``: the
  paper's method, :func:`feature_penalty`) or, as the standard baseline for reducing
  transfer, the squared cosine of the two networks' input gradients (``grad_align``, GAL:
  Kariyappa & Qureshi 2019; :func:`gradient_alignment_penalty`);
- ``S`` (weight κ = ``keep_dim``, 0 by default) keeps φ2 spread over many directions while
  the penalty acts: the inverse participation ratio of the feature covariance
  (:func:`spread_penalty`), so that a low dCor² cannot be reached by collapsing φ2.

With α = 0 it is ordinary training, so the baseline and the diverged network share one code
path (:class:`DivergeModel`). References passed with α = 0 are only *monitored*: their penalty
value is reported but adds nothing to the loss or its gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from pdc_utils import config
from pdc_utils.distance import distance_correlation_sqr, u_distance_correlation_sqr

#: The history column of each penalty's batch value.
PENALTY_METRICS = {"v": "dcor_sqr", "u": "dcor_sqr", "u_raw": "dcor_sqr",
                   "grad_align": "grad_cos_sqr"}
#: Added to norms before dividing (cosines of an all-zero gradient are 0, not NaN).
_TINY = 1e-12


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
    if penalty not in config.DCOR_PENALTIES:
        raise ValueError(f"feature_penalty estimates dCor²: penalty must be one of "
                         f"{', '.join(config.DCOR_PENALTIES)}, got {penalty!r}")

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


def gradient_alignment_penalty(gradients: tf.Tensor, reference_gradients: Sequence[tf.Tensor]
                               ) -> tuple[tf.Tensor, tf.Tensor]:
    """GAL: the squared cosine between a network's and each reference's input gradients.

    For example i and reference r, ``c_ir = <g_i, g_ri> / (|g_i| |g_ri|)`` with ``g_i =
    ∇x CE(f2(x_i), y_i)`` and ``g_ri = ∇x CE(f_r(x_i), y_i)`` (true labels), and the penalty is
    ``mean_r mean_i c_ir²`` (Kariyappa & Qureshi 2019 penalise the alignment of an ensemble's
    gradients; the square treats aligned and anti-aligned alike, as an attack could step along
    either). Returns ``(per-example values [n], their mean)``: the per-example values let a
    multi-replica step weigh each replica's rows by the global batch size.
    """
    own = tf.reshape(tf.cast(gradients, tf.float32), [tf.shape(gradients)[0], -1])
    values = []
    for ref in reference_gradients:
        ref = tf.reshape(tf.cast(ref, tf.float32), [tf.shape(ref)[0], -1])
        dot = tf.reduce_sum(own * ref, axis=1)
        norms = tf.sqrt(tf.reduce_sum(own * own, axis=1) * tf.reduce_sum(ref * ref, axis=1)
                        + _TINY)
        values.append(tf.square(dot / norms))
    per_example = tf.add_n(values) / float(len(values))
    return per_example, tf.reduce_mean(per_example)


def spread_penalty(features: tf.Tensor, feature_norm: bool = True) -> tf.Tensor:
    """The inverse participation ratio ``tr(C²) / tr(C)²`` of the batch feature covariance C.

    ``(tr C)² / tr(C²) = (Σλ)² / Σλ²`` is the effective dimension the series reports for every
    network (:func:`pdc_utils.features.effective_dimension`): d for features spread evenly
    over d directions, 1 for features on a line. Its inverse lies in [1/d, 1], is invariant to
    the features' scale and is smooth, so minimising it spreads the features without
    rewarding large activations. ``tr(C²)`` is the squared Frobenius norm of C. With
    ``feature_norm`` the rows are L2-normalised first, as in the dCor penalty. Fewer than 2
    rows give 0.
    """
    f = tf.cast(features, tf.float32)
    if feature_norm:
        f = tf.math.l2_normalize(f, axis=1)
    n = tf.shape(f)[0]
    centred = f - tf.reduce_mean(f, axis=0, keepdims=True)
    covariance = tf.matmul(centred, centred, transpose_a=True) / tf.cast(
        tf.maximum(n - 1, 1), tf.float32)
    trace = tf.linalg.trace(covariance)
    value = tf.reduce_sum(tf.square(covariance)) / (tf.square(trace) + _TINY)
    return tf.where(n >= 2, value, 0.0)


def input_gradient(network: keras.Model, x: tf.Tensor, y: tf.Tensor,
                   training: bool = False) -> tf.Tensor:
    """``∇x Σ_i CE(network(x)_i, y_i)``: row i is example i's input gradient."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = network(x, training=training)[0]
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32)))
    return tape.gradient(loss, x)


class DivergeModel(keras.Model):
    """Trains ``network`` with CE + α · the mean penalty to ``references`` (+ κ · spread).

    ``network`` maps [0, 1] images to ``(logits, features)`` (see :mod:`pdc_utils.models`).
    The references always run in inference mode and their features are cut from the gradient
    (``tf.stop_gradient``), so training this network never changes them; they may still be
    trained by someone else, as the earlier nets of a chain are (``design = "paper_code"``).
    Weight decay is the coupled L2 penalty of PyTorch's SGD (gradient ``+ wd · w`` for every
    trainable variable, fed through momentum), which the paper's code uses; Keras' own
    ``weight_decay`` is decoupled and would be a different regulariser. Metrics: ``loss``
    (CE + α·penalty, without the L2 and spread terms), ``ce``, ``accuracy`` and, when there are
    references, the batch penalty's value (:data:`PENALTY_METRICS`: ``dcor_sqr`` or
    ``grad_cos_sqr``; with α = 0 it is only monitored).

    ``penalty="grad_align"`` differentiates the network's input gradient with respect to its
    weights: the step nests a tape for ``∇x CE`` inside the tape of the loss (double
    backpropagation), and the references' input gradients are computed first, outside it.

    A batch is ``(x, y)`` or ``(x, y, cached)``: ``cached`` holds, for frozen references, their
    features of exactly these images, precomputed once (one ``[batch, d_r]`` tensor per
    reference; see ``feature_cache`` in :mod:`pdc_utils.experiment`). The step then uses them
    instead of running the references, which makes it cost about a plain step; the values
    are the same up to float rounding. It is only right for references that do not change
    and images that are not augmented, and never for ``grad_align`` (which needs the
    references' gradients, not their features).
    """

    def __init__(self, network: keras.Model, references: Sequence[keras.Model] = (),
                 alpha: float = 0.0, feature_norm: bool = True, weight_decay: float = 0.0,
                 penalty: str = "v", keep_dim: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config.validate({"alpha": alpha, "weight_decay": weight_decay, "penalty": penalty,
                         "keep_dim": keep_dim})
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
        #: weight of the spread term; it acts only with the penalty (alpha > 0)
        self.keep_dim = float(keep_dim) if alpha > 0 else 0.0
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.dcor_tracker = keras.metrics.Mean(name=PENALTY_METRICS[penalty])
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

    def _reference_gradients(self, x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
        """The references' input gradients of the CE at the true labels, cut from the tape."""
        return [tf.stop_gradient(input_gradient(ref, x, y)) for ref in self._references]

    def _alignment(self, gradients: tf.Tensor, reference_gradients: list[tf.Tensor]
                   ) -> tuple[tf.Tensor, tf.Tensor]:
        """GAL's ``(this replica's share, the global batch's mean)``, like the CE's."""
        per_example, _ = gradient_alignment_penalty(gradients, reference_gradients)
        return self._global_mean(per_example)

    @staticmethod
    def _global_mean(per_example: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(this replica's share, the global batch's mean)`` of a per-example quantity.

        The global batch's mean is ``Σ_i v_i / n`` over all n rows of all replicas. Each
        replica contributes the sum over its own rows divided by n, so the shares add up to it
        (and their gradients to its gradient) however unevenly the rows are split; with one
        device the share is the mean.
        """
        local = tf.stack([tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)])
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            mean = local[0] / local[1]
            return mean, mean
        total = context.all_reduce("sum", tf.stop_gradient(local))
        return local[0] / total[1], total[0] / total[1]

    def _spread(self, features: tf.Tensor) -> tf.Tensor:
        """The spread term on the global batch (features all-gathered like the dCor's)."""
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            features = context.all_gather(features, axis=0)
        return spread_penalty(features, self.feature_norm)

    @classmethod
    def _cross_entropy(cls, y: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(this replica's share, the global batch's mean)`` of the cross-entropy."""
        return cls._global_mean(cls._per_example_ce(y, logits))

    @staticmethod
    def _per_example_ce(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32))

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
        if self.penalty == "grad_align":
            raise ValueError("penalty grad_align needs the references' input gradients, so it "
                             "cannot use cached reference features (feature_cache='off')")
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
        align = self.penalty == "grad_align" and bool(self._references)
        # computed before the tape opens, so that it records none of the references' work
        reference_gradients = self._reference_gradients(x, y) if align else []
        with tf.GradientTape() as tape:
            if align:  # a second tape records ∇x CE, to differentiate it again
                with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                    input_tape.watch(x)
                    logits, features = self.network(x, training=True)
                    per_example = self._per_example_ce(y, logits)
                    summed = tf.reduce_sum(per_example)  # recorded: ∇x of it is wanted
            else:
                logits, features = self.network(x, training=True)
                per_example = self._per_example_ce(y, logits)
            ce_share, ce = self._global_mean(per_example)
            shares = ce_share
            whole = tf.constant(0.0)  # terms each replica computes in full, from the global batch
            if self.alpha > 0:
                if align:  # inside the tape: the input gradient is differentiated again
                    gradients = input_tape.gradient(summed, x)
                    align_share, penalty = self._alignment(gradients, reference_gradients)
                    shares = shares + self.alpha * align_share
                else:
                    penalty = self._penalty(x, features, cached)
                    whole = whole + self.alpha * penalty
                if self.keep_dim > 0:
                    whole = whole + self.keep_dim * self._spread(features)
            if self.weight_decay > 0:
                squares = [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables]
                whole = whole + 0.5 * self.weight_decay * tf.add_n(squares)
            # the replicas' gradients are summed: each adds its shares and 1/R of the rest
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(shares + whole / replicas)
        gradients_w = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients_w, variables)
        if self.alpha == 0:  # monitored only: outside the tape, no backward pass through it
            if align:
                penalty = self._alignment(input_tape.gradient(summed, x), reference_gradients)[1]
            else:
                penalty = self._penalty(x, tf.stop_gradient(features), cached)
        return self._record(y, logits, ce, penalty)

    def test_step(self, data):
        x, y, cached = self._unpack(data)
        if self.penalty == "grad_align" and self._references:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                logits, _ = self.network(x, training=False)
                summed = tf.reduce_sum(self._per_example_ce(y, logits))
            penalty = self._alignment(tape.gradient(summed, x),
                                      self._reference_gradients(x, y))[1]
        else:
            logits, features = self.network(x, training=False)
            penalty = self._penalty(x, features, cached)
        return self._record(y, logits, self._cross_entropy(y, logits)[1], penalty)

"""The penalties of the diverge objective: GAL's gradient (double backpropagation) against
finite differences, and the spread term against the effective dimension the series reports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pdc_utils import features, objective


def _tiny_network(seed: int) -> keras.Model:
    """Images (4x4x1) -> (logits of 3 classes, 5 features); smooth (tanh), no batch norm, so
    the training and inference forward passes are the same function of the weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(6, activation="tanh")(x)
    feats = keras.layers.Dense(5, activation="tanh", name="features")(x)
    logits = keras.layers.Dense(3, name="logits")(feats)
    return keras.Model(inputs, [logits, feats])


def _gal_value(network, reference, x, y) -> float:
    own = objective.input_gradient(network, x, y)
    ref = objective.input_gradient(reference, x, y)
    return float(objective.gradient_alignment_penalty(own, [ref])[1])


def test_grad_align_training_step_follows_the_finite_difference_gradient():
    """One SGD step (lr 1, no momentum, no weight decay) moves the weights by minus the
    gradient of CE + α·GAL: compare it with central differences of that loss."""
    network, reference = _tiny_network(1), _tiny_network(2)
    x = tf.random.stateless_uniform((8, 4, 4, 1), seed=(3, 4))
    y = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
    alpha = 2.0

    def loss() -> float:
        logits = network(x)[0]
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return float(ce) + alpha * _gal_value(network, reference, x, y)

    before = [w.numpy().astype(np.float64) for w in network.trainable_variables]
    numeric = []
    step = 1e-3
    for variable, start in zip(network.trainable_variables, before, strict=True):
        grad = np.zeros_like(start)
        for index in np.ndindex(start.shape):
            values = []
            for sign in (1, -1):
                changed = start.copy()
                changed[index] += sign * step
                variable.assign(changed.astype(np.float32))
                values.append(loss())
            grad[index] = (values[0] - values[1]) / (2 * step)
            variable.assign(start.astype(np.float32))
        numeric.append(grad)
    model = objective.DivergeModel(network, [reference], alpha=alpha, penalty="grad_align")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["grad_cos_sqr"] > 0
    moved = [b - w.numpy() for b, w in zip(before, network.trainable_variables, strict=True)]
    for analytic, expected in zip(moved, numeric, strict=True):
        np.testing.assert_allclose(analytic, expected, rtol=2e-2, atol=2e-3)
    # the GAL term is a real part of that gradient, not a rounding error
    alignment_only = [e - m for e, m in zip(numeric, moved, strict=True)]
    assert max(np.abs(m).max() for m in moved) > 10 * max(np.abs(a).max()
                                                          for a in alignment_only)


def test_gradient_alignment_penalty_is_the_mean_squared_cosine():
    rng = np.random.default_rng(0)
    own, ref = rng.normal(size=(6, 2, 2, 1)), rng.normal(size=(6, 2, 2, 1))
    per_example, mean = objective.gradient_alignment_penalty(own, [ref, own])
    a, b = own.reshape(6, -1), ref.reshape(6, -1)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(per_example, (cos**2 + 1) / 2, rtol=1e-5)
    assert float(mean) == pytest.approx(np.mean((cos**2 + 1) / 2), rel=1e-5)
    zero, _ = objective.gradient_alignment_penalty(np.zeros((2, 3)), [np.ones((2, 3))])
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.parametrize("rank", [1, 3, 12])
def test_spread_penalty_is_the_inverse_effective_dimension(rank):
    rng = np.random.default_rng(rank)
    feats = rng.normal(size=(64, rank)) @ rng.normal(size=(rank, 16)) + 0.01 * rng.normal(
        size=(64, 16))
    expected = features.effective_dimension(features.row_normalized(feats))[0]
    value = float(objective.spread_penalty(tf.constant(feats, tf.float32)))
    assert 1 / value == pytest.approx(expected, rel=1e-3)
    raw = features.effective_dimension(feats)[0]
    assert 1 / float(objective.spread_penalty(feats, feature_norm=False)) == pytest.approx(
        raw, rel=1e-3)


def test_penalty_choices_are_checked():
    net = _tiny_network(0)
    with pytest.raises(ValueError, match="penalty must be one of"):
        objective.DivergeModel(net, [net], alpha=1.0, penalty="cosine")
    with pytest.raises(ValueError, match="keep_dim must be"):
        objective.DivergeModel(net, [net], alpha=1.0, keep_dim=-1.0)
    with pytest.raises(ValueError, match="feature_penalty estimates dCor"):
        objective.feature_penalty(tf.ones((4, 2)), [tf.ones((4, 2))], penalty="grad_align")

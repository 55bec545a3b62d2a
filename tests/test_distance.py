"""Tests of pdc_utils.distance against the dcor package, its documented values, and the maths."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcor  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from pdc_utils import distance as D  # noqa: E402

RTOL = 1e-6  # agreement with dcor in float64, as docs/design.md asks


def _cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X in R^3, Y in R^5 depending on X non-linearly, Z in R^2 correlated with X."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.c_[np.sin(2 * x[:, :1]), x[:, 1:2] ** 2, rng.normal(size=(n, 3))]
    z = x[:, :2] + rng.normal(size=(n, 2))
    return x, y, z


# Pairs (ours, dcor's) taking (x, y) or (x, y, z).
PAIRS_XY = [
    (D.distance_covariance_sqr, dcor.distance_covariance_sqr),
    (D.distance_correlation_sqr, dcor.distance_correlation_sqr),
    (D.distance_correlation, dcor.distance_correlation),
    (D.u_distance_covariance_sqr, dcor.u_distance_covariance_sqr),
    (D.u_distance_correlation_sqr, dcor.u_distance_correlation_sqr),
    (D.distance_covariance_sqr_blocked, dcor.distance_covariance_sqr),
    (D.distance_correlation_sqr_blocked, dcor.distance_correlation_sqr),
]
PAIRS_XYZ = [
    (D.partial_distance_covariance, dcor.partial_distance_covariance),
    (D.partial_distance_correlation, dcor.partial_distance_correlation),
]
XY_FUNCTIONS = [ours for ours, _ in PAIRS_XY]
XYZ_FUNCTIONS = [ours for ours, _ in PAIRS_XYZ]
U_FUNCTIONS = [D.u_distance_covariance_sqr, D.u_distance_correlation_sqr, *XYZ_FUNCTIONS]


def _arity(function) -> int:
    return 3 if getattr(function, "__name__", "").startswith("partial") else 2


def _call(function, x, y, z):
    """Call ``function`` (or its tf.function) with (x, y, z) or (x, y), as it takes."""
    return function(x, y, z) if _arity(function) == 3 else function(x, y)


# ------------------------------------------------------------------ agreement with dcor


@pytest.mark.parametrize("n", [4, 5, 9, 40, 150, 500])
@pytest.mark.parametrize(("ours", "theirs"), PAIRS_XY + PAIRS_XYZ, ids=lambda f: f.__name__)
def test_matches_dcor(ours, theirs, n):
    x, y, z = _cases(n, seed=n)
    if ours in (D.distance_covariance_sqr_blocked, D.distance_correlation_sqr_blocked):
        kwargs = {"block_size": 7}
    else:
        kwargs = {}
    args = (x, y, z)[: _arity(ours)]
    value = ours(*args, **kwargs)
    assert value.dtype == tf.float64
    np.testing.assert_allclose(float(value), theirs(*args), rtol=RTOL, atol=0)


def test_one_dimensional_input_matches_dcor():
    # dcor uses its O(n log n) algorithm for 1-D data: an independent check.
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = x**2 + 0.3 * rng.normal(size=200)
    for ours, theirs in PAIRS_XY:
        np.testing.assert_allclose(float(ours(x, y)), theirs(x, y), rtol=RTOL)


def test_distance_and_centring_matrices_match_dcor():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4))
    a = D.pairwise_distances(x)
    expected = dcor.distances.pairwise_distances(x)
    np.testing.assert_allclose(a, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(D.pairwise_distances_broadcast(x), expected, rtol=1e-12)
    assert np.all(np.diag(a.numpy()) == 0)
    matrix = rng.normal(size=(9, 9))
    matrix = matrix + matrix.T  # dcor's centring assumes a symmetric matrix
    np.testing.assert_allclose(D.double_centered(matrix), dcor.double_centered(matrix), rtol=1e-12)
    np.testing.assert_allclose(D.u_centered(matrix), dcor.u_centered(matrix), rtol=1e-12)


@pytest.mark.parametrize("n", [10, 60, 300])
def test_permutation_test_matches_dcor(n):
    x, y, _ = _cases(n, seed=n)
    y_independent = np.random.default_rng(n + 1).normal(size=(n, 2))
    for other in (y, y_independent):
        statistic, p_value = D.distance_covariance_test(x, other, num_resamples=99, seed=7)
        reference = dcor.independence.distance_covariance_test(
            x, other, num_resamples=99, random_state=7
        )
        np.testing.assert_allclose(float(statistic), reference.statistic, rtol=RTOL)
        # Same permutations as dcor for the same seed; no ties with continuous data.
        assert float(p_value) == pytest.approx(reference.pvalue, abs=1e-12)


def test_permutation_test_p_values_behave():
    num_resamples = 199
    rng = np.random.default_rng(3)
    x, y, _ = _cases(100, seed=3)
    _, p_value = D.distance_covariance_test(x, y, num_resamples=num_resamples, seed=1)
    assert float(p_value) == pytest.approx(1 / (num_resamples + 1))  # never 0
    p_values = []
    for seed in range(40):
        xi, yi = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
        _, p = D.distance_covariance_test(xi, yi, num_resamples=num_resamples, seed=seed)
        p = float(p)
        assert 1 / (num_resamples + 1) <= p <= 1
        assert p * (num_resamples + 1) == pytest.approx(round(p * (num_resamples + 1)))
        p_values.append(p)
    # Independent data: p-values roughly uniform on (0, 1].
    assert 0.35 < np.mean(p_values) < 0.65
    assert np.mean(np.asarray(p_values) < 0.1) < 0.3


def test_permutation_test_is_reproducible_and_counts_ties():
    x, y, _ = _cases(12, seed=4)
    first = D.distance_covariance_test(x, y, num_resamples=50, seed=5)
    again = D.distance_covariance_test(x, y, num_resamples=50, seed=5)
    assert float(first[1]) == float(again[1])
    # n = 3 has 6 permutations: many draws tie with the observed pairing and count as extreme.
    x3 = np.array([0.0, 1.0, 3.0])
    y3 = np.array([0.0, 2.0, 3.0])
    _, p_value = D.distance_covariance_test(x3, y3, num_resamples=60, seed=0)
    identical = float(D.distance_covariance_test(x3, y3, num_resamples=60, seed=0)[1])
    reference = dcor.independence.distance_covariance_test(x3, y3, num_resamples=60, random_state=0)
    assert float(p_value) == identical
    assert float(p_value) > reference.pvalue  # dcor counts only strictly greater statistics


# ---------------------------------------------------------------- dcor's documented values

A = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=np.float64)
B = np.array([[1.0], [0.0], [0.0], [1.0]])
B4 = np.array([[1, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]], dtype=np.float64)
C3 = np.array([[1, 3, 4], [5, 7, 8], [9, 11, 15], [13, 15, 16]], dtype=np.float64)
P5 = np.array([[1], [1], [2], [2], [3]], dtype=np.float64)
Q5 = np.array([[1], [2], [1], [2], [1]], dtype=np.float64)
R5 = np.array([[1], [2], [2], [1], [2]], dtype=np.float64)

# (function, arguments, value printed in dcor 0.7's docstrings; "..." digits are cut, so
# the comparison allows 1e-7 absolute).
DOCUMENTED = [
    (D.distance_covariance_sqr, (A, A), 52.0),
    (D.distance_covariance_sqr, (A, B), 1.0),
    (D.distance_covariance_sqr, (B, B), 0.25),
    (D.u_distance_covariance_sqr, (A, A), 42.6666666),
    (D.u_distance_covariance_sqr, (A, B), -2.6666666),
    (D.u_distance_covariance_sqr, (B, B), 0.6666666),
    (D.distance_correlation_sqr, (A, A), 1.0),
    (D.distance_correlation_sqr, (A, B), 0.2773500),
    (D.distance_correlation_sqr, (B, B), 1.0),
    (D.u_distance_correlation_sqr, (A, A), 1.0),
    (D.u_distance_correlation_sqr, (A, B), -0.5),  # printed as -0.4999999...
    (D.distance_correlation, (A, B), 0.5266403),
    (D.partial_distance_covariance, (A, A, C3), 0.0024298),
    (D.partial_distance_covariance, (A, B, C3), 0.0347030),
    (D.partial_distance_covariance, (B, B, C3), 0.4956241),
    (D.partial_distance_correlation, (P5, P5, R5), 1.0),
    (D.partial_distance_correlation, (P5, Q5, R5), -0.5),  # printed as -0.5...
    (D.partial_distance_correlation, (Q5, Q5, R5), 1.0),
    (D.partial_distance_correlation, (P5, R5, R5), 0.0),
]


@pytest.mark.parametrize(("function", "args", "expected"), DOCUMENTED)
def test_documented_values(function, args, expected):
    np.testing.assert_allclose(float(function(*args)), expected, rtol=0, atol=1e-7)


def test_documented_matrices_and_test_statistics():
    np.testing.assert_allclose(
        D.pairwise_distances(A),
        [[0, 8, 16, 24], [8, 0, 8, 16], [16, 8, 0, 8], [24, 16, 8, 0]],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        D.double_centered(np.array([[1.0, 2.0], [2.0, 4.0]])), [[0.25, -0.25], [-0.25, 0.25]]
    )
    three = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]])
    np.testing.assert_allclose(
        D.double_centered(three),
        [[0.44444444, -0.22222222, -0.22222222], [-0.22222222, 0.11111111, 0.11111111],
         [-0.22222222, 0.11111111, 0.11111111]],
        atol=1e-8,
    )
    np.testing.assert_allclose(
        D.u_centered(three), [[0, 0.5, -1.5], [0.5, 0, -4.5], [-1.5, -4.5, 0]], atol=1e-12
    )
    for x, y, statistic in [(A, A, 208.0), (A, B4, 11.75323056), (B4, B4, 1.3604610)]:
        value, _ = D.distance_covariance_test(x, y, num_resamples=1)
        np.testing.assert_allclose(float(value), statistic, rtol=0, atol=1e-7)
    assert float(D.distance_covariance_test(A, B4, num_resamples=5, seed=0)[1]) == pytest.approx(
        0.8333333333333334
    )
    assert float(D.distance_covariance_test(A, A, num_resamples=7, seed=0)[1]) == 0.125


# ------------------------------------------------------------------------------ the maths


def _random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize(
    "function",
    [D.distance_correlation_sqr, D.u_distance_correlation_sqr, D.distance_correlation,
     D.partial_distance_correlation],
    ids=lambda f: f.__name__,
)
def test_invariant_to_translation_rotation_and_scaling(function):
    rng = np.random.default_rng(5)
    x, y, z = _cases(50, seed=5)
    reference = float(_call(function, x, y, z))
    moved_x = 3.7 * (x @ _random_rotation(3, rng)) + rng.normal(size=3) * 10
    moved_y = 0.02 * (y @ _random_rotation(5, rng)) - 4.0
    moved_z = 11.0 * (z @ _random_rotation(2, rng)) + 1.0
    np.testing.assert_allclose(
        float(_call(function, moved_x, moved_y, moved_z)), reference, rtol=1e-9
    )


SCALE_FREE = [D.distance_correlation_sqr, D.distance_correlation, D.u_distance_correlation_sqr,
              D.distance_correlation_sqr_blocked, D.partial_distance_correlation]


@pytest.mark.parametrize("function", SCALE_FREE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("scale", [10.0**k for k in range(-30, 31, 10)])
def test_float32_at_extreme_scales_matches_float64(function, scale):
    x, y, z = _cases(50, seed=5)
    reference = float(_call(function, x, y, z))
    scaled = [(scale * a).astype(np.float32) for a in (x, y, z)]
    np.testing.assert_allclose(float(_call(function, *scaled)), reference, rtol=1e-5)


@pytest.mark.parametrize("function", SCALE_FREE, ids=lambda f: f.__name__)
def test_gradient_at_extreme_scales_is_the_scaled_unit_gradient(function):
    x, y, z = _cases(20, seed=6)
    args = [a.astype(np.float32) for a in (x, y, z)][: _arity(function)]
    _, unit = _gradient(function, *args)
    for scale in (1e-25, 1e25):
        _, gradients = _gradient(function, *[scale * a for a in args])
        for g, g_unit in zip(gradients, unit, strict=True):
            np.testing.assert_allclose(scale * g.numpy(), g_unit.numpy(), rtol=1e-4, atol=1e-6)


def test_self_correlation_is_one():
    x, _, z = _cases(40, seed=6)
    for function in (D.distance_correlation, D.distance_correlation_sqr,
                     D.u_distance_correlation_sqr):
        np.testing.assert_allclose(float(function(x, x)), 1.0, rtol=1e-12)
        np.testing.assert_allclose(float(function(x, 2 * x + 1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(D.partial_distance_correlation(x, x, z)), 1.0, rtol=1e-12)


def test_bias_corrected_estimator_can_be_negative_and_v_statistic_cannot():
    rng = np.random.default_rng(7)
    u_values, v_values = [], []
    for _ in range(20):
        x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 3))
        u_values.append(float(D.u_distance_correlation_sqr(x, y)))
        v_values.append(float(D.distance_correlation_sqr(x, y)))
    assert min(u_values) < 0 < min(v_values)
    assert np.mean(u_values) < np.mean(v_values)  # the V-statistic is biased upwards


def test_partial_correlation_removes_a_common_cause():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(300, 1))
    x = np.c_[z, 2 * z] + 0.3 * rng.normal(size=(300, 2))
    y = -z + 0.3 * rng.normal(size=(300, 1))
    assert float(D.u_distance_correlation_sqr(x, y)) > 0.5
    assert abs(float(D.partial_distance_correlation(x, y, z))) < 0.1


# --------------------------------------------------------------------------------- gradients


def _gradient(function, *args):
    variables = [tf.Variable(a) for a in args]
    with tf.GradientTape() as tape:
        value = function(*variables)
    return value, tape.gradient(value, variables)


@pytest.mark.parametrize("function", XY_FUNCTIONS + XYZ_FUNCTIONS, ids=lambda f: f.__name__)
def test_constant_input_gives_zero_and_zero_gradients(function):
    rng = np.random.default_rng(9)
    # One random, wide row repeated: its float mean differs from the row itself.
    row = 3 * rng.normal(size=(1, 2048)) + 1
    for dtype in (np.float32, np.float64):
        constant = np.repeat(row, 37, axis=0).astype(dtype)
        others = [rng.normal(size=(37, 2)).astype(dtype) for _ in range(2)]
        value, gradients = _gradient(function, *[constant, *others][: _arity(function)])
        assert float(value) == 0.0
        for gradient in gradients:
            assert gradient is not None and np.all(np.isfinite(gradient))
        np.testing.assert_array_equal(gradients[0], 0.0)


@pytest.mark.parametrize("function", XY_FUNCTIONS + XYZ_FUNCTIONS, ids=lambda f: f.__name__)
def test_duplicate_rows_have_finite_gradients(function):
    x, y, z = _cases(8, seed=10)
    x[3] = x[0]
    y[5] = y[2]
    z[3] = z[0]
    for dtype in (np.float32, np.float64):
        args = [a.astype(dtype) for a in (x, y, z)][: _arity(function)]
        value, gradients = _gradient(function, *args)
        assert np.isfinite(float(value))
        for gradient in gradients:
            assert np.all(np.isfinite(gradient))
    distances = D.pairwise_distances(x)
    assert float(distances[0, 3]) == 0.0


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [PAIRS_XY[1], PAIRS_XY[4], PAIRS_XYZ[1]],
    ids=lambda f: f.__name__,
)
def test_gradients_match_finite_differences_of_dcor(ours, theirs):
    x, y, z = _cases(7, seed=11)
    args = (x, y, z)[: _arity(ours)]
    _, gradients = _gradient(ours, *args)
    step = 1e-6
    for position, (arg, gradient) in enumerate(zip(args, gradients, strict=True)):
        numeric = np.zeros_like(arg)
        for index in np.ndindex(arg.shape):
            plus, minus = arg.copy(), arg.copy()
            plus[index] += step
            minus[index] -= step
            up = [plus if k == position else a for k, a in enumerate(args)]
            down = [minus if k == position else a for k, a in enumerate(args)]
            numeric[index] = (theirs(*up) - theirs(*down)) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------- blocked form


@pytest.mark.parametrize("block_size", [1, 5, 16, 37, 2048])
def test_blocked_equals_dense(block_size):
    x, y, _ = _cases(37, seed=12)
    np.testing.assert_allclose(
        float(D.distance_covariance_sqr_blocked(x, y, block_size=block_size)),
        float(D.distance_covariance_sqr(x, y)), rtol=1e-12,
    )
    np.testing.assert_allclose(
        float(D.distance_correlation_sqr_blocked(x, y, block_size=block_size)),
        float(D.distance_correlation_sqr(x, y)), rtol=1e-12,
    )


def test_blocked_float32_and_gradient_match_dense():
    x, y, _ = _cases(300, seed=13)
    x32, y32 = x.astype(np.float32) + 5.0, y.astype(np.float32)
    blocked = D.distance_correlation_sqr_blocked(x32, y32, block_size=128)
    assert blocked.dtype == tf.float32
    np.testing.assert_allclose(float(blocked), float(D.distance_correlation_sqr(x, y)), rtol=1e-4)
    _, dense_gradients = _gradient(D.distance_correlation_sqr, x[:40], y[:40])
    _, blocked_gradients = _gradient(
        lambda a, b: D.distance_correlation_sqr_blocked(a, b, block_size=9), x[:40], y[:40]
    )
    for dense, blocked in zip(dense_gradients, blocked_gradients, strict=True):
        np.testing.assert_allclose(blocked, dense, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("block_size", [0, -3, 2.5, True])
def test_blocked_rejects_bad_block_size(block_size):
    x, y, _ = _cases(10, seed=14)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        D.distance_correlation_sqr_blocked(x, y, block_size=block_size)


# ------------------------------------------------------------------ graph mode and dtypes


@pytest.mark.parametrize("function", XY_FUNCTIONS + XYZ_FUNCTIONS, ids=lambda f: f.__name__)
def test_works_inside_tf_function(function):
    x, y, z = (a.astype(np.float32) for a in _cases(20, seed=15))
    compiled = tf.function(function)
    np.testing.assert_allclose(
        float(_call(compiled, x, y, z)), float(_call(function, x, y, z)), rtol=1e-6
    )


def test_permutation_test_works_inside_tf_function():
    x, y, _ = _cases(20, seed=16)
    compiled = tf.function(lambda a, b: D.distance_covariance_test(a, b, num_resamples=30, seed=2))
    eager = D.distance_covariance_test(x, y, num_resamples=30, seed=2)
    graph = compiled(tf.constant(x), tf.constant(y))
    np.testing.assert_allclose([float(v) for v in graph], [float(v) for v in eager], rtol=1e-12)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float64, tf.float64), (np.float32, tf.float32), (np.float16, tf.float32),
     (tf.bfloat16, tf.float32), (np.int32, tf.float32)],
    ids=str,
)
def test_result_dtype(dtype, expected):
    x, y, z = _cases(10, seed=17)
    x, y, z = (tf.cast(3 * a, dtype) for a in (x, y, z))
    for function in XY_FUNCTIONS + XYZ_FUNCTIONS:
        assert _call(function, x, y, z).dtype == expected
    assert D.pairwise_distances(x).dtype == expected
    assert D.distance_covariance_test(x, y, num_resamples=3)[0].dtype == expected


def test_mixed_dtypes_promote_to_float64_and_numpy_float16_is_computed_in_float32():
    x, y, _ = _cases(10, seed=18)
    assert D.distance_correlation_sqr(x.astype(np.float32), y).dtype == tf.float64
    value = D.distance_correlation_sqr(x.astype(np.float16), y.astype(np.float16))
    assert value.dtype == tf.float32
    np.testing.assert_allclose(float(value), dcor.distance_correlation_sqr(
        x.astype(np.float16).astype(np.float64), y.astype(np.float16).astype(np.float64)),
        rtol=1e-4)


def test_mixed_float16_layer_outputs_give_float32_and_finite_gradients():
    rng = np.random.default_rng(19)
    layer = keras.layers.Dense(6, dtype="mixed_float16")
    inputs = rng.normal(size=(16, 4)).astype(np.float32)
    reference = rng.normal(size=(16, 3)).astype(np.float32)
    layer.build(inputs.shape)
    with tf.GradientTape() as tape:
        features = layer(inputs)
        value = D.distance_correlation_sqr(features, reference)
    assert features.dtype == tf.float16 and value.dtype == tf.float32
    for gradient in tape.gradient(value, layer.trainable_variables):
        assert np.all(np.isfinite(gradient))


# --------------------------------------------------------------------------------- bad input

ALL_FUNCTIONS = XY_FUNCTIONS + XYZ_FUNCTIONS + [D.distance_covariance_test]


def _bad_inputs(function):
    """(description, args, message pattern) for each kind of bad input."""
    rng = np.random.default_rng(20)
    arity = _arity(function)
    min_n = 4 if function in U_FUNCTIONS else 2

    def good(n: int = 6) -> list[np.ndarray]:
        return [rng.normal(size=(n, 2)).astype(np.float32) for _ in range(arity)]

    mismatched = good()
    mismatched[1] = rng.normal(size=(7, 2)).astype(np.float32)
    nan, inf = good(), good()
    nan[0][2, 1] = np.nan
    inf[-1][0, 0] = np.inf
    return [
        ("mismatched n", mismatched, "same number of samples"),
        ("too few", good(min_n - 1), f"at least {min_n} samples"),
        ("nan", nan, "NaN or infinite"),
        ("inf", inf, "NaN or infinite"),
    ]


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda f: f.__name__)
def test_bad_input_raises_value_error_eagerly(function):
    for _, args, pattern in _bad_inputs(function):
        with pytest.raises(ValueError, match=pattern):
            function(*args)
    rng = np.random.default_rng(21)
    rank3 = [rng.normal(size=(6, 2, 2))] + [rng.normal(size=(6, 2))] * (_arity(function) - 1)
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, d\)"):
        function(*rank3)


@pytest.mark.parametrize("function", XY_FUNCTIONS[:5] + XYZ_FUNCTIONS, ids=lambda f: f.__name__)
def test_bad_input_raises_invalid_argument_in_tf_function(function):
    arity = _arity(function)
    signature = [tf.TensorSpec([None, None], tf.float32)] * arity
    compiled = tf.function(function, input_signature=signature)
    for _, args, pattern in _bad_inputs(function):
        with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
            compiled(*args)
    # A rank error is visible at trace time and stays a ValueError.
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, d\)"):
        tf.function(function)(*[tf.zeros([6, 2, 2])] * arity)


def test_bad_matrices_and_resamples_are_rejected():
    with pytest.raises(ValueError, match="square"):
        D.double_centered(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n >= 3"):
        D.u_centered(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        D.double_centered(np.full((3, 3), np.nan))
    x, y, _ = _cases(10, seed=22)
    for bad in (-1, 0):
        with pytest.raises(ValueError, match=f"num_resamples must be an integer >= 1, got {bad}"):
            D.distance_covariance_test(x, y, num_resamples=bad)
    with pytest.raises(ValueError, match="real numbers"):
        D.distance_correlation_sqr(np.array(["a", "b", "c"]), y[:3])


@pytest.mark.parametrize("block_size", [1, 6, 37, 2048])
def test_blocked_u_statistic_matches_dcor(block_size):
    x, y, _ = _cases(37, seed=14)
    np.testing.assert_allclose(
        float(D.u_distance_correlation_sqr_blocked(x, y, block_size=block_size)),
        dcor.u_distance_correlation_sqr(np.asarray(x), np.asarray(y)), rtol=1e-9)
    independent = np.random.default_rng(3).normal(size=(37, 4))
    assert float(D.u_distance_correlation_sqr_blocked(x, independent, block_size)) == (
        pytest.approx(dcor.u_distance_correlation_sqr(np.asarray(x), independent), rel=1e-9))


def test_blocked_u_statistic_needs_four_samples():
    with pytest.raises(ValueError):
        D.u_distance_correlation_sqr_blocked(np.zeros((3, 2)), np.zeros((3, 2)))

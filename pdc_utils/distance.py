r"""Distance correlation and its relatives, in TensorFlow, differentiable.

Samples ``x`` (n x p) and ``y`` (n x q) with paired rows; ``a_ij = ||x_i - x_j||`` and
``b_ij = ||y_i - y_j||`` are their Euclidean distance matrices.

* V-statistics (Székely, Rizzo & Bakirov 2007): double-centre the distance matrices,
  ``A_ij = a_ij - mean_k a_kj - mean_k a_ik + mean_kl a_kl``, then
  ``dCov²(X, Y) = (1/n²) Σ_ij A_ij B_ij`` and
  ``dCor²(X, Y) = dCov²(X, Y) / sqrt(dCov²(X, X) dCov²(Y, Y))`` (0 when the denominator is 0).
* U-statistics (Székely & Rizzo 2014): U-centre instead,
  ``Ã_ij = a_ij - a_i./(n-2) - a_.j/(n-2) + a_../((n-1)(n-2))`` for i != j and ``Ã_ii = 0``;
  the inner product ``(Ã·B̃) = Σ_{i≠j} Ã_ij B̃_ij / (n(n-3))`` is an unbiased estimator of
  dCov², so the bias-corrected dCor² can be negative.
* Partial distance correlation: project Z out of X and Y in the Hilbert space of U-centred
  matrices, ``P(X) = Ã - ((Ã·C̃)/(C̃·C̃)) C̃``, and correlate the residuals.

Inputs are numpy arrays or tensors of shape (n,) or (n, d) (1-D means d = 1). Results are
float64 for float64 input and float32 otherwise (float16, bfloat16 and integer inputs are
computed in float32, so the functions are safe under a ``mixed_float16`` Keras policy). Every
function works eagerly and inside ``tf.function`` and is differentiable, with finite gradients
even for duplicate rows and constant inputs. Bad input (mismatched sample counts, rank > 2,
too few samples, NaN or inf) raises ``ValueError`` eagerly and ``InvalidArgumentError`` inside a
``tf.function`` (shape errors that are visible at trace time raise ``ValueError`` there too).

The ``dcor`` package (numpy) is the reference; ``tests/test_distance.py`` checks agreement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "pairwise_distances",
    "pairwise_distances_broadcast",
    "double_centered",
    "u_centered",
    "distance_covariance_sqr",
    "distance_correlation_sqr",
    "distance_correlation",
    "u_distance_covariance_sqr",
    "u_distance_correlation_sqr",
    "partial_distance_covariance",
    "partial_distance_correlation",
    "distance_covariance_test",
    "partial_distance_covariance_test",
    "distance_covariance_sqr_blocked",
    "distance_correlation_sqr_blocked",
    "u_distance_correlation_sqr_blocked",
]

#: Most elements of the (permutations, n, n) tensor the permutation test holds at once.
_PERMUTATION_CHUNK_ELEMENTS = 2**23


# --------------------------------------------------------------------------- input checks


def _require(condition: Any, message: str) -> list[tf.Operation]:
    """Check ``condition``: raise ``ValueError`` eagerly, return an assert op in a graph."""
    if tf.executing_eagerly():
        if not bool(condition):
            raise ValueError(message)
        return []
    return [tf.debugging.Assert(condition, [message])]


def _to_tensor(func: str, name: str, value: Any) -> tf.Tensor:
    """Convert numpy/tf/array-like input to a tensor with a real (float, int or bool) dtype."""
    if isinstance(value, tf.Tensor | tf.Variable):
        tensor = tf.convert_to_tensor(value)
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"{func}: {name} must hold real numbers, got dtype {array.dtype}")
        tensor = tf.convert_to_tensor(array)
    dtype = tensor.dtype
    if not (dtype.is_floating or dtype.is_integer or dtype == tf.bool):
        raise ValueError(f"{func}: {name} must hold real numbers, got dtype {dtype.name}")
    return tensor


def _check_integer(func: str, name: str, value: Any, low: int) -> None:
    """Raise a ValueError unless ``value`` is an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{func}: {name} must be an integer >= {low}, got {value!r}")


def _check_seed(func: str, seed: Any) -> None:
    """A permutation seed is ``None`` or what ``np.random.RandomState`` takes: an integer in
    [0, 2**32 - 1] (not a bool, a float or text)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                             or not 0 <= seed <= 2**32 - 1):
        raise ValueError(f"{func}: seed must be None or an integer in [0, 2**32 - 1], got "
                         f"{seed!r}")


def _prepare(func: str, min_n: int, **arrays: Any) -> list[tf.Tensor]:
    """Validate samples and return them as (n, d) tensors of one compute dtype.

    The compute dtype is float64 if any input is float64, else float32. Rank 1 becomes (n, 1).
    Checks: rank 1 or 2, equal sample counts, ``n >= min_n``, all values finite.
    """
    tensors = {name: _to_tensor(func, name, value) for name, value in arrays.items()}
    dtype = tf.float64 if any(t.dtype == tf.float64 for t in tensors.values()) else tf.float32
    checks: list[tf.Operation] = []
    samples: dict[str, tf.Tensor] = {}
    for name, tensor in tensors.items():
        rank = tensor.shape.rank
        if rank not in (1, 2):
            raise ValueError(
                f"{func}: {name} must have shape (n,) or (n, d), got shape {tensor.shape} "
                f"(rank {rank})"
            )
        tensor = tf.cast(tensor, dtype)
        if rank == 1:
            tensor = tensor[:, None]
        checks += _require(
            tf.reduce_all(tf.math.is_finite(tensor)),
            f"{func}: {name} contains NaN or infinite values; all values must be finite",
        )
        samples[name] = tensor
    names = list(samples)
    ns = {name: samples[name].shape[0] for name in names}
    first = names[0]
    for name in names[1:]:
        if ns[first] is not None and ns[name] is not None:
            if ns[first] != ns[name]:
                raise ValueError(
                    f"{func}: {first} and {name} must have the same number of samples (rows), "
                    f"got {ns[first]} and {ns[name]}"
                )
        else:
            checks += _require(
                tf.equal(tf.shape(samples[first])[0], tf.shape(samples[name])[0]),
                f"{func}: {first} and {name} must have the same number of samples (rows)",
            )
    too_few = f"{func}: needs at least {min_n} samples (rows)"
    if ns[first] is not None:
        if ns[first] < min_n:
            raise ValueError(f"{too_few}, got n = {ns[first]}")
    else:
        checks += _require(tf.shape(samples[first])[0] >= min_n, too_few)
    if checks:
        with tf.control_dependencies(checks):
            return [tf.identity(samples[name]) for name in names]
    return [samples[name] for name in names]


def _prepare_matrix(func: str, a: Any, min_n: int) -> tf.Tensor:
    """Validate a square n x n matrix with ``n >= min_n`` and finite values."""
    matrix = _to_tensor(func, "a", a)
    if matrix.shape.rank != 2:
        raise ValueError(f"{func}: a must be an n x n matrix, got shape {matrix.shape}")
    matrix = tf.cast(matrix, tf.float64 if matrix.dtype == tf.float64 else tf.float32)
    rows, cols = matrix.shape
    if rows is not None and cols is not None:
        if rows != cols or rows < min_n:
            raise ValueError(
                f"{func}: a must be a square n x n matrix with n >= {min_n}, got {matrix.shape}"
            )
    checks = _require(
        tf.reduce_all(tf.math.is_finite(matrix)),
        f"{func}: a contains NaN or infinite values; all values must be finite",
    )
    if rows is None or cols is None:
        n = tf.shape(matrix)
        checks += _require(
            tf.logical_and(tf.equal(n[0], n[1]), n[0] >= min_n),
            f"{func}: a must be a square n x n matrix with n >= {min_n}",
        )
    if checks:
        with tf.control_dependencies(checks):
            return tf.identity(matrix)
    return matrix


# ------------------------------------------------------------------------ building blocks


def _safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0 instead of inf.

    The double ``tf.where`` keeps the zero entries out of ``tf.sqrt`` altogether, so neither the
    forward value nor the backward ``0 * inf`` can produce NaN.
    """
    positive = x > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, x, tf.ones_like(x))), tf.zeros_like(x))


def _ratio(numerator: tf.Tensor, norm_sqr_a: tf.Tensor, norm_sqr_b: tf.Tensor) -> tf.Tensor:
    """``numerator / sqrt(norm_sqr_a * norm_sqr_b)``, defined as 0 when the denominator is 0."""
    denominator = _safe_sqrt(norm_sqr_a) * _safe_sqrt(norm_sqr_b)
    positive = denominator > 0
    safe = tf.where(positive, denominator, tf.ones_like(denominator))
    return tf.where(positive, numerator / safe, tf.zeros_like(numerator))


def _centre_columns(x: tf.Tensor) -> tf.Tensor:
    """Translate ``x`` so its column means are 0 (distances do not change).

    The first row is subtracted before the mean so that constant input becomes exactly 0.
    Otherwise its identical rows would give ``d² = ||x||² + ||x||² - 2 x·x``, which is 0 only if
    the matmul rounds like the sum of squares (it need not, e.g. TF32 matmuls on GPUs), and a
    constant input would get a non-zero, noise-driven dCor².
    """
    x = x - x[:1]
    return x - tf.reduce_mean(x, axis=0, keepdims=True)


def _gram_distances(
    rows: tf.Tensor, rows_sqr: tf.Tensor, x: tf.Tensor, x_sqr: tf.Tensor, start: Any
) -> tf.Tensor:
    """Distances from ``rows`` (rows ``start..`` of the centred ``x``) to every row of ``x``.

    ``d_ij² = ||x_i||² + ||x_j||² - 2 x_i·x_j``, clamped at 0 (rounding can make it slightly
    negative), with the entries i == j set to exactly 0 before a square root whose gradient
    at 0 is finite.
    """
    d_sqr = rows_sqr[:, None] + x_sqr[None, :] - 2.0 * tf.matmul(rows, x, transpose_b=True)
    row_index = tf.range(tf.shape(rows)[0]) + start
    diagonal = row_index[:, None] == tf.range(tf.shape(x)[0])[None, :]
    d_sqr = tf.where(diagonal, tf.zeros_like(d_sqr), tf.maximum(d_sqr, 0.0))
    return _safe_sqrt(d_sqr)


def _unit_scale(x: tf.Tensor) -> tf.Tensor:
    """``x / 2^k``, with ``2^k`` the power of two nearest to ``max |x_ij - x_1j|``.

    For the scale-invariant statistics (the dCor² family): without it, float32 input far from
    unit scale gives squared distances that underflow to 0 (e.g. x ~ 1e-20, dCor² = 0) or
    overflow to inf (x ~ 1e20, dCor² = NaN). Dividing by a power of two is exact in floating
    point, so input of ordinary scale gives bit for bit the same values and gradients as without
    it. The factor is a constant for autodiff, which leaves the gradient exact: dCor² does not
    change along the scale direction. Constant input (spread 0) is left as it is.
    """
    spread = tf.stop_gradient(tf.reduce_max(tf.abs(x - x[:1])))
    safe = tf.where(spread > 0, spread, tf.ones_like(spread))
    exponent = tf.math.round(tf.math.log(safe) / math.log(2.0))
    return x * tf.pow(tf.constant(2.0, x.dtype), -exponent)


def _distances(x: tf.Tensor) -> tf.Tensor:
    """Distance matrix of validated (n, d) samples by the Gram identity of ``_gram_distances``."""
    x = _centre_columns(x)
    x_sqr = tf.reduce_sum(tf.square(x), axis=1)
    return _gram_distances(x, x_sqr, x, x_sqr, 0)


def _double_centre(a: tf.Tensor) -> tf.Tensor:
    row_means = tf.reduce_mean(a, axis=1, keepdims=True)
    col_means = tf.reduce_mean(a, axis=0, keepdims=True)
    return a - row_means - col_means + tf.reduce_mean(a)


def _u_centre(a: tf.Tensor) -> tf.Tensor:
    n = tf.cast(tf.shape(a)[0], a.dtype)
    row_sums = tf.reduce_sum(a, axis=1, keepdims=True)
    col_sums = tf.reduce_sum(a, axis=0, keepdims=True)
    centred = a - (row_sums + col_sums) / (n - 2) + tf.reduce_sum(a) / ((n - 1) * (n - 2))
    return tf.linalg.set_diag(centred, tf.zeros_like(tf.linalg.diag_part(centred)))


def _v_product(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``(1/n²) Σ_ij a_ij b_ij``."""
    return tf.reduce_mean(a * b)


def _u_product(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``Σ_{i≠j} a_ij b_ij / (n(n-3))`` for U-centred matrices (their diagonals are 0)."""
    n = tf.cast(tf.shape(a)[0], a.dtype)
    return tf.reduce_sum(a * b) / (n * (n - 3))


def _v_centred(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return _double_centre(_distances(x)), _double_centre(_distances(y))


def _v_correlation_sqr(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    a, b = _v_centred(_unit_scale(x), _unit_scale(y))
    return _ratio(_v_product(a, b), _v_product(a, a), _v_product(b, b))


def _u_centred(*samples: tf.Tensor) -> list[tf.Tensor]:
    return [_u_centre(_distances(s)) for s in samples]


# ---------------------------------------------------------------------------- public API


def pairwise_distances(x: Any) -> tf.Tensor:
    """Euclidean distance matrix ``a_ij = ||x_i - x_j||`` of samples ``x`` (n,) or (n, d).

    Computed from the Gram matrix, ``a_ij² = ||x_i||² + ||x_j||² - 2 x_i·x_j``, on ``x`` with
    its column means subtracted first (a translation, so the distances are unchanged, and the
    identity loses least precision on centred data). Rounding below 0 is clamped, the diagonal
    is exactly 0, and the square root has gradient 0 at 0, so duplicate rows and constant input
    have finite gradients. Cost: one n x d x n matmul; memory O(n²).
    """
    (x,) = _prepare("pairwise_distances", 1, x=x)
    return _distances(x)


def pairwise_distances_broadcast(x: Any) -> tf.Tensor:
    """Distance matrix by broadcasting, ``a_ij = sqrt(Σ_k (x_ik - x_jk)²)``.

    This is how the paper's code computes distances: it materialises the n x n x d tensor of
    differences, so it needs O(n²·d) memory and time. It is kept only as the baseline that the
    notebook and ``bench/bench_distance.py`` compare :func:`pairwise_distances` against; use that
    one in real code.
    """
    (x,) = _prepare("pairwise_distances_broadcast", 1, x=x)
    differences = x[:, None, :] - x[None, :, :]
    return _safe_sqrt(tf.reduce_sum(tf.square(differences), axis=-1))


def double_centered(a: Any) -> tf.Tensor:
    """Double-centre a square matrix: ``A_ij = a_ij - ā_.j - ā_i. + ā_..`` (bars are means).

    Every row and column of the result sums to 0. For a distance matrix this is the V-statistic
    centring of :func:`distance_covariance_sqr`.
    """
    return _double_centre(_prepare_matrix("double_centered", a, 1))


def u_centered(a: Any) -> tf.Tensor:
    """U-centre a square matrix (n >= 3): the bias-corrected centring of the U-statistics.

    ``Ã_ij = a_ij - a_i./(n-2) - a_.j/(n-2) + a_../((n-1)(n-2))`` for i != j and ``Ã_ii = 0``,
    where dots are sums over that index.
    """
    return _u_centre(_prepare_matrix("u_centered", a, 3))


def distance_covariance_sqr(x: Any, y: Any) -> tf.Tensor:
    """Squared distance covariance, V-statistic: ``dCov²(X, Y) = (1/n²) Σ_ij A_ij B_ij``.

    ``A`` and ``B`` are the double-centred distance matrices of ``x`` and ``y`` (n >= 2; the
    dimensions of ``x`` and ``y`` may differ). Non-negative, and 0 in the population exactly
    when X and Y are independent; the V-statistic is biased upwards at small n.
    """
    x, y = _prepare("distance_covariance_sqr", 2, x=x, y=y)
    a, b = _v_centred(x, y)
    return _v_product(a, b)


def distance_correlation_sqr(x: Any, y: Any) -> tf.Tensor:
    """Squared distance correlation, V-statistic, in [0, 1].

    ``dCor²(X, Y) = dCov²(X, Y) / sqrt(dCov²(X, X) dCov²(Y, Y))``, defined as 0 when the
    denominator is 0 (a constant input). This is the quantity diverge training minimises
    (the seed code's ``Distance_Correlation`` returns it, despite its name). Invariant to
    translation, rotation and global scaling of either input, also numerically: each input
    is rescaled by a power of two first, so float32 input of any scale (1e-30 or 1e30) works.
    """
    x, y = _prepare("distance_correlation_sqr", 2, x=x, y=y)
    return _v_correlation_sqr(x, y)


def distance_correlation(x: Any, y: Any) -> tf.Tensor:
    """Distance correlation ``dCor(X, Y) = sqrt(dCor²(X, Y))`` (V-statistic), in [0, 1]."""
    x, y = _prepare("distance_correlation", 2, x=x, y=y)
    return _safe_sqrt(tf.maximum(_v_correlation_sqr(x, y), 0.0))


def u_distance_covariance_sqr(x: Any, y: Any) -> tf.Tensor:
    """Unbiased estimator of dCov²: ``(Ã·B̃) = Σ_{i≠j} Ã_ij B̃_ij / (n(n-3))`` (n >= 4).

    ``Ã``, ``B̃`` are U-centred distance matrices. Being unbiased, it is negative about half the
    time when X and Y are independent.
    """
    x, y = _prepare("u_distance_covariance_sqr", 4, x=x, y=y)
    a, b = _u_centred(x, y)
    return _u_product(a, b)


def u_distance_correlation_sqr(x: Any, y: Any) -> tf.Tensor:
    """Bias-corrected squared distance correlation (n >= 4), in [-1, 1].

    ``dCor²_u(X, Y) = (Ã·B̃) / sqrt((Ã·Ã)(B̃·B̃))``, 0 when the denominator is 0. Unlike the
    V-statistic it is close to 0 for independent data at any n, and therefore can be negative.
    """
    x, y = _prepare("u_distance_correlation_sqr", 4, x=x, y=y)
    a, b = _u_centred(_unit_scale(x), _unit_scale(y))
    return _ratio(_u_product(a, b), _u_product(a, a), _u_product(b, b))


def _residuals(x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``P(X) = Ã - ((Ã·C̃)/(C̃·C̃)) C̃`` and ``P(Y)``; no projection when ``C̃·C̃ = 0``."""
    a, b, c = _u_centred(x, y, z)
    c_norm_sqr = _u_product(c, c)
    positive = c_norm_sqr > 0
    safe = tf.where(positive, c_norm_sqr, tf.ones_like(c_norm_sqr))

    def project(m: tf.Tensor) -> tf.Tensor:
        coefficient = tf.where(positive, _u_product(m, c) / safe, tf.zeros_like(c_norm_sqr))
        return m - coefficient * c

    return project(a), project(b)


def partial_distance_covariance(x: Any, y: Any, z: Any) -> tf.Tensor:
    """Partial distance covariance ``pdCov(X, Y; Z) = (P(X)·P(Y))`` (n >= 4).

    ``P(X) = Ã - ((Ã·C̃)/(C̃·C̃)) C̃`` is the residual of the U-centred distance matrix of X after
    projecting out that of Z (no projection when ``C̃·C̃ = 0``), and ``(·)`` is the U-product
    ``Σ_{i≠j} / (n(n-3))``.
    """
    x, y, z = _prepare("partial_distance_covariance", 4, x=x, y=y, z=z)
    px, py = _residuals(x, y, z)
    return _u_product(px, py)


def partial_distance_correlation(x: Any, y: Any, z: Any) -> tf.Tensor:
    """Partial distance correlation ``pdCor(X, Y; Z) = (P(X)·P(Y)) / (|P(X)| |P(Y)|)``, n >= 4.

    The dependence between X and Y that is left once Z is projected out (see
    :func:`partial_distance_covariance`); in [-1, 1], and 0 when a residual is 0 (X or Y fully
    explained by Z, or constant). If X is only *numerically* a function of Z (for example a
    rotated copy), the residual is rounding noise and so is the result.
    """
    x, y, z = _prepare("partial_distance_correlation", 4, x=x, y=y, z=z)
    px, py = _residuals(_unit_scale(x), _unit_scale(y), _unit_scale(z))
    return _ratio(_u_product(px, py), _u_product(px, px), _u_product(py, py))


def distance_covariance_test(
    x: Any, y: Any, num_resamples: int = 1000, seed: int | None = 0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Permutation test of independence of X and Y; returns ``(statistic, p_value)``.

    The statistic is ``n · dCov²(X, Y)`` (V-statistic), as in
    ``dcor.independence.distance_covariance_test``. Under independence every pairing of rows is
    equally likely, so it is recomputed for ``num_resamples`` random permutations π of Y's rows,
    ``n · (1/n²) Σ_ij A_ij B_π(i)π(j)``: the centred matrices are computed once and only the index
    order of B changes, in batches of permutations. The p-value is
    ``(1 + #{permuted >= observed}) / (num_resamples + 1)``, counting ties (to a relative
    100·eps, as ``scipy.stats.permutation_test`` does) as at least as extreme; it is never 0,
    and its smallest value is ``1 / (num_resamples + 1)``.

    Permutations are drawn like dcor draws them (``np.random.RandomState(seed).permutation(n)``
    per resample; dcor reorders X's matrix by π, which pairs the rows as reordering Y's by π⁻¹
    does), so for the same seed the p-values agree with dcor's except for exact ties, which dcor
    does not count. ``seed=None`` draws fresh randomness.
    """
    func = "distance_covariance_test"
    _check_integer(func, "num_resamples", num_resamples, low=1)  # 0 would give p = 1 silently
    _check_seed(func, seed)
    x, y = _prepare(func, 2, x=x, y=y)
    n = x.shape[0]
    if n is None:
        raise ValueError(f"{func}: the number of samples must be known when tracing")
    a, b = _v_centred(x, y)
    return _permutation_test(a, b, n * _v_product(a, b), float(n) / (n * n), num_resamples,
                             seed)


def partial_distance_covariance_test(
    x: Any, y: Any, z: Any, num_resamples: int = 1000, seed: int | None = 0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Permutation test of ``pdCov(X, Y; Z) = 0``; returns ``(statistic, p_value)`` (n >= 4).

    The statistic is ``n · (P(X)·P(Y))`` with the projections of
    :func:`partial_distance_covariance`, as in
    ``dcor.independence.partial_distance_covariance_test``: the projections are computed once
    and the rows and columns of one are permuted together (Székely & Rizzo 2014), so it tests
    whether the residual distance structures of X and Y, after each has its projection on Z's
    removed, agree (zero pdCor is not conditional independence in general). Permutations and
    the p-value are drawn and counted as in :func:`distance_covariance_test`.
    """
    func = "partial_distance_covariance_test"
    _check_integer(func, "num_resamples", num_resamples, low=1)
    _check_seed(func, seed)
    x, y, z = _prepare(func, 4, x=x, y=y, z=z)
    n = x.shape[0]
    if n is None:
        raise ValueError(f"{func}: the number of samples must be known when tracing")
    px, py = _residuals(x, y, z)
    # P(X) and P(Y) have zero diagonals, so the U-product is a plain sum over all entries
    return _permutation_test(px, py, n * _u_product(px, py), float(n) / (n * (n - 3)),
                             num_resamples, seed)


def _permutation_test(a: tf.Tensor, b: tf.Tensor, statistic: tf.Tensor, scale: float,
                      num_resamples: int, seed: int | None) -> tuple[tf.Tensor, tf.Tensor]:
    """``(statistic, p_value)`` where each resample is ``scale · Σ_ij a_ij b_π(i)π(j)``."""
    n = a.shape[0]
    rng = np.random.RandomState(seed)
    permutations = np.array(
        [np.argsort(rng.permutation(n)) for _ in range(num_resamples)], dtype=np.int32
    ).reshape(num_resamples, n)
    chunk = max(1, _PERMUTATION_CHUNK_ELEMENTS // (n * n))
    permuted = [tf.zeros([0], a.dtype)]
    for start in range(0, num_resamples, chunk):
        index = tf.constant(permutations[start : start + chunk])
        b_rows = tf.gather(b, index)  # (chunk, n, n): rows of B reordered
        b_perm = tf.gather(b_rows, index, axis=2, batch_dims=1)  # and its columns
        permuted.append(scale * tf.reduce_sum(a[None] * b_perm, axis=[1, 2]))
    permuted = tf.concat(permuted, axis=0)
    tolerance = 100 * np.finfo(a.dtype.as_numpy_dtype).eps * tf.abs(statistic)
    extreme = tf.reduce_sum(tf.cast(permuted >= statistic - tolerance, a.dtype))
    p_value = (extreme + 1) / (num_resamples + 1)
    return statistic, p_value


# ------------------------------------------------------------------- blocked, for large n


def _blocked_sums(func: str, x: Any, y: Any, block_size: int,
                  unbiased: bool = False,
                  unit_scale: bool = False) -> tuple[tf.Tensor, ...]:
    """``(A·B)``, ``(A·A)``, ``(B·B)`` without an n x n matrix in memory.

    Pass 1 computes the row sums of ``a`` and ``b`` block by block (``block_size`` rows
    against all n); pass 2 recomputes each block of distances, centres it with those sums and
    accumulates the three inner products. Double centring (V-statistic):
    ``A_ij = a_ij - ā_i - ā_j + ā`` and ``(A·B) = (1/n²) Σ A_ij B_ij``. With ``unbiased``,
    U-centring: ``Ã_ij = a_ij - a_i./(n-2) - a_.j/(n-2) + a_../((n-1)(n-2))``, ``Ã_ii = 0``
    and ``(Ã·B̃) = Σ_{i≠j} Ã_ij B̃_ij / (n(n-3))``. Memory O(block_size · n); time twice the
    dense form's distance computation. ``unit_scale`` rescales x and y first
    (``_unit_scale``), for dCor², which does not depend on their scale.
    """
    _check_integer(func, "block_size", block_size, low=1)
    x, y = _prepare(func, 4 if unbiased else 2, x=x, y=y)
    if unit_scale:
        x, y = _unit_scale(x), _unit_scale(y)
    n = x.shape[0]
    if n is None:
        raise ValueError(f"{func}: the number of samples must be known when tracing")
    centred = [_centre_columns(s) for s in (x, y)]
    squares = [tf.reduce_sum(tf.square(s), axis=1) for s in centred]

    def blocks() -> Any:
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            yield start, stop, [
                _gram_distances(s[start:stop], sq[start:stop], s, sq, start)
                for s, sq in zip(centred, squares, strict=True)
            ]

    row_sums = [[], []]
    for _, _, distances in blocks():
        for sums, d in zip(row_sums, distances, strict=True):
            sums.append(tf.reduce_sum(d, axis=1))
    row_sums = [tf.concat(sums, axis=0) for sums in row_sums]
    size = tf.cast(n, x.dtype)
    if unbiased:
        row_terms = [sums / (size - 2) for sums in row_sums]
        grand_terms = [tf.reduce_sum(sums) / ((size - 1) * (size - 2)) for sums in row_sums]
    else:
        row_terms = [sums / size for sums in row_sums]
        grand_terms = [tf.reduce_sum(sums) / (size * size) for sums in row_sums]
    ab = aa = bb = tf.zeros([], x.dtype)
    for start, stop, distances in blocks():
        a, b = (
            d - terms[start:stop, None] - terms[None, :] + grand
            for d, terms, grand in zip(distances, row_terms, grand_terms, strict=True)
        )
        if unbiased:  # the diagonal of a U-centred matrix is 0 by definition
            off_diagonal = 1 - tf.one_hot(tf.range(start, stop), n, dtype=x.dtype)
            a, b = a * off_diagonal, b * off_diagonal
        ab += tf.reduce_sum(a * b)
        aa += tf.reduce_sum(a * a)
        bb += tf.reduce_sum(b * b)
    scale = size * (size - 3) if unbiased else size * size
    return ab / scale, aa / scale, bb / scale


def distance_covariance_sqr_blocked(x: Any, y: Any, block_size: int = 2048) -> tf.Tensor:
    """:func:`distance_covariance_sqr`, exact, in O(block_size · n) memory.

    For large n, such as the 10,000 penultimate features of the CIFAR-10 test set, where the
    n x n matrices would not fit: the distances are computed ``block_size`` rows at a time, in
    two passes (row means, then the centred products; see ``_blocked_sums``). Differentiable,
    but autodiff keeps every block for the backward pass, so gradients cost O(n²) memory.
    """
    ab, _, _ = _blocked_sums("distance_covariance_sqr_blocked", x, y, block_size)
    return ab


def distance_correlation_sqr_blocked(x: Any, y: Any, block_size: int = 2048) -> tf.Tensor:
    """:func:`distance_correlation_sqr`, exact, in O(block_size · n) memory.

    ``dCor² = dCov²(X, Y) / sqrt(dCov²(X, X) dCov²(Y, Y))`` from the three blocked sums of
    ``_blocked_sums`` (0 when the denominator is 0). Use it for whole-test-set dCor².
    """
    ab, aa, bb = _blocked_sums("distance_correlation_sqr_blocked", x, y, block_size,
                               unit_scale=True)
    return _ratio(ab, aa, bb)


def u_distance_correlation_sqr_blocked(x: Any, y: Any, block_size: int = 2048) -> tf.Tensor:
    """:func:`u_distance_correlation_sqr`, exact, in O(block_size · n) memory (needs n > 3).

    The bias-corrected ``dCor²_u = (Ã·B̃) / sqrt((Ã·Ã)(B̃·B̃))`` from U-centred blocks (see
    ``_blocked_sums``); it can be negative. Use it beside the V-statistic for whole-test-set
    numbers: at a fixed n the V-statistic of independent features grows with their dimension,
    the U-statistic does not.
    """
    ab, aa, bb = _blocked_sums("u_distance_correlation_sqr_blocked", x, y, block_size,
                               unbiased=True, unit_scale=True)
    return _ratio(ab, aa, bb)

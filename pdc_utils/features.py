"""Penultimate features of trained networks, and their exact dCor² over a whole test set.

The training loss sees dCor² of one batch at a time; the number that says whether two
networks' features are independent is dCor² over the whole test set, computed exactly (not a
mean of batch values, which is biased upwards at small n) with the blocked forms of
:mod:`pdc_utils.distance`, which never hold an n x n matrix.

A low V-statistic dCor² is not yet independence: the V-statistic of *independent* features
grows with their effective dimension, so a penalty on it can be lowered by collapsing the
features onto a few directions. Every table therefore carries the bias-corrected U-statistic
and the geometry of the features: their effective dimension (participation ratio of the
covariance spectrum, ``(Σλ)² / Σλ²``) and the share of variance on the top direction.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pdc_utils.distance import (
    distance_correlation_sqr_blocked,
    u_distance_correlation_sqr_blocked,
)


def predict(network: keras.Model, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Logits, features, predictions and labels of ``network`` over a labelled dataset."""
    logits, features, labels = [], [], []
    for x, y in dataset:
        batch_logits, batch_features = network(x, training=False)
        logits.append(np.asarray(batch_logits, dtype=np.float32))
        features.append(np.asarray(batch_features, dtype=np.float32))
        labels.append(y.numpy())
    logits_array = np.concatenate(logits)
    return {
        "logits": logits_array,
        "features": np.concatenate(features),
        "predictions": logits_array.argmax(axis=1),
        "labels": np.concatenate(labels),
    }


def row_normalized(features: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (rows of zeros stay zero), as the training penalty does."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def effective_dimension(features: np.ndarray) -> tuple[float, float]:
    """``(participation ratio, top-PC fraction)`` of the rows' covariance spectrum λ.

    The participation ratio ``(Σλ)² / Σλ²`` is 1 when all variance lies on one direction and d
    when it is spread evenly over d; the top-PC fraction is ``λ_max / Σλ``. Zero variance gives
    ``(0, 0)``. ``features`` must be a non-empty matrix (samples by features) of finite
    numbers; anything else is a ``ValueError`` naming it.
    """
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"features must be a matrix of samples (rows) by features with at "
                         f"least one of each, got shape {values.shape}")
    bad = values.size - int(np.isfinite(values).sum())
    if bad:
        raise ValueError(f"features must hold finite numbers, got {bad} NaN or infinite values")
    centred = values - values.mean(axis=0, keepdims=True)
    spectrum = np.linalg.svd(centred, compute_uv=False) ** 2
    total = spectrum.sum()
    if total <= 0:
        return 0.0, 0.0
    return float(total**2 / np.sum(spectrum**2)), float(spectrum.max() / total)


def principal_components(features: np.ndarray, k: int = 2) -> np.ndarray:
    """The rows' coordinates on their first ``k`` principal directions (centred SVD)."""
    centred = np.asarray(features, dtype=np.float64)
    centred = centred - centred.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :k] * s[:k]


def feature_dcor_table(features: Mapping[str, np.ndarray], reference: str = "f1",
                       feature_norm: bool = True,
                       references: Mapping[str, list[str]] | None = None) -> pd.DataFrame:
    """dCor² of every network's features to ``reference``'s, over all rows, exactly.

    Columns ``model, reference, dcor_sqr, n, u_dcor_sqr, effective_dim, top_pc_fraction`` (the
    layout of ``results/feature_dcor.csv``): the V- and U-statistic dCor² of the pair and the
    geometry of the model's features (see :func:`effective_dimension`). ``references`` adds,
    for a model, rows against other networks too (e.g. the earlier nets of its chain). With
    ``feature_norm`` the rows are L2-normalised first, i.e. the representation that the
    diverge penalty acts on. The reference's own row is included: its dCor² is 1 by definition
    and serves as a sanity check.
    """
    if reference not in features:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(features)}")
    prepare = row_normalized if feature_norm else np.asarray
    prepared = {name: tf.constant(prepare(values), tf.float64)
                for name, values in features.items()}
    geometry = {name: effective_dimension(values.numpy()) for name, values in prepared.items()}
    rows = []
    for name, values in prepared.items():
        for other in [reference, *(references or {}).get(name, [])]:
            if other not in prepared:
                raise ValueError(f"reference {other!r} of {name} is not among the models")
            ref = prepared[other]
            if len(values) != len(ref):
                raise ValueError(f"{name} has {len(values)} rows but {other} has {len(ref)}")
            rows.append({
                "model": name, "reference": other,
                "dcor_sqr": float(distance_correlation_sqr_blocked(values, ref)),
                "n": len(values),
                "u_dcor_sqr": float(u_distance_correlation_sqr_blocked(values, ref)),
                "effective_dim": geometry[name][0], "top_pc_fraction": geometry[name][1]})
    return pd.DataFrame(rows, columns=["model", "reference", "dcor_sqr", "n", "u_dcor_sqr",
                                       "effective_dim", "top_pc_fraction"])

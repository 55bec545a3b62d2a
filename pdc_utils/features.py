"""Penultimate features of trained networks, and their exact dCor² over a whole test set.

The training loss sees dCor² of one batch at a time; the number that says whether two
networks' features are independent is dCor² over the whole test set, computed exactly (not a
mean of batch values, which is biased upwards at small n) with the blocked form of
:func:`pdc_utils.distance.distance_correlation_sqr_blocked`, which never holds an n x n matrix.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pdc_utils.distance import distance_correlation_sqr_blocked


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


def feature_dcor_table(features: Mapping[str, np.ndarray], reference: str = "f1",
                       feature_norm: bool = True) -> pd.DataFrame:
    """dCor² of every network's features to ``reference``'s, over all rows, exactly.

    Columns ``model, reference, dcor_sqr, n`` (the layout of ``results/feature_dcor.csv``).
    With ``feature_norm`` the rows are L2-normalised first, i.e. the representation that the
    diverge penalty acts on. The reference's own row is included: its dCor² is 1 by definition
    and serves as a sanity check.
    """
    if reference not in features:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(features)}")
    prepare = row_normalized if feature_norm else np.asarray
    ref = tf.constant(prepare(features[reference]), dtype=tf.float64)
    rows = []
    for name, values in features.items():
        if len(values) != len(ref):
            raise ValueError(f"{name} has {len(values)} rows but {reference} has {len(ref)}")
        value = distance_correlation_sqr_blocked(tf.constant(prepare(values), tf.float64), ref)
        rows.append({"model": name, "reference": reference, "dcor_sqr": float(value),
                     "n": len(values)})
    return pd.DataFrame(rows, columns=["model", "reference", "dcor_sqr", "n"])

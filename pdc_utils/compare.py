"""Comparing networks: features stage by stage, dCor² beside linear CKA, and partial dCor.

Two questions about two networks' representations (notebook 05):

1. *How similar are they?* dCor² between the feature spaces of any two layers (any dimensions)
   and, for comparison, linear CKA (Kornblith et al. 2019),
   ``CKA(X, Y) = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)`` on column-centred X and Y, which sees
   only linear relations.
2. *What does one know that another does not?* Partial dCor, ``pdCor(X, Y; Z)``: the dependence
   of X and Y left after Z is projected out, with a permutation test. CKA has no such form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pdc_utils.distance import (
    distance_correlation_sqr_blocked,
    partial_distance_correlation,
    partial_distance_covariance_test,
)

_STAGE_OUTPUT = re.compile(r"^stage(\d+)_block(\d+)_out$")


def stage_names(network: keras.Model) -> list[str]:
    """The layers whose outputs end each ResNet stage (``stage<k>_block<last>_out``)."""
    last: dict[int, tuple[int, str]] = {}
    for layer in network.layers:
        match = _STAGE_OUTPUT.match(layer.name)
        if match:
            stage, block = int(match[1]), int(match[2])
            if block >= last.get(stage, (0, ""))[0]:
                last[stage] = (block, layer.name)
    return [name for _, (_, name) in sorted(last.items())]


def stage_model(network: keras.Model) -> keras.Model:
    """A model mapping images to ``{"stage1": ..., "stageK": ..., "features": ...}``.

    Each stage output is global-average-pooled, so a stage is a vector per image (its channel
    count). ``features`` is the network's own penultimate output. For networks without named
    ResNet stages (MobileNetV3, EfficientNet) only ``features`` is there.
    """
    outputs = {f"stage{k + 1}": keras.layers.GlobalAveragePooling2D()(
        network.get_layer(name).output) for k, name in enumerate(stage_names(network))}
    outputs["features"] = network.outputs[1]
    return keras.Model(network.inputs, outputs, name=f"{network.name}_stages")


def stage_features(network: keras.Model, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Pooled stage outputs and penultimate features of ``network`` over a labelled dataset."""
    model = stage_model(network)
    parts: dict[str, list[np.ndarray]] = {}
    for x, _ in dataset:
        for name, value in model(x, training=False).items():
            parts.setdefault(name, []).append(np.asarray(value, dtype=np.float64))
    return {name: np.concatenate(values) for name, values in parts.items()}


def _samples(name: str, value: np.ndarray) -> np.ndarray:
    """``value`` as a float64 matrix of samples (rows) by features, checked: at least 2 rows
    and 1 feature, every entry finite (a NaN would otherwise make CKA 0, "no similarity")."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0 or len(array) < 2:
        raise ValueError(f"{name} must hold at least 2 samples (rows), got shape {array.shape}")
    array = array.reshape(len(array), -1)
    if array.shape[1] == 0:
        raise ValueError(f"{name} must hold at least 1 feature per sample, got shape "
                         f"{np.shape(value)}")
    bad = array.size - int(np.isfinite(array).sum())
    if bad:
        raise ValueError(f"{name} must hold finite numbers, got {bad} NaN or infinite values")
    return array


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two samples with paired rows: ``||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)``
    after centring the columns; 0 when either side is constant.

    ``x`` and ``y`` need the same number (at least 2) of rows and finite entries; a
    ``ValueError`` naming the argument says what is wrong otherwise.
    """
    x, y = _samples("x", x), _samples("y", y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}; x and y must hold the same "
                         f"samples (paired rows)")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(np.linalg.norm(y.T @ x) ** 2 / denominator) if denominator > 0 else 0.0


def layer_table(features_a: Mapping[str, np.ndarray], features_b: Mapping[str, np.ndarray],
                model_a: str, model_b: str) -> pd.DataFrame:
    """dCor² (exact V-statistic) and linear CKA between every layer of a and every layer of b.

    Columns ``model_a, layer_a, model_b, layer_b, dcor_sqr, cka, n`` (``layer_dcor.csv``).
    """
    rows = []
    for layer_a, x in features_a.items():
        for layer_b, y in features_b.items():
            if len(x) != len(y):
                raise ValueError(f"{model_a}/{layer_a} has {len(x)} rows but "
                                 f"{model_b}/{layer_b} has {len(y)}")
            rows.append({"model_a": model_a, "layer_a": layer_a, "model_b": model_b,
                         "layer_b": layer_b,
                         "dcor_sqr": float(distance_correlation_sqr_blocked(x, y)),
                         "cka": linear_cka(x, y), "n": len(x)})
    return pd.DataFrame(rows)


def partial_table(samples: Mapping[str, np.ndarray], questions: Sequence[tuple[str, str, str]],
                  num_resamples: int = 500, seed: int = 0) -> pd.DataFrame:
    """``pdCor(X, Y; Z)`` and its permutation-test p-value for each ``(x, y, given)`` question.

    Columns ``x, y, given, pdcor, p_value, n`` (``partial_dcor.csv``). A small p-value says the
    distance structures of X and Y still agree after each has its projection on Z's removed
    (not, in general, that X and Y are dependent given Z).
    """
    rows = []
    for x, y, given in questions:
        for name in (x, y, given):
            if name not in samples:
                raise ValueError(f"unknown sample {name!r}; known: {', '.join(samples)}")
        a, b, c = (np.asarray(samples[k], dtype=np.float64) for k in (x, y, given))
        _, p_value = partial_distance_covariance_test(a, b, c, num_resamples, seed)
        rows.append({"x": x, "y": y, "given": given,
                     "pdcor": float(partial_distance_correlation(a, b, c)),
                     "p_value": float(p_value), "n": len(a)})
    return pd.DataFrame(rows)

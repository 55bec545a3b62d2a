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
from typing import Any

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
    _check_features(features)
    features = np.asarray(features)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _check_features(features: Any) -> np.ndarray:
    """``features`` as a float64 matrix, refused (naming it) unless it is a non-empty matrix
    of finite real numbers."""
    raw = np.asarray(features)
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"features must hold real numbers, got an array of dtype {raw.dtype}")
    values = raw.astype(np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"features must be a matrix of samples (rows) by features with at "
                         f"least one of each, got shape {values.shape}")
    bad = values.size - int(np.isfinite(values).sum())
    if bad:
        raise ValueError(f"features must hold finite numbers, got {bad} NaN or infinite values")
    return values


def effective_dimension(features: np.ndarray) -> tuple[float, float]:
    """``(participation ratio, top-PC fraction)`` of the rows' covariance spectrum λ.

    The participation ratio ``(Σλ)² / Σλ²`` is 1 when all variance lies on one direction and d
    when it is spread evenly over d; the top-PC fraction is ``λ_max / Σλ``. Zero variance gives
    ``(0, 0)``. ``features`` must be a non-empty matrix (samples by features) of finite
    numbers; anything else is a ``ValueError`` naming it.
    """
    values = _check_features(features)
    centred = values - values.mean(axis=0, keepdims=True)
    spectrum = np.linalg.svd(centred, compute_uv=False) ** 2
    total = spectrum.sum()
    if total <= 0:
        return 0.0, 0.0
    return float(total**2 / np.sum(spectrum**2)), float(spectrum.max() / total)


def principal_components(features: np.ndarray, k: int = 2) -> np.ndarray:
    """The rows' coordinates on their first ``k`` principal directions (centred SVD).

    ``k`` is an integer from 1 to the number of features (there are no more directions);
    anything else is a ``ValueError`` naming it, as is a ``features`` that is not a finite
    matrix (see :func:`effective_dimension`).
    """
    _check_features(features)
    d = np.shape(features)[1]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= d:
        raise ValueError(f"k must be an integer from 1 to {d} (the number of features), got "
                         f"{k!r}")
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


# --------------------------------------------------------------------- the top direction
# What a low dCor² can hide. The diverge penalty is computed from distances between feature
# rows, and distances are dominated by the directions of largest variance. A network can
# therefore lower its dCor² to a reference by putting most of its variance on one direction
# that is unrelated to the reference, while the rest of its features still depends on it.
# The functions below measure that: how much variance the top principal direction carries,
# whether the images fall into two groups along it, whether it follows the class or the
# reference, and how dependent the rest of the features is on the reference.

#: Two-mode score from which a direction counts as split into two groups: η² = 0.9 is two
#: equal groups whose means lie 3 within-group standard deviations from their midpoint.
TWO_MODES = 0.9
#: The smaller group must hold at least this share of the points (a few outliers far out on
#: one side also give a high η², but they are not a second mode); also the share of a
#: class's images each group must hold for the class to count as "in both groups".
MIN_MODE_SHARE = 0.1


def two_mode_split(values: np.ndarray) -> tuple[float, float]:
    """``(η², threshold)`` of the best split of 1-D ``values`` into two groups by one cut.

    ``η² = 1 − (SS₁ + SS₂) / SS``: the share of the values' sum of squares ``SS`` (about
    their mean) that lies *between* the two groups, ``SS₁`` and ``SS₂`` being the sums of
    squares within the lower and the upper group. Every cut between two neighbouring sorted
    values is tried and the largest η² kept (k-means with k = 2 in one dimension, exactly;
    Otsu's threshold). The threshold is the midpoint of the cut.

    Reference values, for large samples: about 2/π ≈ 0.64 for a Gaussian, 0.75 for a
    uniform, 1 for exactly two distinct values; for two equal groups with means ``±m`` and
    standard deviation ``σ`` each, ``m² / (m² + σ²)``. Constant values give ``(0, value)``.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"two_mode_split needs at least two finite values, got {x.size} "
                         f"values ({int(np.sum(~np.isfinite(x)))} of them not finite)")
    x_centred = x - x.mean()
    total = float(np.sum(x_centred**2))
    if total <= 0.0:
        return 0.0, float(x[0])
    k = np.arange(1, x.size)  # the lower group is x[:k]
    low_sum = np.cumsum(x_centred)[:-1]
    low_sq = np.cumsum(x_centred**2)[:-1]
    high_sum, high_sq = x_centred.sum() - low_sum, total - low_sq
    within = (low_sq - low_sum**2 / k) + (high_sq - high_sum**2 / (x.size - k))
    within[x[1:] <= x[:-1]] = np.inf  # no cut between equal values
    best = int(np.argmin(within))
    return float(1.0 - within[best] / total), float((x[best] + x[best + 1]) / 2)


def correlation_ratio(values: np.ndarray, labels: np.ndarray) -> float:
    """η² of ``values`` on ``labels``: the share of the values' sum of squares that lies
    between the label groups' means (the R² of a one-way analysis of variance).

    1 when the label fixes the value, 0 when every group has the same mean. For values
    unrelated to K labels over n points, its mean over random labellings is (K − 1)/(n − 1),
    not 0: read it against that.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if x.shape != labels.shape:
        raise ValueError(f"values ({x.size}) and labels ({labels.size}) differ in length")
    centred = x - x.mean()
    total = float(np.sum(centred**2))
    if total <= 0.0:
        return 0.0
    between = sum(np.sum(labels == c) * np.mean(centred[labels == c]) ** 2
                  for c in np.unique(labels))
    return float(between / total)


def top_direction(features: np.ndarray, labels: np.ndarray, reference: np.ndarray,
                  feature_norm: bool = True) -> dict[str, object]:
    """What a network's top principal direction is: its share of the variance, whether it
    splits the images into two groups, whether it follows the class and the reference.

    With ``feature_norm`` the rows of ``features`` and ``reference`` are L2-normalised first
    (the representation the penalty acts on). With ``x̄`` the mean row and ``v`` the top
    principal direction of the centred features, each image's coordinate is
    ``t_i = (x_i − x̄)·v`` and the *rest* of its features ``r_i = x_i − x̄ − t_i v``.
    Returns (the sign of ``t`` is arbitrary, as every principal direction's):

    - ``share``: ``λ₁ / Σλ``, the top direction's share of the variance;
    - ``two_mode``, ``threshold``: :func:`two_mode_split` of ``t``; ``smaller_group``: the
      share of the images in the smaller of the two groups; ``two_groups``: whether
      ``two_mode ≥ TWO_MODES`` and ``smaller_group ≥ MIN_MODE_SHARE``;
    - ``class_eta``: :func:`correlation_ratio` of ``t`` on the labels, and ``chance_eta``,
      its mean for a direction unrelated to the classes, ``(K − 1)/(n − 1)``;
    - ``classes_in_both``: how many of the ``n_classes`` classes have at least
      ``MIN_MODE_SHARE`` of their images on each side of the threshold;
    - ``u_dcor_top``, ``u_dcor_rest``, ``u_dcor_all``: U-statistic dCor² with the reference
      of ``t``, of ``r`` and of the whole features (unbiased, so that the rest's higher
      dimension does not raise its value);
    - ``coordinate``: ``t`` itself, for a figure.
    """
    prepare = row_normalized if feature_norm else np.asarray
    x = np.asarray(prepare(features), dtype=np.float64)
    ref = np.asarray(prepare(reference), dtype=np.float64)
    labels = np.asarray(labels).ravel()
    if not len(x) == len(ref) == len(labels):
        raise ValueError(f"features ({len(x)}), reference ({len(ref)}) and labels "
                         f"({len(labels)}) must have one row per image each")
    centred = x - x.mean(axis=0, keepdims=True)
    _, spectrum, directions = np.linalg.svd(centred, full_matrices=False)
    if not np.sum(spectrum**2) > 0:
        raise ValueError("the features do not vary over the images: they have no top direction")
    t = centred @ directions[0]
    rest = centred - np.outer(t, directions[0])
    two_mode, threshold = two_mode_split(t)
    upper = t > threshold
    smaller = float(min(upper.mean(), 1.0 - upper.mean()))
    classes = np.unique(labels)
    in_both = sum(min(upper[labels == c].mean(), 1.0 - upper[labels == c].mean())
                  >= MIN_MODE_SHARE for c in classes)

    def u_dcor(a: np.ndarray) -> float:
        a = a.reshape(len(a), -1)
        return float(u_distance_correlation_sqr_blocked(tf.constant(a), tf.constant(ref)))

    return {
        "share": float(spectrum[0] ** 2 / np.sum(spectrum**2)),
        "two_mode": two_mode, "threshold": threshold, "smaller_group": smaller,
        "two_groups": bool(two_mode >= TWO_MODES and smaller >= MIN_MODE_SHARE),
        "class_eta": correlation_ratio(t, labels),
        "chance_eta": (len(classes) - 1) / (len(t) - 1),
        "classes_in_both": int(in_both), "n_classes": len(classes),
        "u_dcor_top": u_dcor(t), "u_dcor_rest": u_dcor(rest), "u_dcor_all": u_dcor(x),
        "coordinate": t,
    }


def _span(values: list[float], percent: bool = False) -> str:
    """``0.87`` or ``0.86–0.88`` (``87 %`` or ``86–88 %``): one value, or the range of many."""
    shown = sorted({f"{100 * v:.0f}" if percent else f"{v:.2f}" for v in values}, key=float)
    text = shown[0] if len(shown) == 1 else f"{shown[0]}–{shown[-1]}"
    return f"{text} %" if percent else text


def _in_how_many(count: int, total: int) -> str:
    """``in each of them`` / ``in it`` / ``in none of them`` / ``in 2 of them``."""
    if count == total:
        return "in it" if total == 1 else "in each of them"
    return "in none of them" if count == 0 else f"in {count} of them"


def top_direction_reading(directions: Mapping[str, Mapping[str, object]],
                          baselines: list[str], diverged: list[str],
                          reference: str = "f1") -> str:
    """What the diverged networks' top direction is, in words, from :func:`top_direction`'s
    results (``directions[name]``, each network's features against ``reference``'s).

    Five bullets, each true whatever the numbers are: the share of the variance on the top
    direction; whether the images fall into two groups along it (``two_groups``); how much
    of it the class explains, beside its chance level and the baselines'; its U dCor² with
    the reference; and the U dCor² of the rest of the features beside the whole's. Values of
    several networks are given as a range. The rest counts as *hiding* a dependence when its
    U dCor² is at least twice the whole's and at least 0.1 above it.
    """
    def values(names: list[str], key: str) -> list[float]:
        return [float(directions[n][key]) for n in names]

    def span(names: list[str], key: str, percent: bool = False) -> str:
        return _span(values(names, key), percent)

    n, ref = len(diverged), f"{reference}'s"
    split = [d for d in diverged if directions[d]["two_groups"]]
    groups = (f"the images fall into two separate groups {_in_how_many(len(split), n)} "
              if split else "the images do not fall into two separate groups ")
    groups += (f"(two-mode score η² {span(diverged, 'two_mode')}; {TWO_MODES:g} and above "
               f"counts as two groups, a Gaussian scores about 0.64)")
    if split:
        groups += f"; the smaller group holds {span(split, 'smaller_group', True)} of the images"
    eta = values(diverged, "class_eta")
    follows = ("hardly follows the class" if max(eta) < 0.1 else
               "follows the class" if min(eta) >= 0.5 else "follows the class in part")
    both = ""
    if split:
        counts = sorted({int(directions[d]["classes_in_both"]) for d in split})
        shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        both = (f"; {shown} of the {directions[split[0]]['n_classes']} classes have at least "
                f"{100 * MIN_MODE_SHARE:.0f} % of their images in each group")
    top = values(diverged, "u_dcor_top")
    with_ref = ("hardly follows" if max(top) < 0.1 else
                "follows" if min(top) >= 0.5 else "follows in part")
    rest, whole = values(diverged, "u_dcor_rest"), values(diverged, "u_dcor_all")
    hidden = sum(r >= 2 * w and r >= w + 0.1 for r, w in zip(rest, whole, strict=True))
    if hidden == n:
        verdict = (f"So the low dCor² of the whole does not mean independence: the dependence "
                   f"on {ref} features is still there, in directions of small variance, which "
                   f"add little to the distances between images and so little to the whole's "
                   f"dCor²")
    elif hidden == 0:
        verdict = (f"So the rest is not much more dependent on {ref} features than the whole: "
                   f"the whole's dCor² hides no dependent part here")
    else:
        verdict = (f"{_in_how_many(hidden, n).capitalize()} the rest is far more dependent on "
                   f"{ref} features than the whole, which the whole's dCor² hides")
    rest_share = _span([1 - v for v in values(diverged, "share")], percent=True)
    lines = [
        f"**This run** ({n} diverged network{'s' * (n > 1)}, {len(baselines)} "
        f"baseline{'s' * (len(baselines) > 1)}; dCor² is the U-statistic's throughout):",
        f"- **Variance.** The diverged network{'s put' if n > 1 else ' puts'} "
        f"{span(diverged, 'share', True)} of {'their' if n > 1 else 'its'} features' variance "
        f"on the top principal direction (the baselines: {span(baselines, 'share', True)}).",
        f"- **Two groups?** Along it {groups}.",
        f"- **Class.** The class explains {span(diverged, 'class_eta', True)} of the "
        f"direction's variance (a direction unrelated to the class: "
        f"{100 * float(directions[diverged[0]]['chance_eta']):.1f} % by chance; the baselines' top "
        f"direction: {span(baselines, 'class_eta', True)}), so it {follows}{both}.",
        f"- **{reference}.** The direction's dCor² with {ref} features is "
        f"{span(diverged, 'u_dcor_top')} "
        f"(the baselines' top direction: {span(baselines, 'u_dcor_top')}): it {with_ref} "
        f"{ref} features.",
        f"- **The rest.** The rest of the features, the other {rest_share} of the variance, "
        f"has dCor² {_span(rest)} with {ref} features, the whole features "
        f"{_span(whole)} (the baselines' whole: {span(baselines, 'u_dcor_all')}). {verdict}.",
    ]
    return "\n".join(lines)


def role_summary(table: pd.DataFrame, accuracy: Mapping[str, float],
                 roles: Mapping[str, list[str]], reference: str = "f1") -> pd.DataFrame:
    """Each role's mean (a column per role, e.g. ``baseline`` and ``diverged``) of the rows of
    :func:`feature_dcor_table` against ``reference``: V and U dCor², effective dimension,
    the top direction's share of the variance (%) and the networks' test ``accuracy`` (%,
    ``accuracy[name]``)."""
    rows = table[table["reference"] == reference].set_index("model")
    return pd.DataFrame({role: {
        f"V dCor² to {reference}": rows.loc[names, "dcor_sqr"].mean(),
        f"U dCor² to {reference}": rows.loc[names, "u_dcor_sqr"].mean(),
        "effective dimension": rows.loc[names, "effective_dim"].mean(),
        "top direction's share (%)": 100 * rows.loc[names, "top_pc_fraction"].mean(),
        "test accuracy (%)": float(np.mean([accuracy[n] for n in names]))}
        for role, names in roles.items()})


def role_summary_reading(summary: pd.DataFrame, reference: str = "f1") -> str:
    """:func:`role_summary`'s ``baseline`` and ``diverged`` columns in words: how far the V-
    and U-statistic fell, whether the U-statistic's fall rules out the V-statistic's bias as
    the cause (it fell by at least half as much), and whether the features kept their spread
    (the diverged networks' effective dimension at least half the baselines')."""
    b, d = summary["baseline"], summary["diverged"]
    v, u = (f"{kind} dCor² to {reference}" for kind in ("V", "U"))
    v_drop, u_drop = b[v] - d[v], b[u] - d[u]
    if v_drop < 0.05:
        fell = "the V-statistic barely moved"
    elif u_drop >= 0.5 * v_drop:
        fell = ("the U-statistic fell with it, so the drop is not the V-statistic's bias: over "
                f"the whole test set the features depend less on {reference}'s by this measure")
    else:
        fell = "the U-statistic fell much less than the V-statistic: part of V's drop is bias"
    ratio = d["effective dimension"] / b["effective dimension"]
    spread = ("the diverged features kept most of their spread" if ratio >= 0.5 else
              "the diverged features collapsed onto "
              + ("about one direction" if d["effective dimension"] < 2 else "fewer directions"))
    return (f"**This run**, baselines → diverged networks: V-statistic dCor² to {reference} "
            f"{b[v]:.3f} → {d[v]:.3f}, U-statistic {b[u]:.3f} → {d[u]:.3f}; {fell}. Effective "
            f"dimension {b['effective dimension']:.1f} → {d['effective dimension']:.1f}, the "
            f"top direction's share of the variance {b[summary.index[3]]:.0f} % → "
            f"{d[summary.index[3]]:.0f} %: {spread}. Test accuracy "
            f"{b['test accuracy (%)']:.1f} % → {d['test accuracy (%)']:.1f} %.")

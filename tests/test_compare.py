"""Comparing networks: stage features, linear CKA, the layer and partial tables."""

from __future__ import annotations

import dcor
import keras
import numpy as np
import pytest

from pdc_utils import compare, data, models
from pdc_utils import distance as D


def _kernel_cka(x, y):
    """CKA through centred Gram matrices: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)), K = XXᵀ."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_))


def test_linear_cka_equals_the_kernel_formula_and_its_invariances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = np.tanh(x[:, :3]) + 0.3 * rng.normal(size=(80, 3))
    assert compare.linear_cka(x, y) == pytest.approx(_kernel_cka(x, y), rel=1e-10)
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert compare.linear_cka(3 * x @ rotation + 1, y) == pytest.approx(compare.linear_cka(x, y))
    assert compare.linear_cka(x, x) == pytest.approx(1.0)
    assert compare.linear_cka(x, np.ones((80, 2))) == 0.0
    with pytest.raises(ValueError, match="80 rows but y has 5"):
        compare.linear_cka(x, y[:5])


def test_stage_features_of_a_resnet():
    info = data.dataset_info("digits")
    keras.utils.set_random_seed(0)
    net = models.build_network("resnet18", info, width=4)
    assert compare.stage_names(net) == [f"stage{k}_block2_out" for k in range(1, 5)]
    test = data.load_split("digits", "test", batch_size=32, limit=40)
    feats = compare.stage_features(net, test)
    assert list(feats) == ["stage1", "stage2", "stage3", "stage4", "features"]
    assert [v.shape for v in feats.values()] == [(40, 4), (40, 8), (40, 16), (40, 32), (40, 32)]
    np.testing.assert_allclose(feats["stage4"], feats["features"], rtol=1e-5, atol=1e-6)


def test_layer_and_partial_tables():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(60, 3))
    x = z + 0.5 * rng.normal(size=(60, 3))
    y = z[:, :2] ** 2 + 0.5 * rng.normal(size=(60, 2))
    layers = compare.layer_table({"a": x}, {"b": y, "c": z}, "m1", "m2")
    assert list(layers.columns) == ["model_a", "layer_a", "model_b", "layer_b", "dcor_sqr",
                                    "cka", "n"]
    assert layers.loc[0, "dcor_sqr"] == pytest.approx(dcor.distance_correlation_sqr(x, y),
                                                      rel=1e-6)
    partial = compare.partial_table({"x": x, "y": y, "z": z}, [("x", "y", "z")],
                                    num_resamples=99, seed=3)
    assert list(partial.columns) == ["x", "y", "given", "pdcor", "p_value", "n"]
    expected = dcor.independence.partial_distance_covariance_test(x, y, z, num_resamples=99,
                                                                  random_state=3)
    assert partial.loc[0, "p_value"] == pytest.approx(expected.pvalue)
    assert partial.loc[0, "pdcor"] == pytest.approx(dcor.partial_distance_correlation(x, y, z))
    with pytest.raises(ValueError, match="unknown sample 'w'"):
        compare.partial_table({"x": x}, [("x", "w", "x")])


@pytest.mark.parametrize("seed", [0, 7])
def test_partial_permutation_test_matches_dcor(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(30, 2))
    x, y = z + rng.normal(size=(30, 2)), z[:, :1] + rng.normal(size=(30, 1))
    statistic, p_value = D.partial_distance_covariance_test(x, y, z, 150, seed)
    expected = dcor.independence.partial_distance_covariance_test(x, y, z, num_resamples=150,
                                                                  random_state=seed)
    assert float(statistic) == pytest.approx(expected.statistic, rel=1e-9)
    assert float(p_value) == pytest.approx(expected.pvalue)
    with pytest.raises(ValueError):
        D.partial_distance_covariance_test(x, y, z, 0)

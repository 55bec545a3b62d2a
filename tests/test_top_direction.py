"""The measurements of a network's top feature direction (notebook 03, section 6) and the
sentences written from them."""

from __future__ import annotations

import dcor
import numpy as np
import pytest

from pdc_utils import features


def _brute_force_split(values):
    """Every cut of the sorted values tried by hand: (best η², its threshold)."""
    x = np.sort(values)
    total = np.sum((x - x.mean()) ** 2)
    best = (-1.0, None)
    for k in range(1, len(x)):
        if x[k] == x[k - 1]:
            continue
        low, high = x[:k], x[k:]
        within = np.sum((low - low.mean()) ** 2) + np.sum((high - high.mean()) ** 2)
        if 1 - within / total > best[0]:
            best = (1 - within / total, (x[k - 1] + x[k]) / 2)
    return best


def test_two_mode_split_is_the_best_cut():
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=40), rng.exponential(size=25),
                   np.round(rng.normal(size=30), 1)):  # ties
        score, threshold = features.two_mode_split(values)
        expected_score, expected_threshold = _brute_force_split(values)
        assert score == pytest.approx(expected_score, rel=1e-9)
        assert threshold == pytest.approx(expected_threshold)


def test_two_mode_split_reference_values():
    rng = np.random.default_rng(1)
    assert features.two_mode_split(np.array([2.0, 2.0, 5.0, 5.0, 5.0])) == pytest.approx(
        (1.0, 3.5))
    assert features.two_mode_split(np.full(4, 3.0)) == (0.0, 3.0)
    gaussian, _ = features.two_mode_split(rng.normal(size=200_000))
    assert gaussian == pytest.approx(2 / np.pi, abs=0.005)
    uniform, _ = features.two_mode_split(rng.uniform(size=200_000))
    assert uniform == pytest.approx(0.75, abs=0.005)
    m, sigma = 3.0, 1.0  # two equal groups at ±m: m² / (m² + σ²) = 0.9
    two = np.concatenate([rng.normal(-m, sigma, 100_000), rng.normal(m, sigma, 100_000)])
    assert features.two_mode_split(two)[0] == pytest.approx(0.9, abs=0.005)
    with pytest.raises(ValueError, match="at least two finite values"):
        features.two_mode_split(np.array([1.0, np.nan]))


def test_correlation_ratio_and_its_chance_level():
    labels = np.repeat(np.arange(4), 5)
    assert features.correlation_ratio(labels * 2.0 + 1, labels) == pytest.approx(1.0)
    assert features.correlation_ratio(np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 4), labels) == 0.0
    rng = np.random.default_rng(2)
    values = rng.normal(size=20)
    mean = np.mean([features.correlation_ratio(values, rng.permutation(labels))
                    for _ in range(4000)])
    assert mean == pytest.approx((4 - 1) / (20 - 1), rel=0.05)
    with pytest.raises(ValueError, match="differ in length"):
        features.correlation_ratio(values, labels[:5])


def _collapsed_and_spread(n=400, seed=3):
    """Labels; a reference network's features that follow the class; features that follow
    the reference (a baseline); and features that add, to a small copy of the reference's, a
    large coin flip independent of everything (what diverged networks did in our runs)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n // 10)
    centres = rng.normal(size=(10, 6))
    reference = centres[labels] + 0.3 * rng.normal(size=(n, 6))
    spread = reference @ rng.normal(size=(6, 6)) + 0.3 * rng.normal(size=(n, 6))
    coin = rng.choice([-1.0, 1.0], size=n) + 0.05 * rng.normal(size=n)
    collapsed = np.column_stack([8 * coin, 0.5 * spread])
    return labels, reference, spread, collapsed


def test_top_direction_of_a_coin_flip_on_top_of_a_dependent_rest():
    labels, reference, spread, collapsed = _collapsed_and_spread()
    top = features.top_direction(collapsed, labels, reference, feature_norm=False)
    assert top["share"] > 0.8 and top["two_groups"] and top["two_mode"] > 0.95
    assert 0.4 < top["smaller_group"] <= 0.5 and top["classes_in_both"] == 10
    assert top["class_eta"] < 3 * top["chance_eta"] and top["chance_eta"] == 9 / 399
    assert abs(top["u_dcor_top"]) < 0.02 and top["u_dcor_rest"] > 0.5
    assert top["u_dcor_all"] < 0.5 * top["u_dcor_rest"]
    assert top["u_dcor_all"] == pytest.approx(dcor.u_distance_correlation_sqr(
        collapsed, reference), rel=1e-6)
    rest = collapsed - collapsed.mean(0)
    rest = rest - np.outer(top["coordinate"], rest.T @ top["coordinate"]) / np.sum(
        top["coordinate"] ** 2)
    assert top["u_dcor_rest"] == pytest.approx(dcor.u_distance_correlation_sqr(
        rest, reference), rel=1e-6)
    baseline = features.top_direction(spread, labels, reference, feature_norm=False)
    assert not baseline["two_groups"] and baseline["class_eta"] > 0.5
    assert baseline["u_dcor_all"] > 0.5
    with pytest.raises(ValueError, match="one row per image"):
        features.top_direction(spread, labels[:-1], reference)
    with pytest.raises(ValueError, match="do not vary"):
        features.top_direction(np.ones((10, 3)), labels[:10], reference[:10], False)


def test_the_reading_follows_the_numbers():
    labels, reference, spread, collapsed = _collapsed_and_spread()
    tops = {name: features.top_direction(x, labels, reference, feature_norm=False)
            for name, x in (("b", spread), ("d", collapsed))}
    text = features.top_direction_reading(tops, ["b"], ["d"], reference="f1")
    assert text.startswith("**This run** (1 diverged network, 1 baseline;")
    assert "fall into two separate groups in it" in text
    assert "so it hardly follows the class; 10 of the 10 classes" in text
    assert "it hardly follows f1's features" in text
    assert "does not mean independence" in text
    assert f"{tops['d']['u_dcor_rest']:.2f} with f1's features" in text

    # a "diverged" network that did nothing of the kind: no groups, nothing hidden
    same = features.top_direction_reading({"b": tops["b"], "d": tops["b"]}, ["b"], ["d"])
    assert "do not fall into two separate groups" in same
    assert "so it follows the class" in same and "classes have" not in same
    assert "hides no dependent part" in same and "does not mean independence" not in same

    # two diverged networks, one of each: ranges and counts
    mixed = features.top_direction_reading({**tops, "d2": tops["b"]}, ["b"], ["d", "d2"])
    assert "The diverged networks put" in mixed and "two separate groups in 1 of them" in mixed
    assert "In 1 of them the rest is far more dependent" in mixed
    low, high = sorted(100 * tops[n]["share"] for n in ("b", "d"))
    assert f"{low:.0f}–{high:.0f} % of their features' variance" in mixed


def _table(rows):
    import pandas as pd

    return pd.DataFrame([{"model": m, "reference": "f1", "dcor_sqr": v, "n": 100,
                          "u_dcor_sqr": u, "effective_dim": e, "top_pc_fraction": t}
                         for m, v, u, e, t in rows])


def test_role_summary_means_and_its_reading():
    table = _table([("b0", 0.9, 0.88, 9.0, 0.2), ("b1", 0.8, 0.78, 7.0, 0.1),
                    ("d0", 0.1, 0.05, 1.2, 0.9), ("d1", 0.2, 0.15, 1.4, 0.8)])
    accuracy = {"b0": 97.0, "b1": 95.0, "d0": 96.0, "d1": 90.0}
    roles = {"baseline": ["b0", "b1"], "diverged": ["d0", "d1"]}
    summary = features.role_summary(table, accuracy, roles)
    assert summary.loc["V dCor² to f1", "baseline"] == pytest.approx(0.85)
    assert summary.loc["top direction's share (%)", "diverged"] == pytest.approx(85.0)
    assert summary.loc["test accuracy (%)", "diverged"] == pytest.approx(93.0)
    text = features.role_summary_reading(summary)
    assert "V-statistic dCor² to f1 0.850 → 0.150, U-statistic 0.830 → 0.100" in text
    assert "not the V-statistic's bias" in text and "about one direction" in text
    assert "15 % → 85 %" in text and "96.0 % → 93.0 %" in text

    # U hardly fell: bias; the spread kept; V barely moved
    biased = _table([("b0", 0.9, 0.5, 9.0, 0.2), ("d0", 0.3, 0.45, 8.0, 0.2)])
    text = features.role_summary_reading(features.role_summary(
        biased, {"b0": 1.0, "d0": 1.0}, {"baseline": ["b0"], "diverged": ["d0"]}))
    assert "part of V's drop is bias" in text and "kept most of their spread" in text
    still = _table([("b0", 0.9, 0.9, 9.0, 0.2), ("d0", 0.88, 0.9, 4.0, 0.4)])
    text = features.role_summary_reading(features.role_summary(
        still, {"b0": 1.0, "d0": 1.0}, {"baseline": ["b0"], "diverged": ["d0"]}))
    assert "V-statistic barely moved" in text and "collapsed onto fewer directions" in text


def test_role_histories_one_colour_per_role_and_a_short_legend():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from pdc_utils import plots

    epochs = pd.DataFrame({"epoch": [0, 1, 2], "accuracy": [0.5, 0.8, 0.9],
                           "val_accuracy": [0.4, 0.7, 0.85], "dcor_sqr": [0.6, 0.4, 0.3],
                           "val_dcor_sqr": [0.5, 0.4, 0.35]})
    histories = {n: epochs for n in ("f2_baseline", "f2_baseline_s1", "f2_diverge",
                                     "f2_diverge_s1")}
    histories["f2_baseline"] = epochs.drop(columns=["dcor_sqr", "val_dcor_sqr"])  # a net 0
    roles = {"baseline": ["f2_baseline", "f2_baseline_s1"],
             "diverged": ["f2_diverge", "f2_diverge_s1"]}
    fig = plots.role_histories(histories, roles, ("dcor_sqr", "accuracy"))
    left, right = fig.axes
    assert len(left.lines) == 6 and len(right.lines) == 8  # one per network and column
    assert {line.get_color() for line in right.lines} == {
        plots.model_color("f2_baseline"), plots.model_color("f2_diverge")}
    assert max(max(line.get_ydata()) for line in right.lines) == pytest.approx(90.0)  # in %
    assert right.get_ylabel() == "%" and left.get_legend() is None
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["baseline (2 networks)", "diverged (2 networks)", "training (batch mean)",
                     "validation"]
    plots.close(fig)

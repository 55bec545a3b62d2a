"""Multiple-comparison corrections and t summaries, against direct computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pdc_utils import evidence


def _holm_by_definition(p):
    """Holm from its definition: adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    for i, index in enumerate(order):
        adjusted[index] = max(min(1.0, (m - j) * p[order[j]]) for j in range(i + 1))
    return adjusted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_and_bh_match_their_definitions(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=12)
    np.testing.assert_allclose(evidence.holm(p), _holm_by_definition(p))
    np.testing.assert_allclose(evidence.benjamini_hochberg(p),
                               stats.false_discovery_control(p, method="bh"))


def test_corrections_of_a_worked_example_and_nan():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    np.testing.assert_allclose(evidence.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(evidence.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02, np.nan])
    assert np.isnan(evidence.holm([np.nan])).all()


def test_t_summary_is_the_one_sample_t_test():
    d = np.array([1.5, -0.5, 2.0, 3.0, 0.5])
    summary = evidence.t_summary(d)
    test = stats.ttest_1samp(d, 0.0)
    assert summary["p_value"] == pytest.approx(test.pvalue)
    low, high = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    assert (summary["low"], summary["high"]) == pytest.approx((low, high))
    assert np.isnan(evidence.t_summary(np.array([2.0]))["p_value"])
    assert evidence.t_summary(np.array([1.0, 1.0]))["p_value"] == 0.0


def test_holm_counts_split_kept_tests_by_sign_and_skip_clean_rows():
    table = pd.DataFrame({
        "setting": ["a"] * 4 + ["b"] * 2,
        "attack": ["clean", "fgm", "pgd", "pgd", "clean", "fgm"],
        "difference": [-1.0, 2.0, -3.0, 4.0, 0.0, 1.0],
        "p_holm": [np.nan, 0.01, 0.02, 0.2, np.nan, 0.5]})
    counts = evidence.holm_counts(table)
    assert counts.loc["a"].tolist() == [3, 1, 1]
    assert counts.loc["b"].tolist() == [1, 0, 0]

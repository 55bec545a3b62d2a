"""Notebook 05's worked use of pdCor: dependence only through z vanishes given z, a shared w
beyond z stays; our statistics agree with the reference package dcor."""

from __future__ import annotations

import dcor
import numpy as np
import pytest

from pdc_utils import common_cause


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(7)  # low-rank structure plus noise, like a network's features
    return rng.normal(size=(200, 4)) @ rng.normal(size=(4, 16)) + 0.3 * rng.normal(size=(200, 16))


def test_the_two_cases_read_as_the_lesson_says_and_agree_with_dcor(features):
    z, cases = common_cause.noisy_copies(features, seed=1)
    table = common_cause.pdcor_table(z, cases)
    only, shared = table.loc[common_cause.ONLY_Z], table.loc[common_cause.Z_AND_W]
    assert only["U dCor²(x, y)"] > 0.5 and shared["U dCor²(x, y)"] > 0.5
    assert abs(only["pdCor(x, y; z)"]) < 0.1
    assert shared["pdCor(x, y; z)"] > 0.5
    for case, (x, y) in cases.items():
        np.testing.assert_allclose(table.loc[case, "pdCor(x, y; z)"],
                                   dcor.partial_distance_correlation(x, y, z), rtol=1e-6)
        np.testing.assert_allclose(table.loc[case, "U dCor²(x, y)"],
                                   dcor.u_distance_correlation_sqr(x, y), rtol=1e-6)
    text = common_cause.reading(table)
    assert f"pdCor(x, y; z) = {only['pdCor(x, y; z)']:+.3f}" in text
    assert text.startswith("**This run.** *only through z*: bias-corrected dCor²(x, y) = ")


def test_bad_inputs_are_refused(features):
    with pytest.raises(ValueError, match=r"z must be an \(n, d\) array with n >= 4, got shape"):
        common_cause.noisy_copies(features[:3], seed=0)
    with pytest.raises(ValueError, match="noise must be positive, got 0"):
        common_cause.noisy_copies(features, seed=0, noise=0)

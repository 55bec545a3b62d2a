"""The generated readings of notebooks 01 and 05 say what their numbers show."""

from __future__ import annotations

import numpy as np
import pytest

from pdc_utils import readings


def test_monte_carlo_standard_error():
    assert readings.monte_carlo_se(0.05, 200) == pytest.approx(np.sqrt(0.05 * 0.95 / 200))
    with pytest.raises(ValueError, match="permutations must be at least 1"):
        readings.monte_carlo_se(0.5, 0)


def test_permutation_reading_says_the_side_and_the_size_of_the_difference():
    text = readings.permutation_reading({"weak": (0.060, 0.015), "none": (0.5, 0.46)}, 200)
    assert "*weak*: p = 0.060 by hand and 0.015 from the library, on either side of 0.05" in text
    assert "*none*: p = 0.500 by hand and 0.460 from the library, on the same side of 0.05" in text
    se = np.sqrt(0.0375 * 0.9625 / 200)
    assert f"standard error of about {se:.3f}" in text
    assert f"differ by 0.045, {0.045 / (np.sqrt(2) * se):.1f} times" in text


@pytest.mark.parametrize(("broadcast", "trend", "faster"), [
    ({64: 0.002, 128: 0.01}, "the factor grew with every larger n",
     "faster at every size where both ran"),
    ({64: 0.004, 128: 0.002}, "the factor did not grow with n here", "not faster at every size"),
])
def test_speedup_reading_says_only_what_was_measured(broadcast, trend, faster):
    text = readings.speedup_reading({"gram": {64: 0.001, 128: 0.002}, "broadcast": broadcast},
                                    [64, 128], 32)
    assert "(d = 32 fixed)" in text and trend in text and f"Gram form was {faster};" in text
    assert "2.0 times the Gram form's time at n = 64" in text or "4.0 times" in text
    skipped = readings.speedup_reading({"gram": {64: 0.001}, "broadcast": {}}, [64], 32)
    assert "skipped at every n" in skipped


def test_bias_by_n_reading_reads_the_ends_of_the_table():
    import pandas as pd

    by_n = pd.DataFrame({"n": [25, 100, 360], "V dCor²": [0.6, 0.4, 0.3],
                         "U dCor²": [0.1, 0.15, 0.2]})
    text = readings.bias_by_n_reading(by_n, "f2_diverge")
    assert "from n = 25 to 360, the V-statistic went from 0.600 to 0.300" in text
    assert "V − U was +0.500 at the smallest n and +0.100 at the largest, narrower" in text
    one = readings.bias_by_n_reading(by_n.iloc[:1], "f2_diverge")
    assert "One n only (25)" in one and "no trend" in one

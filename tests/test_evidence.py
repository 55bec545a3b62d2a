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
    assert np.isnan(evidence.t_summary(np.array([1.0, 1.0, 1.0]))["p_value"])


def test_holm_counts_split_kept_tests_by_sign_and_skip_clean_rows():
    table = pd.DataFrame({
        "setting": ["a"] * 4 + ["b"] * 2,
        "attack": ["clean", "fgm", "pgd", "pgd", "clean", "fgm"],
        "difference": [-1.0, 2.0, -3.0, 4.0, 0.0, 1.0],
        "p_holm": [np.nan, 0.01, 0.02, 0.2, np.nan, 0.5]})
    counts = evidence.holm_counts(table)
    assert counts.loc["a"].tolist() == [3, 1, 1]
    assert counts.loc["b"].tolist() == [1, 0, 0]


# --- power and equivalence, against statsmodels (a dev-only oracle) and simulation ------------

@pytest.mark.parametrize(("effect", "sd", "n", "alpha"),
                         [(5.0, 6.96, 8, 0.05), (5.0, 6.96, 31, 0.05 / 12), (1.0, 2.0, 3, 0.1),
                          (-3.0, 4.0, 20, 0.01)])
def test_t_test_power_is_statsmodels_power(effect, sd, n, alpha):
    from statsmodels.stats.power import TTestPower

    expected = TTestPower().power(effect_size=effect / sd, nobs=n, alpha=alpha,
                                  alternative="two-sided")
    assert evidence.t_test_power(effect, sd, n, alpha) == pytest.approx(expected, rel=1e-6)


def test_pairs_needed_is_statsmodels_solve_power_rounded_up():
    from statsmodels.stats.power import TTestPower

    for effect, sd, alpha in [(5.0, 6.96, 0.05 / 12), (5.0, 6.96, 0.05), (2.0, 1.5, 0.05)]:
        exact = TTestPower().solve_power(effect_size=effect / sd, alpha=alpha, power=0.8)
        n = evidence.pairs_needed(lambda k, e=effect, s=sd, a=alpha:
                                  evidence.t_test_power(e, s, k, a))
        assert n == int(np.ceil(exact))


@pytest.mark.parametrize("seed", [0, 1])
def test_tost_is_statsmodels_ttost_mean(seed):
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.random.default_rng(seed).normal(1.0, 3.0, size=12)
    result = evidence.tost(d, margin=4.0)
    p, (_, p_loss, _), (_, p_gain, _) = DescrStatsW(d).ttost_mean(-4.0, 4.0)
    assert result["p_tost"] == pytest.approx(p)
    assert result["p_loss"] == pytest.approx(p_loss)
    assert result["p_gain"] == pytest.approx(p_gain)


def test_tost_power_matches_a_simulation_of_the_test():
    from statsmodels.stats.weightstats import DescrStatsW

    rng = np.random.default_rng(7)
    margin, sd, n, alpha = 5.0, 6.96, 20, 0.05
    for effect in (0.0, 2.0):
        draws = rng.normal(effect, sd, size=(4000, n))
        rejected = np.mean([DescrStatsW(d).ttost_mean(-margin, margin)[0] < alpha
                            for d in draws])
        exact = evidence.tost_power(margin, sd, n, alpha, effect=effect)
        assert exact == pytest.approx(rejected, abs=0.025)  # 4000 draws: sd of rate < 0.008


def test_no_p_value_from_two_pairs_or_rounding_noise():
    assert np.isnan(evidence.t_summary(np.array([1.0, 2.0]))["p_value"])
    noise = np.array([2.5, 2.5 + 1e-15, 2.5 - 1e-15])
    summary = evidence.t_summary(noise)
    assert np.isnan(summary["p_value"]) and np.isnan(summary["low"])
    assert "float rounding" in evidence.no_test_reason(noise)
    assert "3" in evidence.no_test_reason([1.0, 2.0])
    assert np.isnan(evidence.tost(noise, 5.0)["p_tost"])


@pytest.mark.parametrize("call", [
    lambda: evidence.holm([0.2, 1.5]), lambda: evidence.benjamini_hochberg([-0.1]),
    lambda: evidence.t_summary(np.array([1.0, 2.0, 3.0]), level=2),
    lambda: evidence.tost([1.0, 2.0, 3.0], margin=-1), lambda: evidence.t_test_power(1, 0, 5),
    lambda: evidence.tost_power(5, 1, 1), lambda: evidence.pairs_needed(lambda n: 1, 1.5)])
def test_bad_inputs_are_refused_with_a_message(call):
    with pytest.raises(ValueError, match="must|needs"):
        call()


def test_largest_difference_reading_reconciles_a_large_mean_with_no_finding():
    gap = pd.DataFrame({
        "attack": ["clean", "pgd", "pgd"], "eps": [0.0, 0.1, 0.2],
        "attackers": ["none", "f1", "f1"], "difference": [-0.5, 1.0, 12.0],
        "low": [-1.0, -2.0, -4.6], "high": [0.0, 4.0, 28.6], "sd": [0.2, 1.0, 6.7],
        "seeds_ahead": [0, 2, 3], "n_seeds": [3, 3, 3], "p_value": [np.nan, 0.3, 0.09],
        "p_holm": [np.nan, 0.3, 0.18]})
    text = evidence.largest_difference_reading(gap)
    assert "PGD at ε = 0.2 from f1: +12.0 points, with 3 of 3 pairs ahead" in text
    assert "± 4.30 · sd/√3" in text and "includes 0" in text
    assert "0.180, above 0.05" in text and "2 · 0.5^3 = 0.25" in text
    two = gap.assign(n_seeds=2, p_value=np.nan, p_holm=np.nan, seeds_ahead=2)
    reading = evidence.largest_difference_reading(two)
    assert "no test here (a test needs at least 3 pairs)" in reading


def _gap(n_seeds: int, p_values: list[float]) -> pd.DataFrame:
    """A seed_differences table: clean, then FGM at two ε from f1, with these p-values."""
    rows = [("clean", 0.0, "none"), ("fgm", 0.1, "f1"), ("fgm", 0.2, "f1")]
    gap = pd.DataFrame(rows, columns=["attack", "eps", "attackers"])
    gap["difference"], gap["low"], gap["high"] = [0.5, 2.0, -1.0], [-1.0, 1.0, -2.0], \
        [2.0, 3.0, 0.0]
    gap["n_seeds"], gap["n_attackers"] = n_seeds, 1
    gap["p_value"] = [np.nan, *p_values]
    attacked = gap["attack"] != "clean"
    gap["p_holm"] = np.nan
    p = gap.loc[attacked, "p_value"]
    gap.loc[attacked & p.notna(), "p_holm"] = evidence.holm(p.dropna().to_numpy())
    return gap


def _verdict(gap: pd.DataFrame) -> str:
    return evidence.verdict_text(gap, run_name="r", dataset="digits", design="reference",
                                 penalty="v", alpha=1.0, protocol="pixel")


def test_a_verdict_of_two_pairs_makes_no_claim_and_says_why():
    text = _verdict(_gap(2, [np.nan, np.nan]))
    assert "no p-value and no claim either way: 2 seed pairs (a test needs at least 3)" in text
    assert "comparisons" not in text and "significant" not in text


def test_a_verdict_names_the_comparisons_left_untested_for_rounding():
    gap = _gap(4, [0.001, np.nan])
    gap.loc[0, ["low", "high"]] = np.nan  # identical clean differences: no interval
    text = _verdict(gap)
    assert "1 of them get no test" in text and "over the 1 comparisons" in text
    assert "On clean images: +0.5. " in text and "nan" not in text


def test_a_verdict_that_finds_nothing_does_not_say_there_is_nothing():
    text = _verdict(_gap(4, [0.3, 0.6]))
    assert "no evidence of an effect either way, which is not evidence that there is none" in (
        text)


def test_seed_differences_names_a_model_the_table_does_not_have():
    rows = [("f1", "clean", 0.0, model, 1) for model in ("f2_baseline", "f2_diverge")]
    table = pd.DataFrame(rows, columns=["attacker", "attack", "eps", "model", "correct"])
    with pytest.raises(ValueError, match=r"not in it: \['f2_diverge_s1'\] \(its models: "
                                         r"\['f2_baseline', 'f2_diverge'\]\)"):
        evidence.seed_differences(table, [("f2_baseline", "f2_diverge_s1")], ["f1"])
    with pytest.raises(ValueError, match="no pairs given"):
        evidence.seed_differences(table, [], ["f1"])

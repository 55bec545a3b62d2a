"""Exercise checks that name a common mistake, explain a right choice, and add up to a score."""

from __future__ import annotations

import numpy as np
import pytest

from pdc_utils import exercises
from pdc_utils.exercises import EXERCISES, check, score
from pdc_utils.features import row_normalized


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch):
    """Each test starts as a fresh kernel: no exercise checked yet."""
    monkeypatch.setattr(exercises, "_LATEST", {})


def said(capsys, *args) -> str:
    check(*args)
    return capsys.readouterr().out


def test_a_dcor_sqr_exercise_names_each_mistake(capsys):
    x = np.linspace(-1, 1, 50)
    v = exercises._dcor(x, x**2)
    u = exercises._u_dcor(x, x**2)
    assert abs(u - v) > 0.01 and round(v, 3) != round(v, 4)  # the mistakes are told apart
    for answer, told in [
        (np.sqrt(v), "the square root of the expected value: dCor where dCor² is asked"),
        (v**2, "the square of the expected value"),
        (u, "the U-statistic dCor² (u_distance_correlation_sqr); this exercise asks for the "
            "V-statistic"),
        (round(v, 3), "matches to 3 decimals: use the unrounded value (the variable, not the "
                      "printed number)"),
        (round(v, 2), "matches to 2 decimals"),
        (100 * v, "100 times the expected value (a percentage, where a fraction is asked)"),
        (float("nan"), "not a finite number"),
    ]:
        out = said(capsys, "01.dcor", answer, x)
        assert out.startswith("01.dcor: not yet - your answer") and told in out, (answer, out)
        assert "Hint" not in out
    assert said(capsys, "01.dcor", 0.5, x) == (
        "01.dcor: not yet. Hint: D.distance_correlation_sqr takes 1-D arrays too\n")
    assert said(capsys, "01.dcor", v, x) == "01.dcor: correct.\n"


def test_a_percentage_exercise_names_a_fraction_and_a_rounded_percentage(capsys):
    outputs = {"f1": {"predictions": np.array([1, 2, 3, 4, 5, 0, 0]),
                      "labels": np.array([1, 2, 3, 4, 5, 6, 6])}}  # 5 of 7: 71.428...%
    out = said(capsys, "02.accuracy", 5 / 7, outputs)
    assert "the expected value divided by 100 (a fraction, where a percentage is asked)" in out
    out = said(capsys, "02.accuracy", 71.4, outputs)
    assert "matches to 1 decimal: use the unrounded value" in out
    assert "correct" in said(capsys, "02.accuracy", 500 / 7, outputs)


def test_feature_exercises_name_the_wrong_estimator_and_the_wrong_features(capsys):
    rng = np.random.default_rng(3)
    f1 = rng.normal(size=(40, 6))
    f2 = f1[:, :4] ** 2 + rng.normal(size=(40, 4))
    # 03.u_dcor pairs f2_diverge with its baseline, 02.raw_dcor f2_baseline with f1
    outputs = {"f1": {"features": f1}, "f2_diverge": {"features": f2},
               "f2_baseline": {"features": f1}}
    normed = row_normalized(f2), row_normalized(f1)

    out = said(capsys, "03.u_dcor", exercises._dcor(*normed), outputs)
    assert "the V-statistic dCor² (distance_correlation_sqr); this exercise asks for the " \
           "U-statistic" in out
    out = said(capsys, "03.u_dcor", exercises._u_dcor(f2, f1), outputs)
    assert "of the features as they are; row-normalise both first" in out
    assert "correct" in said(capsys, "03.u_dcor", exercises._u_dcor(*normed), outputs)

    outputs["f2_baseline"] = {"features": f2}
    out = said(capsys, "02.raw_dcor", exercises._dcor(*normed), outputs)
    assert "dCor² of the row-normalised features (the table's)" in out


def test_cka_without_centring_is_named(capsys):
    rng = np.random.default_rng(4)
    feats = {"f1": rng.normal(2.0, 1.0, size=(30, 5)), "div": rng.normal(1.0, 1.0, size=(30, 3))}
    x, y = feats["f1"], feats["div"]
    uncentred = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert "CKA without centring" in said(capsys, "05.cka", uncentred, feats, "div")


def test_a_mistake_value_equal_to_the_expected_one_is_not_told():
    """pdCor(X, Y; X) is 0: 100 times it, its square, ... are 0 too, so 0.5 is just wrong."""
    exercise = EXERCISES["01.pdcor_self"]
    assert exercises._mistake(exercise, np.asarray(0.5), np.asarray(0.0), ()) is None
    assert exercises._mistake(exercise, np.asarray(0.0), np.asarray(0.0), ()) is None


def test_every_choice_explains_a_right_answer_only(capsys):
    choices = [e for e, ex in EXERCISES.items() if ex.kind == "choice"]
    assert choices and all(EXERCISES[e].explanation for e in choices)
    assert not [e for e, ex in EXERCISES.items() if ex.kind != "choice" and ex.explanation]
    out = said(capsys, "06.more_settings", "b")
    assert out == f"06.more_settings: correct. Why: {EXERCISES['06.more_settings'].explanation}\n"
    assert all("\n" not in EXERCISES[e].explanation for e in choices)  # one line per verdict
    out = said(capsys, "06.more_settings", "d")
    assert out.startswith("06.more_settings: not yet. Hint:") and "Why" not in out


def test_score_counts_each_exercises_latest_outcome(capsys):
    check("01.bias", "a")
    check("01.bias", "b")  # the latest outcome counts
    check("01.smallest_p", 0.5)
    check("01.pearson", None)
    check("01.pdcor_self", "r")
    check("02.why_dependent", "b")  # another notebook's exercise does not count for 01
    capsys.readouterr()
    score("01")
    assert capsys.readouterr().out == (
        "notebook 01: 1 of 8 exercises correct\n"
        "  not yet: 01.smallest_p\n"
        "  not attempted: 01.pearson\n"
        "  invalid: 01.pdcor_self\n"
        "  not checked: 01.dcor, 01.scaling, 01.double_centring, 01.u_centring\n")
    for spelling in (1, "1", "01_distance_correlation"):
        score(spelling)
        assert capsys.readouterr().out.startswith("notebook 01: 1 of 8 exercises correct\n")
    score("02")
    assert capsys.readouterr().out.startswith("notebook 02: 1 of 5 exercises correct\n")


def test_score_of_a_notebook_without_exercises_is_an_error():
    with pytest.raises(ValueError, match="notebook '09' has no exercises; notebooks with "
                                         "exercises: 01, 02, 03, 04, 05"):
        score("09")


def test_halfwidth_names_the_normal_quantile_and_the_full_width(capsys):
    import pandas as pd
    from scipy import stats

    gap = pd.DataFrame({"attack": ["clean", "pgd"], "eps": [0.0, 0.2],
                        "attackers": ["none", "f1"], "sd": [0.5, 7.0], "n_seeds": [3, 3]})
    right = stats.t.ppf(0.975, 33) * 7.0 / np.sqrt(34)
    assert said(capsys, "04.halfwidth", right, gap, ["fgm", "pgd"], [0.05, 0.2]).endswith(
        "correct.\n")
    assert "1.96" in said(capsys, "04.halfwidth", 1.959964 * 7 / np.sqrt(34), gap,
                          ["fgm", "pgd"], [0.05, 0.2])
    assert "whole width" in said(capsys, "04.halfwidth", 2 * right, gap, ["fgm", "pgd"],
                                 [0.05, 0.2])
    assert "this run's own" in said(capsys, "04.halfwidth",
                                    stats.t.ppf(0.975, 2) * 7 / np.sqrt(3), gap,
                                    ["fgm", "pgd"], [0.05, 0.2])

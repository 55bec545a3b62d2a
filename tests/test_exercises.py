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
    check("01.permutations", 999)
    check("01.permutations", 1000)  # the latest outcome counts
    check("01.bias_128d", 0.5, np.full(20, 0.88))
    check("01.pearson", None, np.zeros(3))
    check("01.pdcor_self", "r")
    check("02.why_dependent", "b")  # another notebook's exercise does not count for 01
    capsys.readouterr()
    score("01")
    assert capsys.readouterr().out == (
        "notebook 01: 1 of 8 exercises correct\n"
        "  not yet: 01.bias_128d\n"
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


def test_a_name_answer_is_tolerant_of_case_and_surrounding_spaces(capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 80)
    onehot = np.eye(4)[labels]
    outputs = {"f1": {"logits": 5 * onehot + 0.1 * rng.normal(size=(80, 4))},
               "div": {"logits": rng.normal(size=(80, 4))}}
    for spelling in ("F1", " f1 ", "f1\n"):
        assert said(capsys, "05.logit_labels", spelling, outputs, onehot, "div").endswith(
            "correct.\n"), spelling
    assert "not yet" in said(capsys, "05.logit_labels", " DIV", outputs, onehot, "div")


def test_a_sign_flip_is_named(capsys):
    import pandas as pd

    table = pd.DataFrame({"method": ["source", "baseline", "diverge"],
                          "pgd_0.20": [2.0, 40.0, 45.0]})
    args = (table, ["fgm", "pgd"], [0.05, 0.2])
    out = said(capsys, "04.transfer_gap", -38.0, *args)
    assert "opposite sign: subtract the other way round" in out and "38" not in out
    assert said(capsys, "04.transfer_gap", 38.0, *args).endswith("correct.\n")


def test_the_bh_count_names_the_uncorrected_and_the_holm_count(capsys):
    import pandas as pd

    from pdc_utils.evidence import benjamini_hochberg, holm

    p = np.array([0.001, 0.008, 0.012, 0.02, 0.045, 0.049, 0.3])
    differences = pd.DataFrame({"attack": ["clean"] + ["pgd"] * len(p),
                                "p_value": np.r_[0.5, p]})
    counts = [(benjamini_hochberg(p) < 0.05).sum(), (p < 0.05).sum(), (holm(p) < 0.05).sum()]
    assert len(set(counts)) == 3, counts  # the mistakes are told apart
    right, raw, by_holm = counts
    assert said(capsys, "06.bh_count", right, differences, 0.05).endswith("correct.\n")
    assert "count without any correction" in said(capsys, "06.bh_count", raw, differences, 0.05)
    assert "Holm's adjusted values" in said(capsys, "06.bh_count", by_holm, differences, 0.05)


def test_a_rounded_percentage_for_a_probability_is_named(capsys):
    expected = 1 - 0.95**12  # 0.4596...
    for answer in (46, 46.0, 45.96, 100 * expected):
        out = said(capsys, "06.familywise", answer, 12, 0.05)
        assert "percentage" in out and "fraction" in out, (answer, out)
    assert said(capsys, "06.familywise", expected, 12, 0.05).endswith("correct.\n")


def test_pearson_names_the_matrix_only_for_a_matrix_and_a_zero_gets_its_own_feedback(capsys):
    x = np.random.default_rng(5).uniform(-1, 1, 300)
    r = np.corrcoef(x, x**2)[0, 1]
    assert abs(r) > 1e-3
    out = said(capsys, "01.pearson", np.corrcoef(x, x**2), x)
    assert out.startswith("01.pearson: not a valid answer") and "2 × 2 matrix" in out
    out = said(capsys, "01.pearson", 0, x)
    assert "not yet - 0 is r in the population" in out and "matrix" not in out
    out = said(capsys, "01.pearson", 0.5, x)
    assert "not yet. Hint" in out and "matrix" not in out
    assert said(capsys, "01.pearson", r, x).endswith("correct.\n")


@pytest.mark.parametrize("bad", [1.5, None, True, "one", [1], "1.5"])
def test_score_refuses_what_is_not_a_notebook_number(bad):
    with pytest.raises(ValueError, match=r"score takes a notebook number such as 1 or \"01\" "
                                         r"\(notebooks with exercises: 01, 02, 03, 04, 05, 06\), "
                                         "got "):
        score(bad)


def test_check_without_its_data_says_what_it_needs_not_that_the_answer_failed(capsys):
    with pytest.raises(TypeError, match=r"^this exercise's check needs x after the answer, as "
                                        r"in the notebook: check\('01.dcor', answer, x\); got "
                                        r"0 data arguments$"):
        check("01.dcor", 0.3)
    with pytest.raises(TypeError, match=r"takes no data .* check\('01.u_centring', answer\); "
                                        "got 1 data argument$"):
        check("01.u_centring", None, np.zeros(3))
    with pytest.raises(ValueError, match=r"^this exercise's check got None for outputs: run the "
                                         r"cells above that make it first, then "
                                         r"check\('02.accuracy', answer, outputs\)$"):
        check("02.accuracy", 50.0, None)
    assert capsys.readouterr().out == ""
    assert exercises._LATEST == {}


def test_every_notebook_check_call_passes_the_data_its_check_needs():
    """Each ``check("id", answer, ...)`` in the notebooks passes as many data as the check
    takes (so the refusal above never meets a notebook's own call)."""
    import ast
    import inspect

    import nbformat

    from pdc_utils import run

    calls = 0
    for path in sorted(run.notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code" or "check(" not in cell.source:
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check":
                    exercise = EXERCISES[node.args[0].value]
                    given = len(node.args) - 2
                    if exercise.kind == "function":
                        assert given == 0, (path.name, node.args[0].value)
                    else:
                        parameters = inspect.signature(exercise.expected).parameters.values()
                        required = [p for p in parameters if p.default is inspect.Parameter.empty]
                        assert len(required) == given, (path.name, node.args[0].value)
                    calls += 1
    assert calls >= len(EXERCISES)


def test_predict_then_run_checks_say_the_side_never_the_value(capsys):
    v_run = np.full(20, 0.88)
    assert said(capsys, "01.bias_128d", 0.8, v_run).endswith("correct.\n")
    low = said(capsys, "01.bias_128d", 0.1, v_run)
    assert "well above your prediction" in low and "0.88" not in low
    high = said(capsys, "01.bias_128d", 1.5, np.full(20, 0.2))
    assert "well below your prediction" in high and "0.2" not in high
    assert "cannot report a p-value below 0.001" in said(capsys, "01.permutations", 999)
    assert "fewer do too" in said(capsys, "01.permutations", 5000)
    assert said(capsys, "01.permutations", 1000).endswith("correct.\n")

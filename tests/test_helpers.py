"""Exercise checks, atomic files, figure saving and the feature dCor table."""

from __future__ import annotations

import dcor
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pdc_utils import artifacts, features, plots  # noqa: E402
from pdc_utils.exercises import check  # noqa: E402


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
    artifacts.write_csv_atomic(tmp_path / "t.csv", frame)
    artifacts.write_json_atomic(tmp_path / "sub" / "t.json", {"x": 1, "path": tmp_path})
    assert pd.read_csv(tmp_path / "t.csv").equals(frame)
    assert artifacts.read_json(tmp_path / "sub" / "t.json")["x"] == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["t.csv", "t.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = artifacts.write_text_atomic(tmp_path / "r.md", "old\n")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        artifacts.write_atomic(target, fail)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_save_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = plots.save_figure(fig, "01_line", tmp_path / "figs")
    plots.close(fig)
    assert path == tmp_path / "figs" / "01_line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="bare file stem"):
        plots.save_figure(fig, "01_line.png", tmp_path)


def test_feature_dcor_table_is_exact_and_checks_its_input():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(300, 16))
    f2 = np.tanh(f1[:, :8]) + 0.5 * rng.normal(size=(300, 8))
    table = features.feature_dcor_table({"f1": f1, "f2": f2}, feature_norm=False)
    value = table.set_index("model").loc["f2", "dcor_sqr"]
    assert value == pytest.approx(dcor.distance_correlation_sqr(f2, f1), rel=1e-6)
    normed = features.feature_dcor_table({"f1": f1, "f2": f2})
    expected = dcor.distance_correlation_sqr(features.row_normalized(f2),
                                             features.row_normalized(f1))
    assert normed.set_index("model").loc["f2", "dcor_sqr"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="reference 'f0' is not among"):
        features.feature_dcor_table({"f1": f1}, reference="f0")
    with pytest.raises(ValueError, match="has 10 rows but f1 has 300"):
        features.feature_dcor_table({"f1": f1, "f2": f2[:10]})


def test_row_normalized_keeps_zero_rows_zero():
    rows = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(features.row_normalized(rows), [[0.6, 0.8], [0.0, 0.0]])


def test_effective_dimension_of_known_spectra():
    rng = np.random.default_rng(0)
    line = np.outer(rng.normal(size=500), rng.normal(size=6))
    assert features.effective_dimension(line) == pytest.approx((1.0, 1.0))
    iso = np.linalg.qr(rng.normal(size=(400, 4)))[0] * 20  # 4 equal-variance directions
    dim, top = features.effective_dimension(iso - iso.mean(0))
    assert dim == pytest.approx(4.0, rel=0.02) and top == pytest.approx(0.25, rel=0.05)
    assert features.effective_dimension(np.ones((5, 3))) == (0.0, 0.0)


def test_feature_table_has_u_statistic_geometry_and_extra_references():
    rng = np.random.default_rng(1)
    f1, f2, f3 = (rng.normal(size=(120, 5)) for _ in range(3))
    table = features.feature_dcor_table({"f1": f1, "f2": f2, "f3": f3}, feature_norm=False,
                                        references={"f3": ["f2"]})
    assert list(table.columns) == ["model", "reference", "dcor_sqr", "n", "u_dcor_sqr",
                                   "effective_dim", "top_pc_fraction"]
    row = table[(table["model"] == "f3") & (table["reference"] == "f2")].iloc[0]
    assert row["u_dcor_sqr"] == pytest.approx(dcor.u_distance_correlation_sqr(f3, f2), rel=1e-6)
    assert row["effective_dim"] == pytest.approx(features.effective_dimension(f3)[0])
    with pytest.raises(ValueError, match="reference 'f9' of f3"):
        features.feature_dcor_table({"f1": f1, "f3": f3}, references={"f3": ["f9"]})


def _check_calls():
    """Every ``check(...)`` call in the notebooks: (notebook, exercise id, argument nodes)."""
    import ast

    import nbformat

    from pdc_utils import run

    calls = []
    for path in run.select_notebooks(None):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code" or "check(" not in cell.source:
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check":
                    calls.append((path.stem, node.args[0].value, node.args[1:]))
    return calls


def test_notebook_checks_name_known_exercises_and_pass_only_plain_names():
    import ast

    from pdc_utils.exercises import EXERCISES

    calls = _check_calls()
    assert {c[1] for c in calls} == set(EXERCISES), "every exercise is used, none is unknown"
    for notebook, exercise, args in calls:
        assert exercise.startswith(notebook[:2]), (notebook, exercise)
        for arg in args:  # no expression that computes (and so shows) the expected answer
            assert isinstance(arg, ast.Name | ast.Constant), (exercise, ast.dump(arg))


def test_function_exercises_accept_the_package_and_reject_a_wrong_function(capsys):
    import tensorflow as tf

    from pdc_utils import attacks, objective
    from pdc_utils import distance as D

    def said(*args):
        check(*args)
        return capsys.readouterr().out

    assert "correct" in said("01.double_centring", lambda a: D.double_centered(a).numpy())
    assert "not yet" in said("01.double_centring", lambda a: a - a.mean())
    assert "correct" in said("01.u_centring", lambda a: D.u_centered(a).numpy())
    assert "not attempted" in said("01.u_centring", lambda a: None)
    assert "raised" in said("01.u_centring", lambda a: 1 / 0)

    def diverge_objective(logits, labels, feats, reference, alpha):
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return float(ce + alpha * objective.feature_penalty(feats, [reference]))

    assert "correct" in said("03.objective", diverge_objective)
    assert "not yet" in said("03.objective", lambda *a: 0.0)
    def bim_from(m, x, y, e, step, steps, noise):  # no random start: not the asked-for attack
        return attacks.pgd(m, x, e, step, steps, y=y)

    assert "not yet" in said("04.pgd_random", bim_from)
    assert "correct" in said("04.pgd_random", lambda m, x, y, e, step, steps, noise:
                             attacks.pgd(m, x, e, step, steps, y=y, rand_init=True,
                                         seed=1 if e == 0.05 else 2))


def test_value_name_and_choice_exercises(capsys, isolated_run_dirs):
    x = np.linspace(-1, 1, 50)
    assert check("01.pearson", 0.0, x) is None  # nothing for a notebook to echo
    check("01.pearson", 0.5, x)
    check("02.why_dependent", "B")
    check("02.why_dependent", "a")
    check("05.labels", "f1", pd.DataFrame({"U dCor² with labels": [0.3, 0.1]},
                                          index=["f1", "div"]), "div")
    check("03.upen", 1.0)  # the run it is checked against does not exist here
    out = capsys.readouterr().out.splitlines()
    assert ["correct" in line for line in out[:5]] == [True, False, True, False, True]
    assert "cannot be checked yet" in out[5]
    with pytest.raises(ValueError, match="unknown exercise"):
        check("99.none", 1)

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


def test_check_says_not_attempted_right_or_wrong_and_returns_nothing(capsys):
    def said(*args, **kwargs):
        assert check(*args, **kwargs) is None  # nothing for a notebook to echo after the text
        return capsys.readouterr().out

    assert "not attempted" in said("E1", None, 1.0)
    assert "correct" in said("E2", 0.5001, 0.5, rtol=1e-3)
    assert "Hint: look again" in said("E3", 0.7, 0.5, hint="look again")
    assert "correct" in said("E4", [1, 2], np.array([1.0, 2.0]))
    assert "correct" in said("E5", "cat", "cat") and "not yet" in said("E6", "cat", "dog")


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

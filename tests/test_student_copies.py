"""``student-copies``: solution-free copies that never replace the originals or a student's work;
``grade``: the exercise verdicts saved in executed student notebooks, counted.

Every test works on a copy of the series' notebooks (``run.notebooks_dir`` points at it), so a
regression cannot damage the real ones.
"""

from __future__ import annotations

import shutil

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pdc_utils import config, exercises, run
from pdc_utils.__main__ import main


@pytest.fixture
def originals(tmp_path, monkeypatch):
    """A copy of the series' notebooks, used as the source folder; returns it."""
    source = tmp_path / "repo" / "notebooks"
    shutil.copytree(run.notebooks_dir(), source)
    monkeypatch.setattr(run, "notebooks_dir", lambda: source)
    return source


def contents(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ipynb"))}


def one_paragraph_error(capsys, *words):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_copies_have_no_solution_or_lecturer_cells_and_no_outputs(originals, tmp_path, capsys):
    assert main(["student-copies", "--out", str(tmp_path / "handout")]) == 0
    copies = sorted((tmp_path / "handout").glob("*.ipynb"))
    assert [p.name for p in copies] == [p.name for p in sorted(originals.glob("*.ipynb"))]
    for path in copies:
        original = nbformat.read(str(originals / path.name), as_version=4)
        tags = [c.metadata.get("tags", []) for c in original.cells]
        assert any("lecturer" in t for t in tags) and any("solution" in t for t in tags)
        notebook = nbformat.read(str(path), as_version=4)
        assert len(notebook.cells) == sum(not {"solution", "lecturer"} & set(t) for t in tags)
        assert not any({"solution", "lecturer"} & set(c.metadata.get("tags", []))
                       for c in notebook.cells)
        assert not any("lecturer" in c.source.lower() for c in notebook.cells), path.name
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    assert "student notebooks (without solutions and lecturer notes)" in capsys.readouterr().out


@pytest.mark.parametrize("spelling", ["{src}", "{src}/", "{repo}/notebooks/../notebooks",
                                      "./notebooks/", "notebooks"])
def test_the_notebooks_folder_itself_is_refused(originals, monkeypatch, capsys, spelling):
    monkeypatch.chdir(originals.parent)
    before = contents(originals)
    out = spelling.format(src=originals, repo=originals.parent)
    assert main(["student-copies", "--out", out, "--force"]) == 1
    one_paragraph_error(capsys, "folder of the series' notebooks", "originals")
    assert contents(originals) == before


def test_a_symlink_to_the_notebooks_folder_is_refused(originals, tmp_path, capsys):
    (tmp_path / "link").symlink_to(originals)
    before = contents(originals)
    assert main(["student-copies", "--out", str(tmp_path / "link"), "--force"]) == 1
    one_paragraph_error(capsys, "folder of the series' notebooks")
    assert contents(originals) == before


def test_a_students_notebook_is_not_replaced_without_force(originals, tmp_path, capsys):
    handout = tmp_path / "handout"
    handout.mkdir()
    work = handout / "01_distance_correlation.ipynb"
    work.write_text("a student's answers")
    assert main(["student-copies", "--out", str(handout)]) == 1
    one_paragraph_error(capsys, "01_distance_correlation.ipynb", "--force")
    assert work.read_text() == "a student's answers"
    assert [p.name for p in handout.iterdir()] == [work.name]  # nothing else written either

    assert main(["student-copies", "--out", str(handout), "--force"]) == 0
    assert work.read_text() != "a student's answers"
    assert len(list(handout.glob("*.ipynb"))) == len(list(originals.glob("*.ipynb")))


@pytest.mark.parametrize("out", ["", "   ", "\t"])
def test_an_empty_out_is_refused(originals, tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    assert main(["student-copies", "--out", out]) == 1
    one_paragraph_error(capsys, "--out", "is empty")
    assert not list(tmp_path.glob("*.ipynb"))


def test_an_out_that_is_a_file_is_refused(originals, tmp_path, capsys):
    (tmp_path / "handout").write_text("x")
    assert main(["student-copies", "--out", str(tmp_path / "handout")]) == 1
    one_paragraph_error(capsys, "is a file, not a folder")


def executed(path, *cells):
    """Write an executed notebook to ``path``: one code cell per entry of ``cells``, each entry
    the text the cell printed ("" for a cell without output); a markdown cell first."""
    notebook = new_notebook(cells=[new_markdown_cell("# a notebook")])
    for count, text in enumerate(cells, 1):
        outputs = [new_output("stream", name="stdout", text=text)] if text else []
        notebook.cells.append(new_code_cell("check(...)", execution_count=count,
                                            outputs=outputs))
    nbformat.write(notebook, str(path))


def test_grade_counts_the_latest_verdict_of_each_exercise(tmp_path, capsys, monkeypatch,
                                                           isolated_run_dirs):
    monkeypatch.setattr(exercises, "_LATEST", {})
    x = np.linspace(-1, 1, 20)

    def verdict(*args):  # the very text a check prints in a notebook
        exercises.check(*args)
        return capsys.readouterr().out

    executed(tmp_path / "01_distance_correlation.ipynb",
             verdict("01.bias_128d", 0.9, np.full(20, 0.88)),
             verdict("01.permutations", 5) + verdict("01.pdcor_self", None),
             verdict("01.pearson", "r", x) + verdict("01.dcor", True, x),
             "",
             verdict("01.permutations", 1000))  # run again, now right: the latest verdict counts
    executed(tmp_path / "03_diverge_training.ipynb",
             verdict("03.bias_batch", "a") + "notebook 03: 0 of 5 exercises correct\n",
             verdict("03.upen", 1.0))  # its data (another run) is not there
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]),  # never run
                   str(tmp_path / "02_baseline_training.ipynb"))

    table = exercises.grade_notebooks(tmp_path)
    assert list(table.columns) == [*exercises.OUTCOMES, "exercises"]
    assert table.to_dict(orient="index") == {
        "01_distance_correlation": {"correct": 2, "not yet": 0, "not attempted": 1,
                                    "invalid": 2, "not checked": 3, "exercises": 8},
        "02_baseline_training": {"correct": 0, "not yet": 0, "not attempted": 0, "invalid": 0,
                                 "not checked": 5, "exercises": 5},
        "03_diverge_training": {"correct": 0, "not yet": 1, "not attempted": 0, "invalid": 0,
                                "not checked": 4, "exercises": 5},
    }
    assert main(["grade", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["correct", "not", "yet", "not", "attempted",
                                "invalid", "not", "checked", "exercises"]
    assert lines[1].split() == ["01_distance_correlation", "2", "0", "1", "2", "3", "8"]
    assert len(lines) == 4


def test_grade_needs_executed_notebooks(originals, tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing")]) == 1
    one_paragraph_error(capsys, "is not a folder")
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty")]) == 1
    one_paragraph_error(capsys, "holds no notebooks (*.ipynb)")
    run.write_student_copies(tmp_path / "fresh")  # handed out, not yet run
    assert main(["grade", str(tmp_path / "fresh")]) == 1
    one_paragraph_error(capsys, f"holds {len(config.NOTEBOOKS)} notebooks, none of them executed",
                        "Run All Cells")
    (tmp_path / "fresh" / "notes.ipynb").write_text("not json")
    assert main(["grade", str(tmp_path / "fresh")]) == 1
    skipped, error = capsys.readouterr().err.strip().split("\n")
    assert skipped == "skipped notes.ipynb: not a notebook (not JSON text)"
    assert error.startswith("error: ") and "none of them executed" in error, error

"""``student-copies``: solution-free copies that never replace the originals or a student's work.

Every test works on a copy of the series' notebooks (``run.notebooks_dir`` points at it), so a
regression cannot damage the real ones.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from pdc_utils import run
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


def test_copies_have_no_solution_cells_and_no_outputs(originals, tmp_path, capsys):
    assert main(["student-copies", "--out", str(tmp_path / "handout")]) == 0
    copies = sorted((tmp_path / "handout").glob("*.ipynb"))
    assert [p.name for p in copies] == [p.name for p in sorted(originals.glob("*.ipynb"))]
    for path in copies:
        notebook = nbformat.read(str(path), as_version=4)
        assert not any("solution" in c.metadata.get("tags", []) for c in notebook.cells)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    assert "student notebooks" in capsys.readouterr().out


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

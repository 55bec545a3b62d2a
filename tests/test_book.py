"""The course as a website (``make book``): which run and edition it shows, what each edition
keeps of the notebooks, the facts in its footer, and the checks of the built pages.

These tests need no executed run and no Sphinx build: the smoke test of the whole series
(``tests/test_notebooks.py``) builds the book of its run and checks it with
:func:`check_built_book`. The browser check is ``tests/browser/check_book.py``.
"""

from __future__ import annotations

import html
import json
import re
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from pdc_utils import book, config, run
from pdc_utils.__main__ import main

SOURCES = [run.notebooks_dir() / f"{name}.ipynb" for name in config.NOTEBOOKS]


def fake_run(name: str, notebooks=config.NOTEBOOKS) -> Path:
    """A run folder holding the series' source notebooks as its 'executed' copies, with
    papermill's record of each (10 s, the last ending at 12:00 UTC) and a summary title."""
    folder = config.run_dir(name) / "notebooks"
    folder.mkdir(parents=True)
    for index, stem in enumerate(notebooks):
        notebook = nbformat.read(str(run.notebooks_dir() / f"{stem}.ipynb"), as_version=4)
        notebook.metadata["papermill"] = {"duration": 10.0,
                                          "end_time": f"2026-01-02T11:5{index}:00+00:00"}
        nbformat.write(notebook, str(folder / f"{stem}.ipynb"))
    (folder.parent / "summary.md").write_text(f"# Run `{name}` (profile `smoke`)\n\ntext\n")
    return folder


def one_paragraph_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_an_unknown_edition_is_refused_with_the_valid_ones(capsys, isolated_run_dirs):
    with pytest.raises(ValueError, match="'teacher' is not an edition"):
        book.check_edition("teacher")
    assert main(["book", "--run", "nosuch", "--edition", "teacher"]) == 1
    one_paragraph_error(capsys, "EDITION=", "lecturer (", "student (")


def test_a_run_that_does_not_exist_is_refused_with_the_runs_that_can_be_shown(
        capsys, isolated_run_dirs):
    fake_run("complete")
    fake_run("partial", notebooks=config.NOTEBOOKS[:2])
    with pytest.raises(FileNotFoundError, match="has none of them") as missing:
        book.executed_notebooks("nosuch")
    assert "Runs that can be shown: complete." in str(missing.value)
    with pytest.raises(FileNotFoundError, match="lacks 03_diverge_training, 04"):
        book.executed_notebooks("partial")
    assert main(["book", "--run", "nosuch"]) == 1
    one_paragraph_error(capsys, "run 'nosuch' cannot be shown", "complete",
                        "pdc_utils run --profile PROFILE --run-name nosuch")
    assert main(["book", "--run", "../elsewhere"]) == 1
    one_paragraph_error(capsys, "cannot be the name of a run")
    assert book.executed_notebooks("complete")[0].name == "01_distance_correlation.ipynb"


def test_the_default_run_is_run_first_when_missing_and_no_other_run_is(
        capsys, isolated_run_dirs, monkeypatch):
    ran, built = [], []

    def build(name, edition, build_dir):  # the real one's refusals, without Sphinx
        book.executed_notebooks(name)
        built.append((name, edition))
        return Path("index.html")

    monkeypatch.setattr(run, "run_series", lambda profile: ran.append(profile) or fake_run(
        profile))
    monkeypatch.setattr(book, "build", build)
    assert main(["book", "--edition", "student"]) == 0
    assert ran == ["quick"] and built == [("quick", "student")]
    assert "running it first" in capsys.readouterr().out
    assert main(["book"]) == 0 and ran == ["quick"], "a complete quick run is not run again"
    assert main(["book", "--run", "other"]) == 1 and ran == ["quick"] and len(built) == 2
    one_paragraph_error(capsys, "run 'other' cannot be shown", "Runs that can be shown: quick")


def test_no_run_at_all_says_so(isolated_run_dirs):
    with pytest.raises(FileNotFoundError, match="No run under .* has them all yet"):
        book.executed_notebooks("quick")


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_the_lecturer_edition_collapses_solutions_and_notes_and_keeps_every_cell(path):
    notebook = nbformat.read(str(path), as_version=4)
    before = nbformat.writes(notebook)
    shown = book.edition_notebook(notebook, "lecturer")
    assert nbformat.writes(notebook) == before, "the run's notebook was changed"
    assert len(shown.cells) == len(notebook.cells)
    collapsed = 0
    for original, cell in zip(notebook.cells, shown.cells, strict=True):
        hidden = _tags(original) & run.LECTURER_ONLY_TAGS
        if hidden and cell.cell_type == "code":
            assert "hide-cell" in _tags(cell)
            assert cell.metadata["mystnb"]["code_prompt_show"].startswith("Show the ")
            collapsed += 1
        elif hidden:
            assert cell.source.startswith('<div class="cell tag_')
            assert original.source.strip() in cell.source and "</details>" in cell.source
            collapsed += 1
        else:
            assert cell.source == original.source and "hide-cell" not in _tags(cell)
    assert collapsed == sum(bool(_tags(c) & run.LECTURER_ONLY_TAGS) for c in notebook.cells) > 0


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_the_student_edition_drops_solutions_notes_and_the_verdicts_of_checks(path):
    notebook = nbformat.read(str(path), as_version=4)
    for cell in notebook.cells:  # as if executed: every code cell printed something
        if cell.cell_type == "code":
            cell.outputs = [new_output("stream", name="stdout", text="01.x: correct.\n")]
    shown = book.edition_notebook(notebook, "student")
    kept = [c for c in notebook.cells if not _tags(c) & run.LECTURER_ONLY_TAGS]
    assert [c.source for c in shown.cells] == [c.source for c in kept]
    checks = [c for c in shown.cells if c.cell_type == "code"
              and re.search(r"^(check|score)\(", c.source, re.MULTILINE)]
    assert checks, "every notebook has exercise checks"
    assert all(c.outputs == [] for c in checks)
    others = [c for c in shown.cells if c.cell_type == "code" and c not in checks]
    assert others and all(c.outputs for c in others)


def test_papermills_injected_parameters_are_collapsed():
    notebook = new_notebook(cells=[new_code_cell("run_name = 'x'", metadata={
        "tags": ["injected-parameters"]})])
    cell = book.edition_notebook(notebook, "student").cells[0]
    assert "hide-cell" in _tags(cell) and "parameters" in cell.metadata["mystnb"][
        "code_prompt_show"]


def test_the_footer_facts_come_from_the_runs_records(isolated_run_dirs):
    fake_run("r")
    (config.results_dir("r")).mkdir()
    (config.results_dir("r") / "environment.json").write_text(json.dumps(
        {"device": "CPU (2 cores, x86_64)", "versions": {"tensorflow": "2.21.0"}}))
    notebooks = [nbformat.read(str(p), as_version=4) for p in book.executed_notebooks("r")]
    facts = book.run_facts("r", notebooks, "student")
    assert facts == {"name": "r", "profile": "smoke", "edition": "student",
                     "date": "2026-01-02 11:55 UTC",
                     "machine": "CPU (2 cores, x86_64), TensorFlow 2.21.0",
                     "runtime": "the 6 notebooks took 60 s"}
    (config.run_dir("r") / "summary.md").unlink()
    (config.results_dir("r") / "environment.json").unlink()
    del notebooks[2].metadata["papermill"]
    unknown = book.run_facts("r", notebooks, "lecturer")
    assert unknown["profile"] == "not recorded" and "not recorded" in unknown["date"]
    assert "not recorded" in unknown["machine"] and "not recorded" in unknown["runtime"]


def test_the_pages_include_readme_and_docs_parts_that_exist():
    """Every include of book/'s pages names a file and markers that are there, in order."""
    pages = [p for p in book.book_dir().rglob("*.md") if not p.relative_to(
        book.book_dir()).parts[0].startswith("_")]
    includes = 0
    for page in pages:
        for block in re.findall(r"```\{include\} (\S+)\n(.*?)```", page.read_text(), re.S):
            target = config.project_root() / block[0].removeprefix("/_repo/")
            text = target.read_text()
            after = re.search(r':start-after: "(.*)"', block[1])
            before = re.search(r':end-before: "(.*)"', block[1])
            start = text.index(after[1]) + len(after[1]) if after else 0
            end = text.index(before[1]) if before else len(text)
            assert text.count(after[1]) == 1 if after else True, (page, after[1])
            assert start < end, (page, block)
            assert re.search(r"^#{1,2} \S", text[start:end], re.M), "each part has a heading"
            includes += 1
    assert includes >= 6


def test_staging_writes_the_pages_lessons_and_students_copies(isolated_run_dirs, tmp_path):
    fake_run("r")
    src = book.stage("r", "student", tmp_path / "build")
    assert {p.name for p in (src / "lessons").iterdir()} == {f"{n}.ipynb"
                                                              for n in config.NOTEBOOKS}
    for path in (src / "lessons").iterdir():
        cells = nbformat.read(str(path), as_version=4).cells
        assert not any(_tags(c) & run.LECTURER_ONLY_TAGS for c in cells)
    assert (src / "index.md").exists() and (src / "docs" / "design.md").exists()
    assert (src / "_repo" / "README.md").read_text() == (
        config.project_root() / "README.md").read_text()
    with zipfile.ZipFile(src / "students-notebooks.zip") as zf:
        names = sorted(zf.namelist())
        assert names == [f"notebooks/{n}.ipynb" for n in config.NOTEBOOKS]
        assert b'"solution"' not in zf.read(names[0])
    facts = json.loads((src / "_book.json").read_text())
    assert facts["title"] == book.book_title() and facts["run"]["edition"] == "student"
    book.stage("r", "lecturer", tmp_path / "build")  # a second staging replaces the first
    assert json.loads((src / "_book.json").read_text())["run"]["edition"] == "lecturer"


SITE = {
    "index.html": '<a href="lessons/a.html#intro">a</a> <img src="_images/f.png"> '
                  '<span class="math">\\(x\\)</span> <code>$HOME</code>',
    "lessons/a.html": '<h1 id="intro">A</h1><a href="../index.html">home</a> '
                      '<a href="https://example.org/paper">the paper</a>',
    "_images/f.png": "png",
    "searchindex.js": "Search.setIndex({})",
}


def write_site(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_sound_site_has_no_problems(tmp_path):
    assert book.check_site(write_site(tmp_path, SITE)) == []


@pytest.mark.parametrize("change, problem", [
    ({"lessons/a.html": '<a href="b.html">b</a>'}, "links to b.html, which does not exist"),
    ({"lessons/a.html": '<a href="../index.html#nowhere">x</a>'}, "has no such anchor"),
    ({"index.html": '<img src="_images/g.png">'}, "loads _images/g.png (img), which is missing"),
    ({"lessons/a.html": '<script src="https://cdn.example/x.js"></script>'},
     "loads https://cdn.example/x.js (script) from the network"),
    ({"lessons/a.html": '<link rel="stylesheet" href="//fonts.example/f.css">'},
     "from the network"),
    ({"lessons/a.html": "<p>the cost $x + y$ of</p>"}, "shows a raw '$'"),
    ({"_static/t.css": "@import url('https://fonts.example/x.css');"},
     "_static/t.css loads something from the network"),
])
def test_each_kind_of_problem_is_found(tmp_path, change, problem):
    """Each change, added to one file of a sound site, is found as one problem."""
    files = {**SITE, **{name: SITE.get(name, "") + text for name, text in change.items()}}
    problems = book.check_site(write_site(tmp_path, files))
    assert len(problems) == 1 and problem in problems[0], problems


def test_an_empty_image_a_missing_search_index_or_landing_page_is_a_problem(tmp_path):
    assert "which is missing or empty" in book.check_site(write_site(
        tmp_path / "c", {**SITE, "_images/f.png": ""}))[0]
    files = {k: v for k, v in SITE.items() if k != "searchindex.js"}
    assert book.check_site(write_site(tmp_path / "a", files)) == [
        "there is no searchindex.js: search cannot work"]
    assert "no index.html" in book.check_site(tmp_path / "b")[0]


def check_built_book(index: Path, run_name: str, profile: str) -> None:
    """What a built lecturer edition must show, beside :func:`pdc_utils.book.check_site`
    (which the build has passed): each lesson titled as its notebook, with every figure of
    the executed notebook, every solution collapsed, formulas for MathJax and the run in its
    footer; the README's results with their figures and table; MathJax itself; a search index
    that knows the course's subject."""
    html_dir = index.parent
    for path in book.executed_notebooks(run_name):
        notebook = nbformat.read(str(path), as_version=4)
        page = (html_dir / "lessons" / f"{path.stem}.html").read_text()
        heading = notebook.cells[0].source.splitlines()[0].removeprefix("# ")
        title = html.unescape(re.search(r"<title>(.*?)</title>", page, re.S)[1])
        assert title.startswith(re.split(r"[$'\"]", heading)[0]), (title, heading)
        figures = sum("image/png" in o.get("data", {}) for c in notebook.cells
                      for o in c.get("outputs", []))
        assert len(re.findall(r'<img [^>]*src="\.\./_images/', page)) == figures, path.stem
        solutions = sum("solution" in _tags(c) for c in notebook.cells)
        assert solutions and page.count("Show the solution") == solutions, path.stem
        assert page.count('class="math') >= 10, path.stem
        assert (f"Executed by run <code>{run_name}</code> (profile <code>{profile}</code>)"
                in " ".join(page.split())), path.stem
    results = (html_dir / "results.html").read_text()
    assert 'src="_images/diverge_confirm.png"' in results and "<table" in results
    assert (html_dir / "_images" / "diverge_confirm.png").stat().st_size > 0
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "correl" in (html_dir / "searchindex.js").read_text()

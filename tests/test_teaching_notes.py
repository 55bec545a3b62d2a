"""docs/teaching.md tells the lecturer each session's number of checked exercises: the counts
must be those of the exercise registry and of the notebooks' check cells; every session says
what to do when it fails; the table of numbers to expect names a source for every row."""

from __future__ import annotations

import ast
import re

import nbformat

from pdc_utils import config, run
from pdc_utils.exercises import EXERCISES

TEACHING = config.project_root() / "docs" / "teaching.md"


def _sessions() -> dict[str, str]:
    """``{"01": text of session 1's section, ...}``."""
    text = TEACHING.read_text(encoding="utf-8")
    parts = re.split(r"^## Session \d+ — `(\d\d)_\w+`", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _checked_in_notebook(number: str) -> set[str]:
    path = next(run.notebooks_dir().glob(f"{number}_*.ipynb"))
    found = set()
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type == "code" and "check(" in cell.source:
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check":
                    found.add(node.args[0].value)
    return found


def test_every_notebook_has_a_session_that_says_what_to_do_when_it_fails():
    notebooks = sorted(p.name[:2] for p in run.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    sessions = _sessions()
    assert sorted(sessions) == notebooks
    assert not [n for n, text in sessions.items() if "**When it fails:**" not in text]


def test_the_exercise_counts_are_the_registrys_and_the_notebooks():
    for number, text in _sessions().items():
        stated = re.search(r"^- \*\*Exercises:\*\* (\d+) checked by `check`", text, re.M)
        assert stated, f"session {number} states no exercise count"
        registry = {e for e in EXERCISES if e.startswith(f"{number}.")}
        assert int(stated.group(1)) == len(registry), (number, sorted(registry))
        assert _checked_in_notebook(number) == registry, number


def test_every_expected_number_names_where_it_comes_from():
    text = TEACHING.read_text(encoding="utf-8")
    table = text.split("## Numbers to expect", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][2:]  # no header
    assert len(rows) >= 8
    for row in rows:
        source = row.rstrip(" |").rsplit("|", 1)[1]
        named = re.findall(r"`(bench/results/[\w.]+)`", source)
        assert named or "measured" in source, row
        for file in named:
            assert (config.project_root() / file).exists(), file

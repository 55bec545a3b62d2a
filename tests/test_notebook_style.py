"""The notebooks' code cells stay short enough to read (and explain) one at a time."""

from __future__ import annotations

import nbformat
import pytest

from pdc_utils import run

NOTEBOOKS = sorted(run.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))

#: Most lines a code cell may have: a longer cell is split, or its helper moves to pdc_utils.
MAX_CELL_LINES = 25


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_has_at_most_25_lines(path):
    cells = nbformat.read(str(path), as_version=4).cells
    long = {cell.get("id"): len(cell.source.splitlines()) for cell in cells
            if cell.cell_type == "code" and len(cell.source.splitlines()) > MAX_CELL_LINES}
    assert not long, f"{path.name}: cells over {MAX_CELL_LINES} lines (id: lines): {long}"

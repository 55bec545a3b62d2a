"""The notebooks' code cells stay short enough to read (and explain) one at a time, and the
first code cell imports pdc_utils before TensorFlow (which keeps its log lines out)."""

from __future__ import annotations

import re

import nbformat
import pytest

from pdc_utils import run

NOTEBOOKS = sorted(run.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))

#: Most lines a code cell may have: a longer cell is split, or its helper moves to pdc_utils.
#: The cell tagged ``parameters`` is exempt: papermill needs every parameter in that one cell,
#: one typed and commented line each, and notebook 04 declares the training parameters that
#: identify the networks it loads beside its own.
MAX_CELL_LINES = 25


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_has_at_most_25_lines(path):
    cells = nbformat.read(str(path), as_version=4).cells
    long = {cell.get("id"): len(cell.source.splitlines()) for cell in cells
            if cell.cell_type == "code" and len(cell.source.splitlines()) > MAX_CELL_LINES
            and "parameters" not in cell.metadata.get("tags", [])}
    assert not long, f"{path.name}: cells over {MAX_CELL_LINES} lines (id: lines): {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_code_cell_imports_pdc_utils_before_tensorflow(path):
    first = next(c for c in nbformat.read(str(path), as_version=4).cells
                 if c.cell_type == "code")
    imports = [m[1] for m in re.finditer(r"^(?:from|import) (\w+)", first.source, re.M)]
    assert "pdc_utils" in imports, f"{path.name}: the first code cell does not import pdc_utils"
    heavy = [i for i, name in enumerate(imports) if name in ("tensorflow", "keras", "tf_keras")]
    assert not heavy or imports.index("pdc_utils") < heavy[0], (
        f"{path.name}: tensorflow/keras is imported before pdc_utils in the first code cell, "
        "so TensorFlow's start-up lines reach the notebook")

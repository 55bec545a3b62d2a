"""The README's confirmatory tables quote the committed tables: every interval in them is the
rounded mean and 95 % interval of the matching row of ``bench/results/*_differences.csv``."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
INTERVAL = re.compile(r"([−+-]\d+\.\d\d) \[([−+-]\d+\.\d\d), ([−+-]\d+\.\d\d)\]")
#: The PGD columns of both README tables, after the features column (and clean, in the
#: powered table): ε and attacker family.
PGD_COLUMNS = [(0.05, "f1"), (0.2, "f1"), (0.2, "others")]


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _table_after(heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| setting"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize(("heading", "table"), [
    ("**The first confirmatory run**", "diverge_confirm_differences.csv"),
    ("**The powered confirmatory run**", "diverge_confirm_powered_differences.csv")])
def test_the_readme_quotes_the_committed_confirmatory_tables(heading, table):
    diffs = pd.read_csv(RESULTS / table)
    diffs["setting"] = diffs["setting"].replace({"gal": "grad_align"})
    rows = _table_after(heading)
    assert len(rows) == diffs["setting"].nunique(), heading
    for cells in rows:
        setting = cells[0].split()[0]
        quoted = [INTERVAL.search(cell) for cell in cells[-3:]]
        assert all(quoted), cells
        for (eps, family), match in zip(PGD_COLUMNS, quoted, strict=True):
            row = diffs[(diffs["setting"] == setting) & (diffs["attack"] == "pgd")
                        & (diffs["eps"] == eps) & (diffs["attackers"] == family)]
            assert len(row) == 1, (setting, eps, family)
            expected = row[["difference", "low", "high"]].iloc[0].round(2).tolist()
            assert [_number(g) for g in match.groups()] == pytest.approx(expected, abs=0.006), (
                setting, eps, family)
            star = cells[-3:][PGD_COLUMNS.index((eps, family))].endswith("*")
            assert star == bool(row["p_holm"].iloc[0] < 0.05), (setting, eps, family)

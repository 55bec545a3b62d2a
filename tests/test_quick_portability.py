"""bench/quick_portability.py takes only quick profile runs with the profile's seed pairs, as
its table says, and replaces the committed table only with --write."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from pdc_utils import config, run, run_record

SCRIPT = Path(__file__).parents[1] / "bench" / "quick_portability.py"


@pytest.fixture
def bench(isolated_run_dirs, monkeypatch):
    spec = importlib.util.spec_from_file_location("quick_portability", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", isolated_run_dirs / "committed")
    return module


def made_run(name: str, profile: str, difference: float, pairs: int | None = None) -> None:
    """A run's record and notebook 04's table and record, as a finished run leaves them."""
    params = {**config.profile(profile), "run_name": name}
    run_record.write(params, "02_baseline_training")
    results = config.results_dir(name)
    results.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"attack": ["clean", "pgd"], "eps": [0.0, 0.1], "attackers": ["none", "f1"],
                  "difference": [0.5, difference], "low": [-1.0, -2.0], "high": [2.0, 9.0],
                  "p_holm": [float("nan"), 0.4],
                  "n_seeds": [pairs or params["n_seeds"]] * 2}).to_csv(
        results / "diverge_minus_baseline.csv", index=False)
    run.record_parameters(name, "04_attack_evaluation",
                          {k: params[k] for k in ("run_name", "eps_grid", "pgd_steps")})


def test_smoke_runs_are_refused_naming_the_difference(bench):
    made_run("a", "smoke", 1.0)
    made_run("b", "smoke", 2.0)
    with pytest.raises(SystemExit, match=r"^error: run 'a' is not a quick profile run: seed = 0 "
                                         r"\(quick: 3000\)"):
        bench.main(["a", "b", "--write"])
    assert not (bench.RESULTS / "quick_portability.md").exists()


def test_a_table_of_other_pairs_or_parameters_is_refused(bench):
    made_run("a", "quick", 1.0, pairs=2)
    made_run("b", "quick", 2.0)
    with pytest.raises(SystemExit, match=r"holds \[2\] seed pairs, not the quick profile's 3"):
        bench.main(["a", "b"])
    made_run("a", "quick", 1.0)
    run.record_parameters("a", "04_attack_evaluation", {"run_name": "a", "pgd_steps": 3})
    with pytest.raises(SystemExit, match=r"was made with other parameters .*--notebooks 04"):
        bench.main(["a", "b"])


def test_the_committed_table_is_replaced_only_with_write(bench, capsys):
    made_run("a", "quick", 1.0)
    made_run("b", "quick", 2.5)
    target = bench.RESULTS / "quick_portability.md"
    bench.RESULTS.mkdir()
    target.write_text("committed\n")
    bench.main(["a", "b"])
    out, err = capsys.readouterr()
    assert "mean over the 3 seed pairs" in out and "| pgd | 0.1 | f1 |" in out
    assert "not written: add --write" in err and target.read_text() == "committed\n"
    bench.main(["a", "b", "--write"])
    assert "moved by" in target.read_text() and "| 1.5 |" in target.read_text()

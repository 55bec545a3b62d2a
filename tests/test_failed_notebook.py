"""A failed or stopped notebook keeps the last successful executed copy and its record.

papermill is replaced by a stand-in that writes the executed copy (and, like notebook 04, a
result table) and then succeeds, fails in a cell or is interrupted; no kernel starts.
"""

from __future__ import annotations

import nbformat
import pandas as pd
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from pdc_utils import artifacts, config, run

NOTEBOOK = "04_attack_evaluation"


@pytest.fixture
def series(isolated_run_dirs):
    """A one-notebook series whose notebook has notebook 04's name and summary tables."""
    folder = isolated_run_dirs / "nbs"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "language": "python", "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("seed: int = 0\npgd_steps: int = 3",
                                                metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("scores = attack()")]
    nbformat.write(notebook, str(folder / f"{NOTEBOOK}.ipynb"))
    return folder


def stand_in(monkeypatch, outcome: str, table: bool = False) -> None:
    """papermill.execute_notebook that writes the copy, then ends with ``outcome``:
    ``done``, ``fails`` (a cell raises) or ``stopped`` (Ctrl-C); ``table`` writes what
    notebook 04 writes before its last cells (atomically, as the notebooks do):
    transfer_attack.csv, verdict.md, a figure named by pgd_steps, a figure that both runs
    make, and a training history of the run's networks."""
    def execute(input_path, output_path, parameters, **kwargs):
        notebook = nbformat.read(input_path, as_version=4)
        notebook.cells[0].source += f"\n# injected: {parameters}"
        if table:
            run_name, steps = parameters.get("run_name", "series"), parameters["pgd_steps"]
            results, figures = config.results_dir(run_name), config.figures_dir(run_name)
            artifacts.write_csv_atomic(results / "transfer_attack.csv", pd.DataFrame(
                {"method": ["source"], "clean": [float(steps)]}))
            artifacts.write_text_atomic(results / "verdict.md", f"made with {steps} steps\n")
            artifacts.write_text_atomic(results / f"history_net{steps}.csv", "epoch\n0\n")
            artifacts.write_text_atomic(figures / f"04_only_with_{steps}.png", "png")
            artifacts.write_text_atomic(figures / "04_accuracy_vs_eps.png", f"png {steps}")
        if outcome == "fails":
            notebook.cells[1].outputs = [nbformat.v4.new_output(
                "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
        nbformat.write(notebook, output_path)
        if outcome == "fails":
            raise PapermillExecutionError(1, 2, "scores = attack()", "ZeroDivisionError",
                                          "division by zero", [])
        if outcome == "stopped":
            raise KeyboardInterrupt
    monkeypatch.setattr(papermill, "execute_notebook", execute)


def run_it(series, pgd_steps):
    return run.run_series("smoke", run_name="series", overrides={"pgd_steps": pgd_steps},
                          directory=series, progress=False)


def copies(isolated_run_dirs):
    folder = isolated_run_dirs / "runs" / "series" / "notebooks"
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def summary_section(isolated_run_dirs):
    text = (isolated_run_dirs / "runs" / "series" / "summary.md").read_text()
    return text.split("## Transfer attack")[1].split("## ")[0]


def test_a_failed_rerun_keeps_the_last_good_copy_and_its_record(series, isolated_run_dirs,
                                                                monkeypatch):
    config.results_dir("series").mkdir(parents=True)
    stand_in(monkeypatch, "done", table=True)
    run_it(series, 2)
    good = copies(isolated_run_dirs)
    assert list(good) == [f"{NOTEBOOK}.ipynb"] and "'pgd_steps': 2" in good[f"{NOTEBOOK}.ipynb"]
    record = config.results_dir("series") / f"made_with_{NOTEBOOK}.json"
    recorded = record.read_text()

    stand_in(monkeypatch, "fails")
    with pytest.raises(run.RunError) as info:
        run_it(series, 3)
    out = isolated_run_dirs / "runs" / "series" / "notebooks"
    message = str(info.value)
    assert f"the partly executed copy is {out / f'{NOTEBOOK}.failed.ipynb'}" in message
    assert "cell [2] (`scores = attack()`) with ZeroDivisionError" in message
    assert f"the last successful copy {out / f'{NOTEBOOK}.ipynb'}, its tables and figures " \
        "are kept" in message
    after = copies(isolated_run_dirs)
    assert after[f"{NOTEBOOK}.ipynb"] == good[f"{NOTEBOOK}.ipynb"]
    assert "'pgd_steps': 3" in after[f"{NOTEBOOK}.failed.ipynb"]
    assert f"{NOTEBOOK}.partial.ipynb" not in after
    assert record.read_text() == recorded

    # the table the failed run did not touch is still shown under the parameters it has
    run.write_summary("smoke", run.resolve_parameters("smoke", "series", {"pgd_steps": 2}), {})
    assert "| source | 2 |" in summary_section(isolated_run_dirs)

    # a success removes the old failure's copy
    stand_in(monkeypatch, "done", table=True)
    run_it(series, 3)
    assert list(copies(isolated_run_dirs)) == [f"{NOTEBOOK}.ipynb"]


def made_files(isolated_run_dirs):
    """Every file under the run's results/ and figures/, with its content."""
    folders = [isolated_run_dirs / "runs" / "series" / "results",
               isolated_run_dirs / "figures" / "series"]
    return {str(p.relative_to(isolated_run_dirs)): p.read_text() for folder in folders
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("outcome", ["fails", "stopped"])
def test_a_failed_rerun_changes_nothing_the_good_run_made(series, isolated_run_dirs,
                                                          monkeypatch, outcome):
    """Tables, verdict and figures a failed (or stopped) rerun wrote are put back as the good
    run left them, and files it added are gone; the histories of trained networks stay."""
    stand_in(monkeypatch, "done", table=True)
    run_it(series, 2)
    good = made_files(isolated_run_dirs)
    assert "runs/series/results/verdict.md" in good and len(good) > 4
    stand_in(monkeypatch, outcome, table=True)  # rewrites them with pgd_steps 3, then stops
    with pytest.raises(run.RunError if outcome == "fails" else KeyboardInterrupt) as info:
        run_it(series, 3)
    after = made_files(isolated_run_dirs)
    history = "runs/series/results/history_net3.csv"
    assert after.pop(history) == "epoch\n0\n"  # a trained network's history stays
    assert after == good
    if outcome == "fails":
        assert "its tables and figures are kept" in str(info.value)
    assert not (isolated_run_dirs / "runs" / "series" / run.RESTORE_DIR).exists()
    run.write_summary("smoke", run.resolve_parameters("smoke", "series", {"pgd_steps": 2}), {})
    assert "| source | 2 |" in summary_section(isolated_run_dirs)


def test_a_snapshot_left_by_a_killed_run_is_restored_first(series, isolated_run_dirs,
                                                           monkeypatch):
    """A runner killed outright (SIGKILL) cannot restore; the next run of the notebook does,
    before it starts, so the killed run's files never mix with the good run's."""
    stand_in(monkeypatch, "done", table=True)
    run_it(series, 2)
    good = made_files(isolated_run_dirs)

    def killed(input_path, output_path, parameters, **kwargs):
        results = config.results_dir("series")
        artifacts.write_text_atomic(results / "verdict.md", "half a run\n")
        raise SystemExit("killed")  # stands for SIGKILL: the snapshot stays, nothing restores
    restore = run.artifacts._restore
    monkeypatch.setattr(papermill, "execute_notebook", killed)
    monkeypatch.setattr(run.artifacts, "_restore", lambda *args: None)
    with pytest.raises(SystemExit):
        run_it(series, 3)
    assert (config.results_dir("series") / "verdict.md").read_text() == "half a run\n"
    monkeypatch.setattr(run.artifacts, "_restore", restore)
    seen = {}

    def looks(input_path, output_path, parameters, **kwargs):
        seen["verdict"] = (config.results_dir("series") / "verdict.md").read_text()
        raise KeyboardInterrupt
    monkeypatch.setattr(papermill, "execute_notebook", looks)
    with pytest.raises(KeyboardInterrupt):
        run_it(series, 3)
    assert seen["verdict"] == "made with 2 steps\n"
    assert made_files(isolated_run_dirs) == good


def test_a_table_changed_by_hand_is_not_shown_under_the_old_parameters(
        series, isolated_run_dirs, monkeypatch):
    config.results_dir("series").mkdir(parents=True)
    stand_in(monkeypatch, "done", table=True)
    run_it(series, 2)
    (config.results_dir("series") / "transfer_attack.csv").write_text("method,clean\nsource,7\n")
    run.write_summary("smoke", run.resolve_parameters("smoke", "series", {"pgd_steps": 2}), {})
    section = summary_section(isolated_run_dirs)
    assert "| source |" not in section
    assert "Not shown: `transfer_attack.csv` was changed after notebook 04 last succeeded" in (
        section)


def test_an_interrupted_notebook_keeps_the_last_good_copy(series, isolated_run_dirs,
                                                          monkeypatch):
    stand_in(monkeypatch, "done")
    run_it(series, 2)
    good = copies(isolated_run_dirs)
    stand_in(monkeypatch, "stopped")
    with pytest.raises(KeyboardInterrupt):
        run_it(series, 3)
    after = copies(isolated_run_dirs)
    assert after[f"{NOTEBOOK}.ipynb"] == good[f"{NOTEBOOK}.ipynb"]
    assert set(after) == {f"{NOTEBOOK}.ipynb", f"{NOTEBOOK}.failed.ipynb"}
    assert (config.results_dir("series") / f"made_with_{NOTEBOOK}.json").exists()


def test_a_record_without_table_digests_hides_the_table(isolated_run_dirs):
    results = config.results_dir("old")
    results.mkdir(parents=True)
    pd.DataFrame({"method": ["source"], "clean": [99.0]}).to_csv(
        results / "transfer_attack.csv", index=False)
    params = run.resolve_parameters("smoke", "old", {})
    (results / f"made_with_{NOTEBOOK}.json").write_text('{"seed": 0}')  # no "parameters"
    text = run.write_summary("smoke", params, {}).read_text()
    assert "| source | 99 |" not in text and "not known to be made with these parameters" in text

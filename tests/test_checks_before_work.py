"""Everything that can be checked before work is checked before work: seeds with the seeds
derived from them, batch sizes, run names, and writable runs and figures folders."""

from __future__ import annotations

import re

import pytest

from pdc_utils import config, run
from pdc_utils.__main__ import main

HIGHEST_SEED = 2**32 - 1 - config.DERIVED_SEED_SPAN


@pytest.mark.parametrize(("params", "message"), [
    ({"seed": HIGHEST_SEED + 1}, f"seed must be an integer in [0, {HIGHEST_SEED}], got "
                                 f"{HIGHEST_SEED + 1}"),
    ({"seed": 2**32 - 1}, f"seed must be an integer in [0, {HIGHEST_SEED}]"),
    ({"seed": 99999999999999999999}, "seed must be an integer in [0, "),
    ({"batch_size": 1}, "batch_size must be an integer >= 2 (batch normalisation needs 2 "
                        "images per batch), got 1"),
    ({"batch_size": 3, "penalty": "u"}, "batch_size must be >= 4 with penalty 'u'"),
    ({"batch_size": 2, "penalty": "u_raw"}, "batch_size must be >= 4 with penalty 'u_raw'"),
    ({"run_name": "   "}, "run_name must be a plain folder name like 'quick' (not empty or "
                          "blank"),
    ({"run_name": "a\nb"}, r"got 'a\nb'"),
    ({"run_name": "a\tb"}, "printable characters only"),
    ({"run_name": " quick"}, "no leading or trailing spaces"),
    ({"run_name": "quick "}, "no leading or trailing spaces"),
    ({"run_name": "a\x00b"}, "printable characters only"),
])
def test_problems_are_found_before_any_work(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate(params)


@pytest.mark.parametrize("params", [
    {"seed": HIGHEST_SEED}, {"seed": 0}, {"batch_size": 2, "penalty": "v"},
    {"batch_size": 4, "penalty": "u"}, {"batch_size": 2}, {"run_name": "my run 2"},
    {"run_name": "läufe"},
])
def test_values_at_the_limits_are_accepted(params):
    assert config.validate(params) == params


def _nothing_may_start(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("work started")
    monkeypatch.setattr(run, "execute_notebook", fail)
    monkeypatch.setattr("pdc_utils.training.configure", fail)


def _one_paragraph(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize(("param", "message"), [
    ("seed=4294967295", f"seed must be an integer in [0, {HIGHEST_SEED}]"),
    ("batch_size=1", "batch_size must be an integer >= 2"),
    ("batch_size=3", "batch_size must be >= 4 with penalty 'v'"),
])
def test_the_command_line_refuses_before_training(capsys, monkeypatch, isolated_run_dirs,
                                                  command, param, message):
    _nothing_may_start(monkeypatch)
    extra = ["-p", "penalty=u"] if param == "batch_size=3" else []
    message = message.replace("'v'", "'u'")
    assert main([command, "--profile", "smoke", "--no-progress", "-p", param, *extra]) == 1
    assert message in _one_paragraph(capsys.readouterr().err)
    assert not (isolated_run_dirs / "runs").exists()


@pytest.mark.parametrize("name", ["  ", "a\nb"])
def test_the_command_line_refuses_blank_or_multi_line_run_names(capsys, monkeypatch,
                                                                isolated_run_dirs, name):
    _nothing_may_start(monkeypatch)
    assert main(["train", "--profile", "smoke", "--run-name", name]) == 1
    assert "run_name must be a plain folder name" in _one_paragraph(capsys.readouterr().err)
    assert not (isolated_run_dirs / "runs").exists()


def test_train_checks_the_runs_folder_first(capsys, monkeypatch, tmp_path):
    _nothing_may_start(monkeypatch)
    (tmp_path / "runs").write_text("not a folder")
    monkeypatch.setenv("PDC_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["train", "--profile", "smoke", "--no-progress"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert f"cannot write the run folder {tmp_path / 'runs' / 'smoke'}" in err
    assert "set PDC_RUNS_DIR to a writable folder" in err


def test_run_checks_the_figures_folder_first(capsys, monkeypatch, isolated_run_dirs):
    _nothing_may_start(monkeypatch)
    figures = isolated_run_dirs / "figures"
    figures.write_text("not a folder")
    assert main(["run", "--profile", "smoke", "--no-progress"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert f"cannot write the figures folder {figures / 'smoke'}" in err
    assert "Figures are written under" in err and "set PDC_FIGURES_DIR to a writable" in err


# --- what the notebooks can use (issue 25, item 4) ------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"compare_limit": 3}, "compare_limit must be 0 (all) or an integer >= 4 (U-statistics "
                           "need 4 samples), got 3"),
    ({"compare_limit": 1}, "compare_limit must be 0 (all) or an integer >= 4"),
    ({"test_limit": 3}, "test_limit must be 0 (all) or an integer >= 4"),
    ({"eps_grid": [0.05, 0.05]}, "eps_grid must hold distinct values (one row per value in "
                                 "the tables), got [0.05, 0.05] with 0.05 more than once"),
    ({"attacks": ["fgm", "pgd", "fgm"]}, "attacks must hold distinct values"),
    ({"run_name": "r" * 300}, "at most 255 bytes: the file system's limit for a folder name), "
                              "got 'rrrrr"),
    ({"run_name": "ü" * 128}, "at most 255 bytes"),
])
def test_values_the_notebooks_cannot_use_are_refused(params, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        config.validate(params)
    assert len(str(info.value)) < 400  # a 300-character name is cut, with its length
    if params.get("run_name") == "r" * 300:
        assert "(300 characters)" in str(info.value)


@pytest.mark.parametrize("params", [
    {"compare_limit": 0}, {"compare_limit": 4}, {"test_limit": 0}, {"test_limit": 4},
    {"eps_grid": [0.05, 0.1]}, {"run_name": "r" * 255}, {"run_name": "ü" * 127},
])
def test_the_smallest_usable_values_are_accepted(params):
    assert config.validate(params) == params


@pytest.mark.parametrize(("folder", "what"), [("results", "results"), ("models", "models")])
def test_run_checks_the_results_and_models_folders_first(capsys, monkeypatch, isolated_run_dirs,
                                                         folder, what):
    _nothing_may_start(monkeypatch)
    run_folder = isolated_run_dirs / "runs" / "smoke"
    run_folder.mkdir(parents=True)
    (run_folder / folder).write_text("not a folder")  # as unwritable as a read-only folder
    assert main(["run", "--profile", "smoke", "--no-progress", "--notebooks", "04"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert f"cannot write the {what} folder {run_folder / folder}" in err


def _recorded_run(name: str, profile: str = "smoke") -> None:
    from pdc_utils import run_record

    run_record.write({**config.profile(profile), "run_name": name}, "02_baseline_training")


def test_a_dataset_other_than_the_runs_is_named_before_any_download(capsys, monkeypatch,
                                                                    isolated_run_dirs):
    _nothing_may_start(monkeypatch)

    def no_download(*args, **kwargs):
        raise AssertionError("a dataset was loaded")
    monkeypatch.setattr("pdc_utils.data.load_split", no_download)
    _recorded_run("digits_run")
    assert main(["run", "--profile", "smoke", "--run-name", "digits_run", "--notebooks", "04",
                 "-p", "dataset=cifar10", "--no-progress"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert "dataset = 'digits' (this command: 'cifar10')" in err


def test_a_run_of_another_profile_is_named_as_such(capsys, monkeypatch, isolated_run_dirs):
    _nothing_may_start(monkeypatch)
    _recorded_run("mine", "smoke")
    assert main(["run", "--profile", "quick", "--run-name", "mine", "--notebooks", "04",
                 "--no-progress"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert "Run 'mine' was trained with profile 'smoke': give --profile smoke." in err


@pytest.mark.parametrize("content", ["[1, 2]", "3", "{not json"])
def test_a_run_record_of_the_wrong_shape_is_damaged_not_a_traceback(capsys, monkeypatch,
                                                                    isolated_run_dirs, content):
    _nothing_may_start(monkeypatch)
    record = isolated_run_dirs / "runs" / "smoke" / "run.json"
    record.parent.mkdir(parents=True)
    record.write_text(content)
    assert main(["run", "--profile", "smoke", "--notebooks", "04", "--no-progress"]) == 1
    err = _one_paragraph(capsys.readouterr().err)
    assert f"{record} is damaged (" in err and "run 02_baseline_training.ipynb" in err


def test_the_summary_names_damaged_records_instead_of_failing(isolated_run_dirs):
    params = run.resolve_parameters("smoke", "sum", {})
    results, models = config.results_dir("sum"), config.models_dir("sum")
    results.mkdir(parents=True)
    models.mkdir(parents=True)
    (results / "environment.json").write_text("[1]")
    (results / "made_with_04_attack_evaluation.json").write_text("[]")
    (results / "transfer_attack.csv").write_text("method,clean\nsource,99\n")
    (models / "f1.json").write_text('["trained_on"]')
    text = run.write_summary("smoke", params, {}).read_text()
    assert f"device: not known: {results / 'environment.json'} is damaged (a JSON list" in text
    assert "Not shown: `transfer_attack.csv` was not known to be made with these" in text
    assert "networks trained under: not recorded" in text

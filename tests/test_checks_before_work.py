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

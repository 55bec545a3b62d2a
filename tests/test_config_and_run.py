"""Profiles, parameter validation and the command line (without executing notebooks)."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest

from pdc_utils import config, quiet, run
from pdc_utils.__main__ import main


def test_every_profile_is_valid_and_complete():
    keys = set(config.profile("quick"))
    for name in config.PROFILES:
        params = config.profile(name)
        assert config.validate(params) == params
        assert set(params) == keys, f"profile {name} has different parameters from quick"
        assert params["run_name"] == name


def test_cifar10_profile_has_the_seed_hyper_parameters():
    p = config.profile("cifar10")
    assert (p["dataset"], p["network"], p["width"]) == ("cifar10", "resnet18", 64)
    assert (p["epochs"], p["batch_size"], p["schedule"]) == (200, 128, "cosine")
    assert (p["learning_rate"], p["momentum"], p["weight_decay"], p["alpha"]) == (
        0.1, 0.9, 5e-4, 0.05)
    assert p["eps_grid"] == [0.03, 0.05, 0.1] and p["pgd_steps"] == 40 and p["pgd_step"] == 0.01
    # what the paper's code ran (reference/original_code.md)
    assert (p["design"], p["n_nets"], p["penalty"], p["augment"]) == ("paper_code", 3, "v", False)


def test_imagenet_profile_follows_the_original_recipe():
    p = config.profile("imagenet2012")
    assert (p["design"], p["batch_size"], p["weight_decay"], p["epochs"], p["schedule"]) == (
        "paper_code", 128, 5e-4, 40, "step")
    assert (p["augment"], p["alpha"], p["penalty"]) == (False, 0.05, "v")


def test_validate_knows_the_kind_of_every_profile_parameter():
    for name in config.PROFILES:
        assert set(config.profile(name)) <= set(config.parameter_names()), name


BAD_PARAMETERS = [
    ({"dataset": "mnist"}, "valid choices: digits, cifar10"),
    ({"dataset": ["digits"]}, "dataset must be one of the valid choices"),
    ({"network": "vgg16"}, "valid choices: resnet18"),
    ({"alpha": -0.1}, "alpha must be a number >= 0"),
    ({"alpha": float("nan")}, "alpha must be a number >= 0 and finite"),
    ({"alpha": True}, "alpha must be a number"),
    ({"learning_rate": float("inf")}, "learning_rate must be a number > 0 and finite"),
    ({"learning_rate": float("nan")}, "learning_rate must be a number > 0 and finite"),
    ({"learning_rate": "0.1"}, "learning_rate must be a number > 0"),
    ({"pgd_step": 0}, "pgd_step must be a number > 0"),
    ({"momentum": 1.0}, "momentum must be a number in [0, 1)"),
    ({"weight_decay": -1e-4}, "weight_decay must be a number in [0, 1)"),
    ({"eps_grid": [0.0, 0.1]}, "in (0, 1]"),
    ({"eps_grid": [1.5]}, "in (0, 1]"),
    ({"eps_grid": 0.05}, "eps_grid must be a non-empty list, each element a number in (0, 1] "
                         "and finite, got 0.05 (float, not a list)"),
    ({"eps_grid": [0.05, float("nan")]}, "(bad: nan)"),
    ({"eps_grid": []}, "eps_grid must be a non-empty list"),
    ({"attacks": ["fgm", "cw"]}, "valid choices: fgm, pgd, got ['fgm', 'cw'] (bad: 'cw')"),
    ({"attacks": "fgm"}, "attacks must be a non-empty list, each element one of the valid "
                         "choices: fgm, pgd, got 'fgm' (str, not a list)"),
    ({"attacks": 1}, "choices: fgm, pgd, got 1 (int, not a list)"),
    ({"attacks": [1]}, "(bad: 1)"),
    ({"protocol": "linf"}, "valid choices: pixel, paper"),
    ({"schedule": "linear"}, "valid choices: cosine, step, constant"),
    ({"design": "paper"}, "design must be one of the valid choices: reference, paper_code"),
    ({"penalty": "w"}, "penalty must be one of the valid choices: v, u"),
    ({"augment": "True"}, "augment must be True or False (a boolean, not a string), got 'True'"),
    ({"feature_norm": 1}, "feature_norm must be True or False"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": 3.0}, "epochs must be a positive integer, got 3.0"),
    ({"epochs": True}, "epochs must be a positive integer, got True"),
    ({"width": "16"}, "width must be a positive integer"),
    ({"test_limit": -1}, "test_limit must be 0 (all) or an integer >= 4 (U-statistics need 4 "
                         "samples)"),
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"n_seeds": 0}, "n_seeds must be a positive integer"),
    ({"n_nets": 1}, "n_nets must be an integer >= 2"),
    ({"n_bootstrap": 0}, "n_bootstrap must be a positive integer"),
    ({"n_demo": 3}, "n_demo must be an integer >= 4"),
    ({"n_grid": [5, 2]}, "n_grid must be a non-empty list, each element an integer >= 4"),
    ({"n_grid": 5}, "n_grid must be a non-empty list"),
    ({"bench_sizes": [64, "128"]}, "(bad: '128')"),
    ({"bench_dim": 0}, "bench_dim must be a positive integer"),
    ({"run_name": "../x"}, "plain folder name"),
    ({"run_name": ""}, "run_name must be a plain folder name like 'quick' (not empty"),
    ({"attacks": ["pgd"], "eps_grid": [0.03, 0.1], "pgd_step": 0.05},
     "pgd_step must not exceed the smallest eps of eps_grid"),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_rejected_with_the_valid_choices(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate(params)


def test_seed_error_does_not_claim_zero_means_all():
    with pytest.raises(ValueError) as info:
        config.validate({"seed": -1})
    assert "means all" not in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as info:
        config.validate({"epochs": 0, "augment": "yes", "eps_grid": 0.1})
    assert [line.split()[0] for line in str(info.value).splitlines()] == [
        "epochs", "augment", "eps_grid"]


def test_numpy_numbers_tuples_and_unknown_keys_are_accepted():
    params = {"epochs": np.int64(3), "learning_rate": np.float32(0.1), "eps_grid": (0.03, 0.1),
              "alpha": 0, "references": ["digest"]}
    assert config.validate(params) == params


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid profiles: quick, smoke, cifar10"):
        config.profile("huge")


def test_paths_follow_the_environment(isolated_run_dirs):
    assert config.run_dir("a") == (isolated_run_dirs / "runs" / "a").resolve()
    assert config.figures_dir("a") == (isolated_run_dirs / "figures" / "a").resolve()
    missing = config.models_dir("a") / "f1.keras"
    with pytest.raises(FileNotFoundError, match="run notebook 02_baseline_training.ipynb first"):
        config.require(missing, "02_baseline_training")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("epochs=3", ("epochs", 3)), ("eps_grid=[0.03, 0.1]", ("eps_grid", [0.03, 0.1])),
     ("dataset=cifar10", ("dataset", "cifar10")), ("feature_norm=False", ("feature_norm", False)),
     ("attacks=fgm", ("attacks", ["fgm"])), ("eps_grid=0.05", ("eps_grid", [0.05])),
     ("eps_grid=0.03,0.1", ("eps_grid", [0.03, 0.1])), ("attacks=1", ("attacks", [1])),
     ("augment=True", ("augment", True)), ("augment=true", ("augment", "true"))],
)
def test_parse_override(text, expected):
    assert run.parse_override(text) == expected


def test_parse_override_rejects_missing_equals():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        run.parse_override("epochs")


def test_overrides_are_checked_before_anything_runs(isolated_run_dirs):
    with pytest.raises(ValueError, match="unknown parameters"):
        run.resolve_parameters("quick", None, {"epoch": 3})
    with pytest.raises(ValueError, match="valid choices"):
        run.resolve_parameters("quick", None, {"dataset": "mnist"})
    params = run.resolve_parameters("smoke", "mine", {"epochs": 2})
    assert params["epochs"] == 2 and params["run_name"] == "mine"
    assert not (isolated_run_dirs / "runs").exists()


def test_select_notebooks_in_order_and_rejects_unknown_numbers(tmp_path):
    for name in ("01_a", "02_b", "03_c", "notes"):
        _notebook(tmp_path / f"{name}.ipynb", ["seed: int = 0  # seed"])
    chosen = run.select_notebooks(["03", "2"], tmp_path)
    assert [p.name for p in chosen] == ["02_b.ipynb", "03_c.ipynb"]
    assert len(run.select_notebooks(None, tmp_path)) == 3
    with pytest.raises(ValueError, match="unknown notebooks"):
        run.select_notebooks(["09"], tmp_path)


def _notebook(path, source_cells):
    cells = []
    for i, source in enumerate(source_cells):
        cell = {"cell_type": "code", "execution_count": None, "id": f"c{i}",
                "metadata": {"tags": ["parameters"]} if i == 0 else {}, "outputs": [],
                "source": source}
        cells.append(cell)
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.mark.notebook
def test_failing_notebook_stops_the_run_and_says_where(isolated_run_dirs):
    notebooks = isolated_run_dirs / "nbs"
    notebooks.mkdir()
    _notebook(notebooks / "01_ok.ipynb", ["seed: int = 0  # seed", "print(seed)"])
    _notebook(notebooks / "02_bad.ipynb", ["seed: int = 0  # seed", "x = 1", "1 / 0"])
    _notebook(notebooks / "03_never.ipynb", ["seed: int = 0  # seed", "print('ran')"])
    with pytest.raises(run.RunError) as info:
        run.run_series("smoke", run_name="failing", directory=notebooks, progress=False)
    message = str(info.value)
    assert "02_bad.ipynb" in message and "ZeroDivisionError" in message
    assert "cell [4] (`1 / 0`)" in message  # papermill adds the injected-parameters cell
    out = isolated_run_dirs / "runs" / "failing" / "notebooks"
    assert str(out / "02_bad.failed.ipynb") in message and not (out / "02_bad.ipynb").exists()
    assert (out / "01_ok.ipynb").exists() and not (out / "03_never.ipynb").exists()


def test_command_line_lists_profiles(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in config.PROFILES:
        assert f"{name}:" in out
    assert "alpha = 0.05" in out


@pytest.mark.parametrize(
    ("param", "message"),
    [("alpha=-1", "alpha must be a number >= 0"),
     ("attacks=1", "attacks must be a non-empty list"),
     ("eps_grid=[0.05, 'x']", "(bad: 'x')"),
     ("learning_rate=inf", "learning_rate must be a number > 0 and finite, got 'inf'"),
     ("augment=true", "augment must be True or False")],
)
def test_command_line_reports_bad_parameters(capsys, isolated_run_dirs, param, message):
    assert main(["run", "--profile", "smoke", "-p", param]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (isolated_run_dirs / "runs").exists()


def test_command_line_turns_one_value_into_a_list(isolated_run_dirs):
    overrides = dict(run.parse_override(p) for p in ["attacks=fgm", "eps_grid=0.05"])
    params = run.resolve_parameters("smoke", None, overrides)
    assert params["attacks"] == ["fgm"] and params["eps_grid"] == [0.05]


def _no_notebook_may_run(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a notebook was started")
    monkeypatch.setattr(run, "execute_notebook", fail)


def _single_paragraph(err):
    return err.strip() and "\n\n" not in err.strip() and "Traceback" not in err


def test_command_line_reports_a_run_folder_that_is_a_file(capsys, monkeypatch, tmp_path):
    _no_notebook_may_run(monkeypatch)
    (tmp_path / "runs").write_text("not a folder")
    monkeypatch.setenv("PDC_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["run", "--profile", "smoke", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert _single_paragraph(err)
    assert f"cannot write the run folder {tmp_path / 'runs' / 'smoke' / 'notebooks'}" in err
    assert "set PDC_RUNS_DIR to a writable folder" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (not root)")
def test_command_line_reports_a_read_only_run_folder(capsys, monkeypatch, tmp_path):
    _no_notebook_may_run(monkeypatch)
    runs = tmp_path / "runs"
    (runs / "smoke" / "notebooks").mkdir(parents=True)
    (runs / "smoke" / "notebooks").chmod(0o555)
    monkeypatch.setenv("PDC_RUNS_DIR", str(runs))
    try:
        assert main(["run", "--profile", "smoke"]) == 1
    finally:
        (runs / "smoke" / "notebooks").chmod(0o755)
    assert "cannot write the run folder" in capsys.readouterr().err


def test_run_folder_check_catches_a_folder_it_cannot_write_to(monkeypatch, isolated_run_dirs):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(run.tempfile, "TemporaryFile", refuse)
    with pytest.raises(run.RunError, match=r"cannot write the run folder .* \(Permission denied"):
        run.writable_output_dir("smoke")


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [(KeyboardInterrupt(), 130, "interrupted; rerun the same command to resume\n"),
     (run.Terminated(signal.SIGTERM), 143, "interrupted; rerun the same command to resume\n"),
     (OSError(28, "No space left on device"), 1, "No space left on device")],
)
def test_command_line_stops_without_a_traceback(capsys, monkeypatch, isolated_run_dirs,
                                                error, status, message):
    def stop(*args, **kwargs):
        raise error
    monkeypatch.setattr(run, "run_series", stop)
    assert main(["run", "--profile", "smoke"]) == status
    err = capsys.readouterr().err
    assert _single_paragraph(err) and message in err
    if status == 130:
        assert err == message


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--notebooks", ","], "no notebook numbers in the selection"),
     (["--notebooks", ""], "no notebook numbers in the selection"),
     (["--run-name", ""], "run_name must be a plain folder name")],
)
def test_command_line_rejects_empty_selections_and_names(capsys, monkeypatch,
                                                         isolated_run_dirs, args, message):
    _no_notebook_may_run(monkeypatch)
    assert main(["run", "--profile", "smoke", *args]) == 1
    assert message in capsys.readouterr().err
    assert not (isolated_run_dirs / "runs").exists()


def _previous_handler(signum, frame):
    """A stand-in for whatever SIGTERM handler the caller had."""


@pytest.fixture
def sigterm_handler():
    """Install ``_previous_handler`` for SIGTERM during the test, then put the original back."""
    original = signal.signal(signal.SIGTERM, _previous_handler)
    yield
    signal.signal(signal.SIGTERM, original)


def test_sigterm_raises_inside_the_block_and_the_old_handler_comes_back(sigterm_handler):
    with pytest.raises(run.Terminated) as info, run.sigterm_raises():
        assert signal.getsignal(signal.SIGTERM) is not _previous_handler
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at the next bytecode; never reached
    assert info.value.signal == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is _previous_handler


@pytest.mark.parametrize("outcome", ["done", "terminated"])
def test_run_series_runs_notebooks_with_the_sigterm_handler(sigterm_handler, monkeypatch,
                                                            isolated_run_dirs, outcome):
    notebooks = isolated_run_dirs / "nbs"
    notebooks.mkdir()
    _notebook(notebooks / "01_a.ipynb", ["seed: int = 0  # seed"])
    seen = []

    def execute(path, output, params, progress):
        seen.append(signal.getsignal(signal.SIGTERM))
        if outcome == "terminated":
            raise run.Terminated(signal.SIGTERM)
        return 0.0
    monkeypatch.setattr(run, "execute_notebook", execute)
    if outcome == "done":
        run.run_series("smoke", run_name="sig", directory=notebooks, progress=False)
    else:
        with pytest.raises(run.Terminated):
            run.run_series("smoke", run_name="sig", directory=notebooks, progress=False)
    assert seen and seen[0] is not _previous_handler and seen[0] is not signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is _previous_handler


def test_start_up_noise_is_cut_and_real_errors_pass(capfd):
    import subprocess
    import sys

    lines = ("WARNING: All log messages before absl::InitializeLog() is called are written\\n"
             "I0000 00:00:1.5 22 port.cc:153] oneDNN custom operations are on.\\n"
             "bar 3/19\\rE0000 00:00:1.7 23 cuda_platform.cc:52] failed call to cuInit: 303\\n"
             "W0000 00:00:1.8 25 dataset.cc:997] Input of GeneratorDatasetOp::Dataset will "
             "not be optimized because ...\\n"
             "E0000 00:00:1.8 24 real.cc:9] a real error\\n")
    with quiet.start_up_noise_filtered():
        subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write('{lines}')"],
                       check=True)
    err = capfd.readouterr().err
    assert "a real error" in err and "bar 3/19" in err
    assert "oneDNN" not in err and "cuInit" not in err and "absl" not in err
    assert "GeneratorDatasetOp" not in err


def test_summary_shows_only_tables_made_with_its_parameters(isolated_run_dirs):
    params = run.resolve_parameters("smoke", "mixed", {})
    results = config.results_dir("mixed")
    results.mkdir(parents=True)
    pd.DataFrame({"model": ["f1"], "dcor_sqr": [1.0]}).to_csv(results / "feature_dcor.csv",
                                                              index=False)
    pd.DataFrame({"method": ["source"], "clean": [99.0]}).to_csv(
        results / "transfer_attack.csv", index=False)
    run.record_parameters("mixed", "03_diverge_training", {**params, "width": 4})
    run.record_parameters("mixed", "04_attack_evaluation", {**params, "width": 8})
    text = run.write_summary("smoke", {**params, "width": 8}, {}).read_text()
    assert "| source | 99 |" in text  # made with this run's parameters: shown
    dcor_section = text.split("dCor² of penultimate features")[1][:400]
    assert "Not shown" in dcor_section and "'width': 4" in dcor_section
    assert "--notebooks 03" in dcor_section


def test_summary_says_where_the_networks_were_trained(isolated_run_dirs):
    from pdc_utils import artifacts

    params = run.resolve_parameters("smoke", "where", {})
    models = config.models_dir("where")
    for name, workers in (("f1", 2), ("f2_diverge", 2), ("f2_baseline", 1)):
        artifacts.write_json_atomic(models / f"{name}.json", {"trained_on": {
            "strategy": "S", "replicas": 2, "workers": workers}})
    text = run.write_summary("smoke", params, {}).read_text()
    assert ("- networks trained under: f1, f2_diverge: S, 2 replica(s) on 2 worker(s); "
            "f2_baseline: S, 2 replica(s) on 1 worker(s)") in text

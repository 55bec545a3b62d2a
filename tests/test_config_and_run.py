"""Profiles, parameter validation and the command line (without executing notebooks)."""

from __future__ import annotations

import json

import pytest

from pdc_utils import config, run
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


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dataset": "mnist"}, "valid choices: digits, cifar10"),
        ({"network": "vgg16"}, "valid choices: resnet18"),
        ({"alpha": -0.1}, "alpha must be a number >= 0"),
        ({"eps_grid": [0.0, 0.1]}, "(0, 1]"),
        ({"eps_grid": [1.5]}, "(0, 1]"),
        ({"attacks": ["fgm", "cw"]}, "valid choices: fgm, pgd"),
        ({"protocol": "linf"}, "valid choices: pixel, paper"),
        ({"schedule": "linear"}, "valid choices: cosine, step, constant"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"test_limit": -1}, "non-negative"),
        ({"run_name": "../x"}, "plain folder name"),
    ],
)
def test_bad_parameters_are_rejected_with_the_valid_choices(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        config.validate(params)


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid profiles: quick, smoke, cifar10"):
        config.profile("huge")


def test_paths_follow_the_environment(isolated_run_dirs):
    assert config.run_dir("a") == (isolated_run_dirs / "runs" / "a").resolve()
    assert config.figures_dir("a") == (isolated_run_dirs / "figures" / "a").resolve()
    missing = config.models_dir("a") / "f1.keras"
    with pytest.raises(FileNotFoundError, match="run notebooks/02_baseline_training.ipynb"):
        config.require(missing, "02_baseline_training")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("epochs=3", ("epochs", 3)), ("eps_grid=[0.03, 0.1]", ("eps_grid", [0.03, 0.1])),
     ("dataset=cifar10", ("dataset", "cifar10")), ("feature_norm=False", ("feature_norm", False))],
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
    assert str(out / "02_bad.ipynb") in message
    assert (out / "01_ok.ipynb").exists() and not (out / "03_never.ipynb").exists()


def test_command_line_lists_profiles(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in config.PROFILES:
        assert f"{name}:" in out
    assert "alpha = 0.05" in out


def test_command_line_reports_bad_parameters(capsys, isolated_run_dirs):
    assert main(["run", "--profile", "smoke", "-p", "alpha=-1"]) == 1
    assert "alpha must be a number >= 0" in capsys.readouterr().err

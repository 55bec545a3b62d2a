"""Training shows its progress as it happens: a line per network with its name, role, epochs
and time, growing by an accuracy per epoch (JupyterLab and papermill show plain lines as they
come; no progress bar whose redraws would fill an executed notebook)."""

from __future__ import annotations

import re

import pytest

from pdc_utils import config, experiment, training

# these tests are about what follows a training (names, reuse, refusals, progress lines):
# the smoke networks' few steps run eagerly (conftest.eager_steps)
pytestmark = pytest.mark.usefixtures("eager_steps")


def test_a_smoke_training_prints_a_line_per_network(isolated_run_dirs, capsys):
    params = config.validate({**config.profile("smoke"), "run_name": "progress"})
    training.configure(params["seed"])
    exp = experiment.Experiment(params, progress=True)
    attackers = exp.attackers()
    baselines = exp.baselines(attackers["f1"])
    lines = capsys.readouterr().out.splitlines()
    names = [*attackers, *baselines]
    assert names == ["f1", "f1_a1", "f2_baseline", "f2_baseline_s1"]
    pattern = re.compile(r"^(\S+) \((attacker|baseline)\): 1 epoch; validation accuracy after "
                         r"each: \d+ % - done in \d+\.\d s$")
    trained = [m.groups() for m in map(pattern.match, lines) if m]
    assert trained == [("f1", "attacker"), ("f1_a1", "attacker"), ("f2_baseline", "baseline"),
                       ("f2_baseline_s1", "baseline")], lines
    assert not [line for line in lines if "\r" in line or "it/s" in line]  # no bar redraws

    exp.attackers()  # trained already: reused, and said so, one line per network
    again = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in again] == ["f1", "f1_a1"]
    assert all("reusing" in line for line in again)


def test_an_interleaved_group_prints_a_line_per_epoch(isolated_run_dirs, capsys):
    params = config.validate({**config.profile("smoke"), "run_name": "chain",
                              "design": "paper_code", "n_seeds": 1, "n_nets": 2, "epochs": 2})
    training.configure(params["seed"])
    exp = experiment.Experiment(params, progress=True)
    exp.baselines(exp.attackers()["f1"])
    out = capsys.readouterr().out
    assert "training f2_baseline (baseline), f2_diverge (diverged) interleaved, 2 epochs " \
           "each\n" in out
    assert re.search(r"\n  epoch 1/2: f2_baseline \d+ %, f2_diverge \d+ % \(\d+\.\d s\)\n"
                     r"  epoch 2/2: f2_baseline \d+ %, f2_diverge \d+ % \(\d+\.\d s\)\n"
                     r"f2_baseline, f2_diverge: done in \d+\.\d s\n", out), out


def test_no_progress_prints_nothing_for_a_training(isolated_run_dirs, capsys):
    params = config.validate({**config.profile("smoke"), "run_name": "quiet", "n_attackers": 1})
    training.configure(params["seed"])
    experiment.Experiment(params, progress=False).attackers()
    assert capsys.readouterr().out == ""

"""The study end to end on the smoke profile: both stages trained, scored and reported by the
command line; the same plan by one process and by three concurrent shards (given by
--shard, the Slurm array variables and a Kubernetes completion index) gives identical
tables; a shard killed mid-training and started again finishes the plan with the same
numbers. Slow (tens of minutes of training on 2 cores): marked ``slow``, so ``make test``
leaves it to ``make test-all`` and ``make test-study E2E=1``."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

CONFIRM = ["-p", "settings=reference,control,grad_align"]


def study(action, stage, folder, *extra, env=None, wait=True):
    command = [sys.executable, "-m", "pdc_utils", "study", action, "--stage", stage,
               "--profile", "smoke", "--dir", str(folder), *extra]
    environment = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    done = subprocess.run(command, env=environment, capture_output=True, text=True,
                          timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def tables(folder, stem="diverge_confirm"):
    results = Path(folder) / "results"
    return {name: pd.read_csv(results / f"{stem}{name}.csv")
            for name in ("", "_differences", "_contrasts")}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """Both stages of the smoke study by one process each; the folder."""
    folder = tmp_path_factory.mktemp("study")
    study("run", "select", folder)
    out = study("report", "select", folder)
    assert "## What the rules chose" in out
    assert (folder / "results" / "diverge_selection.json").exists()
    study("run", "confirm", folder, *CONFIRM)
    study("report", "confirm", folder, *CONFIRM)
    return folder


def test_both_stages_end_to_end(one_process):
    results = one_process / "results"
    study_table = pd.read_csv(results / "diverge_study.csv")
    assert set(study_table["role"]) == {"baseline", "diverge"}
    assert study_table["cell"].str.contains("_k1").any()  # phase 2 was trained
    confirm = tables(one_process)
    assert list(dict.fromkeys(confirm[""]["setting"])) == ["reference", "control",
                                                           "grad_align"]
    assert set(confirm[""]["train_seed"]) >= {5001, 5002, 5003}
    assert (results / "diverge_confirm.md").read_text().count("| reference |") >= 3


def test_three_shards_give_the_tables_of_one_process(one_process, tmp_path):
    selection = one_process / "results" / "diverge_selection.json"
    options = [*CONFIRM, "-p", f"selection={selection}"]
    shards = [
        study("run", "confirm", tmp_path, *options, "--shard", "0/3", wait=False),
        study("run", "confirm", tmp_path, *options, wait=False,
              env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}),
        study("run", "confirm", tmp_path, *options, wait=False,
              env={"JOB_COMPLETION_INDEX": "2", "PDC_STUDY_SHARDS": "3"}),
    ]
    outputs = [p.communicate(timeout=3600)[0] for p in shards]
    assert all(p.returncode == 0 for p in shards), "\n".join(o[-2000:] for o in outputs)
    assert [f"shard {k}/3:" in out for k, out in enumerate(outputs)] == [True] * 3
    study("report", "confirm", tmp_path, *options)
    for name, table in tables(tmp_path).items():
        pd.testing.assert_frame_equal(table, tables(one_process)[name], obj=name)


def test_a_killed_shard_restarted_finishes_the_plan(one_process, tmp_path):
    selection = one_process / "results" / "diverge_selection.json"
    options = ["-p", "settings=reference", "-p", f"selection={selection}", "-p", "epochs=3"]
    reference = tmp_path / "uninterrupted"
    study("run", "confirm", reference, *options)
    study("report", "confirm", reference, *options)

    killed = tmp_path / "killed"
    shard = study("run", "confirm", killed, *options, "--shard", "0/1", wait=False)
    deadline = time.time() + 1800
    while not list(killed.glob("*/backup/*/state.json")):  # a training between two epochs
        assert shard.poll() is None and time.time() < deadline, "no training to interrupt"
        time.sleep(0.2)
    os.kill(shard.pid, signal.SIGKILL)
    shard.wait()
    with pytest.raises(AssertionError, match="jobs are not done"):
        study("report", "confirm", killed, *options)
    out = study("run", "confirm", killed, *options, "--shard", "0/1")
    assert "done" in out
    study("report", "confirm", killed, *options)
    for name, table in tables(killed).items():
        pd.testing.assert_frame_equal(table, tables(reference)[name], obj=name)

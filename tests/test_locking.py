"""One process per run: a second ``run``/``train`` on a run stops at once, naming the holder;
the lock of a killed process is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pdc_utils import config, distribute, locking, run
from pdc_utils.__main__ import main

HOLD = textwrap.dedent("""
    import sys, time
    from pdc_utils import locking
    with locking.run_lock(sys.argv[1], "train"):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(isolated_run_dirs):
    """Another process that holds the lock of run 'busy' until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, "busy"], stdout=subprocess.PIPE,
                               text=True, env={**os.environ})
    assert process.stdout.readline() == "locked\n"
    yield process
    process.kill()
    process.wait()


def one_paragraph(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_a_second_process_on_the_run_stops_at_once_naming_the_first(holder):
    with pytest.raises(locking.RunInUse) as info, locking.run_lock("busy", "run"):
        pytest.fail("the lock was taken twice")
    message = str(info.value)
    assert message.startswith(f"run 'busy' is in use by process {holder.pid} (started ")
    assert "`python -m pdc_utils train`" in message and "on host" not in message
    with locking.run_lock("other", "run"):  # another run is free
        pass


@pytest.mark.parametrize("command", ["run", "train"])
def test_the_command_line_says_the_run_is_in_use(holder, capsys, monkeypatch, command):
    def fail(*args, **kwargs):
        raise AssertionError("work started although the run is in use")
    monkeypatch.setattr(run, "execute_notebook", fail)
    monkeypatch.setattr("pdc_utils.training.configure", fail, raising=False)
    assert main([command, "--profile", "smoke", "--run-name", "busy", "--no-progress"]) == 1
    err = one_paragraph(capsys.readouterr().err)
    assert f"run 'busy' is in use by process {holder.pid} (started " in err


def test_the_lock_of_a_killed_process_is_taken_over(holder):
    record = json.loads((config.run_dir("busy") / locking.LOCK_NAME).read_text())
    assert record["pid"] == holder.pid and record["command"] == "train"
    holder.kill()
    holder.wait()
    with locking.run_lock("busy", "run") as path:
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["command"] == "run"
    assert path.read_text() == ""  # released: no record names a holder
    with locking.run_lock("busy", "run"):  # and it can be taken again
        pass


def test_a_holder_on_another_host_is_named(isolated_run_dirs, monkeypatch):
    with locking.run_lock("far", "train") as path:
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "host": "node7", "pid": 4242}))
        with pytest.raises(locking.RunInUse, match="in use by process 4242 on host node7 "
                                                    r"\(started "):
            with locking.run_lock("far", "run"):
                pass


@pytest.mark.parametrize(("cluster", "task", "chief"), [
    ({"worker": ["a", "b"]}, ("worker", 0), True),
    ({"worker": ["a", "b"]}, ("worker", 1), False),
    ({"chief": ["c"], "worker": ["a", "b"]}, ("chief", 0), True),
    ({"chief": ["c"], "worker": ["a", "b"]}, ("worker", 0), False),
])
def test_only_the_chief_of_a_cluster_writes(cluster, task, chief):
    spec = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
    assert distribute.is_chief_task(spec) is chief


def test_other_workers_of_a_multi_worker_training_do_not_take_the_lock(holder, monkeypatch):
    from pdc_utils import training

    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached
    monkeypatch.setattr(training, "configure", reached)
    spec = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
            "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(spec))
    with pytest.raises(Reached):  # worker 1 goes on to start training: the chief holds the lock
        run.train_networks("smoke", run_name="busy", overrides={"strategy": "multi_worker"},
                           progress=False)


# --- issue 25: training takes the lock too, on the notebook path -------------------------


def test_training_outside_run_or_train_takes_the_lock(holder):
    with pytest.raises(locking.RunInUse, match=f"in use by process {holder.pid} "), \
            locking.training_lock("busy"):
        pytest.fail("trained into a run in use")
    with locking.training_lock("free") as held:  # a free run is locked while it trains
        assert held is None
        record = json.loads((config.run_dir("free") / locking.LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and "training networks" in record["command"]


def test_run_and_train_and_the_kernels_run_starts_train_under_their_lock(isolated_run_dirs):
    probe = ("from pdc_utils import locking\n"
             "with locking.training_lock('mine'):\n"
             "    print('trained')")
    with locking.run_lock("mine", "run"):
        with locking.training_lock("mine"):  # this process holds it: no second lock
            pass
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert child.stdout == "trained\n", child.stderr  # a kernel `run` started
        # a process that only claims the runner's variable (not its child) is refused
        grandchild = subprocess.run(
            [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.run("
             f"[sys.executable, '-c', {probe!r}]).returncode)"], capture_output=True, text=True)
        assert grandchild.returncode != 0 and "RunInUse" in grandchild.stderr
    assert locking.HELD_BY_PARENT not in os.environ


def test_an_experiment_trains_under_the_runs_lock(holder, monkeypatch):
    """What notebooks 02 and 03 call to train (Experiment) refuses a run in use before any
    training step."""
    from pdc_utils import experiment, training

    def trained(*args, **kwargs):
        raise AssertionError("trained into a run in use")
    monkeypatch.setattr(training, "train_group", trained)
    exp = experiment.Experiment({**config.profile("smoke"), "run_name": "busy"}, progress=False)
    with pytest.raises(locking.RunInUse, match=f"in use by process {holder.pid} .*run_name in "
                                               "a notebook's parameters cell"):
        exp.attacker()

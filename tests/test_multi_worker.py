"""Several machines: ``MultiWorkerMirroredStrategy`` with worker processes on 127.0.0.1.

Two workers (one replica each) train the smoke run to the same weights as one process with
two logical CPUs and the same global batch; a run whose second worker is killed resumes, when
both are started again, from the chief's backup and ends with the same weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TRAIN = ["-m", "pdc_utils", "train", "--profile", "smoke", "--run-name", "mw", "--no-progress",
         "-p", "epochs=2", "-p", "n_seeds=1"]
NETWORKS = ("f1", "f2_baseline", "f2_diverge")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def environment(runs: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "PDC_LOGICAL_CPUS")}
    return {**env, "PDC_RUNS_DIR": str(runs), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def start_workers(runs: Path) -> list[subprocess.Popen]:
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        spec = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        workers.append(subprocess.Popen(
            [sys.executable, *TRAIN, "-p", "strategy=multi_worker"],
            env=environment(runs, TF_CONFIG=json.dumps(spec)), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    return workers


def finish(workers: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, out[-3000:]
        outputs.append(out)
    return outputs


def weights(runs: Path) -> dict[str, list[np.ndarray]]:
    import keras

    return {name: keras.models.load_model(runs / "mw" / "models" / f"{name}.keras").get_weights()
            for name in NETWORKS}


def assert_same_networks(a: Path, b: Path) -> None:
    """Same weights, histories and parameters; ``b`` was trained by two workers."""
    for name, (left, right) in {n: (weights(a)[n], weights(b)[n]) for n in NETWORKS}.items():
        assert len(left) == len(right), name
        for x, y in zip(left, right, strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-7, err_msg=name)
        history = f"results/history_{name}.csv"
        assert (a / "mw" / history).read_text() == (b / "mw" / history).read_text(), history
        params = [json.loads((run / "mw" / "models" / f"{name}.json").read_text())
                  for run in (a, b)]
        assert params[0].pop("trained_on") == {"strategy": "mirrored", "replicas": 2,
                                               "workers": 1}
        assert params[1].pop("trained_on") == {"strategy": "multi_worker", "replicas": 2,
                                               "workers": 2}
        assert params[0] == params[1]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: one process, two logical CPUs, the same global batch."""
    runs = tmp_path_factory.mktemp("one_process")
    done = subprocess.run([sys.executable, *TRAIN, "-p", "strategy=mirrored"],
                          env=environment(runs, PDC_LOGICAL_CPUS="2"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mirrored (2 replica(s))" in done.stdout
    return runs


# the killed-worker test ends with this same comparison after its resume: slow (make test-all)
@pytest.mark.slow
def test_two_workers_train_to_the_weights_of_one_process(one_process, tmp_path):
    outputs = finish(start_workers(tmp_path))
    assert all("multi_worker (2 replica(s))" in out for out in outputs)
    assert_same_networks(one_process, tmp_path)
    assert not (tmp_path / "mw" / "backup" / "f1").exists()  # removed when finished


def test_a_killed_worker_stops_the_chief_and_both_resume(one_process, tmp_path):
    workers = start_workers(tmp_path)
    state = tmp_path / "mw" / "backup" / "f1" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists():  # the chief has finished f1's first epoch
        assert time.monotonic() < deadline and workers[0].poll() is None, "no backup appeared"
        time.sleep(0.2)
    workers[1].kill()
    out, _ = workers[0].communicate(timeout=300)  # the chief notices and stops by itself
    workers[1].communicate()
    assert workers[0].returncode == 1, out[-3000:]
    assert "error: a worker of the training stopped or cannot be reached" in out
    assert "Traceback" not in out
    assert json.loads(state.read_text())["next_step"] >= 1  # the finished epoch is kept

    outputs = finish(start_workers(tmp_path))
    assert all("f1: resuming from" in out for out in outputs)
    assert_same_networks(one_process, tmp_path)


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG is not a valid cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG is not a valid cluster"),
])
def test_multi_worker_without_a_valid_cluster_is_refused_before_training(tmp_path, tf_config,
                                                                         message):
    extra = {"TF_CONFIG": tf_config} if tf_config else {}
    done = subprocess.run([sys.executable, *TRAIN, "-p", "strategy=multi_worker"],
                          env=environment(tmp_path, **extra), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "mw").exists()


def test_the_notebooks_refuse_multi_worker_and_say_how_to_train(tmp_path):
    from pdc_utils import run

    with pytest.raises(ValueError, match="python -m pdc_utils train"):
        run.run_series("smoke", run_name="mw", overrides={"strategy": "multi_worker"})

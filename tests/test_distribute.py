"""tf.distribute: the penalty on the global batch, tested on two logical CPUs.

Each test runs in a fresh Python process with ``PDC_LOGICAL_CPUS=2``: the CPU must be split
before TensorFlow initialises its devices, which in this test process has happened already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from pdc_utils import distribute, training
    training.configure(0)
    import keras, tensorflow as tf

    def net(seed):  # no batch norm: its per-replica statistics would differ by design
        keras.utils.set_random_seed(seed)
        x = keras.Input((6,))
        f = keras.layers.Dense(5, activation="tanh")(keras.layers.Dense(8, "relu")(x))
        return keras.Model(x, [keras.layers.Dense(3)(f), f])

    rng = np.random.default_rng(0)  # batches of 16 and 15 rows: split 8/8, then 7/8
    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(31, 6)).astype("float32"), rng.integers(0, 3, 31))).batch(16)
    out = {}
    for penalty in ("v", "u"):
        for name in ("default", "mirrored"):
            strategy = distribute.make_strategy(name)
            with strategy.scope():
                reference, trainee = net(1), net(2)
            _, history = training.train_network(
                trainee, data, data, name="net", run_name=f"{penalty}_{name}", epochs=1,
                learning_rate=0.5, momentum=0.9, weight_decay=1e-3, schedule="constant",
                references=[reference], alpha=1.0, penalty=penalty, progress=False,
                strategy=strategy)
            out[f"{penalty}/{name}"] = {
                "replicas": strategy.num_replicas_in_sync,
                "logs": history.iloc[-1].to_dict(),
                "weights": [w.tolist() for w in trainee.get_weights()]}
    for name in ("default", "mirrored"):  # a chain of two, trained interleaved
        strategy = distribute.make_strategy(name)
        with strategy.scope():
            nets = [net(3), net(4)]
        members = [training.Member("a", nets[0], data),
                   training.Member("b", nets[1], data, alpha=1.0, references=["a"])]
        trained = training.train_group(
            members, data, group="chain", run_name=name, epochs=2, learning_rate=0.5,
            momentum=0.9, weight_decay=1e-3, schedule="constant", progress=False,
            strategy=strategy)
        out[f"chain/{name}"] = {"replicas": strategy.num_replicas_in_sync,
                                "logs": trained["b"][1].iloc[-1].to_dict(),
                                "weights": [w.tolist() for w in nets[1].get_weights()]}
    strategy = distribute.make_strategy("mirrored")  # a last batch of 1 row cannot be split
    seventeen = tf.data.Dataset.range(17).map(lambda i: (i, i)).batch(16)
    out["split"] = [[x.numpy().tolist() for x in strategy.experimental_local_results(b[0])]
                    for b in distribute.distribute_dataset(strategy, seventeen)]
    json.dump(out, sys.stdout)
""")


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    env = {**os.environ, "PDC_LOGICAL_CPUS": "2", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PDC_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["v", "u", "chain"])
def test_mirrored_training_equals_one_device_on_the_global_batch(two_replicas, case):
    import numpy as np

    one, mirrored = two_replicas[f"{case}/default"], two_replicas[f"{case}/mirrored"]
    assert (one["replicas"], mirrored["replicas"]) == (1, 2)
    for key in ("loss", "ce", "dcor_sqr", "accuracy", "val_loss", "val_ce", "val_dcor_sqr"):
        assert mirrored["logs"][key] == pytest.approx(one["logs"][key], rel=1e-5, abs=1e-6)
    # two SGD steps with momentum (the second batch split unevenly): equal weights mean equal
    # gradients at every step
    for a, b in zip(one["weights"], mirrored["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)


def test_each_replica_gets_a_contiguous_slice_and_a_batch_too_small_to_split_is_skipped(
        two_replicas):
    assert two_replicas["split"] == [[list(range(8)), list(range(8, 16))]]


def test_logical_cpus_must_be_a_positive_integer(monkeypatch):
    from pdc_utils import distribute

    monkeypatch.setenv("PDC_LOGICAL_CPUS", "two")
    with pytest.raises(ValueError, match="PDC_LOGICAL_CPUS must be a positive integer"):
        distribute.split_cpu_from_environment()


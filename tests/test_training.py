"""DivergeModel, the optimiser, resumable and reusable fits, and every profile's networks."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pdc_utils import config, data, features, models, objective, storage, training

FIT = dict(learning_rate=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine")


@pytest.fixture(scope="module")
def digits():
    info = data.dataset_info("digits")
    train = data.load_split("digits", "train", batch_size=64, shuffle=True, seed=0, limit=640)
    test = data.load_split("digits", "test", batch_size=180)
    return info, train, test


def _network(info, seed, width=8):
    keras.utils.set_random_seed(seed)
    return models.build_network("resnet18", info, width=width)


@pytest.fixture(scope="module")
def trained_f1(digits, tmp_path_factory):
    info, train, test = digits
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PDC_RUNS_DIR", str(runs))
        f1, _ = training.train_network(_network(info, 0), train, test, name="f1",
                                       run_name="module", epochs=4, progress=False, **FIT)
    return f1


def _weights(network):
    return [w.copy() for w in network.get_weights()]


def test_diverge_lowers_dcor_to_the_reference_and_leaves_it_unchanged(
        digits, trained_f1, isolated_run_dirs):
    info, train, test = digits
    before = _weights(trained_f1)
    results = {}
    for alpha in (0.0, 2.0):
        net, history = training.train_network(
            _network(info, 1), train, test, name=f"f2_alpha{alpha}", run_name="t", epochs=4,
            references=[trained_f1], alpha=alpha, progress=False, **FIT)
        assert set(history.columns) >= {"loss", "ce", "dcor_sqr", "accuracy", "val_dcor_sqr"}
        results[alpha] = features.predict(net, test)["features"]
    for w_before, w_after in zip(before, trained_f1.get_weights(), strict=True):
        np.testing.assert_array_equal(w_before, w_after)
    reference = features.predict(trained_f1, test)["features"]
    table = features.feature_dcor_table({"f1": reference, "plain": results[0.0],
                                         "diverge": results[2.0]})
    dcor = dict(zip(table["model"], table["dcor_sqr"], strict=True))
    assert dcor["f1"] == pytest.approx(1.0)
    assert dcor["diverge"] < dcor["plain"] - 0.1, dcor


# ("u", 2.0) is the other two's paths together (the U estimator; a penalty that trains): slow
@pytest.mark.parametrize(("penalty", "alpha"), [
    ("v", 2.0), pytest.param("u", 2.0, marks=pytest.mark.slow), ("u", 0.0)])
def test_cached_reference_features_train_like_the_live_reference(penalty, alpha):
    """Two steps with f1's features read from the batch give the weights and metrics of two
    steps that run f1 (α = 0: the monitored dCor² only)."""
    info = data.dataset_info("digits")
    reference = _network(info, 0, 4)
    limit = 128
    unshuffled = data.load_split("digits", "train", batch_size=100, limit=limit)
    cache = (features.predict(reference, unshuffled)["features"],)

    def two_steps(extra):
        net = _network(info, 1, 4)
        model = objective.DivergeModel(net, [reference], alpha=alpha, penalty=penalty,
                                      weight_decay=5e-4)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        train = data.load_split("digits", "train", batch_size=64, shuffle=True, seed=0,
                                limit=limit, epoch=0, extra=extra)
        logs = model.fit(train, epochs=1, verbose=0, shuffle=False).history
        return net.get_weights(), {k: v[-1] for k, v in logs.items()}

    live_weights, live_logs = two_steps(None)
    cached_weights, cached_logs = two_steps(cache)
    assert set(cached_logs) == set(live_logs) >= {"loss", "ce", "accuracy", "dcor_sqr"}
    for key, value in live_logs.items():
        assert cached_logs[key] == pytest.approx(value, abs=1e-5), key
    for live, cached in zip(live_weights, cached_weights, strict=True):
        np.testing.assert_allclose(cached, live, rtol=1e-5, atol=1e-5)
    assert live_logs["dcor_sqr"] != 0  # the penalty was computed, not skipped


def test_a_sample_weight_is_not_taken_for_cached_features(digits):
    info, train, _ = digits
    x, y = next(iter(train))
    model = objective.DivergeModel(_network(info, 1, 4), [_network(info, 0, 4)], alpha=1.0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    with pytest.raises(ValueError, match="third element of a training batch must be the "
                                         "cached reference features: a tuple of 1 tensor"):
        model.train_on_batch(x, y, sample_weight=tf.ones_like(y, tf.float32))


def test_weight_decay_is_coupled_l2_as_in_pytorch_sgd(digits):
    """Two momentum steps: the L2 gradient wd·w must pass through momentum (coupled), which
    Keras' own decoupled ``weight_decay`` would not do."""
    info, train, _ = digits
    x, y = next(iter(train))
    net = _network(info, 3, width=4)
    wd, lr, m = 0.1, 0.5, 0.9
    model = objective.DivergeModel(net, weight_decay=wd)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=m))
    variables = net.trainable_variables

    def ce_gradients():
        with tf.GradientTape() as tape:
            logits, _ = net(x, training=True)
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return [g.numpy() for g in tape.gradient(ce, variables)]

    w0 = [v.numpy() for v in variables]
    g0 = ce_gradients()
    model.train_on_batch(x, y)
    w1 = [v.numpy() for v in variables]
    for a, w, g in zip(w1, w0, g0, strict=True):
        np.testing.assert_allclose(a, w - lr * (g + wd * w), rtol=1e-3, atol=1e-5)
    g1 = ce_gradients()
    model.train_on_batch(x, y)
    for v, w_1, w_0, g in zip(variables, w1, w0, g1, strict=True):
        expected = w_1 + m * (w_1 - w_0) - lr * (g + wd * w_1)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-3, atol=1e-5)


def _epochs(seed, calls, stop_at=None):
    """Training data as ``epoch -> dataset`` that records the epochs asked for and can raise
    KeyboardInterrupt at epoch ``stop_at`` (a simulated kill)."""
    def make(epoch):
        if epoch == stop_at:
            raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}")
        calls.append(epoch)
        return data.load_split("digits", "train", batch_size=64, shuffle=True, seed=seed,
                               limit=320, epoch=epoch)
    return make


def _chain(info, calls, stop_at=None):
    names = ["net0", "net1", "net2"]
    return [training.Member(name, _network(info, 10 + k, 4), _epochs(10 + k, calls, stop_at
                                                                    if k == 2 else None),
                            alpha=1.0 if k else 0.0, references=names[:k])
            for k, name in enumerate(names)]


# the U penalty resumes by the same code; its run is the suite's costliest duplicate
@pytest.mark.parametrize("penalty", ["v", pytest.param("u", marks=pytest.mark.slow)])
def test_interrupted_chain_resumes_to_the_weights_of_an_uninterrupted_one(
        digits, isolated_run_dirs, penalty):
    """A chain (paper_code design) killed in epoch 1 of its last net resumes there and ends
    bit-identical to an uninterrupted chain; a finished chain is reused, not retrained."""
    info, _, test = digits
    training.configure(0)
    args = dict(group="chain", epochs=3, penalty=penalty, progress=False, **FIT)
    full = training.train_group(_chain(info, []), test, run_name="full", **args)

    with pytest.raises(KeyboardInterrupt):
        training.train_group(_chain(info, [], stop_at=1), test, run_name="cut", **args)
    assert (config.run_dir("cut") / "backup" / "chain" / "state.json").exists()
    assert not (config.models_dir("cut") / "net0.keras").exists()
    calls = []
    resumed = training.train_group(_chain(info, calls), test, run_name="cut", **args)
    # epoch 0 of each net is built once to count its steps; then net2's epoch 1, epoch 2 of all
    assert calls == [0, 0, 0, 1, 2, 2, 2]
    assert not (config.run_dir("cut") / "backup" / "chain").exists()
    for name, (network, history) in full.items():
        for w_full, w_resumed in zip(network.get_weights(), resumed[name][0].get_weights(),
                                     strict=True):
            np.testing.assert_array_equal(w_full, w_resumed)
        assert list(resumed[name][1]["epoch"]) == [0, 1, 2]
        pd.testing.assert_frame_equal(resumed[name][1], history)  # columns in the same order
        assert ("dcor_sqr" in history) == (name != "net0")  # no reference, no dCor² column

    calls = []
    again = training.train_group(_chain(info, calls), test, run_name="cut", **args)
    assert calls == [] and again["net2"][1].equals(resumed["net2"][1])
    # the saved file is the plain network: loads without custom objects, same outputs
    loaded = keras.models.load_model(config.models_dir("cut") / "net2.keras")
    x, _ = next(iter(test))
    np.testing.assert_allclose(loaded(x)[0], resumed["net2"][0](x)[0], rtol=1e-5, atol=1e-5)


def test_changed_parameters_retrain_and_keep_the_old_model_aside(digits, isolated_run_dirs):
    info, _, test = digits
    args = dict(name="net", run_name="r", progress=False, **FIT)
    training.train_network(_network(info, 5, 4), _epochs(5, []), test, epochs=1, **args)
    calls = []
    training.train_network(_network(info, 5, 4), _epochs(5, calls), test, epochs=2, **args)
    assert calls[-2:] == [0, 1]
    kept = list((config.run_dir("r") / "replaced").glob("*/net.keras"))
    assert len(kept) == 1, "the finished model of the other parameters must be kept aside"
    assert storage.read_params(config.models_dir("r") / "net.json", "02")["epochs"] == 2


def test_a_damaged_model_file_is_named_as_damaged(tmp_path):
    path = tmp_path / "f1.keras"
    path.write_bytes(b"not a keras file")
    with pytest.raises(ValueError, match="damaged or truncated"):
        storage.load_network(path, "02_baseline_training")


def test_a_last_batch_of_one_image_trains(digits, isolated_run_dirs):
    info, _, test = digits
    train = data.load_split("digits", "train", batch_size=5, limit=11)  # 5, 5, 1
    reference = _network(info, 0, 4)
    _, history = training.train_network(_network(info, 1, 4), train, test, name="n",
                                        run_name="one", epochs=1, references=[reference],
                                        alpha=1.0, progress=False, **FIT)
    assert np.isfinite(history["loss"]).all()


def test_u_penalty_is_clamped_at_zero_and_u_raw_is_not():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
    raw = float(objective.feature_penalty(a, [b], penalty="u_raw"))
    clamped = float(objective.feature_penalty(a, [b], penalty="u"))
    assert clamped == max(raw, 0.0)
    v = float(objective.feature_penalty(a, [b], penalty="v"))
    assert v > abs(raw), "the V-statistic of independent 8-d samples is biased upwards"


def test_bad_training_arguments_are_rejected(digits):
    info, _, _ = digits
    net = _network(info, 0, 4)
    with pytest.raises(ValueError, match="at least one reference"):
        objective.DivergeModel(net, alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        objective.DivergeModel(net, [net], alpha=-1.0)
    with pytest.raises(ValueError, match="valid choices: cosine, step, constant"):
        training.make_optimizer(0.1, 0.9, "linear", 10, 10)
    with pytest.raises(ValueError, match="end in .keras"):
        storage.save_network(net, "model.h5")


def test_schedules():
    cosine = training.learning_rate_schedule(0.1, "cosine", 10, 5)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(50)) == pytest.approx(0.0)
    step = training.learning_rate_schedule(0.1, "step", 40, 10)
    assert [round(float(step(s)), 6) for s in (0, 101, 201, 301)] == [0.1, 0.01, 0.001, 0.0001]
    assert training.learning_rate_schedule(0.1, "constant", 1, 1) == 0.1


def test_dcor_is_float32_under_mixed_precision_and_xla(digits):
    info, train, _ = digits
    x, y = next(iter(train))
    from tensorflow.python.framework import config as tf_config

    # Keras skips XLA while op determinism is on (training.configure turns it on for CPU)
    determinism = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        reference, net = _network(info, 0, 4), _network(info, 1, 4)
        model = objective.DivergeModel(net, [reference], alpha=1.0)
        # XLA too, as on a GPU (the CPU compiles the same graph)
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
        logs = model.train_on_batch(x, y, return_dict=True)
        _, feats = net(x)
        penalty = objective.feature_penalty(feats, [reference(x)[1]])
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if determinism:
            tf.config.experimental.enable_op_determinism()
    assert penalty.dtype == tf.float32
    assert np.isfinite(logs["dcor_sqr"]) and 0 < logs["dcor_sqr"] <= 1


GPU_PROFILE_NETWORKS = [("cifar10", "resnet18")] + [
    ("imagenette", name) for name in
    ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")] + [
    # ResNet-34 is ResNet-18's basic blocks and ResNet-152 ResNet-50's bottleneck blocks,
    # more of them: the same code, slower to trace
    pytest.param("imagenette", name, marks=pytest.mark.slow) for name in ("resnet34",
                                                                          "resnet152")]


@pytest.mark.parametrize(("dataset", "network"), GPU_PROFILE_NETWORKS)
def test_one_diverge_step_on_mock_data_for_every_gpu_profile_network(dataset, network):
    """The cifar10 / ImageNet profiles build, load (mock) data and run a diverge step."""
    params = config.profile("cifar10" if dataset == "cifar10" else "imagenet2012")
    info = data.dataset_info(dataset)
    with tfds.testing.mock_data(num_examples=4):
        batch = next(iter(data.load_split(dataset, "train", batch_size=4, augment=True,
                                          shuffle=True, seed=0)))
    assert batch[0].shape == (4, *info.image_shape)
    keras.utils.set_random_seed(0)
    reference = models.build_network(network, info, width=params["width"])
    net = models.build_network(network, info, width=params["width"])
    model = objective.DivergeModel(net, [reference], alpha=params["alpha"],
                                  weight_decay=params["weight_decay"])
    model.compile(optimizer=training.make_optimizer(params["learning_rate"], params["momentum"],
                                                    params["schedule"], params["epochs"], 10))
    logs = model.train_on_batch(*batch, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert 0 < logs["dcor_sqr"] <= 1


def test_training_logs_its_metrics_to_tensorboard(digits, isolated_run_dirs):
    info, _, test = digits
    training.train_network(_network(info, 1, 4), _epochs(1, []), test, name="tb", run_name="t",
                           epochs=2, progress=False, **FIT)
    events = list((config.run_dir("t") / "tensorboard" / "tb").glob("events.out.tfevents.*"))
    assert events
    tags = {(v.tag, e.step) for record in tf.compat.v1.train.summary_iterator(str(events[0]))
            for e in [record] for v in record.summary.value}
    assert {("val_accuracy", 0), ("val_accuracy", 1), ("learning_rate", 1)} <= tags

"""DivergeModel, the optimiser, resumable and reusable fits, and every profile's networks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pdc_utils import config, data, features, models, training

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


def test_weight_decay_is_coupled_l2_as_in_pytorch_sgd(digits):
    """Two momentum steps: the L2 gradient wd·w must pass through momentum (coupled), which
    Keras' own decoupled ``weight_decay`` would not do."""
    info, train, _ = digits
    x, y = next(iter(train))
    net = _network(info, 3, width=4)
    wd, lr, m = 0.1, 0.5, 0.9
    model = training.DivergeModel(net, weight_decay=wd)
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


def test_interrupted_fit_resumes_from_its_last_epoch(digits, isolated_run_dirs):
    info, train, test = digits

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated interruption after epoch 2")

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    args = dict(name="net", run_name="resume", epochs=4, progress=False, **FIT)
    # first an interrupted training with other parameters: its backup must not be resumed
    with pytest.raises(KeyboardInterrupt):
        training.train_network(_network(info, 5, 4), train, test, callbacks=[Interrupt()],
                               **{**args, "epochs": 5})
    first = Record()
    with pytest.raises(KeyboardInterrupt):
        training.train_network(_network(info, 5, 4), train, test,
                               callbacks=[first, Interrupt()], **args)
    assert first.epochs == [0, 1]
    assert (config.run_dir("resume") / "backup" / "net").exists()
    assert not (config.models_dir("resume") / "net.keras").exists()

    record = Record()
    net, history = training.train_network(_network(info, 5, 4), train, test,
                                          callbacks=[record], **args)
    assert record.epochs == [2, 3]
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert not (config.run_dir("resume") / "backup" / "net").exists()

    # the saved file is the plain network: loads without custom objects, same outputs
    loaded = keras.models.load_model(config.models_dir("resume") / "net.keras")
    x, _ = next(iter(test))
    np.testing.assert_allclose(loaded(x)[0], net(x)[0], rtol=1e-5, atol=1e-5)

    # the same call again reuses the finished model instead of training
    record = Record()
    _, again = training.train_network(_network(info, 5, 4), train, test,
                                      callbacks=[record], **args)
    assert record.epochs == [] and again.equals(history)
    # a changed parameter trains again
    record = Record()
    training.train_network(_network(info, 5, 4), train, test, callbacks=[record],
                           **{**args, "epochs": 1})
    assert record.epochs == [0]


def test_bad_training_arguments_are_rejected(digits):
    info, _, _ = digits
    net = _network(info, 0, 4)
    with pytest.raises(ValueError, match="at least one reference"):
        training.DivergeModel(net, alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        training.DivergeModel(net, [net], alpha=-1.0)
    with pytest.raises(ValueError, match="valid choices: cosine, step, constant"):
        training.make_optimizer(0.1, 0.9, "linear", 10, 10)
    with pytest.raises(ValueError, match="end in .keras"):
        training.save_network(net, "model.h5")


def test_schedules():
    cosine = training.learning_rate_schedule(0.1, "cosine", 10, 5)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(50)) == pytest.approx(0.0)
    step = training.learning_rate_schedule(0.1, "step", 40, 10)
    assert [round(float(step(s)), 6) for s in (0, 101, 201, 301)] == [0.1, 0.01, 0.001, 0.0001]
    assert training.learning_rate_schedule(0.1, "constant", 1, 1) == 0.1


def test_dcor_is_float32_under_mixed_precision_and_xla(digits):
    info, train, _ = digits
    x, y = next(iter(train))
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        reference, net = _network(info, 0, 4), _network(info, 1, 4)
        model = training.DivergeModel(net, [reference], alpha=1.0)
        # XLA too, as on a GPU (the CPU compiles the same graph)
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
        logs = model.train_on_batch(x, y, return_dict=True)
        _, feats = net(x)
        penalty = training.mean_feature_dcor_sqr(feats, [reference(x)[1]])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert penalty.dtype == tf.float32
    assert np.isfinite(logs["dcor_sqr"]) and 0 < logs["dcor_sqr"] <= 1


GPU_PROFILE_NETWORKS = [("cifar10", "resnet18")] + [
    ("imagenette", name) for name in
    ("resnet18", "resnet34", "resnet50", "resnet152", "mobilenet_v3_small", "efficientnet_b0")]


@pytest.mark.parametrize(("dataset", "network"), GPU_PROFILE_NETWORKS)
def test_one_diverge_step_on_mock_data_for_every_gpu_profile_network(dataset, network):
    """The cifar10 / ImageNet profiles build, load (mock) data and run a diverge step."""
    params = config.profile("cifar10" if dataset == "cifar10" else "imagenet2012")
    info = data.dataset_info(dataset)
    with tfds.testing.mock_data(num_examples=4):
        batch = next(iter(data.load_split(dataset, "train", batch_size=2, augment=True,
                                          shuffle=True, seed=0)))
    assert batch[0].shape == (2, *info.image_shape)
    keras.utils.set_random_seed(0)
    reference = models.build_network(network, info, width=params["width"])
    net = models.build_network(network, info, width=params["width"])
    model = training.DivergeModel(net, [reference], alpha=params["alpha"],
                                  weight_decay=params["weight_decay"])
    model.compile(optimizer=training.make_optimizer(params["learning_rate"], params["momentum"],
                                                    params["schedule"], params["epochs"], 10))
    logs = model.train_on_batch(*batch, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs

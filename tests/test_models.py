"""Tests of pdc_utils.models: the (logits, features) contract of every network."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from pdc_utils import config, data, models

DIGITS = data.dataset_info("digits")
CIFAR = data.dataset_info("cifar10")
# ImageNet-style data at the smallest size keras.applications accepts, to keep tests fast.
SMALL_IMAGENET = dataclasses.replace(
    data.dataset_info("imagenette"), image_shape=(32, 32, 3)
)

# (width, expected feature size) per network.
FEATURES = {
    "resnet18": (16, 8 * 16),
    "resnet34": (16, 8 * 16),
    "resnet50": (16, 32 * 16),
    "resnet152": (16, 32 * 16),
    "mobilenet_v3_small": (64, 576),
    "efficientnet_b0": (64, 1280),
}
# The layers between "features" and the logits output: torchvision's fc / classifier.
HEADS = {
    **{name: ["logits"] for name in ("resnet18", "resnet34", "resnet50", "resnet152")},
    "mobilenet_v3_small": [
        "classifier_hidden", "classifier_hardswish", "classifier_dropout", "logits"],
    "efficientnet_b0": ["classifier_dropout", "logits"],
}


def images(info: data.DatasetInfo, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *info.image_shape), dtype=np.float32)


def classifier_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after "features", in order: the head that maps features to logits."""
    names = [layer.name for layer in model.layers]
    return model.layers[names.index("features") + 1:]


@pytest.fixture
def mixed_precision():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def test_features_table_covers_every_network():
    assert set(FEATURES) == set(config.NETWORKS) == set(HEADS)


@pytest.mark.parametrize("name", config.NETWORKS)
def test_every_network_returns_logits_and_features(name):
    width, feature_size = FEATURES[name]
    model = models.build_network(name, SMALL_IMAGENET, width=width)
    assert model.output_names == ["logits", "features"]
    assert isinstance(model.layers[1], keras.layers.Normalization)
    logits, features = model(images(SMALL_IMAGENET))
    assert tuple(logits.shape) == (2, 10) and tuple(features.shape) == (2, feature_size)
    assert logits.dtype == "float32" and features.dtype == "float32"
    assert np.isfinite(logits.numpy()).all() and np.isfinite(features.numpy()).all()
    # The logits are the head (torchvision's classifier) applied to the features.
    head = classifier_layers(model)
    assert [layer.name for layer in head] == HEADS[name]
    y = features
    for layer in head:
        y = layer(y)
    # Relative: untrained keras.applications networks can have tiny logits (about 1e-10).
    atol = 1e-5 * np.abs(logits.numpy()).max()
    np.testing.assert_allclose(y.numpy(), logits.numpy(), rtol=1e-5, atol=atol)


def test_make_divisible_is_torchvisions_rule():
    assert [models.make_divisible(v) for v in (3, 11, 20, 96 * 0.25, 100)] == [8, 16, 24, 24, 104]
    assert [models.mobilenet_v3_small_last_channel(w) for w in (8, 16, 32, 48, 64, 96)] == [
        128, 256, 512, 768, 1024, 1536]


@pytest.mark.parametrize("width, feature_size, hidden", [(64, 576, 1024), (16, 144, 256)])
def test_mobilenet_v3_small_head_is_torchvisions(width, feature_size, hidden):
    """features (pooled last conv) -> Linear(hidden), Hardswish, Dropout(0.2), Linear(classes);
    the hidden width scales with the width multiplier as in torchvision."""
    model = models.build_network("mobilenet_v3_small", SMALL_IMAGENET, width=width)
    assert model.outputs[1].shape[-1] == feature_size  # the 576-d pooled tensor at width 64
    dense, activation, dropout, logits = classifier_layers(model)
    assert isinstance(dense, keras.layers.Dense) and dense.units == hidden
    assert dense.kernel.shape == (feature_size, hidden)
    assert dense.activation is keras.activations.linear
    assert isinstance(activation, keras.layers.Activation)
    assert activation.activation is keras.activations.hard_swish
    assert isinstance(dropout, keras.layers.Dropout) and dropout.rate == 0.2
    assert isinstance(logits, keras.layers.Dense) and logits.kernel.shape == (hidden, 10)
    assert logits.dtype_policy.name == "float32"
    # torchvision's init of its Linear layers: N(0, 0.01) kernels, zero biases.
    for layer in (dense, logits):
        kernel = layer.kernel.numpy()
        assert abs(kernel.std() - 0.01) < 0.001 and abs(kernel.mean()) < 0.001
        assert not layer.bias.numpy().any()


def test_efficientnet_b0_head_is_torchvisions():
    """features (1280) -> Dropout(0.2), Linear(classes)."""
    model = models.build_network("efficientnet_b0", SMALL_IMAGENET)
    assert model.outputs[1].shape[-1] == 1280
    dropout, logits = classifier_layers(model)
    assert isinstance(dropout, keras.layers.Dropout) and dropout.rate == 0.2
    assert isinstance(logits, keras.layers.Dense) and logits.kernel.shape == (1280, 10)
    # torchvision's init of its Linear: U(±1/sqrt(out_features)) kernel, zero bias.
    kernel, limit = logits.kernel.numpy(), 1 / np.sqrt(10)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.95 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.01 and not logits.bias.numpy().any()


@pytest.mark.parametrize("name, width", [("mobilenet_v3_small", 16), ("efficientnet_b0", 64)])
def test_inference_is_deterministic_and_the_head_drops_out_only_in_training(name, width):
    """training=False (attacks, evaluation): repeated calls agree exactly, and the logits are
    the head applied to the features without dropout. training=True: the head's dropout acts.
    (EfficientNet's blocks also have Keras' stochastic depth, drop_connect_rate 0.2, like
    torchvision's stochastic_depth_prob 0.2, so its training-mode features vary too.)"""
    model = models.build_network(name, SMALL_IMAGENET, width=width)
    x = images(SMALL_IMAGENET, n=4)
    first, again = model(x, training=False), model(x, training=False)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(first, model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)
    logits, features = first

    def head(training):
        y = features
        for layer in classifier_layers(model):
            y = layer(y, training=training)
        return y.numpy()

    scale = np.abs(logits.numpy()).max()  # untrained logits can be tiny: compare relatively
    np.testing.assert_allclose(head(False), logits.numpy(), rtol=1e-5, atol=1e-5 * scale)
    dropped, dropped_again = head(True), head(True)
    assert np.abs(dropped - logits.numpy()).max() > 1e-2 * scale
    assert np.abs(dropped - dropped_again).max() > 1e-2 * scale


def test_resnet_stems_and_widths():
    assert models.resolve_stem(CIFAR) == "cifar" and models.resolve_stem(DIGITS) == "cifar"
    assert models.resolve_stem(data.dataset_info("imagenette")) == "imagenet"
    digits_net = models.build_network("resnet18", DIGITS, width=16)  # 8 -> 8 -> 4 -> 2 -> 1
    assert digits_net.get_layer("stage4_block2_out").output.shape[1:3] == (1, 1)
    assert "stem_pool" not in [layer.name for layer in digits_net.layers]
    imagenet_stem = models.build_network("resnet18", SMALL_IMAGENET, width=8, stem="imagenet")
    assert imagenet_stem.get_layer("stem_conv").kernel.shape == (7, 7, 3, 8)
    assert imagenet_stem.get_layer("stem_pool").output.shape[1:3] == (8, 8)
    # The paper's CIFAR ResNet-18 (11,173,962 trainable parameters in PyTorch).
    full = models.build_network("resnet18", CIFAR)
    assert sum(int(np.prod(w.shape)) for w in full.trainable_weights) == 11_173_962
    assert full.outputs[1].shape[-1] == 512


def test_normalisation_is_the_first_layer_and_exact():
    model = models.build_network("resnet18", CIFAR, width=8)
    x = images(CIFAR, n=3)
    normalised = keras.Model(model.input, model.get_layer("normalize").output)(x).numpy()
    expected = (x - np.array(CIFAR.mean)) / np.array(CIFAR.std)
    np.testing.assert_allclose(normalised, expected, rtol=1e-5, atol=1e-5)


def test_applications_normalise_exactly_once():
    mobilenet = models.build_network("mobilenet_v3_small", SMALL_IMAGENET, width=16)
    kinds = [type(layer) for layer in mobilenet.layers]
    assert kinds.count(keras.layers.Normalization) == 1
    assert keras.layers.Rescaling not in kinds
    # EfficientNet: our normalisation, x255, its own /255 and its identity Normalization.
    efficientnet = models.build_network("efficientnet_b0", SMALL_IMAGENET)
    inner = [layer for layer in efficientnet.layers
             if isinstance(layer, keras.layers.Normalization) and layer.name != "normalize"]
    assert len(inner) == 1
    x = images(SMALL_IMAGENET)
    seen_by_stem = keras.Model(efficientnet.input, inner[0].output)(x).numpy()
    expected = (x - np.array(SMALL_IMAGENET.mean)) / np.array(SMALL_IMAGENET.std)
    np.testing.assert_allclose(seen_by_stem, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name, info, width",
    [("resnet18", DIGITS, 8), ("mobilenet_v3_small", SMALL_IMAGENET, 16),
     ("efficientnet_b0", SMALL_IMAGENET, 64)],
)
def test_outputs_are_float32_under_mixed_precision(mixed_precision, name, info, width):
    model = models.build_network(name, info, width=width)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].compute_dtype == "float16"  # the policy is in effect inside the network
    logits, features = model(images(info))
    assert logits.dtype == "float32" and features.dtype == "float32"
    assert np.isfinite(logits.numpy()).all() and np.isfinite(features.numpy()).all()


@pytest.mark.parametrize(
    "name, info, width", [("resnet18", DIGITS, 8), ("mobilenet_v3_small", SMALL_IMAGENET, 16)]
)
def test_build_is_deterministic_under_the_seed(name, info, width):
    def weights(seed):
        keras.utils.set_random_seed(seed)
        return [w.numpy() for w in models.build_network(name, info, width=width).weights]

    first, again, other = weights(0), weights(0), weights(1)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    "name, info, width",
    [("resnet18", DIGITS, 8), ("mobilenet_v3_small", SMALL_IMAGENET, 16),
     ("efficientnet_b0", SMALL_IMAGENET, 64)],
)
def test_keras_file_round_trip_without_custom_objects(tmp_path, name, info, width):
    model = models.build_network(name, info, width=width)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = images(info, n=3)
    for before, after in zip(model(x), loaded(x), strict=True):
        atol = 1e-6 * np.abs(before.numpy()).max()  # relative: untrained outputs can be tiny
        np.testing.assert_allclose(after.numpy(), before.numpy(), rtol=1e-6, atol=atol)
    assert loaded.output_names == ["logits", "features"]
    assert [layer.name for layer in classifier_layers(loaded)] == HEADS[name]


@pytest.mark.parametrize(
    "name, info, kwargs, match",
    [
        ("vgg16", CIFAR, {}, "valid networks: resnet18, resnet34, resnet50, resnet152"),
        ("resnet18", CIFAR, {"stem": "tiny"}, "valid stems: auto, cifar, imagenet"),
        ("resnet18", CIFAR, {"width": 0}, "width must be a positive integer"),
        ("resnet18", CIFAR, {"width": 8.0}, "width must be a positive integer"),
        ("efficientnet_b0", SMALL_IMAGENET, {"width": 32}, "no width setting"),
        ("mobilenet_v3_small", DIGITS, {}, "at least 32x32"),
        ("efficientnet_b0", DIGITS, {}, "use one of resnet18"),
    ],
)
def test_bad_parameters_are_rejected(name, info, kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.build_network(name, info, **kwargs)

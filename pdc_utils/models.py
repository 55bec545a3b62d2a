"""Networks that map [0, 1] images to ``(logits, features)``.

``features`` are the global-average-pooled penultimate activations, flattened: the
representation whose distance correlation diverge training penalises, the tensor the paper's
code takes (φ, torchvision's ``avgpool`` output, which feeds the network's ``classifier``).
``logits`` come from torchvision's classifier for the network, built on top of ``features``
(see *Heads* below). Both are float32, also under a ``mixed_float16`` policy (the layers
``"features"`` and ``"logits"`` have dtype float32), because dCor and the cross-entropy are
computed in float32.

Each model's first layer after the input is a ``keras.layers.Normalization`` holding the
dataset's mean and std, so models take [0, 1] images and attacks work in pixel units. Models
are built functionally from built-in Keras layers only, so a saved ``.keras`` file loads with
plain ``keras.models.load_model(path)``. There are no weight-decay regularisers: the training
step applies weight decay.

Networks (:data:`pdc_utils.config.NETWORKS`):

- ``resnet18``/``resnet34`` (basic blocks) and ``resnet50``/``resnet152`` (bottleneck blocks,
  expansion 4), stage widths ``width * (1, 2, 4, 8)``, feature size ``8 * width`` (basic) or
  ``32 * width`` (bottleneck). Stem ``"cifar"``: 3x3 conv, stride 1, no max-pool (the CIFAR
  ResNet of the paper's code); ``"imagenet"``: 7x7 conv stride 2 and 3x3 max-pool stride 2.
  Conv kernels and batch norm follow torchvision (He normal fan-out init, BN momentum 0.1 in
  PyTorch's convention, epsilon 1e-5).
- ``mobilenet_v3_small`` and ``efficientnet_b0`` from ``keras.applications`` (random weights,
  ``include_top=False``), with torchvision's heads built here (*Heads* below). Their own
  preprocessing is neutralised so that images are normalised exactly once, by our
  Normalization layer: MobileNetV3 is built with ``include_preprocessing=False``.
  EfficientNet-B0 always starts with ``Rescaling(1/255)`` followed by a ``Normalization``
  that, without ImageNet weights, holds mean 0 and variance 1 (the identity); we therefore
  multiply our normalised tensor by 255 (a ``Rescaling(255)`` layer named
  ``"undo_efficientnet_rescaling"``) before it, and the two rescalings cancel. Both need
  inputs of at least 32x32 (a keras.applications limit).

Heads (torchvision's ``fc`` / ``classifier``), each on the 2-D ``features`` tensor:

- ResNets: ``"logits"`` Dense, as torchvision's ``fc``; no dropout.
- MobileNetV3-Small: Dense(``last_channel``) ``"classifier_hidden"``, hard-swish
  ``"classifier_hardswish"``, Dropout(0.2) ``"classifier_dropout"``, Dense ``"logits"``
  (torchvision: Linear 576→1024, Hardswish, Dropout(p=0.2), Linear 1024→classes).
  ``last_channel = make_divisible(1024 * width / 64, 8)``, torchvision's scaling with the
  width multiplier (1024 at width 64; Keras' own top scales it only for alpha > 1).
  ``features`` is the pooled output of the last 1x1 conv (576-d at width 64, 144-d at width
  16), *not* the 1024-d hidden layer: in torchvision that layer is the first Linear of
  ``classifier``, and the paper's code takes the pooled tensor before the classifier.
- EfficientNet-B0: Dropout(0.2) ``"classifier_dropout"``, Dense ``"logits"`` (torchvision:
  Dropout(p=0.2), Linear 1280→classes); ``features`` is 1280-d.

The Dense layers of these two heads are initialised as torchvision initialises its Linear
layers (zero biases; kernels N(0, 0.01) for MobileNetV3, U(±1/sqrt(outputs)) for
EfficientNet); the ResNets' ``"logits"`` keeps Keras' default (Glorot uniform), and the
keras.applications backbones keep Keras' initialisers.

Dropout acts only when the network is called with ``training=True`` (the training step);
attacks, evaluation and feature extraction call it with ``training=False`` (or through
``predict``), where it is the identity and the network is deterministic. There, ``logits``
is the classifier applied to ``features``: the ``"logits"`` layer alone for ResNets, the
layers after ``"features"``, in order, for the other two.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pdc_utils import config
from pdc_utils.data import DatasetInfo

#: Stems of the ResNets; ``auto`` picks ``cifar`` for images up to :data:`CIFAR_STEM_MAX_SIDE`.
STEMS = ("auto", "cifar", "imagenet")
CIFAR_STEM_MAX_SIDE = 64
#: Smallest image side that keras.applications accepts for MobileNetV3 and EfficientNet.
APPLICATIONS_MIN_SIDE = 32
#: Default width: the standard networks (64 channels in the first ResNet stage).
STANDARD_WIDTH = 64
#: torchvision's dropout before the last Linear of MobileNetV3 and EfficientNet-B0.
CLASSIFIER_DROPOUT = 0.2
#: torchvision's MobileNetV3-Small ``last_channel`` (classifier hidden width) at width 64.
MOBILENET_V3_SMALL_LAST_CHANNEL = 1024

_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
_BOTTLENECK_EXPANSION = 4


def _kernel_init() -> keras.initializers.Initializer:
    """torchvision's ResNet init (kaiming normal, fan-out); a fresh instance per layer."""
    return keras.initializers.VarianceScaling(
        2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str, relu: bool = True):
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=_kernel_init(),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _shortcut(x, filters: int, strides: int, name: str):
    """Identity, or a 1x1 conv + BN projection when the shape changes."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return _conv_bn(x, filters, 1, strides, f"{name}_proj", relu=False)


def _basic_block(x, filters: int, strides: int, name: str):
    y = _conv_bn(x, filters, 3, strides, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    y = layers.Add(name=f"{name}_add")([y, _shortcut(x, filters, strides, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x, filters: int, strides: int, name: str):
    out = filters * _BOTTLENECK_EXPANSION
    y = _conv_bn(x, filters, 1, 1, f"{name}_a")
    y = _conv_bn(y, filters, 3, strides, f"{name}_b")  # stride on the 3x3 (ResNet v1.5)
    y = _conv_bn(y, out, 1, 1, f"{name}_c", relu=False)
    y = layers.Add(name=f"{name}_add")([y, _shortcut(x, out, strides, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet_body(x, network: str, width: int, stem: str):
    block_type, depths = _RESNETS[network]
    block = _basic_block if block_type == "basic" else _bottleneck_block
    if stem == "cifar":
        x = _conv_bn(x, width, 3, 1, "stem")
    else:
        x = _conv_bn(x, width, 7, 2, "stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, depth in enumerate(depths):
        for index in range(depth):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, width * 2**stage, strides, f"stage{stage + 1}_block{index + 1}")
    return x


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: the nearest multiple of ``divisor`` (at least
    ``divisor``), rounded up when rounding to nearest would lose more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v3_small_last_channel(width: int = STANDARD_WIDTH) -> int:
    """Hidden width of MobileNetV3-Small's classifier at ``width`` (torchvision's rule)."""
    return make_divisible(MOBILENET_V3_SMALL_LAST_CHANNEL * width / STANDARD_WIDTH)


def _classifier_init(name: str, units: int) -> keras.initializers.Initializer | str:
    """torchvision's init of a classifier Linear with ``units`` outputs (a fresh instance per
    layer; biases are zero, Keras' default): MobileNetV3 N(0, 0.01), EfficientNet
    U(±1/sqrt(units)). ResNets keep Keras' default (Glorot uniform)."""
    if name == "mobilenet_v3_small":
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)
    if name == "efficientnet_b0":
        limit = 1.0 / np.sqrt(units)
        return keras.initializers.RandomUniform(-limit, limit)
    return "glorot_uniform"


def _head(x, name: str, num_classes: int, width: int):
    """Pool to ``features`` and apply torchvision's classifier; ``(logits, features)``."""
    features = layers.GlobalAveragePooling2D(dtype="float32", name="features")(x)
    y = features
    if name == "mobilenet_v3_small":
        hidden = mobilenet_v3_small_last_channel(width)
        y = layers.Dense(hidden, kernel_initializer=_classifier_init(name, hidden),
                         name="classifier_hidden")(y)
        y = layers.Activation("hard_swish", name="classifier_hardswish")(y)
    if name in ("mobilenet_v3_small", "efficientnet_b0"):
        y = layers.Dropout(CLASSIFIER_DROPOUT, name="classifier_dropout")(y)
    logits = layers.Dense(num_classes, kernel_initializer=_classifier_init(name, num_classes),
                          dtype="float32", name="logits")(y)
    return logits, features


def _check_params(name: str, info: DatasetInfo, width: int, stem: str) -> None:
    if name not in config.NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(config.NETWORKS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid stems: {', '.join(STEMS)}")
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if name == "efficientnet_b0" and width != STANDARD_WIDTH:
        raise ValueError(
            f"efficientnet_b0 has no width setting: width must be {STANDARD_WIDTH}, got {width}"
        )
    side = min(info.image_shape[:2])
    if name not in _RESNETS and side < APPLICATIONS_MIN_SIDE:
        raise ValueError(
            f"{name} needs images of at least {APPLICATIONS_MIN_SIDE}x{APPLICATIONS_MIN_SIDE} "
            f"(keras.applications), but {info.name} images are "
            f"{info.image_shape[0]}x{info.image_shape[1]}; use one of {', '.join(_RESNETS)}"
        )


def resolve_stem(info: DatasetInfo, stem: str = "auto") -> str:
    """The ResNet stem that ``stem`` means for this dataset (``auto``: by image size)."""
    if stem != "auto":
        return stem
    return "cifar" if max(info.image_shape[:2]) <= CIFAR_STEM_MAX_SIDE else "imagenet"


def build_network(
    name: str, info: DatasetInfo, *, width: int = STANDARD_WIDTH, stem: str = "auto"
) -> keras.Model:
    """Build network ``name`` for dataset ``info``: [0, 1] images -> ``[logits, features]``.

    ``width`` is the first ResNet stage's channel count (64 is the standard network); for
    MobileNetV3-Small it sets ``alpha = width / 64`` and the classifier's hidden width
    (:func:`mobilenet_v3_small_last_channel`); EfficientNet-B0 accepts only 64. ``stem``
    applies to ResNets (``auto``, ``cifar`` or ``imagenet``). Weights are drawn from Keras'
    global seed, so ``keras.utils.set_random_seed`` makes the build deterministic.
    """
    _check_params(name, info, width, stem)
    inputs = keras.Input(shape=info.image_shape, name="images")
    x = layers.Normalization(
        mean=list(info.mean), variance=[s**2 for s in info.std], name="normalize"
    )(inputs)
    if name in _RESNETS:
        x = _resnet_body(x, name, width, resolve_stem(info, stem))
    elif name == "mobilenet_v3_small":
        x = keras.applications.MobileNetV3Small(
            input_tensor=x,
            alpha=width / STANDARD_WIDTH,
            include_top=False,
            weights=None,
            include_preprocessing=False,
        ).output
    else:
        x = layers.Rescaling(255.0, name="undo_efficientnet_rescaling")(x)
        x = keras.applications.EfficientNetB0(
            input_tensor=x, include_top=False, weights=None
        ).output
    logits, features = _head(x, name, info.num_classes, width)
    return keras.Model(inputs, [logits, features], name=name)

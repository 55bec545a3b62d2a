"""FGM and PGD (L-inf) and the transfer-attack evaluation of the paper's Table 1.

Both attacks raise the cross-entropy ``L(x) = Σ_i CE(model(x_i), y_i)`` of a batch. The loss is
summed, so the gradient of example i depends on example i only. Labels default to the model's
own predictions on the clean images, ``y = argmax model(x)``, so the true label does not leak
into the attack (cleverhans does the same with ``y=None``).

* FGM (fast gradient method): ``x' = clip(x + ε · sign(∇x L(x)))``.
* PGD (projected gradient descent, no random start by default):
  ``x_0 = clip(x)`` (or ``clip(x + U(-ε, ε))`` with ``rand_init``),
  ``x_{t+1} = clip(x + clip_ε(FGM_{ε_iter}(x_t) - x))``, where ``clip_ε`` clamps every component
  to [-ε, ε] (projection onto the L-inf ball) and ``clip`` clamps to the valid image range.

The operations run in the same order as cleverhans 4.0's ``fast_gradient_method`` and
``projected_gradient_descent``, so the results agree with them bit for bit (the tests check it).
PGD runs all its steps in one compiled ``tf.function`` (a ``tf.while_loop``); ε, the step and
the step count are tensors, so a new value does not retrace. The compiled functions are kept
per model: pass the same callable again (``logits_fn`` of the same network counts as the same)
to reuse them.

Two protocols (``craft``):

* ``pixel`` (default, the standard threat model): ε in pixel units of [0, 1] images, adversarial
  images clipped to [0, 1].
* ``paper`` (the seed code): ε and the PGD step in mean/std-normalised units and no clipping. We
  attack the model seen on ``z = (x - mean) / std``, i.e. ``z ↦ model(z · std + mean)``, and map
  back ``x' = z' · std + mean``: the same as an L-inf ball of radius ``ε · std_c`` per channel c
  in pixel units.

``fgm``, ``pgd`` and ``craft`` check their inputs before any TensorFlow work, each problem a
one-line ``ValueError`` naming the argument: ``x`` finite images of the model's input shape
(when the model's Keras metadata gives it) inside the clip range, ``y`` one class id in
[0, number of classes) per image, ``seed`` an integer or ``None``, and ε, the step, the step
count and the clip range. (Out-of-range labels would otherwise fail deep inside TensorFlow, or
give NaN on a GPU.)

``transfer_evaluation`` crafts the adversarial images once on the source network f1 and scores
every target network on them; the result is a per-example table from which
``accuracy_table``, ``paper_table`` (the columns of ``pdc_utils/paper_table1.csv``) and
``paired_bootstrap`` (intervals for an accuracy difference) are computed. Result files are
written with :func:`pdc_utils.artifacts.write_csv_atomic`.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

# a text bar on stdout: it updates in place live and a saved notebook keeps its last state
# (a widget bar would be saved as its first, empty state)
from tqdm import tqdm

from pdc_utils.config import ATTACKS, PROTOCOLS

LogitsModel = Callable[[tf.Tensor], tf.Tensor]
Clip = tuple[float, float] | None

#: The eps grid of the paper's Table 1 (PGD there: step 0.01, 40 steps, the defaults below).
PAPER_EPS_GRID = (0.03, 0.05, 0.1)
_COLUMNS = ["example", "label", "attack", "eps", "model", "prediction", "correct"]


# --------------------------------------------------------------------------- networks


class _Logits:
    """The images -> logits view of a ``(logits, features)`` network, in inference mode."""

    def __init__(self, network: Callable[..., Any]):
        self.network = network

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.network(x, training=False)[0]


def logits_fn(network: Callable[..., Any]) -> LogitsModel:
    """Wrap a network returning ``(logits, features)`` into an images -> logits callable.

    The network is called with ``training=False`` (batch-norm statistics frozen, no dropout).
    Wrappers of the same network share one set of compiled attack functions.
    """
    return _Logits(network)


class _Compiled:
    """The compiled predictions, FGM and PGD of one model.

    Each ``tf.function`` traces once per input signature (batch shape; labels given or not;
    clipping or not; an input transform or not). The model is held by a weak reference so that
    this cache does not keep it alive.
    """

    def __init__(self, model: Callable[..., Any], returns_pair: bool):
        self._model = weakref.ref(model)
        self._returns_pair = returns_pair
        self.predict = tf.function(self._predict)
        self.fgm = tf.function(self._fgm)
        self.pgd = tf.function(self._pgd)

    def _logits(self, x, affine):
        """Logits of ``x``, or of ``x · scale + shift`` when ``affine = (scale, shift)``."""
        if affine is not None:
            x = x * affine[0] + affine[1]
        model = self._model()
        logits = model(x, training=False)[0] if self._returns_pair else model(x)
        if isinstance(logits, tuple | list):
            raise _not_logits(f"a {type(logits).__name__} of {len(logits)}")
        return tf.cast(logits, tf.float32)

    def _labels(self, x, y, affine):
        return tf.argmax(self._logits(x, affine), axis=1) if y is None else y

    def _predict(self, x):
        return tf.argmax(self._logits(x, None), axis=1)

    def _step(self, x, y, eps, clip, affine):
        """One FGM step: ``clip(x + eps · sign(∇x Σ CE))``."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=self._logits(x, affine)
                )
            )
        adv = x + eps * tf.sign(tape.gradient(loss, x))
        return adv if clip is None else tf.clip_by_value(adv, clip[0], clip[1])

    def _fgm(self, x, y, eps, clip, affine):
        return self._step(x, self._labels(x, y, affine), eps, clip, affine)

    def _pgd(self, x, start, y, eps, eps_iter, steps, clip, affine):
        y = self._labels(x, y, affine)
        adv = start
        for _ in tf.range(steps):
            adv = self._step(adv, y, eps_iter, clip, affine)
            adv = x + tf.clip_by_value(adv - x, -eps, eps)
            if clip is not None:
                adv = tf.clip_by_value(adv, clip[0], clip[1])
        return adv


#: One cache per way of calling: ``True`` for networks wrapped by ``logits_fn`` (keyed by the
#: network), ``False`` for images -> logits callables (keyed by the callable). Separate caches
#: keep a network passed once by mistake from shadowing its ``logits_fn`` wrapper later.
_CACHES: dict[bool, weakref.WeakKeyDictionary[Any, _Compiled]] = {
    True: weakref.WeakKeyDictionary(), False: weakref.WeakKeyDictionary()}


def _not_logits(what: str) -> ValueError:
    return ValueError(f"model must map images to logits, but it returns {what}; wrap a "
                      f"(logits, features) network as attacks.logits_fn(network)")


def _compiled(model: LogitsModel) -> _Compiled:
    """The compiled functions of ``model``, made on first use.

    A Keras model with several outputs (a ``(logits, features)`` network passed without
    ``logits_fn``) is rejected here, before tracing; other callables that return a tuple are
    rejected when traced.
    """
    returns_pair = isinstance(model, _Logits)
    outputs = getattr(model, "outputs", None)
    if not returns_pair and isinstance(outputs, list) and len(outputs) > 1:
        raise _not_logits(f"{len(outputs)} outputs")
    key = model.network if returns_pair else model
    cache = _CACHES[returns_pair]
    compiled = cache.get(key)
    if compiled is None:
        compiled = cache[key] = _Compiled(key, returns_pair)
    return compiled


# --------------------------------------------------------------------------- validation


def _check_eps(name: str, value: Any, high: float = 1.0) -> tf.Tensor:
    number = isinstance(value, int | float | np.integer | np.floating)
    if isinstance(value, bool) or not number or not 0 < value <= high:
        raise ValueError(f"{name} must be a number in (0, {high:g}], got {value!r}")
    return tf.constant(value, tf.float32)


def _check_steps(steps: Any) -> tf.Tensor:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return tf.constant(steps, tf.int32)


def _check_clip(clip: Any) -> tuple[tf.Tensor, tf.Tensor] | None:
    if clip is None:
        return None
    if len(clip) != 2 or not clip[0] < clip[1]:
        raise ValueError(f"clip must be None or a pair (low, high) with low < high, got {clip!r}")
    return tf.constant(clip[0], tf.float32), tf.constant(clip[1], tf.float32)


def _checked_images(x: tf.Tensor | np.ndarray, clip: Clip) -> tf.Tensor:
    """``x`` as float32 after checking that it is finite and, if ``clip`` is given, inside it.

    NaN would silently give NaN adversarial images, and images outside the clip range would be
    moved by the clipping itself, not only by the attack.
    """
    dtype = tf.as_dtype(x.dtype) if isinstance(x, tf.Tensor) else None
    if dtype is None:
        kind = np.asarray(x).dtype
        if kind.kind not in "biuf":
            raise ValueError(f"x must hold images as numbers (floats in [0, 1]), got an array of "
                             f"dtype {kind}")
    elif not (dtype.is_floating or dtype.is_integer or dtype == tf.bool):
        raise ValueError(f"x must hold images as numbers (floats in [0, 1]), got a tensor of "
                         f"dtype {dtype.name}")
    x = tf.cast(x, tf.float32)
    if x.shape.rank is None or x.shape.rank < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of at least one image, got shape {tuple(x.shape)}")
    bad = int(tf.size(x)) - int(tf.math.count_nonzero(tf.math.is_finite(x)))
    if bad:
        raise ValueError(f"x must hold finite images, got {bad} NaN or infinite values")
    if clip is not None and int(tf.size(x)):
        low, high = float(tf.reduce_min(x)), float(tf.reduce_max(x))
        if low < clip[0] or high > clip[1]:
            raise ValueError(
                f"x must hold images in [{clip[0]:g}, {clip[1]:g}] (the clip range), found "
                f"values in [{low:g}, {high:g}]; rescale the images or pass clip=None")
    return x


def _check_choice(kind: str, value: Any, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(valid)}")


def _labels_tensor(y: Any) -> tf.Tensor | None:
    return None if y is None else tf.cast(tf.convert_to_tensor(y), tf.int64)


def _model_shapes(model: LogitsModel) -> tuple[tuple[int | None, ...] | None, int | None]:
    """The shape of one input image and the number of classes of ``model``, where its Keras
    metadata tells them (``None`` where it does not, e.g. for a plain function).

    A ``(logits, features)`` network passed without :func:`logits_fn` is rejected first.
    """
    _compiled(model)
    network = model.network if isinstance(model, _Logits) else model
    try:
        inputs, outputs = getattr(network, "inputs", None), getattr(network, "outputs", None)
    except (AttributeError, ValueError):  # a subclassed Keras model that was never built
        return None, None
    image = (tuple(inputs[0].shape)[1:]
             if isinstance(inputs, list) and len(inputs) == 1 else None)
    classes = outputs[0].shape[-1] if isinstance(outputs, list) and outputs else None
    return image, classes


def _check_image_shape(x: tf.Tensor, image: tuple[int | None, ...] | None) -> None:
    """``x`` must be a batch of images of the model's input shape (if known)."""
    if image is None:
        return
    got = tuple(x.shape)
    if len(got) != len(image) + 1 or any(
            want is not None and have != want for have, want in zip(got[1:], image, strict=True)):
        wanted = ", ".join("any" if d is None else str(d) for d in image)
        raise ValueError(f"x must be a batch of images of shape (n, {wanted}) (the model's "
                         f"input), got shape {got}")


def _checked_labels(model: LogitsModel, x: tf.Tensor, y: Any,
                    classes: int | None) -> tf.Tensor | None:
    """``y`` as int64 labels after checking that it holds one class id in [0, classes) per
    image of ``x``; ``classes`` is read from one image's logits when the model does not say.

    Out-of-range labels would otherwise fail deep inside TensorFlow (or give NaN on a GPU).
    """
    if y is None:
        return None
    values = np.asarray(y)
    n = int(x.shape[0])
    if values.dtype.kind not in "iu" or values.shape != (n,):
        raise ValueError(f"y must hold {n} integer class ids, one per image of x, got "
                         f"{values.dtype} values of shape {values.shape}")
    if n and classes is None:
        logits = model(x[:1])
        if isinstance(logits, tuple | list):
            raise _not_logits(f"a {type(logits).__name__} of {len(logits)}")
        classes = int(logits.shape[-1])
    if n and (values.min() < 0 or values.max() >= classes):
        raise ValueError(f"y must hold class ids in [0, {classes}) (the model has {classes} "
                         f"classes), got values from {values.min()} to {values.max()}")
    return tf.constant(values, tf.int64)


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                             or not -(2**63) <= seed < 2**63):
        raise ValueError(f"seed must be an integer (a 64-bit one) or None, got {seed!r}")


#: The largest seed of a transfer evaluation: each batch's PGD start is drawn from
#: ``seed * 100_003 + position``, which must stay a 64-bit integer.
_MAX_TRANSFER_SEED = 2**32 - 1


def _check_batch(networks: Mapping[str, Callable[..., Any]], x: tf.Tensor, labels: Any,
                 source: LogitsModel) -> np.ndarray:
    """One batch of a transfer evaluation checked before it is attacked: images of every
    network's input shape, one integer label in [0, classes) per image (a label out of range
    would score every image wrong, silently)."""
    for name, network in networks.items():
        image, _ = _model_shapes(logits_fn(network))
        try:
            _check_image_shape(x, image)
        except ValueError as err:
            raise ValueError(f"{err} for network {name!r}") from None
    classes = int(source(x[:1]).shape[-1])
    values = np.asarray(labels).reshape(-1)
    n = int(x.shape[0])
    if values.dtype.kind not in "iu" or values.shape != (n,):
        raise ValueError(f"labels must be {n} integer class ids, one per image of the batch, "
                         f"got {values.dtype} values of shape {values.shape}")
    if values.min() < 0 or values.max() >= classes:
        raise ValueError(f"labels must hold class ids in [0, {classes}) (the source network has "
                         f"{classes} classes), got values from {values.min()} to "
                         f"{values.max()}")
    return values


def _checked_input(model: LogitsModel, x: tf.Tensor | np.ndarray, y: Any,
                   clip: Clip) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Images and labels checked against ``model``: finite images (inside ``clip``) of the
    model's input shape, and labels in the model's range of classes."""
    image, classes = _model_shapes(model)
    x = _checked_images(x, clip)
    _check_image_shape(x, image)
    return x, _checked_labels(model, x, y, classes)


# --------------------------------------------------------------------------- attacks


def _fgm(model, x, eps, y, clip, affine) -> tf.Tensor:
    return _compiled(model).fgm(x, _labels_tensor(y), eps, clip, affine)


def _pgd(model, x, eps, eps_iter, steps, y, clip, affine, rand_init=False, seed=None):
    start = x
    if rand_init:
        if seed is None:
            noise = tf.random.uniform(tf.shape(x), -eps, eps)
        else:
            noise = tf.random.stateless_uniform(tf.shape(x), [seed, 0], -eps, eps)
        start = x + tf.clip_by_value(noise, -eps, eps)
    if clip is not None:
        start = tf.clip_by_value(start, clip[0], clip[1])
    return _compiled(model).pgd(x, start, _labels_tensor(y), eps, eps_iter, steps, clip, affine)


def fgm(
    model: LogitsModel,
    x: tf.Tensor | np.ndarray,
    eps: float,
    y: tf.Tensor | np.ndarray | None = None,
    clip: Clip = (0.0, 1.0),
) -> tf.Tensor:
    """Fast gradient method, L-inf: ``clip(x + eps · sign(∇x Σ CE(model(x), y)))``.

    ``model`` maps images to logits; ``y`` defaults to ``argmax model(x)``; ``clip=None`` leaves
    the result unclipped. Matches cleverhans' ``fast_gradient_method(model, x, eps, np.inf,
    clip_min, clip_max, y)``.
    """
    clip_t = _check_clip(clip)
    eps_t = _check_eps("eps", eps)
    x, labels = _checked_input(model, x, y, clip)
    return _fgm(model, x, eps_t, labels, clip_t, None)


def pgd(
    model: LogitsModel,
    x: tf.Tensor | np.ndarray,
    eps: float,
    eps_iter: float = 0.01,
    steps: int = 40,
    y: tf.Tensor | np.ndarray | None = None,
    clip: Clip = (0.0, 1.0),
    rand_init: bool = False,
    seed: int | None = None,
) -> tf.Tensor:
    """Projected gradient descent, L-inf: ``steps`` FGM steps of size ``eps_iter``, each
    followed by projection onto the ``eps``-ball around ``x`` and clipping to ``clip``.

    ``rand_init`` starts from ``x + U(-eps, eps)`` (``seed`` makes it reproducible; without
    one, TensorFlow's global seed applies). ``eps_iter`` must not exceed ``eps``, as in
    cleverhans. Matches ``projected_gradient_descent(model, x, eps, eps_iter, steps, np.inf,
    clip_min, clip_max, y, rand_init=False)`` of cleverhans.
    """
    eps_t = _check_eps("eps", eps)
    eps_iter_t = _check_eps("eps_iter", eps_iter, high=eps)
    steps_t = _check_steps(steps)
    clip_t = _check_clip(clip)
    _check_seed(seed)
    x, labels = _checked_input(model, x, y, clip)
    return _pgd(model, x, eps_t, eps_iter_t, steps_t, labels, clip_t, None, rand_init, seed)


def _channel_stats(name: str, value: Any, channels: int) -> tf.Tensor:
    if value is None:
        raise ValueError("the paper protocol needs the networks' mean and std (per channel)")
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.size not in (1, channels) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be 1 or {channels} finite numbers, got {value!r}")
    if name == "std" and np.any(array <= 0):
        raise ValueError(f"std must be positive, got {value!r}")
    return tf.constant(np.broadcast_to(array, (channels,)))


def craft(
    model: LogitsModel,
    x: tf.Tensor | np.ndarray,
    attack: str,
    eps: float,
    *,
    protocol: str = "pixel",
    mean: Sequence[float] | np.ndarray | None = None,
    std: Sequence[float] | np.ndarray | None = None,
    eps_iter: float = 0.01,
    steps: int = 40,
    y: tf.Tensor | np.ndarray | None = None,
    rand_init: bool = False,
    seed: int | None = None,
) -> tf.Tensor:
    """Adversarial images (pixel space) of ``attack`` ("fgm" or "pgd") under a protocol.

    ``pixel``: ``x`` must lie in [0, 1]; ``eps`` and ``eps_iter`` are pixel units and the
    result is clipped to [0, 1]. ``paper``: ``eps`` and ``eps_iter`` are in units of the
    normalised input ``(x - mean) / std`` and nothing is clipped, so every channel c moves by
    at most ``eps · std_c``; ``mean`` and ``std`` (per channel, as inside the network) are
    required. ``steps``, ``eps_iter``, ``rand_init`` and ``seed`` are used by PGD only
    (``rand_init``: start from a uniform point of the ε-ball, drawn from ``seed``).
    """
    _check_choice("attack", attack, ATTACKS)
    _check_choice("protocol", protocol, PROTOCOLS)
    eps_t = _check_eps("eps", eps)
    if attack == "pgd":
        eps_iter_t, steps_t = _check_eps("eps_iter", eps_iter, high=eps), _check_steps(steps)
        _check_seed(seed)
    x, y = _checked_input(model, x, y, (0.0, 1.0) if protocol == "pixel" else None)

    if protocol == "pixel":
        clip, affine = _check_clip((0.0, 1.0)), None
    else:
        scale = _channel_stats("std", std, x.shape[-1])
        shift = _channel_stats("mean", mean, x.shape[-1])
        x = (x - shift) / scale
        clip, affine = None, (scale, shift)

    if attack == "fgm":
        adv = _fgm(model, x, eps_t, y, clip, affine)
    else:
        adv = _pgd(model, x, eps_t, eps_iter_t, steps_t, y, clip, affine, rand_init, seed)
    return adv if affine is None else adv * affine[0] + affine[1]


# --------------------------------------------------------------------------- evaluation


def _predict(network: Callable[..., Any], x: tf.Tensor) -> np.ndarray:
    return _compiled(logits_fn(network)).predict(x).numpy()


def _length(dataset: Iterable) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None


def transfer_evaluation(
    source: Callable[..., Any],
    targets: Mapping[str, Callable[..., Any]],
    dataset: Iterable,
    *,
    attacks: Sequence[str] = ("fgm", "pgd"),
    eps_grid: Sequence[float] = PAPER_EPS_GRID,
    protocol: str = "pixel",
    mean: Sequence[float] | np.ndarray | None = None,
    std: Sequence[float] | np.ndarray | None = None,
    eps_iter: float = 0.01,
    steps: int = 40,
    progress: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Attack ``source`` (f1) white-box and score every target network on the result.

    ``source`` and ``targets`` (a name -> network dict, e.g. ``{"f1": f1, "f2_baseline": m2,
    "f2_diverge": m3}``; include the source for its white-box accuracy) are networks returning
    ``(logits, features)``; ``dataset`` yields ``(images, labels)`` batches of [0, 1] images and
    integer labels. Per batch, every attack and eps: the adversarial batch is crafted once on
    the source, with the source's clean predictions as labels, and fed to all targets. Under
    the ``paper`` protocol PGD starts from a random point of the ε-ball, as the original code
    (cleverhans' default) does, drawn from ``seed`` and the batch's position, so every target
    is scored on the same images and a rerun gives the same images.

    Returns one row per example, attack (``clean`` with eps 0.0, ``fgm``, ``pgd``), eps and
    model, with columns ``example`` (position in the dataset), ``label``, ``attack``, ``eps``,
    ``model``, ``prediction`` and ``correct``.
    """
    if not targets:
        raise ValueError("targets must name at least one network, e.g. {'f2_diverge': f2}")
    if not attacks:
        raise ValueError(f"attacks must not be empty; valid choices: {', '.join(ATTACKS)}")
    for attack in attacks:
        _check_choice("attack", attack, ATTACKS)
    _check_choice("protocol", protocol, PROTOCOLS)
    if not eps_grid:
        raise ValueError("eps_grid must hold at least one eps in (0, 1]")
    for eps in eps_grid:
        _check_eps("eps", eps)
        if "pgd" in attacks:
            _check_eps("eps_iter", eps_iter, high=eps)
    _check_steps(steps)
    if protocol == "paper" and (mean is None or std is None):
        raise ValueError("the paper protocol needs the networks' mean and std (per channel)")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not (
            0 <= seed <= _MAX_TRANSFER_SEED):
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")

    source_logits = logits_fn(source)
    settings = [("clean", 0.0)] + [(a, float(e)) for a in attacks for e in eps_grid]
    columns: dict[str, list] = {name: [] for name in _COLUMNS}
    offset = 0
    bar = tqdm(dataset, total=_length(dataset), desc="transfer attack", unit="batch",
               file=sys.stdout, mininterval=1.0,
               disable=not progress)
    for images, labels in bar:
        try:
            x = _checked_images(images, None)
            labels = _check_batch({"source": source, **targets}, x, labels, source_logits)
        except ValueError as err:  # name the argument the images came from
            text = str(err)
            raise ValueError(f"the dataset's images{text[1:]}" if text.startswith("x ")
                             else f"the dataset's {text}") from None
        n = int(x.shape[0])
        source_labels = _predict(source, x)
        for attack, eps in settings:
            x_adv = x if attack == "clean" else craft(
                source_logits, x, attack, eps, protocol=protocol, mean=mean, std=std,
                eps_iter=eps_iter, steps=steps, y=source_labels,
                rand_init=protocol == "paper", seed=seed * 100_003 + offset,
            )
            for name, network in targets.items():
                prediction = _predict(network, x_adv)
                block = {
                    "example": np.arange(offset, offset + n),
                    "label": labels,
                    "attack": np.full(n, attack, dtype=object),
                    "eps": np.full(n, eps),
                    "model": np.full(n, name, dtype=object),
                    "prediction": prediction,
                    "correct": prediction == labels,
                }
                for column, values in block.items():
                    columns[column].append(values)
        offset += n
    if offset == 0:
        raise ValueError("the dataset yielded no batches")
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})


def accuracy_table(per_example: pd.DataFrame) -> pd.DataFrame:
    """Accuracy in % and number of images per (attack, eps, model), in the order of the run."""
    grouped = per_example.groupby(["attack", "eps", "model"], sort=False)["correct"]
    table = grouped.agg(accuracy="mean", n="size").reset_index()
    table["accuracy"] *= 100.0
    return table


def _eps_label(eps: float) -> str:
    """``0.03`` -> ``"0.03"``, ``0.1`` -> ``"0.10"`` (as the paper's CSV); more digits only
    when two decimals would not give the eps back (e.g. 8/255)."""
    two = f"{eps:.2f}"
    return two if float(two) == eps else repr(float(eps))


def paper_table(
    per_example: pd.DataFrame,
    dataset: str,
    network: str,
    methods: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The transfer table in the layout of ``pdc_utils/paper_table1.csv``.

    Columns ``dataset, network, method, clean``, then ``<attack>_<eps>`` for every eps of the
    run in increasing order and, within an eps, fgm before pgd. With the paper's grid this is
    exactly ``fgm_0.03, pgd_0.03, fgm_0.05, pgd_0.05, fgm_0.10, pgd_0.10``; another grid gives
    the columns of the grid that was run. One row per model of ``methods`` (model name ->
    method, default ``f1`` -> ``source``, ``f2_baseline`` -> ``baseline``, ``f2_diverge`` ->
    ``diverge``) that the table holds, in the order of ``methods``; accuracies in %, rounded
    to 2 decimals.
    """
    if methods is None:
        methods = {"f1": "source", "f2_baseline": "baseline", "f2_diverge": "diverge"}
    accuracy = accuracy_table(per_example).set_index(["attack", "eps", "model"])["accuracy"]
    present = set(per_example["model"])
    models = [m for m in methods if m in present]
    if not models:
        raise ValueError(f"none of the models {list(methods)} is in the table; "
                         f"it holds: {', '.join(sorted(present))}")
    attacked = per_example[per_example["attack"] != "clean"]
    grid = sorted(set(attacked["eps"]))
    attacks = [a for a in ATTACKS if a in set(attacked["attack"])]
    rows = []
    for model in models:
        row = {"dataset": dataset, "network": network, "method": methods[model],
               "clean": accuracy[("clean", 0.0, model)]}
        for eps in grid:
            for attack in attacks:
                row[f"{attack}_{_eps_label(eps)}"] = accuracy[(attack, eps, model)]
        rows.append(row)
    return pd.DataFrame(rows).round(2)


def paired_bootstrap(
    per_example: pd.DataFrame,
    model_a: str,
    model_b: str,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Accuracy difference ``a - b`` in percentage points, with a paired percentile bootstrap.

    Per (attack, eps): ``d_i = correct_a(i) - correct_b(i) ∈ {-1, 0, 1}`` over the test images
    both models were scored on; the estimate is ``100 · mean(d)``. A bootstrap replicate
    resamples n images with replacement, the same images for both models (paired), and takes
    ``100 · mean(d)`` over them. That mean only depends on how many resampled images have
    d = -1, 0, 1, counts that are Multinomial(n; p₋₁, p₀, p₁) with p the observed frequencies;
    drawing those counts gives the same bootstrap distribution in O(n_boot) memory instead of
    O(n_boot · n). The interval is the (1 ± level)/2 percentiles of the replicates.

    Columns: ``attack, eps, model_a, model_b, n, difference, low, high``.
    """
    models = set(per_example["model"])
    for name in (model_a, model_b):
        if name not in models:
            raise ValueError(
                f"unknown model {name!r}; the table holds: {', '.join(sorted(models))}"
            )
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")

    rng = np.random.default_rng(seed)
    rows = []
    for (attack, eps), group in per_example.groupby(["attack", "eps"], sort=False):
        wide = group.pivot(index="example", columns="model", values="correct")
        pairs = wide[[model_a, model_b]].dropna().astype(int)
        d = (pairs[model_a] - pairs[model_b]).to_numpy()
        n = d.size
        if n == 0:
            raise ValueError(f"no image was scored for both {model_a!r} and {model_b!r}")
        freq = [np.mean(d == value) for value in (-1, 0, 1)]
        counts = rng.multinomial(n, freq, size=n_boot)
        replicates = 100.0 * (counts[:, 2] - counts[:, 0]) / n
        low, high = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
        rows.append({"attack": attack, "eps": eps, "model_a": model_a, "model_b": model_b,
                     "n": n, "difference": 100.0 * d.mean(), "low": low, "high": high})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- over seeds


def transfer_from_attackers(
    attackers: Mapping[str, Callable[..., Any]],
    targets: Mapping[str, Callable[..., Any]],
    dataset: Iterable,
    **options: Any,
) -> pd.DataFrame:
    """:func:`transfer_evaluation` once per attacker, stacked with an ``attacker`` column.

    Every attacker crafts its own adversarial images (white-box on itself, its own clean
    predictions as labels) and every target is scored on them; the attacker is scored too
    (its ``source`` row). ``options`` are those of :func:`transfer_evaluation`; under the
    ``paper`` protocol each attacker's random PGD start gets its own seed.
    """
    if not attackers:
        raise ValueError("attackers must name at least one network, e.g. {'f1': f1}")
    seed = options.pop("seed", 0)
    frames = []
    for k, (name, attacker) in enumerate(attackers.items()):
        scored = {name: attacker, **{n: t for n, t in targets.items() if n != name}}
        frame = transfer_evaluation(attacker, scored, dataset, seed=seed + k, **options)
        frames.append(frame.assign(attacker=name))
    return pd.concat(frames, ignore_index=True)


def seeds_table(per_example: pd.DataFrame, dataset: str, network: str,
                pairs: Sequence[tuple[str, str]], attackers: Sequence[str] = ("f1",)
                ) -> pd.DataFrame:
    """The paper's table for every attacker and seed: its columns plus ``seed`` and
    ``attacker``, one row per attacker, seed and method.

    ``pairs[s] = (baseline model, diverged model)`` of seed index s; an attacker's ``source``
    row (itself, white-box) has seed -1. ``per_example`` is :func:`transfer_from_attackers`'s
    table (or one attacker's :func:`transfer_evaluation`, without an ``attacker`` column).
    """
    frames = []
    for attacker in attackers:
        rows = (per_example[per_example["attacker"] == attacker]
                if "attacker" in per_example else per_example)
        frames.append(paper_table(rows, dataset, network, {attacker: "source"})
                      .assign(seed=-1, attacker=attacker))
        for s, (base, div) in enumerate(pairs):
            methods = {base: "baseline", div: "diverge"}
            frames.append(paper_table(rows, dataset, network, methods)
                          .assign(seed=s, attacker=attacker))
    return pd.concat(frames, ignore_index=True)


def mean_over_seeds(seeds: pd.DataFrame, attacker: str = "f1") -> pd.DataFrame:
    """``transfer_attack.csv``: the mean over seeds of :func:`seeds_table`, per method, for
    one attacker (f1 by default, the attacker of the paper's table), in the paper's columns."""
    if "attacker" in seeds:
        seeds = seeds[seeds["attacker"] == attacker]
    columns = [c for c in seeds.columns if c not in ("seed", "attacker")]
    keys = ["dataset", "network", "method"]
    mean = seeds[columns].groupby(keys, sort=False).mean().reset_index()
    return mean.round(2)


# --------------------------------------------------------------------------- mechanism


_GRADIENTS: weakref.WeakKeyDictionary[Any, Callable] = weakref.WeakKeyDictionary()


def input_gradients(network: Callable[..., Any], x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``∇x CE(network(x)_i, y_i)`` for every example i (a compiled function per network).

    The loss is summed over the batch, so row i of the result depends on example i only.
    ``network`` returns ``(logits, features)`` and runs in inference mode.
    """
    function = _GRADIENTS.get(network)
    if function is None:
        def gradient(images, labels):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = tf.cast(network(images, training=False)[0], tf.float32)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
            return tape.gradient(loss, images)

        function = _GRADIENTS[network] = tf.function(gradient)
    return function(tf.cast(x, tf.float32), tf.cast(y, tf.int64))


def gradient_alignment(source: Callable[..., Any], targets: Mapping[str, Callable[..., Any]],
                       dataset: Iterable, *, source_name: str = "f1") -> pd.DataFrame:
    """Cosine between the attacker's and each target's input gradient, image by image.

    Transfer attacks step along ``sign(∇x L_source)``; they hurt a target as far as that
    direction also raises the target's loss, i.e. as far as the two input gradients align. For
    every test image, ``cos(∇x CE(source(x), ŷ), ∇x CE(target(x), ŷ))`` with ŷ the source's
    prediction (the attack's labels). Columns ``model, attack_source, cosine_mean, cosine_std,
    n`` (``results/gradient_alignment.csv``).
    """
    cosines: dict[str, list[np.ndarray]] = {name: [] for name in targets}
    for images, _ in dataset:
        x = tf.cast(images, tf.float32)
        y = tf.argmax(source(x, training=False)[0], axis=1)
        reference = tf.reshape(input_gradients(source, x, y), [x.shape[0], -1])
        for name, network in targets.items():
            other = tf.reshape(input_gradients(network, x, y), [x.shape[0], -1])
            numerator = tf.reduce_sum(reference * other, axis=1)
            denominator = tf.norm(reference, axis=1) * tf.norm(other, axis=1)
            cosines[name].append((numerator / tf.maximum(denominator, 1e-30)).numpy())
    rows = []
    for name, parts in cosines.items():
        values = np.concatenate(parts)
        rows.append({"model": name, "attack_source": source_name,
                     "cosine_mean": float(values.mean()), "cosine_std": float(values.std()),
                     "n": int(values.size)})
    return pd.DataFrame(rows)

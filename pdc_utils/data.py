"""Datasets as batched, prefetched ``tf.data`` pipelines.

Every pipeline yields ``(images, labels)``: images float32 in [0, 1] with shape
``(batch, H, W, 3)``, labels int32 (and, with :func:`load_split`'s ``extra``, a third element).
Normalisation by the dataset's mean and std is *not* done here: it is the first layer of every
network (:mod:`pdc_utils.models`), so attacks work in pixel units on [0, 1] images.

Four datasets, named as in :data:`pdc_utils.config.DATASETS`:

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 real images, no download), values
  divided by 16, replicated to 3 channels, split once into a fixed stratified 80/20
  train/test split (1,437 / 360), and the 1,437 again, stratified, into train / validation
  (1,149 / 288). It has no augmentation: ``augment=True`` is ignored.
- ``cifar10`` (tfds): the last 5,000 of tfds' 50,000 training images are the validation
  split, the first 45,000 the training split. Training augmentation is the paper's: zero-pad
  4 pixels (as torchvision's ``RandomCrop(32, padding=4)``), random 32x32 crop, random
  horizontal flip.
- ``imagenette`` (tfds ``imagenette/320px-v2``) and ``imagenet2012`` (tfds, needs the user's
  manual download): evaluation resizes the shorter side to 256 and centre-crops 224;
  training takes a random-resized crop (area 8-100 %, aspect 3/4-4/3) resized to 224 and a
  random horizontal flip.

Three splits (:data:`SPLITS`). ``validation`` is carved from each dataset's training data, fixed
by the data (the digits split seed, or a fixed slice of tfds' training split, whose file order
tfds shuffles once when it prepares the data) and never trained on: every choice of the series
(α, penalty, ε grid, defaults) is made on it. ``test`` is only used to report
(``docs/design.md``, "Evidence").

Determinism: the subset taken by ``limit`` is the first examples of the split in file order
(fixed); shuffling and augmentation draw from stateless random streams seeded by ``seed``, so
a given seed gives the same sequence of epochs every time (a new order and new crops each
epoch), whatever the parallelism of the input pipeline.

``tensorflow_datasets`` is imported only when a tfds dataset is used: the offline ``digits``
path does not need it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pdc_utils import config

#: The split names that :func:`load_split` takes; each dataset maps them to its own.
SPLITS = ("train", "validation", "test")
#: ``random_state`` of the fixed digits train/test split (independent of any run seed).
DIGITS_SPLIT_SEED = 0
#: ``random_state`` of the fixed digits train/validation split of the 1,437 training images.
DIGITS_VALIDATION_SEED = 1
#: Share of digits' training images held out, stratified, as its validation split.
DIGITS_VALIDATION_FRACTION = 0.2
#: Evaluation of ImageNet-style data: resize the shorter side to crop / 0.875 (256 for 224),
#: then centre-crop, the standard ImageNet evaluation transform.
CENTRE_CROP_FRACTION = 0.875
#: Random-resized-crop ranges of the ImageNet training augmentation (torchvision's defaults).
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
#: Zero padding around CIFAR images before the random 32x32 crop.
CIFAR_PAD = 4
#: Validation images held out from the end of each tfds training split (never trained on).
CIFAR_VALIDATION = 5_000
IMAGENETTE_VALIDATION = 947  # 10 %
IMAGENET_VALIDATION = 10_000

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_URL = "https://image-net.org/download-images.php"

_CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# In tfds' label order (sorted WordNet ids n01440764 ... n03888257).
_IMAGENETTE_CLASSES = (
    "tench", "English springer", "cassette player", "chain saw", "church", "French horn",
    "garbage truck", "gas pump", "golf ball", "parachute",
)

# (image, stateless seed pair or None) -> model input image.
_Transform = Callable[[tf.Tensor, tf.Tensor | None], tf.Tensor]


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the package needs to know about a dataset, without loading it.

    ``train_split``/``validation_split``/``test_split`` are the tfds split names (with tfds'
    slicing, e.g. ``"train[:45000]"``) behind ``"train"``/``"validation"``/``"test"``;
    ``num_train``/``num_validation``/``num_test`` their sizes; ``shuffle_buffer`` how many
    (still encoded) examples a shuffle holds (the whole split where that fits in memory);
    ``augmentation`` describes the training augmentation in words (``"none"`` for digits);
    ``manual_files`` are the archives a user must download by hand (only ImageNet).
    """

    name: str
    tfds_name: str | None
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]
    train_split: str
    validation_split: str
    test_split: str
    num_train: int
    num_validation: int
    num_test: int
    shuffle_buffer: int
    augmentation: str
    manual_files: tuple[str, ...] = ()


def _check_name(name: str) -> None:
    if name not in config.DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(config.DATASETS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def _check_count(key: str, value: int, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")


@functools.lru_cache(maxsize=1)
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed stratified splits of sklearn's digits, images in [0, 1] with 3 channels: 80/20
    train/test, then 20 % of the training images as validation (stratified again)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.repeat((digits.images / 16.0).astype(np.float32)[..., None], 3, axis=-1)
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=DIGITS_VALIDATION_FRACTION, stratify=y_train,
        random_state=DIGITS_VALIDATION_SEED)
    splits = {"train": (x_train, y_train), "validation": (x_val, y_val),
              "test": (x_test, y_test)}
    for arrays in splits.values():
        for array in arrays:
            array.flags.writeable = False  # cached and shared: nobody may change it
    return splits


def _imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 WordNet ids in tfds' label order, from the label file tfds ships."""
    import tensorflow_datasets as tfds

    text = tfds.core.tfds_path("datasets/imagenet2012/labels.txt").read_text()
    return tuple(text.split())


@functools.cache
def dataset_info(name: str) -> DatasetInfo:
    """Describe dataset ``name`` (one of ``config.DATASETS``) without downloading anything."""
    _check_name(name)
    if name == "digits":
        x_train, _ = _digits_splits()["train"]
        return DatasetInfo(
            name="digits",
            tfds_name=None,
            num_classes=10,
            image_shape=(8, 8, 3),
            mean=tuple(float(v) for v in x_train.mean(axis=(0, 1, 2))),
            std=tuple(float(v) for v in x_train.std(axis=(0, 1, 2))),
            class_names=tuple(str(d) for d in range(10)),
            train_split="train",
            validation_split="validation",
            test_split="test",
            num_train=len(x_train),
            num_validation=len(_digits_splits()["validation"][0]),
            num_test=len(_digits_splits()["test"][0]),
            shuffle_buffer=len(x_train),
            augmentation="none",
        )
    if name == "cifar10":
        return DatasetInfo(
            name="cifar10",
            tfds_name="cifar10",
            num_classes=10,
            image_shape=(32, 32, 3),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2023, 0.1994, 0.2010),
            class_names=_CIFAR10_CLASSES,
            train_split=f"train[:{50_000 - CIFAR_VALIDATION}]",
            validation_split=f"train[{50_000 - CIFAR_VALIDATION}:]",
            test_split="test",
            num_train=50_000 - CIFAR_VALIDATION,
            num_validation=CIFAR_VALIDATION,
            num_test=10_000,
            shuffle_buffer=50_000,
            augmentation=f"zero-pad {CIFAR_PAD}, random 32x32 crop, horizontal flip",
        )
    imagenet_like = {
        "image_shape": (224, 224, 3),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "test_split": "validation",  # ImageNet's labelled validation set is our test split
        "shuffle_buffer": 10_000,
        "augmentation": "random-resized crop to 224 (area 8-100 %), horizontal flip",
    }
    if name == "imagenette":
        return DatasetInfo(
            name="imagenette",
            tfds_name="imagenette/320px-v2",
            num_classes=10,
            class_names=_IMAGENETTE_CLASSES,
            train_split=f"train[:{9_469 - IMAGENETTE_VALIDATION}]",
            validation_split=f"train[{9_469 - IMAGENETTE_VALIDATION}:]",
            num_train=9_469 - IMAGENETTE_VALIDATION,
            num_validation=IMAGENETTE_VALIDATION,
            num_test=3_925,
            **imagenet_like,
        )
    return DatasetInfo(
        name="imagenet2012",
        tfds_name="imagenet2012",
        num_classes=1000,
        class_names=_imagenet_class_names(),
        train_split=f"train[:{1_281_167 - IMAGENET_VALIDATION}]",
        validation_split=f"train[{1_281_167 - IMAGENET_VALIDATION}:]",
        num_train=1_281_167 - IMAGENET_VALIDATION,
        num_validation=IMAGENET_VALIDATION,
        num_test=50_000,
        manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
        **imagenet_like,
    )


def num_examples(name: str, split: str, limit: int = 0) -> int:
    """How many examples ``load_split(name, split, limit=limit)`` yields (before batching)."""
    info = dataset_info(name)
    _check_split(split)
    _check_count("limit", limit)
    total = {"train": info.num_train, "validation": info.num_validation,
             "test": info.num_test}[split]
    return min(limit, total) if limit else total


def manual_download_message(info: DatasetInfo, data_dir: Path | str) -> str:
    """Tell the user which archives to download by hand and exactly where to put them."""
    manual_dir = Path(data_dir) / "downloads" / "manual"
    files = " and ".join(info.manual_files)
    return (
        f"{info.name} is not prepared in {data_dir}, and tfds cannot download it for you: "
        f"download {files} from {IMAGENET_URL} (free account, non-commercial terms) and put "
        f"them in {manual_dir}/ ; the next load with download=True (the default) extracts and "
        "prepares them once. Set TFDS_DATA_DIR to use another data dir."
    )


def _tfds_source(
    info: DatasetInfo, split: str, data_dir: Path | str | None, download: bool
) -> tf.data.Dataset:
    """The split in file order as (encoded image bytes, label): decoding comes after shuffling,
    so a shuffle buffer holds compressed bytes rather than decoded images."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(info.tfds_name, data_dir=None if data_dir is None else str(data_dir))
    try:
        if download:
            builder.download_and_prepare()
        return builder.as_dataset(
            split={"train": info.train_split, "validation": info.validation_split,
                   "test": info.test_split}[split],
            as_supervised=True,
            shuffle_files=False,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
    except AssertionError as err:  # tfds' way of saying "manual dir empty" / "not prepared"
        if info.manual_files:
            raise FileNotFoundError(manual_download_message(info, builder.data_dir_root)) from err
        raise


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    """PNG/JPEG bytes to a float32 RGB image in [0, 1]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _cifar_train(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    padding = [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]]
    image = tf.pad(image, padding)  # zeros = black, like torchvision's default fill
    image = tf.image.stateless_random_crop(image, (32, 32, 3), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _resize(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    # Antialiased bilinear weights are non-negative and sum to one; the clip only removes
    # float round-off so that the [0, 1] contract holds exactly.
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def _imagenet_eval(image: tf.Tensor, crop: int) -> tf.Tensor:
    side = round(crop / CENTRE_CROP_FRACTION)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = side / tf.reduce_min(shape)
    # max() guards against rounding the shorter side to side - 1.
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), side)
    image = _resize(image, new_shape)
    return tf.image.resize_with_crop_or_pad(image, crop, crop)


def _imagenet_train(image: tf.Tensor, seed: tf.Tensor, crop: int) -> tf.Tensor:
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=box_seed,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT_RANGE,
        area_range=CROP_AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )  # after 10 failed attempts it returns the whole image
    image = _resize(tf.slice(image, begin, size), (crop, crop))
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _transform(info: DatasetInfo, augment: bool) -> _Transform:
    """``f(image, seed)``: a raw example's image to the model's input, a float32 image in [0, 1]
    of shape ``info.image_shape``. ``seed`` (a stateless seed pair) is used only to augment."""
    crop = info.image_shape[0]
    if info.name == "digits":  # already float32 in [0, 1]; digits has no augmentation
        return lambda image, _seed: image
    if info.name == "cifar10":
        if augment:
            return lambda encoded, seed: _cifar_train(_decode(encoded), seed)
        return lambda encoded, _seed: _decode(encoded)
    if augment:
        return lambda encoded, seed: _imagenet_train(_decode(encoded), seed, crop)
    return lambda encoded, _seed: _imagenet_eval(_decode(encoded), crop)


def _check_extra(info: DatasetInfo, split: str, limit: int, augment: bool,
                 extra: tuple[np.ndarray | tf.Tensor, ...]
                 ) -> tuple[np.ndarray | tf.Tensor, ...]:
    """``extra`` of :func:`load_split` as a tuple of arrays, or a ``ValueError`` saying what is
    wrong with it and what would be valid."""
    if augment:
        raise ValueError(
            f"extra (arrays of per-example values, e.g. cached features) cannot be combined "
            f"with the augmentation of {info.name} ({info.augmentation}): it draws a new random "
            f"version of every image each epoch, so values computed from the stored images "
            f"would not belong to the images trained on; pass augment=False, or no extra")
    if isinstance(extra, np.ndarray) or not isinstance(extra, tuple | list) or not extra:
        raise ValueError("extra must be a non-empty tuple of arrays (one per entry, first axis "
                         f"= examples), got {type(extra).__name__}")
    expected = num_examples(info.name, split, limit)
    # a tf.Tensor stays one: slicing it needs no copy, unlike a NumPy array
    arrays = tuple(a if isinstance(a, tf.Tensor) else np.asarray(a) for a in extra)
    for index, array in enumerate(arrays):
        if not array.shape or array.shape[0] != expected:
            got = "a scalar" if not array.shape else f"{array.shape[0]} rows"
            raise ValueError(
                f"extra[{index}] must have one row per example of {info.name}'s {split} split "
                f"with limit={limit}, i.e. {expected} rows in file order, got {got}")
    return arrays


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of epoch ``epoch`` of a training seeded with ``seed`` (a fixed mix of
    the two, so that neighbouring seeds do not share epochs)."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % (2**31 - 1)


def load_split(
    name: str,
    split: str,
    *,
    batch_size: int,
    shuffle: bool = False,
    augment: bool = False,
    seed: int = 0,
    limit: int = 0,
    data_dir: Path | str | None = None,
    drop_remainder: bool = False,
    download: bool = True,
    epoch: int | None = None,
    extra: tuple[np.ndarray | tf.Tensor, ...] | None = None,
) -> tf.data.Dataset:
    """Split ``"train"``, ``"validation"`` or ``"test"`` of dataset ``name`` as batches of
    (images, labels).

    ``limit > 0`` keeps the first ``limit`` examples (before shuffling: a fixed subset).
    ``shuffle`` reshuffles every epoch, deterministically for a given ``seed``; ``augment``
    applies the dataset's training augmentation (none for digits), with per-example random
    draws from the same seed. With ``epoch`` the dataset is that one epoch of the seed's
    sequence: its order and crops depend on ``(seed, epoch)`` only, not on how many times the
    dataset was iterated before, so a training resumed at epoch e sees exactly the batches an
    uninterrupted one would. ``data_dir`` defaults to ``config.data_dir()`` (TFDS_DATA_DIR);
    ``download=False`` never asks tfds to download or prepare. ImageNet 2012 that is not
    prepared raises ``FileNotFoundError`` saying where to put the manual download.

    ``extra`` attaches per-example arrays (e.g. a frozen network's features of every image,
    see ``feature_cache`` in :mod:`pdc_utils.experiment`): one array (NumPy, or a
    ``tf.Tensor``, which is used without a copy) per entry, its first axis the examples of the
    split in file order after ``limit``. They are paired with the examples before shuffling,
    so the images come in the same order as without ``extra``, and every batch becomes
    ``(images, labels, extra_batches)`` with ``extra_batches`` a tuple of one batch per array.
    Augmentation that is applied (not for digits) is refused with ``extra``: a new random crop
    of an image is not the image the arrays were computed from.
    """
    info = dataset_info(name)
    _check_split(split)
    _check_count("batch_size", batch_size, low=1)
    _check_count("limit", limit)
    _check_count("seed", seed)
    if epoch is not None:
        _check_count("epoch", epoch)
        seed = epoch_seed(seed, epoch)
    per_iteration = epoch is None  # a fixed epoch draws the same order on every iteration
    augment = augment and info.augmentation != "none"
    if extra is not None:
        extra = _check_extra(info, split, limit, augment, extra)

    if info.tfds_name is None:
        ds = tf.data.Dataset.from_tensor_slices(_digits_splits()[split])
    else:
        ds = _tfds_source(info, split, config.data_dir() if data_dir is None else data_dir,
                          download)
    if limit:
        ds = ds.take(limit)
    if extra is not None:  # paired before the shuffle: the shuffle's order is unchanged
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(extra))
    if shuffle:
        buffer = min(info.shuffle_buffer, num_examples(name, split, limit))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=per_iteration)

    transform = _transform(info, augment)

    def prepare(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor | None,
                arrays: tuple[tf.Tensor, ...] | None = None) -> tuple:
        image = tf.ensure_shape(transform(image, seed), info.image_shape)
        if arrays is None:
            return image, tf.cast(label, tf.int32)
        return image, tf.cast(label, tf.int32), arrays

    if augment:
        # One stateless seed pair per example, a new stream each epoch, fixed by ``seed``.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=per_iteration)
        seeds = seeds.batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, pair: prepare(*example, pair), num_parallel_calls=tf.data.AUTOTUNE
        )
    elif extra is not None:
        ds = ds.map(lambda example, arrays: prepare(*example, None, arrays),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda image, label: prepare(image, label, None),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

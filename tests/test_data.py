"""Tests of pdc_utils.data: digits on real data, tfds loaders under tfds' mock (no network)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pdc_utils import config, data

MOCK_EXAMPLES = 6


def collect(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All (images, labels) of a batched dataset as two numpy arrays."""
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        yield


# --- dataset_info ------------------------------------------------------------------------


@pytest.mark.parametrize("name", config.DATASETS)
def test_dataset_info_is_consistent(name):
    info = data.dataset_info(name)
    assert info.name == name
    assert len(info.class_names) == info.num_classes
    assert info.image_shape[2] == 3 and len(info.mean) == 3 and len(info.std) == 3
    assert all(0 < m < 1 for m in info.mean) and all(0 < s < 1 for s in info.std)
    assert data.num_examples(name, "train") == info.num_train
    assert data.num_examples(name, "test") == info.num_test
    assert data.num_examples(name, "train", limit=5) == 5


def test_dataset_info_values_of_the_paper():
    cifar = data.dataset_info("cifar10")
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2023, 0.1994, 0.2010)
    assert cifar.class_names[0] == "airplane" and cifar.image_shape == (32, 32, 3)
    for name in ("imagenette", "imagenet2012"):
        info = data.dataset_info(name)
        assert info.image_shape == (224, 224, 3) and info.test_split == "validation"
        assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert data.dataset_info("imagenet2012").num_classes == 1000
    assert data.dataset_info("imagenet2012").class_names[0] == "n01440764"
    assert data.dataset_info("imagenet2012").manual_files == (
        "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
    )


def test_unknown_names_are_rejected_with_the_valid_choices():
    with pytest.raises(ValueError, match="valid datasets: digits, cifar10, imagenette"):
        data.dataset_info("mnist")
    with pytest.raises(ValueError, match="valid datasets"):
        data.load_split("mnist", "train", batch_size=8)
    with pytest.raises(ValueError, match="valid splits: train, validation, test"):
        data.load_split("digits", "valid", batch_size=8)
    with pytest.raises(ValueError, match="valid splits"):
        data.num_examples("digits", "val")


@pytest.mark.parametrize(
    "kwargs, key",
    [({"batch_size": 0}, "batch_size"), ({"batch_size": 8, "limit": -1}, "limit"),
     ({"batch_size": 8, "seed": 1.5}, "seed"), ({"batch_size": True}, "batch_size")],
)
def test_bad_counts_are_rejected(kwargs, key):
    with pytest.raises(ValueError, match=key):
        data.load_split("digits", "train", **kwargs)


# --- digits (real data) --------------------------------------------------------------------


def test_digits_splits_sizes_values_and_labels():
    from sklearn.datasets import load_digits

    info = data.dataset_info("digits")
    x_train, y_train = collect(data.load_split("digits", "train", batch_size=100))
    x_test, y_test = collect(data.load_split("digits", "test", batch_size=100))
    x_val, y_val = collect(data.load_split("digits", "validation", batch_size=100))
    assert (len(x_train), len(x_val), len(x_test)) == (1149, 288, 360) == (
        info.num_train, info.num_validation, info.num_test)
    # the validation split is stratified too, 20 % of the 1,437 training images per class
    assert all(abs(collections.Counter(y_val)[c] - 0.2 * (collections.Counter(y_train)[c]
                                                         + collections.Counter(y_val)[c])) <= 1
               for c in range(10))
    assert x_train.shape[1:] == (8, 8, 3) and x_train.dtype == np.float32
    assert y_train.dtype == np.int32 and set(y_train) == set(range(10))
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    np.testing.assert_array_equal(x_train[..., 0], x_train[..., 2])  # grey replicated to RGB
    # Nothing lost or invented: the two splits are exactly sklearn's 1,797 digits.
    digits = load_digits()
    both = np.concatenate([x_test, x_val, x_train])[..., 0] * 16
    assert sorted(map(bytes, both.astype(np.uint8))) == sorted(
        map(bytes, digits.images.astype(np.uint8))
    )
    # Stratified: each class is 20 % of its examples in the test split, give or take one.
    total = collections.Counter(digits.target)
    test_counts = collections.Counter(y_test)
    assert all(abs(test_counts[c] - 0.2 * total[c]) <= 1 for c in range(10))
    # The statistics are the train split's, per channel.
    np.testing.assert_allclose(info.mean, x_train.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(info.std, x_train.std(axis=(0, 1, 2)), rtol=1e-5)


def test_digits_split_does_not_depend_on_the_seed():
    a = collect(data.load_split("digits", "test", batch_size=64, seed=0))
    b = collect(data.load_split("digits", "test", batch_size=64, seed=7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_shuffle_is_deterministic_under_the_seed_and_reshuffles_each_epoch():
    def order(seed):
        ds = data.load_split("digits", "train", batch_size=256, shuffle=True, seed=seed)
        return collect(ds)[1], collect(ds)[1]

    first, second = order(3)
    again_first, again_second = order(3)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)  # a new order each epoch
    assert not np.array_equal(first, order(4)[0])  # another seed, another order
    unshuffled = collect(data.load_split("digits", "train", batch_size=256))[1]
    assert not np.array_equal(first, unshuffled)
    np.testing.assert_array_equal(np.sort(first), np.sort(unshuffled))


def test_limit_takes_a_fixed_subset_before_shuffling():
    head = collect(data.load_split("digits", "train", batch_size=32, limit=100))
    shuffled = collect(
        data.load_split("digits", "train", batch_size=32, limit=100, shuffle=True, seed=1)
    )
    assert len(head[0]) == len(shuffled[0]) == 100 == data.num_examples("digits", "train", 100)
    full = collect(data.load_split("digits", "train", batch_size=100))
    np.testing.assert_array_equal(head[0], full[0][:100])
    assert sorted(map(bytes, head[0])) == sorted(map(bytes, shuffled[0]))
    assert not np.array_equal(head[1], shuffled[1])


def test_batches_and_drop_remainder():
    sizes = [len(y) for _, y in data.load_split("digits", "train", batch_size=64)]
    assert sizes == [64] * 17 + [1149 - 17 * 64]
    dropped = [len(y) for _, y in data.load_split("digits", "train", batch_size=64,
                                                  drop_remainder=True)]
    assert dropped == [64] * 17
    ds = data.load_split("digits", "test", batch_size=64, drop_remainder=True)
    assert ds.element_spec[0].shape.as_list() == [64, 8, 8, 3]


def test_digits_has_no_augmentation():
    plain = collect(data.load_split("digits", "train", batch_size=128, limit=256))
    augmented = collect(
        data.load_split("digits", "train", batch_size=128, limit=256, augment=True, seed=5)
    )
    assert data.dataset_info("digits").augmentation == "none"
    np.testing.assert_array_equal(plain[0], augmented[0])


# --- extra: per-example arrays carried with the images ----------------------------------------


def _indices(n):
    """``extra`` that names each example: its row number and a 2-d array built from it."""
    rows = np.arange(n, dtype=np.int64)
    return rows, np.stack([rows, -rows], axis=1).astype(np.float32)


@pytest.mark.parametrize("shuffle", [True, False])
def test_extra_keeps_the_order_of_the_images_and_travels_with_each(shuffle):
    limit = 300
    load = dict(batch_size=64, shuffle=shuffle, seed=3, limit=limit, epoch=2)
    plain = list(data.load_split("digits", "train", **load))
    carried = list(data.load_split("digits", "train", extra=_indices(limit), **load))
    assert len(carried) == len(plain) == 5
    head = data._digits_splits()["train"][0][:limit]
    for (x, y), (x_extra, y_extra, (rows, pairs)) in zip(plain, carried, strict=True):
        np.testing.assert_array_equal(x_extra, x)  # the same images in the same order
        np.testing.assert_array_equal(y_extra, y)
        np.testing.assert_array_equal(head[rows.numpy()], x)  # each with its own row
        np.testing.assert_array_equal(pairs[:, 0], rows.numpy().astype(np.float32))
        np.testing.assert_array_equal(pairs[:, 1], -rows.numpy().astype(np.float32))
    if shuffle:  # the check means something: the order is not the file order
        assert not np.array_equal(np.concatenate([r for _, _, (r, _) in carried]),
                                  np.arange(limit))
    assert carried[0][2][1].dtype == tf.float32 and carried[0][2][0].dtype == tf.int64


def test_extra_of_a_tfds_split_without_augmentation(mock_tfds):
    load = dict(batch_size=4, shuffle=True, seed=0, epoch=1, limit=MOCK_EXAMPLES)
    plain = collect(data.load_split("cifar10", "train", **load))
    rows, _ = _indices(MOCK_EXAMPLES)
    batches = list(data.load_split("cifar10", "train", extra=(rows,), **load))
    images = np.concatenate([x for x, _, _ in batches])
    np.testing.assert_array_equal(images, plain[0])
    unshuffled = collect(data.load_split("cifar10", "train", batch_size=MOCK_EXAMPLES))[0]
    order = np.concatenate([r for _, _, (r,) in batches])
    np.testing.assert_array_equal(unshuffled[order], images)


def test_extra_is_refused_with_augmentation_and_with_the_wrong_length():
    rows = np.arange(8)
    with pytest.raises(ValueError, match="augmentation of cifar10 .*pass augment=False"):
        data.load_split("cifar10", "train", batch_size=4, limit=8, augment=True,
                        extra=(rows,))
    # digits has no augmentation: augment=True changes nothing, so extra is fine
    (_, _, (got,)), = data.load_split("digits", "train", batch_size=8, limit=8, augment=True,
                                      extra=(rows,))
    np.testing.assert_array_equal(got, rows)
    with pytest.raises(ValueError, match=r"extra\[1\] must have one row per example of "
                                         r"digits's train split with limit=8, i.e. 8 rows"):
        data.load_split("digits", "train", batch_size=4, limit=8, extra=(rows, rows[:5]))
    with pytest.raises(ValueError, match="extra must be a non-empty tuple of arrays"):
        data.load_split("digits", "train", batch_size=4, limit=8, extra=rows)
    with pytest.raises(ValueError, match="i.e. 1149 rows"):
        data.load_split("digits", "train", batch_size=4, extra=(rows,))


# --- augmentation and evaluation transforms --------------------------------------------------


def test_cifar_augmentation_is_a_padded_crop_possibly_flipped():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3)).astype(np.float32)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    candidates = [padded[i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
    candidates += [c[:, ::-1] for c in candidates]
    outputs = []
    for seed in range(12):
        out = data._cifar_train(tf.constant(image), tf.constant([seed, 0], tf.int64)).numpy()
        assert out.shape == (32, 32, 3) and out.min() >= 0.0 and out.max() <= 1.0
        assert any(np.array_equal(out, c) for c in candidates)
        outputs.append(out)
    assert any(not np.array_equal(out, image) for out in outputs)  # it does change images


def test_imagenet_eval_resizes_the_shorter_side_and_centre_crops():
    # 256 x 512, left half black, right half white: the centre 224 x 224 crop straddles the
    # edge at its middle column.
    image = np.zeros((256, 512, 3), np.float32)
    image[:, 256:] = 1.0
    out = data._imagenet_eval(tf.constant(image), 224).numpy()
    assert out.shape == (224, 224, 3)
    np.testing.assert_allclose(out[:, :110], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 114:], 1.0, atol=1e-6)
    # A small image is upsampled so that its shorter side is 256, then cropped.
    small = data._imagenet_eval(tf.ones((20, 30, 3)), 224).numpy()
    assert small.shape == (224, 224, 3)
    np.testing.assert_allclose(small, 1.0, atol=1e-6)


def test_imagenet_train_crop_has_the_target_size_and_range():
    image = tf.random.stateless_uniform((300, 200, 3), seed=(1, 2))
    crops = [data._imagenet_train(image, tf.constant([s, 1], tf.int64), 224).numpy()
             for s in range(4)]
    for crop in crops:
        assert crop.shape == (224, 224, 3) and crop.min() >= 0.0 and crop.max() <= 1.0
    assert not np.array_equal(crops[0], crops[1])


# --- tfds loaders under tfds.testing.mock_data ----------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "imagenette", "imagenet2012"])
@pytest.mark.parametrize("split, augment", [("test", False), ("train", True)])
def test_tfds_pipelines_shapes_dtypes_ranges(mock_tfds, name, split, augment):
    info = data.dataset_info(name)
    ds = data.load_split(name, split, batch_size=4, shuffle=augment, augment=augment, seed=0)
    images, labels = collect(ds)
    assert images.shape == (MOCK_EXAMPLES, *info.image_shape)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
    assert labels.min() >= 0 and labels.max() < info.num_classes


def test_tfds_limit_and_augmentation_determinism(mock_tfds):
    def load(seed, augment=True):
        return data.load_split("cifar10", "train", batch_size=4, shuffle=True, augment=augment,
                               seed=seed, limit=4)

    ds = load(0)
    first, second = collect(ds), collect(ds)
    assert len(first[1]) == 4
    np.testing.assert_array_equal(first[0], collect(load(0))[0])  # same seed, same epoch 1
    assert not np.array_equal(first[0], second[0])  # epoch 2: new order and/or crops
    assert not np.array_equal(first[0], collect(load(1))[0])
    plain = collect(load(0, augment=False))
    np.testing.assert_array_equal(first[1], plain[1])  # augmentation leaves the order alone
    assert not np.array_equal(first[0], plain[0])


def test_imagenet2012_missing_says_where_to_put_the_manual_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load_split("imagenet2012", "test", batch_size=2, data_dir=tmp_path, download=False)
    message = str(err.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert f"{tmp_path}/downloads/manual/" in message and "image-net.org" in message


def test_imagenet2012_empty_manual_dir_gives_the_same_message(tmp_path, monkeypatch):
    def tfds_manual_dir_error(self, *args, **kwargs):
        raise AssertionError(f"Manual directory {tmp_path} does not exist or is empty.")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", tfds_manual_dir_error)
    with pytest.raises(FileNotFoundError, match="downloads/manual"):
        data.load_split("imagenet2012", "train", batch_size=2, data_dir=tmp_path)


def test_other_missing_tfds_data_keeps_the_tfds_error(tmp_path):
    with pytest.raises(AssertionError, match="could not find data"):
        data.load_split("cifar10", "test", batch_size=2, data_dir=tmp_path, download=False)

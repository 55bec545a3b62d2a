"""Library inputs: each bad input to the attacks, linear CKA, the effective dimension and the
exercise checks is a one-line error (or verdict) that names the argument."""

from __future__ import annotations

import re

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pdc_utils import attacks, compare, features
from pdc_utils.exercises import check


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """An images -> logits net on 8x8 RGB images with 10 classes."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)


def linear(x: tf.Tensor) -> tf.Tensor:
    """A plain function (no Keras metadata) mapping 8x8 RGB images to 5 logits."""
    weights = tf.ones((8 * 8 * 3, 5)) / 100
    return tf.reshape(x, [tf.shape(x)[0], -1]) @ weights


def raises_one_line(call, pattern: str) -> str:
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


ATTACKS = {
    "fgm": lambda m, x, **kw: attacks.fgm(m, x, 0.1, **kw),
    "pgd": lambda m, x, **kw: attacks.pgd(m, x, 0.1, 0.05, steps=2, **kw),
    "craft": lambda m, x, **kw: attacks.craft(m, x, "pgd", 0.1, eps_iter=0.05, steps=2, **kw),
    "craft paper": lambda m, x, **kw: attacks.craft(m, x, "fgm", 0.1, protocol="paper",
                                                    mean=[0.5], std=[0.25], **kw),
}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(("labels", "pattern"), [
    ([0, 1, 2, 10], r"^y must hold class ids in \[0, 10\) \(the model has 10 classes\), got "
                    r"values from 0 to 10$"),
    ([0, 1, 2, -1], r"^y must hold class ids in \[0, 10\)"),
    ([0, 1, 2], r"^y must hold 4 integer class ids, one per image of x, got int64 values of "
                r"shape \(3,\)$"),
    ([0.0, 1.0, 2.0, 3.0], "^y must hold 4 integer class ids"),
    ([[0, 1, 2, 3]], "^y must hold 4 integer class ids"),
])
def test_labels_out_of_range_or_of_the_wrong_kind(model, images, attack, labels, pattern):
    raises_one_line(lambda: ATTACKS[attack](model, images, y=np.array(labels)), pattern)


def test_labels_of_a_plain_function_are_checked_against_its_logits(images):
    raises_one_line(lambda: attacks.fgm(linear, images, 0.1, y=np.array([0, 1, 2, 5])),
                    r"^y must hold class ids in \[0, 5\)")
    assert attacks.fgm(linear, images, 0.1, y=np.array([0, 1, 2, 4])).shape == images.shape


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("shape", [(4, 8, 8, 1), (4, 8, 8), (4, 6, 6, 3)])
def test_images_of_the_wrong_shape_name_the_expected_one(model, attack, shape):
    x = np.full(shape, 0.5, np.float32)
    raises_one_line(lambda: ATTACKS[attack](model, x), r"^x must be a batch of images of shape "
                    rf"\(n, 8, 8, 3\) \(the model's input\), got shape {re.escape(str(shape))}$")


def test_a_wrapped_network_is_checked_the_same_way(images):
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    network = keras.Model(inputs, [keras.layers.Dense(7)(pooled), pooled])
    logits = attacks.logits_fn(network)
    raises_one_line(lambda: attacks.fgm(logits, images[..., :1], 0.1), r"shape \(n, 8, 8, 3\)")
    raises_one_line(lambda: attacks.fgm(logits, images, 0.1, y=np.full(4, 7)),
                    r"\[0, 7\) \(the model has 7 classes\)")


@pytest.mark.parametrize("seed", ["a", 1.5, True, 2**64, [1]])
@pytest.mark.parametrize("attack", ["pgd", "craft"])
def test_a_seed_must_be_an_integer_or_none(model, images, attack, seed):
    raises_one_line(lambda: ATTACKS[attack](model, images, rand_init=True, seed=seed),
                    r"^seed must be an integer \(a 64-bit one\) or None, got ")


def test_good_inputs_still_work(model, images):
    for attack in ATTACKS.values():
        assert attack(model, images, y=np.arange(4)).shape == images.shape
    assert attacks.pgd(model, images, 0.1, 0.05, steps=2, rand_init=True,
                       seed=np.int64(3)).shape == images.shape


# --------------------------------------------------------------------------- compare, features


@pytest.mark.parametrize(("x", "y", "pattern"), [
    ("nan", "ok", r"^x must hold finite numbers, got 1 NaN or infinite values$"),
    ("ok", "inf", r"^y must hold finite numbers, got 1 NaN or infinite values$"),
    ("empty", "empty", r"^x must hold at least 2 samples \(rows\), got shape \(0, 3\)$"),
    ("ok", "one", r"^y must hold at least 2 samples \(rows\), got shape \(1, 3\)$"),
    ("ok", "short", r"^x has 20 rows but y has 5; x and y must hold the same samples "
                    r"\(paired rows\)$"),
    ("ok", "no features", r"^y must hold at least 1 feature per sample, got shape \(20, 0\)$"),
])
def test_linear_cka_refuses_what_it_cannot_compare(x, y, pattern):
    rng = np.random.default_rng(0)
    ok = rng.normal(size=(20, 3))
    samples = {"ok": ok, "nan": ok.copy(), "inf": ok.copy(), "empty": np.zeros((0, 3)),
               "one": ok[:1], "short": ok[:5], "no features": np.zeros((20, 0))}
    samples["nan"][3, 1] = np.nan
    samples["inf"][0, 0] = np.inf
    raises_one_line(lambda: compare.linear_cka(samples[x], samples[y]), pattern)


@pytest.mark.parametrize(("values", "pattern"), [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), r"^features must hold finite numbers, got 1 NaN"),
    (np.zeros((0, 4)), r"^features must be a matrix of samples \(rows\) by features with at "
                       r"least one of each, got shape \(0, 4\)$"),
    (np.zeros((5, 0)), r"got shape \(5, 0\)$"),
    (np.zeros(5), r"got shape \(5,\)$"),
])
def test_effective_dimension_refuses_nan_and_empty_features(values, pattern):
    raises_one_line(lambda: features.effective_dimension(values), pattern)


# --------------------------------------------------------------------------- exercise checks


def said(capsys, *args) -> str:
    assert check(*args) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return out


def test_a_list_for_a_number_is_not_judged_correct(capsys):
    # 06.familywise expects 1 - (1 - level) ** m: 0.6 for one test at level 0.6
    out = said(capsys, "06.familywise", [0.6, 0.6, 0.6], 1, 0.6)
    assert out == ("06.familywise: not a valid answer: this exercise expects one number such "
                   "as 0.01, got a list of 3 values. Change the answer and run the cells again.\n")
    assert "not a valid answer" in said(capsys, "06.familywise", np.array([0.6]), 1, 0.6)
    assert "correct" in said(capsys, "06.familywise", 0.6, 1, 0.6)
    assert "correct" in said(capsys, "06.familywise", np.float32(0.6), 1, 0.6)


@pytest.mark.parametrize(("answer", "got"), [
    ("1/100", "got the text '1/100'; write it without quotes"),
    ("0.01", "got the text '0.01'; write it without quotes"),
    ("p", "got the text 'p'. Change"),  # not a number in quotes: no advice to drop them
    (True, "got bool True (a yes/no value, not a number)"), (np.bool_(False), "got bool False"),
    ({"p": 0.01}, "got dict"), ([[0.01]], "got a list of 1 values"),
    ([None], "got a list of None only (replace None itself with your answer)"),
    ((None, None), "got a tuple of None only"), ([], "got an empty list"),
    ({}, "got an empty dict"),
])
def test_a_number_exercise_says_to_give_a_number(capsys, answer, got):
    out = said(capsys, "01.permutations", answer)
    assert "01.permutations: not a valid answer: this exercise expects one number such as 0.01" in (
        out)
    assert got in out


def test_a_function_exercise_given_a_number_says_so(capsys):
    out = said(capsys, "03.objective", 3.14)
    assert out.startswith("03.objective: not a valid answer: this exercise expects a function "
                          "(def ...), got float 3.14")
    assert "not attempted" in said(capsys, "03.objective", None)


def test_a_function_returning_the_wrong_shape_is_told_so(capsys):
    out = said(capsys, "01.double_centring", lambda a: a.mean())
    assert "your function should return an array of shape (6, 6), got float" in out
    out = said(capsys, "01.double_centring", lambda a: "centred")
    assert "your function should return an array of shape (6, 6), got the text" in out


@pytest.mark.parametrize(("exercise", "answer", "expects"), [
    ("02.why_dependent", 2, "one letter in quotes such as 'a', got int 2"),
    ("02.why_dependent", "b and c", "one letter in quotes such as 'a', got the text 'b and c'"),
    ("05.labels", 1, "a name in quotes (a string), got int 1"),
])
def test_choices_and_names_need_text(capsys, exercise, answer, expects):
    data = {"05.labels": (pd.DataFrame({"U dCor² with labels": [0.3, 0.1]},
                                       index=["f1", "div"]), "div")}
    assert expects in said(capsys, exercise, answer, *data.get(exercise, ()))


def test_a_students_key_error_is_not_taken_for_missing_data(capsys):
    def centre(a):
        return {}["missing"]
    out = said(capsys, "01.double_centring", centre)
    assert "not yet - your answer raised KeyError" in out


# --------------------------------------------------------------- issue 25: more library inputs


@pytest.fixture(scope="module")
def pair_network() -> keras.Model:
    """A (logits, features) network on 8x8 RGB images with 10 classes, as the runs' are."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, [keras.layers.Dense(10)(pooled), pooled])


def transfer(network, batches, **kwargs):
    return attacks.transfer_evaluation(network, {"f2": network}, batches, attacks=["fgm"],
                                       eps_grid=[0.1], progress=False, **kwargs)


@pytest.mark.parametrize(("batch", "pattern"), [
    ((np.full((4, 8, 8, 3), 0.5, np.float32), np.array([0, 1, 2, 10])),
     r"^the dataset's labels must hold class ids in \[0, 10\) \(the source network has 10 "
     r"classes\), got values from 0 to 10$"),
    ((np.full((4, 8, 8, 3), 0.5, np.float32), np.array([-1, 1, 2, 3])),
     r"^the dataset's labels must hold class ids in \[0, 10\)"),
    ((np.full((4, 8, 8, 3), 0.5, np.float32), np.array([0.0, 1.0, 2.0, 3.0])),
     r"^the dataset's labels must be 4 integer class ids"),
    ((np.full((2, 16, 16, 3), 0.5, np.float32), np.array([0, 1])),
     r"^the dataset's images must be a batch of images of shape \(n, 8, 8, 3\) \(the model's "
     r"input\), got shape \(2, 16, 16, 3\) for network 'source'$"),
    ((np.zeros((0, 8, 8, 3), np.float32), np.zeros(0, np.int64)),
     r"^the dataset's images must be a batch of at least one image, got shape \(0, 8, 8, 3\)$"),
])
def test_a_transfer_evaluation_refuses_batches_it_would_score_wrongly(pair_network, batch,
                                                                     pattern):
    raises_one_line(lambda: transfer(pair_network, [batch]), pattern)


@pytest.mark.parametrize("seed", ["a", -1, 2**40, 1.5, True])
def test_a_transfer_evaluation_seed_is_checked_before_work(pair_network, seed):
    batch = (np.full((4, 8, 8, 3), 0.5, np.float32), np.arange(4))
    raises_one_line(lambda: transfer(pair_network, [batch], seed=seed),
                    r"^seed must be an integer in \[0, 2\*\*32 - 1\], got ")


def test_a_good_transfer_evaluation_scores_every_image(pair_network):
    batch = (np.full((4, 8, 8, 3), 0.5, np.float32), np.arange(4))
    table = transfer(pair_network, [batch], seed=2**32 - 1)
    assert len(table) == 4 * 2 and set(table["attack"]) == {"clean", "fgm"}


@pytest.mark.parametrize("attack", ["fgm", "pgd", "craft"])
@pytest.mark.parametrize(("x", "pattern"), [
    (np.zeros((0, 8, 8, 3), np.float32), r"^x must be a batch of at least one image, got shape "
                                         r"\(0, 8, 8, 3\)$"),
    (np.full((1, 8, 8, 3), "a"), r"^x must hold images as numbers \(floats in \[0, 1\]\), got "
                                 r"an array of dtype <U1$"),
    (tf.constant([["a"]]), r"^x must hold images as numbers \(floats in \[0, 1\]\), got a "
                           r"tensor of dtype string$"),
])
def test_an_attack_refuses_an_empty_batch_or_text(model, attack, x, pattern):
    raises_one_line(lambda: ATTACKS[attack](model, x), pattern)


@pytest.mark.parametrize("k", [-1, 0, 6, 1.5, True, "2"])
def test_principal_components_needs_k_from_1_to_the_feature_count(k):
    values = np.random.default_rng(0).normal(size=(20, 5))
    raises_one_line(lambda: features.principal_components(values, k=k),
                    r"^k must be an integer from 1 to 5 \(the number of features\), got ")


def test_principal_components_of_good_inputs(capsys):
    values = np.random.default_rng(0).normal(size=(20, 5))
    assert features.principal_components(values, k=5).shape == (20, 5)
    assert features.principal_components(values).shape == (20, 2)
    raises_one_line(lambda: features.principal_components(np.array([["a", "b"]])),
                    r"^features must hold real numbers, got an array of dtype <U1$")
    raises_one_line(lambda: features.row_normalized(np.ones(3)),
                    r"^features must be a matrix of samples \(rows\) by features")


@pytest.mark.parametrize("test", ["distance_covariance_test", "partial_distance_covariance_test"])
@pytest.mark.parametrize("seed", ["a", -1, 2**40, 1.5, True])
def test_a_permutation_test_seed_is_none_or_a_32_bit_integer(test, seed):
    from pdc_utils import distance

    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(10, 2)) for _ in range(3 if test.startswith("partial") else 2)]
    raises_one_line(lambda: getattr(distance, test)(*samples, num_resamples=5, seed=seed),
                    rf"^{test}: seed must be None or an integer in \[0, 2\*\*32 - 1\], got ")
    assert getattr(distance, test)(*samples, num_resamples=5, seed=2**32 - 1)[1] > 0


def test_grade_skips_a_json_file_that_is_not_a_notebook_with_one_line(tmp_path, capsys):
    import nbformat

    from pdc_utils.__main__ import main

    (tmp_path / "98_list.ipynb").write_text("[1, 2]")
    (tmp_path / "97_object.ipynb").write_text('{"a": 1}')
    (tmp_path / "96_text.ipynb").write_text("not json")
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("print(1)", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", text="01.dcor: correct\n")])]
    nbformat.write(book, str(tmp_path / "01_distance_correlation.ipynb"))
    assert main(["grade", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "skipped 96_text.ipynb: not a notebook (not JSON text)",
        "skipped 97_object.ipynb: not a notebook (a JSON object without a list of cells)",
        "skipped 98_list.ipynb: not a notebook (a JSON list, not an object)"]
    assert "01_distance_correlation" in out and "Traceback" not in out + err

"""Tests of pdc_utils.attacks: agreement with cleverhans, threat-model invariants, compilation,
the transfer evaluation and its tables."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.projected_gradient_descent import (
    projected_gradient_descent,
)

from pdc_utils import attacks, config

PAPER_COLUMNS = ["dataset", "network", "method", "clean", "fgm_0.03", "pgd_0.03", "fgm_0.05",
                 "pgd_0.05", "fgm_0.10", "pgd_0.10"]
MEAN = np.array([0.3, 0.5, 0.4], np.float32)
STD = np.array([0.2, 0.25, 0.3], np.float32)
TOL = 1e-6


def _reference_columns() -> list[str]:
    """The header of the paper's Table 1 (the package's copy)."""
    return list(pd.read_csv(config.package_file("paper_table1.csv"), nrows=0).columns)


def _network(seed: int, channels: int = 3) -> keras.Model:
    """A small conv net on 8x8 images returning (logits, features), normalisation inside."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, channels))
    h = keras.layers.Normalization(mean=MEAN, variance=STD**2)(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    features = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, [keras.layers.Dense(10)(features), features])


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """An untrained images -> logits conv net."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 3)).astype(np.float32)
    x[:, 0, :, :] = 0.0  # pixels on the border of [0, 1], so clipping matters
    x[:, -1, :, :] = 1.0
    return x


@pytest.fixture(scope="module")
def digits() -> dict:
    """sklearn's 8x8 digits as [0, 1] RGB, and two networks trained on it (seeds 0 and 1)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.repeat((data.images / 16.0).astype(np.float32)[..., None], 3, axis=-1)
    y = data.target
    networks = []
    for seed in (0, 1):
        net = _network(seed)
        classifier = keras.Model(net.inputs, net.outputs[0])
        classifier.compile(keras.optimizers.Adam(1e-2),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        classifier.fit(x[:1500], y[:1500], epochs=10, batch_size=64, verbose=0)
        networks.append(net)
    return {"x": x[1500:], "y": y[1500:], "f1": networks[0], "f2": networks[1]}


def _accuracy(network, x, y) -> float:
    return float(np.mean(np.argmax(network(x, training=False)[0], axis=1) == y))


# --------------------------------------------------------------------------- cleverhans


@pytest.mark.parametrize("eps", [0.03, 0.1, 0.3])
@pytest.mark.parametrize("given_labels", [False, True])
@pytest.mark.parametrize("clip", [(0.0, 1.0), None])
def test_fgm_matches_cleverhans_bit_for_bit(model, images, eps, given_labels, clip):
    y = np.arange(len(images)) % 10 if given_labels else None
    ours = attacks.fgm(model, images, eps, y=y, clip=clip)
    bounds = {} if clip is None else {"clip_min": clip[0], "clip_max": clip[1]}
    theirs = fast_gradient_method(model, images, eps, np.inf, y=y, **bounds)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert not np.array_equal(ours.numpy(), images)


@pytest.mark.parametrize(("eps", "eps_iter", "given_labels", "clip"), [
    (0.03, 0.01, False, (0.0, 1.0)),
    (0.1, 0.01, True, (0.0, 1.0)),
    (0.1, 0.04, False, None),
])
def test_pgd_matches_cleverhans_bit_for_bit(model, images, eps, eps_iter, given_labels, clip):
    y = np.arange(len(images)) % 10 if given_labels else None
    ours = attacks.pgd(model, images, eps, eps_iter, steps=6, y=y, clip=clip)
    bounds = {} if clip is None else {"clip_min": clip[0], "clip_max": clip[1]}
    theirs = projected_gradient_descent(model, images, eps, eps_iter, 6, np.inf, y=y,
                                        rand_init=False, sanity_checks=False, **bounds)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# --------------------------------------------------------------------------- threat model


@pytest.mark.parametrize("attack", ["fgm", "pgd"])
@pytest.mark.parametrize("eps", [0.03, 0.1])
def test_pixel_protocol_stays_in_ball_and_range(model, images, attack, eps):
    adv = attacks.craft(model, images, attack, eps, eps_iter=0.02, steps=8).numpy()
    assert np.max(np.abs(adv - images)) <= eps + TOL
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert np.max(np.abs(adv - images)) >= eps - TOL  # the attack does move some pixel fully


@pytest.mark.parametrize("attack", ["fgm", "pgd"])
def test_paper_protocol_per_channel_ball_unclipped(images, attack):
    net, eps = _network(3), 0.3
    adv = attacks.craft(attacks.logits_fn(net), images, attack, eps, protocol="paper",
                        mean=MEAN, std=STD, eps_iter=0.1, steps=5).numpy()
    step = np.abs(adv - images).reshape(-1, 3).max(axis=0)
    np.testing.assert_array_less(step, eps * STD + TOL)
    np.testing.assert_allclose(step, eps * STD, rtol=1e-5)
    assert adv.min() < 0.0 or adv.max() > 1.0  # border pixels pushed outwards stay outside


def test_paper_fgm_is_pixel_fgm_with_per_channel_eps(images):
    """FGM on z = (x - mean) / std moves pixel x by eps · std_c · sign(∇x L), unclipped."""
    net, eps = _network(4), 0.2
    f = attacks.logits_fn(net)
    adv = attacks.craft(f, images, "fgm", eps, protocol="paper", mean=MEAN, std=STD).numpy()
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = f(x)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.argmax(logits, axis=1), logits))
    expected = images + eps * STD * np.sign(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(adv, expected, atol=1e-6)


def test_whitebox_attacks_fool_a_trained_model(digits):
    f1, x, y = digits["f1"], digits["x"], digits["y"]
    clean = _accuracy(f1, x, y)
    assert clean > 0.85
    f = attacks.logits_fn(f1)
    labels = np.argmax(f(x), axis=1)

    def loss(z):
        return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, f(z))))

    x_fgm = attacks.fgm(f, x, 0.1)
    x_pgd = attacks.pgd(f, x, 0.1, 0.01, 40)
    assert _accuracy(f1, x_fgm, y) < clean - 0.3
    assert _accuracy(f1, x_pgd, y) < clean - 0.15
    assert loss(x) < loss(x_fgm) < loss(x_pgd)  # PGD climbs the loss further than one step


def test_pgd_does_not_retrace_for_new_eps_step_or_steps(images):
    net, traces = _network(5), []

    class Counting:
        """A (logits, features) network that counts Python calls, i.e. traces."""

        def __call__(self, x, training=False):
            traces.append(1)
            return net(x, training=training)

    counting = Counting()
    attacks.pgd(attacks.logits_fn(counting), images, 0.03, 0.01, steps=3)
    first = len(traces)
    assert first > 0
    for eps, eps_iter, steps in [(0.05, 0.02, 4), (0.1, 0.05, 7)]:
        attacks.pgd(attacks.logits_fn(counting), images, eps, eps_iter, steps)
    assert len(traces) == first
    attacks.pgd(attacks.logits_fn(counting), images[:5], 0.05)  # a new batch shape does
    assert len(traces) > first


def test_rand_init_is_reproducible_and_stays_in_ball(model, images):
    def run(seed):
        return attacks.pgd(model, images, 0.1, 0.01, steps=2, rand_init=True, seed=seed).numpy()

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, attacks.pgd(model, images, 0.1, 0.01, steps=2).numpy())
    for adv in (a, c):
        assert np.max(np.abs(adv - images)) <= 0.1 + TOL
        assert adv.min() >= 0.0 and adv.max() <= 1.0


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def per_example(digits) -> pd.DataFrame:
    x, y = digits["x"], digits["y"]
    batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, len(x), 128)]
    targets = {"f1": digits["f1"], "f2_baseline": digits["f2"]}
    return attacks.transfer_evaluation(digits["f1"], targets, batches, eps_grid=(0.05, 0.1),
                                       steps=5, progress=False)


def test_transfer_evaluation_table_is_consistent(digits, per_example):
    x, y, n = digits["x"], digits["y"], len(digits["y"])
    table = per_example
    assert list(table.columns) == ["example", "label", "attack", "eps", "model", "prediction",
                                   "correct"]
    assert len(table) == n * (1 + 2 * 2) * 2
    assert table.groupby(["attack", "eps", "model"]).size().eq(n).all()
    assert sorted(set(table["example"])) == list(range(n))
    assert (table["correct"] == (table["prediction"] == table["label"])).all()
    assert (table.loc[table["attack"] == "clean", "eps"] == 0.0).all()

    acc = attacks.accuracy_table(table).set_index(["attack", "eps", "model"])["accuracy"]
    assert acc[("clean", 0.0, "f1")] == pytest.approx(100 * _accuracy(digits["f1"], x, y))
    assert acc[("clean", 0.0, "f2_baseline")] == pytest.approx(
        100 * _accuracy(digits["f2"], x, y))
    for attack in ("fgm", "pgd"):
        assert acc[(attack, 0.1, "f1")] <= acc[("clean", 0.0, "f1")]

    # the adversarial batch is made on the source with the source's own predictions
    f = attacks.logits_fn(digits["f1"])
    direct = np.argmax(f(attacks.fgm(f, x, 0.1)), axis=1)
    rows = table[(table["attack"] == "fgm") & (table["eps"] == 0.1) & (table["model"] == "f1")]
    np.testing.assert_array_equal(rows.sort_values("example")["prediction"], direct)


def _synthetic(models=("a", "b"), settings=(("clean", 0.0), ("fgm", 0.1)), n=400, seed=1):
    """A per-example table where model k is right with probability 0.9 - 0.2 k, 0.3 less
    under attack."""
    rng = np.random.default_rng(seed)
    frames = []
    for attack, eps in settings:
        for k, model in enumerate(models):
            p = 0.9 - 0.2 * k - (0.0 if attack == "clean" else 0.3)
            correct = rng.random(n) < p
            frames.append(pd.DataFrame({
                "example": np.arange(n), "label": 0, "attack": attack, "eps": eps,
                "model": model, "prediction": np.where(correct, 0, 1), "correct": correct,
            }))
    return pd.concat(frames, ignore_index=True)


def test_paper_table_has_the_reference_columns():
    settings = [("clean", 0.0)] + [(a, e) for a in ("pgd", "fgm") for e in (0.1, 0.03, 0.05)]
    table = _synthetic(("f2_diverge", "f2_baseline", "f1", "other"), settings, n=50)
    paper = attacks.paper_table(table, "cifar10", "resnet18")
    assert list(paper.columns) == _reference_columns() == PAPER_COLUMNS
    assert list(paper["method"]) == ["source", "baseline", "diverge"]
    acc = attacks.accuracy_table(table).set_index(["attack", "eps", "model"])["accuracy"]
    assert paper.loc[2, "pgd_0.03"] == round(acc[("pgd", 0.03, "f2_diverge")], 2)
    assert paper.loc[0, "clean"] == round(acc[("clean", 0.0, "f1")], 2)
    assert (paper[["dataset", "network"]] == ["cifar10", "resnet18"]).all().all()


def test_paper_table_follows_the_grid_that_was_run(per_example):
    acc = attacks.accuracy_table(per_example).set_index(["attack", "eps", "model"])["accuracy"]
    methods = {"f2_baseline": "baseline", "f1": "source"}
    table = attacks.paper_table(per_example, "digits", "cnn", methods)
    assert list(table.columns) == ["dataset", "network", "method", "clean", "fgm_0.05",
                                   "pgd_0.05", "fgm_0.10", "pgd_0.10"]
    assert list(table["method"]) == ["baseline", "source"]
    assert table.loc[0, "fgm_0.10"] == round(acc[("fgm", 0.1, "f2_baseline")], 2)
    assert table.loc[1, "clean"] == round(acc[("clean", 0.0, "f1")], 2)

    odd = per_example.assign(eps=per_example["eps"].replace({0.05: 8 / 255}))
    columns = attacks.paper_table(odd, "digits", "cnn").columns
    assert f"fgm_{8 / 255!r}" in columns and "fgm_0.10" in columns


def test_paired_bootstrap_interval_and_seed():
    table = _synthetic()
    result = attacks.paired_bootstrap(table, "a", "b", n_boot=2000, seed=3)
    acc = attacks.accuracy_table(table).set_index(["attack", "eps", "model"])["accuracy"]
    for row in result.itertuples():
        assert row.n == 400
        expected = acc[(row.attack, row.eps, "a")] - acc[(row.attack, row.eps, "b")]
        assert row.difference == pytest.approx(expected)
        assert row.low <= row.difference <= row.high
        assert row.high - row.low > 1.0
    pd.testing.assert_frame_equal(result, attacks.paired_bootstrap(table, "a", "b",
                                                                   n_boot=2000, seed=3))
    assert not result.equals(attacks.paired_bootstrap(table, "a", "b", n_boot=2000, seed=4))
    fgm = result[result["attack"] == "fgm"].iloc[0]
    assert fgm.low > 0  # a is clearly better (0.6 vs 0.4 under attack)


def test_paired_bootstrap_equals_resampling_example_indices():
    """Drawing category counts gives the same distribution as resampling the images."""
    table = _synthetic(n=300, seed=2)
    ours = attacks.paired_bootstrap(table, "a", "b", n_boot=4000, seed=0)
    fgm = table[table["attack"] == "fgm"]
    wide = fgm.pivot(index="example", columns="model", values="correct").astype(int)
    d = (wide["a"] - wide["b"]).to_numpy()
    idx = np.random.default_rng(1).integers(0, d.size, size=(4000, d.size))
    low, high = np.percentile(100 * d[idx].mean(axis=1), [2.5, 97.5])
    row = ours[ours["attack"] == "fgm"].iloc[0]
    assert row.low == pytest.approx(low, abs=1.0)
    assert row.high == pytest.approx(high, abs=1.0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, x: attacks.fgm(m, x, 0.0), r"eps must be a number in \(0, 1\]"),
    (lambda m, x: attacks.fgm(m, x, 1.5), r"eps must be a number in \(0, 1\]"),
    (lambda m, x: attacks.fgm(m, x, 0.1, clip=(1.0, 0.0)), "low < high"),
    (lambda m, x: attacks.pgd(m, x, 0.1, steps=0), "steps must be an integer >= 1"),
    (lambda m, x: attacks.pgd(m, x, 0.1, steps=2.5), "steps must be an integer >= 1"),
    (lambda m, x: attacks.pgd(m, x, 0.03, eps_iter=0.05), r"eps_iter .* \(0, 0.03\]"),
    (lambda m, x: attacks.craft(m, x, "cw", 0.1), "valid choices: fgm, pgd"),
    (lambda m, x: attacks.craft(m, x, "fgm", 0.1, protocol="l2"), "valid choices: pixel, paper"),
    (lambda m, x: attacks.craft(m, x, "fgm", 0.1, protocol="paper"), "mean and std"),
    (lambda m, x: attacks.craft(m, x, "fgm", 0.1, protocol="paper", mean=MEAN, std=[1, 0, 1]),
     "std must be positive"),
    (lambda m, x: attacks.craft(m, x, "fgm", 0.1, protocol="paper", mean=[0, 1], std=STD),
     "mean must be 1 or 3"),
    (lambda m, x: attacks.craft(m, x * 255, "fgm", 0.1),
     r"images in \[0, 1\] \(the clip range\), found values in \[0, 255\]"),
    (lambda m, x: attacks.fgm(m, x * 255, 0.1), r"found values in \[0, 255\]"),
    (lambda m, x: attacks.pgd(m, x - 0.5, 0.1, steps=2), r"found values in \[-0.5, 0.5\]"),
    (lambda m, x: attacks.fgm(m, x + 1, 0.1, clip=(0.0, 1.5)),
     r"images in \[0, 1.5\] \(the clip range\), found values in \[1, 2\]"),
    (lambda m, x: attacks.fgm(m, _with_nan(x), 0.1), "finite images, got 1 NaN or infinite"),
    (lambda m, x: attacks.fgm(m, _with_nan(x), 0.1, clip=None), "finite images"),
    (lambda m, x: attacks.pgd(m, _with_nan(x), 0.1, steps=2), "finite images"),
    (lambda m, x: attacks.craft(m, _with_nan(x), "fgm", 0.1, protocol="paper", mean=MEAN,
                                std=STD), "finite images"),
])
def test_bad_attack_input_raises(model, images, call, message):
    with pytest.raises(ValueError, match=message):
        call(model, images)


def _with_nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[0, 1, 1, 0] = np.nan
    return x


def test_unclipped_attacks_take_images_outside_zero_one(model, images):
    adv = attacks.fgm(model, images * 255, 0.1, clip=None)
    assert np.all(np.abs(adv.numpy() - images * 255) <= 0.1 + 1e-4)


@pytest.mark.parametrize("attack", [
    lambda m, x: attacks.fgm(m, x, 0.1),
    lambda m, x: attacks.pgd(m, x, 0.1, steps=2),
])
def test_a_raw_network_is_rejected_and_does_not_poison_its_logits_fn(images, attack):
    net = _network(3)  # returns (logits, features)
    with pytest.raises(ValueError, match=r"^model must map images to logits, but it returns 2 "
                       r"outputs; wrap .* as attacks.logits_fn\(network\)$"):
        attack(net, images)
    adv = attack(attacks.logits_fn(net), images)  # used to fail: the cache took net as logits
    fresh = _network(3)
    assert np.array_equal(adv.numpy(), attack(attacks.logits_fn(fresh), images).numpy())
    with pytest.raises(ValueError, match="logits_fn"):  # and the other order
        attack(fresh, images)


def test_a_callable_returning_a_pair_is_rejected_when_traced(images):
    net = _network(4)
    with pytest.raises(ValueError, match="returns a tuple of 2; wrap"):
        attacks.fgm(lambda x: tuple(net(x, training=False)), images, 0.1)


def test_bad_evaluation_input_raises(digits, per_example):
    f1, batches = digits["f1"], [(digits["x"][:4], digits["y"][:4])]
    with pytest.raises(ValueError, match="valid choices: fgm, pgd"):
        attacks.transfer_evaluation(f1, {"f1": f1}, batches, attacks=("fgm", "bim"))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        attacks.transfer_evaluation(f1, {"f1": f1}, batches, eps_grid=(0.05, 2.0))
    with pytest.raises(ValueError, match="at least one network"):
        attacks.transfer_evaluation(f1, {}, batches)
    with pytest.raises(ValueError, match="mean and std"):
        attacks.transfer_evaluation(f1, {"f1": f1}, batches, protocol="paper")
    with pytest.raises(ValueError, match="integer class ids"):
        attacks.transfer_evaluation(f1, {"f1": f1}, [(digits["x"][:4], np.eye(10)[:4])],
                                    attacks=("fgm",), eps_grid=(0.1,), progress=False)
    with pytest.raises(ValueError, match="the table holds: f1, f2_baseline"):
        attacks.paired_bootstrap(per_example, "f1", "f2_diverge")
    with pytest.raises(ValueError, match="n_boot"):
        attacks.paired_bootstrap(per_example, "f1", "f2_baseline", n_boot=0)
    with pytest.raises(ValueError, match="level"):
        attacks.paired_bootstrap(per_example, "f1", "f2_baseline", level=1.0)
    with pytest.raises(ValueError, match="none of the models"):
        attacks.paper_table(per_example, "digits", "cnn", {"f2_diverge": "diverge"})


# --------------------------------------------------------------------------- over seeds


def _pairs_table(n_seeds=4, seed=5):
    """Per-example results of f1, and baseline/diverged networks of ``n_seeds`` pairs, where
    the diverged networks are right a little more often."""
    models = ["f1"] + [m for s in range(n_seeds) for m in (f"b{s}", f"d{s}")]
    table = _synthetic(models=models, seed=seed)
    pairs = [(f"b{s}", f"d{s}") for s in range(n_seeds)]
    return table, pairs


def test_seed_tables_and_t_intervals_match_a_direct_computation():
    from scipy import stats

    from pdc_utils import evidence

    table, pairs = _pairs_table()
    other, _ = _pairs_table(seed=9)
    other["model"] = other["model"].replace({"f1": "f1_a1"})
    per_example = pd.concat([table.assign(attacker="f1"), other.assign(attacker="f1_a1")],
                            ignore_index=True)
    seeds = attacks.seeds_table(per_example, "digits", "resnet18", pairs, ["f1", "f1_a1"])
    assert list(seeds.columns) == ["dataset", "network", "method", "clean", "fgm_0.10", "seed",
                                   "attacker"]
    assert list(seeds["seed"]) == [-1, 0, 0, 1, 1, 2, 2, 3, 3] * 2
    assert list(seeds["attacker"]) == ["f1"] * 9 + ["f1_a1"] * 9
    mean = attacks.mean_over_seeds(seeds)
    assert list(mean["method"]) == ["source", "baseline", "diverge"]
    acc = table.groupby(["attack", "model"])["correct"].mean() * 100
    expected = np.mean([acc[("fgm", d)] for _, d in pairs])
    assert mean.set_index("method").loc["diverge", "fgm_0.10"] == pytest.approx(expected,
                                                                                abs=0.006)

    gap = evidence.seed_differences(per_example, pairs, ["f1", "f1_a1"])
    assert list(gap["attackers"]) == ["none", "f1", "others"]
    d = np.array([acc[("fgm", dv)] - acc[("fgm", b)] for b, dv in pairs])
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    row = gap.set_index(["attack", "attackers"]).loc[("fgm", "f1")]
    assert row["difference"] == pytest.approx(d.mean())
    assert (row["low"], row["high"]) == pytest.approx((low, high))
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)
    assert row["n_seeds"] == 4 and row["seeds_ahead"] == int((d > 0).sum())
    acc_other = other.groupby(["attack", "model"])["correct"].mean() * 100
    d_other = np.array([acc_other[("fgm", dv)] - acc_other[("fgm", b)] for b, dv in pairs])
    others = gap.set_index(["attack", "attackers"]).loc[("fgm", "others")]
    assert others["difference"] == pytest.approx(d_other.mean())
    attacked = gap[gap["attack"] != "clean"]
    np.testing.assert_allclose(attacked["p_holm"],
                               evidence.holm(attacked["p_value"].to_numpy()))
    assert gap.loc[gap["attack"] == "clean", "p_holm"].isna().all()
    one = evidence.seed_differences(per_example, pairs[:1], ["f1"])
    assert one["low"].isna().all(), "one pair has no spread, so no interval"
    text = evidence.verdict_text(gap, run_name="r", dataset="digits", design="reference",
                                 penalty="v", alpha=1.0, protocol="pixel")
    assert "4 seed pairs" in text and f"{d.mean():+.1f}" in text
    assert "2 comparisons" in text and "illustration" in text


def test_gradient_alignment_is_the_cosine_of_input_gradients(digits):
    x, y = digits["x"][:64], digits["y"][:64]
    table = attacks.gradient_alignment(digits["f1"], {"f1": digits["f1"], "f2": digits["f2"]},
                                       [(x, y)]).set_index("model")
    assert list(table.columns) == ["attack_source", "cosine_mean", "cosine_std", "n"]
    assert table.loc["f1", "cosine_mean"] == pytest.approx(1.0, abs=1e-5)
    labels = tf.argmax(digits["f1"](x, training=False)[0], axis=1)
    grads = []
    for net in (digits["f1"], digits["f2"]):
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, net(xv, training=False)[0]))
        grads.append(tape.gradient(loss, xv).numpy().reshape(len(x), -1))
    cos = np.sum(grads[0] * grads[1], 1) / (np.linalg.norm(grads[0], axis=1)
                                             * np.linalg.norm(grads[1], axis=1))
    assert table.loc["f2", "cosine_mean"] == pytest.approx(cos.mean(), abs=1e-5)
    assert table.loc["f2", "n"] == 64


def test_paper_protocol_pgd_starts_at_random_the_same_for_every_target(digits):
    x, y = digits["x"][:32], digits["y"][:32]
    mean, std = [0.3] * 3, [0.4] * 3
    run = [attacks.transfer_evaluation(
        digits["f1"], {"f1": digits["f1"], "f2": digits["f2"]}, [(x, y)], attacks=["pgd"],
        eps_grid=[0.1], protocol="paper", mean=mean, std=std, steps=2, progress=False, seed=s)
        for s in (0, 0, 1)]
    pd.testing.assert_frame_equal(run[0], run[1])
    f = attacks.logits_fn(digits["f1"])
    start = attacks.craft(f, x, "pgd", 0.1, protocol="paper", mean=mean, std=std, steps=2,
                          rand_init=True, seed=0)
    plain = attacks.craft(f, x, "pgd", 0.1, protocol="paper", mean=mean, std=std, steps=2)
    assert not np.allclose(start.numpy(), plain.numpy()), "the random start must matter"

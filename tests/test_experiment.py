"""The two designs: which networks a run trains, with which seeds and references, and the
check that a run never mixes networks trained against different attackers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from pdc_utils import artifacts, config, data, experiment, features, storage, training

# these tests are about what follows a training (names, reuse, refusals, progress lines):
# the smoke networks' few steps run eagerly (conftest.eager_steps)
pytestmark = pytest.mark.usefixtures("eager_steps")


def _params(**overrides):
    p = config.profile("smoke")
    p.update(width=4, epochs=1, train_limit=64, test_limit=64, n_seeds=2, run_name="exp")
    p.update(overrides)
    return p


def test_names_and_seeds_of_both_designs():
    assert experiment.chain_names(0, 3) == ["f2_baseline", "chain_s0_net1", "f2_diverge"]
    assert experiment.chain_names(2, 4) == ["f2_baseline_s2", "chain_s2_net1", "chain_s2_net2",
                                            "f2_diverge_s2"]
    assert experiment.pair_seed(0, 0) == 1 and experiment.pair_seed(5, 2) == 8


@pytest.mark.parametrize("design", ["reference", "paper_code"])
def test_a_run_trains_its_pairs_with_shared_initial_weights(design, isolated_run_dirs):
    training.configure(0)
    exp = experiment.Experiment(_params(design=design, penalty="u"), progress=False)
    attackers = exp.attackers()
    f1 = attackers["f1"]
    baselines = exp.baselines(f1)
    diverged = exp.diverged(f1)
    assert list(attackers) == ["f1", "f1_a1"]
    assert list(baselines) == ["f2_baseline", "f2_baseline_s1"]
    assert list(diverged) == ["f2_diverge", "f2_diverge_s1"]
    models = config.models_dir("exp")
    assert storage.read_params(models / "f1_a1.json", "02")["seed"] == \
        experiment.attacker_seed(0, 1) != 0
    for s, (base, div) in enumerate(exp.pairs):
        recorded = [storage.read_params(models / f"{n}.json", "02") for n in (base, div)]
        # a reference pair shares its seed; a chain's nets each have their own, as the
        # paper's (unseeded) code had
        div_seed = (experiment.pair_seed(0, s) if design == "reference"
                    else experiment.chain_seed(0, s, exp.p["n_nets"] - 1))
        assert recorded[0]["seed"] == experiment.pair_seed(0, s)
        assert recorded[1]["seed"] == div_seed
        assert (div_seed == recorded[0]["seed"]) == (design == "reference")
        assert recorded[0]["alpha"] == 0 and recorded[1]["alpha"] == exp.p["alpha"]
        # same seed, same initial weights: a fresh build of the pair's seed is identical
        fresh = [exp.build_network(experiment.pair_seed(0, s)) for _ in range(2)]
        for a, b in zip(fresh[0].get_weights(), fresh[1].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    digest = storage.weights_digest(f1)
    div_refs = storage.read_params(models / "f2_diverge.json", "03")["references"]
    if design == "reference":
        assert div_refs == [digest]
        assert exp.chain_members == []
    else:
        assert div_refs == ["member:f2_baseline", "member:chain_s0_net1"]
        assert exp.chain_members == ["chain_s0_net1", "chain_s1_net1"]
        assert exp.references_of("f2_diverge_s1") == ["f2_baseline_s1", "chain_s1_net1"]
        assert (models / "chain_s1_net1.keras").exists()
    assert set(exp.all_networks()) == {*attackers, *baselines, *diverged}


def test_networks_trained_against_another_f1_are_refused(isolated_run_dirs):
    training.configure(0)
    exp = experiment.Experiment(_params(n_seeds=1, n_attackers=1), progress=False)
    f1 = exp.attacker()
    exp.baselines(f1)
    exp.diverged(f1)
    keras.utils.set_random_seed(99)  # replace f1 by another network, as a rerun of 02 would
    other = exp.build_network(99)
    storage.save_network(other, config.models_dir("exp") / "f1.keras")
    with pytest.raises(ValueError, match=r"f2_baseline.keras was not trained with this run's "
                                         r"parameters: trained against a network no longer in "
                                         r"the run \(an earlier f1\), while this run uses f1"):
        exp.all_networks()


def test_networks_trained_with_other_parameters_are_refused_and_the_values_named(
        isolated_run_dirs):
    """Notebooks 04 and 05 with another alpha (or seed, lr, ...) than the networks were
    trained with stop, naming each value, instead of labelling the results with it."""
    training.configure(0)
    exp = experiment.Experiment(_params(n_seeds=1, n_attackers=1), progress=False)
    f1 = exp.attacker()
    exp.baselines(f1)
    exp.diverged(f1)
    assert set(exp.all_networks()) == {"f1", "f2_baseline", "f2_diverge"}
    other = experiment.Experiment(_params(n_seeds=1, n_attackers=1, alpha=0.3,
                                          keep_dim=0.5), progress=False)
    with pytest.raises(ValueError, match=r"f2_diverge.keras was not trained with this run's "
                                         r"parameters: alpha = 1.0 \(this run: 0.3\); "
                                         r"keep_dim = 0.0 \(this run: 0.5\)"):
        other.load(["f2_diverge"], "03_diverge_training")
    # f1 is checked first, whatever is asked for: a run of other values is named at its root
    other = experiment.Experiment(_params(n_seeds=1, n_attackers=1, alpha=0.3,
                                          learning_rate=0.2), progress=False)
    with pytest.raises(ValueError, match=r"f1.keras was not trained with this run's "
                                         r"parameters: learning_rate = 0.05 \(this run: 0.2\)"):
        other.load(["f2_diverge"], "03_diverge_training")


def test_the_untrained_control_shares_the_baselines_and_diverges_from_random_weights(
        isolated_run_dirs):
    training.configure(0)
    normal = experiment.Experiment(_params(n_seeds=1, n_attackers=1), progress=False)
    f1 = normal.attacker()
    baseline = normal.baselines(f1)["f2_baseline"]
    control = experiment.Experiment(_params(n_seeds=1, n_attackers=1,
                                            diverge_from="untrained"), progress=False)
    assert control.references_of("f2_diverge") == [experiment.UNTRAINED]
    assert control.references_of("f2_baseline") == ["f1"]
    reused = control.baselines(f1)["f2_baseline"]  # the same record: reused, not retrained
    assert storage.weights_digest(reused) == storage.weights_digest(baseline)
    control.diverged(f1)
    untrained = control.untrained()
    recorded = storage.read_params(config.models_dir("exp") / "f2_diverge.json", "03")
    assert recorded["references"] == [storage.weights_digest(untrained)]
    assert recorded["references"] != [storage.weights_digest(f1)]
    assert storage.weights_digest(control.untrained()) == storage.weights_digest(untrained)
    assert set(control.all_networks()) == {"f1", "f2_baseline", "f2_diverge"}


def test_a_network_diverged_from_f1_is_refused_by_the_control_naming_diverge_from(
        isolated_run_dirs):
    """A run diverged from f1, loaded with diverge_from='untrained': the message names both
    diverge_from values, and the refusal writes nothing (no f0_untrained.keras)."""
    training.configure(0)
    exp = experiment.Experiment(_params(n_seeds=1, n_attackers=1), progress=False)
    f1 = exp.attacker()
    exp.baselines(f1)
    exp.diverged(f1)
    control = experiment.Experiment(_params(n_seeds=1, n_attackers=1,
                                            diverge_from="untrained"), progress=False)
    with pytest.raises(ValueError, match=r"trained against f1 \(diverge_from = 'attacker'\), "
                                         r"while this run uses the untrained network "
                                         r"\(diverge_from = 'untrained'\)"):
        control.load(["f2_diverge"], "03_diverge_training")
    assert not (config.models_dir("exp") / f"{experiment.UNTRAINED}.keras").exists()


def test_a_run_of_another_profile_is_named_before_a_missing_network(isolated_run_dirs):
    """A run whose f1 was made under smoke, read under quick (which has one attacker more):
    the refusal names smoke, not the missing f1_a2 as a network to train."""
    smoke = experiment.Experiment({**config.profile("smoke"), "run_name": "mixed"},
                                  progress=False)
    f1 = smoke.build_network(0)
    storage.save_network(f1, config.models_dir("mixed") / "f1.keras")
    artifacts.write_json_atomic(config.models_dir("mixed") / "f1.json",
                                smoke._expected_records("f1", {"f1": f1}))
    quick = experiment.Experiment({**config.profile("quick"), "run_name": "mixed"},
                                  progress=False)
    with pytest.raises(ValueError, match=r"f1.keras was not trained with this run's parameters"
                                         r".*It was trained with profile 'smoke''s values: give "
                                         r"--profile smoke"):
        quick.load(quick.attacker_names, "02_baseline_training")


@pytest.mark.parametrize("content", ["[1, 2]", '"text"'])
def test_a_parameters_file_of_the_wrong_shape_is_damaged(isolated_run_dirs, content):
    path = config.models_dir("exp") / "f1.json"
    artifacts.write_text_atomic(path, content)
    with pytest.raises(ValueError, match=r"f1.json is damaged \(a JSON (list|str), not the "
                                         r"object it should hold\): delete it and rerun "
                                         r"notebooks/02_baseline_training.ipynb"):
        storage.read_params(path, "02_baseline_training")
    assert not storage.finished("exp", "f1", {})


def test_a_damaged_parameters_file_is_named(isolated_run_dirs):
    path = config.models_dir("exp") / "f1.json"
    artifacts.write_text_atomic(path, "{not json")
    with pytest.raises(ValueError, match="f1.json is damaged"):
        storage.read_params(path, "02_baseline_training")


# --- the frozen-reference feature cache --------------------------------------------------------


def test_feature_cache_validity():
    assert experiment.feature_cache_problem("reference", "digits", False) is None
    assert experiment.feature_cache_problem("reference", "digits", True) is None  # no crops
    assert experiment.feature_cache_problem("reference", "cifar10", False) is None
    chain = experiment.feature_cache_problem("paper_code", "digits", False)
    assert "change during training" in chain and "design reference" in chain
    crops = experiment.feature_cache_problem("reference", "cifar10", True)
    assert "augment=True on cifar10" in crops and "augment=False" in crops
    assert "input gradients" in experiment.feature_cache_problem("reference", "digits", False,
                                                                 "grad_align")


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"design": "paper_code"}, "design paper_code .* change during training"),
    ({"dataset": "cifar10", "augment": True}, "augment=True on cifar10 draws a new random"),
])
def test_feature_cache_on_is_refused_before_anything_is_loaded_or_trained(
        overrides, reason, isolated_run_dirs, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("data was loaded before the parameters were refused")
    monkeypatch.setattr(data, "load_split", no_loading)
    with pytest.raises(ValueError, match=f"feature_cache='on' is not valid for this run: "
                                         f"{reason}.*Use feature_cache='auto'"):
        experiment.Experiment(_params(feature_cache="on", **overrides), progress=False)
    assert not (isolated_run_dirs / "runs").exists()


def _batch_parts(member):
    return len(member.data(0).element_spec)


def test_feature_cache_auto_is_used_where_valid_and_silently_off_elsewhere(isolated_run_dirs):
    training.configure(0)
    reference = experiment.Experiment(_params(), progress=False)
    f1 = reference.build_network(0)
    assert reference.feature_cache
    assert _batch_parts(reference._member("f2_diverge", 1, 3.0, [f1])) == 3
    assert _batch_parts(reference._member("f2_baseline", 1, 0.0, [f1])) == 3  # monitors f1
    assert _batch_parts(reference._member("f1", 0)) == 2  # no reference, nothing to cache
    off = experiment.Experiment(_params(feature_cache="off"), progress=False)
    assert not off.feature_cache and _batch_parts(off._member("f2_diverge", 1, 3.0, [f1])) == 2
    chain = experiment.Experiment(_params(design="paper_code"), progress=False)
    assert not chain.feature_cache
    assert _batch_parts(chain._member("f2_diverge", 1, 3.0, ["f2_baseline"])) == 2
    with tfds.testing.mock_data(num_examples=8):
        crops = experiment.Experiment(_params(dataset="cifar10", augment=True, train_limit=8,
                                              test_limit=8), progress=False)
        assert not crops.feature_cache
        net = crops.build_network(0)
        assert _batch_parts(crops._member("f2_diverge", 1, 3.0, [net])) == 2


def test_cached_features_are_the_reference_features_of_the_unshuffled_images(
        isolated_run_dirs, capsys):
    training.configure(0)
    exp = experiment.Experiment(_params(), progress=False)
    f1 = exp.build_network(0)
    (cached,) = exp.reference_features([f1])
    unshuffled = data.load_split("digits", "train", batch_size=64, limit=64)
    np.testing.assert_allclose(cached, features.predict(f1, unshuffled)["features"],
                               rtol=1e-6, atol=1e-6)
    assert exp.reference_features([f1])[0] is cached  # computed once, then kept
    assert capsys.readouterr().out.count("computed once") == 1


def test_a_network_trained_with_the_cache_is_the_one_trained_without(isolated_run_dirs, capsys):
    """Same weights up to float rounding, the same recorded parameters: a run with another
    feature_cache setting reuses it instead of training again."""
    training.configure(0)
    trained = {}
    for mode, run_name in (("auto", "cached"), ("off", "live")):
        exp = experiment.Experiment(_params(feature_cache=mode, run_name=run_name),
                                    progress=False)
        f1 = exp.build_network(0)
        member = exp._member("f2_diverge", 1, 3.0, [f1])
        assert _batch_parts(member) == (3 if mode == "auto" else 2)
        trained[mode] = exp._fit([member], "f2_diverge")["f2_diverge"]
    for a, b in zip(trained["auto"].get_weights(), trained["off"].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    recorded = storage.read_params(config.models_dir("cached") / "f2_diverge.json", "03")
    assert "feature_cache" not in recorded
    assert recorded == storage.read_params(config.models_dir("live") / "f2_diverge.json", "03")
    capsys.readouterr()
    exp = experiment.Experiment(_params(feature_cache="off", run_name="cached"), progress=False)
    exp._fit([exp._member("f2_diverge", 1, 3.0, [exp.build_network(0)])], "f2_diverge")
    assert "reusing" in capsys.readouterr().out

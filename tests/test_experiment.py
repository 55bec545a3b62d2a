"""The two designs: which networks a run trains, with which seeds and references, and the
check that a run never mixes networks trained against different attackers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pdc_utils import artifacts, config, experiment, training


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
    f1 = exp.attacker()
    baselines = exp.baselines(f1)
    diverged = exp.diverged(f1)
    assert list(baselines) == ["f2_baseline", "f2_baseline_s1"]
    assert list(diverged) == ["f2_diverge", "f2_diverge_s1"]
    models = config.models_dir("exp")
    for s, (base, div) in enumerate(exp.pairs):
        recorded = [training.read_params(models / f"{n}.json", "02") for n in (base, div)]
        assert recorded[0]["seed"] == recorded[1]["seed"] == experiment.pair_seed(0, s)
        assert recorded[0]["alpha"] == 0 and recorded[1]["alpha"] == exp.p["alpha"]
        # same seed, same initial weights: a fresh build of the pair's seed is identical
        fresh = [exp.build_network(experiment.pair_seed(0, s)) for _ in range(2)]
        for a, b in zip(fresh[0].get_weights(), fresh[1].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    digest = training.weights_digest(f1)
    div_refs = training.read_params(models / "f2_diverge.json", "03")["references"]
    if design == "reference":
        assert div_refs == [digest]
        assert exp.chain_members == []
    else:
        assert div_refs == ["member:f2_baseline", "member:chain_s0_net1"]
        assert exp.chain_members == ["chain_s0_net1", "chain_s1_net1"]
        assert exp.references_of("f2_diverge_s1") == ["f2_baseline_s1", "chain_s1_net1"]
        assert (models / "chain_s1_net1.keras").exists()
    assert set(exp.all_networks()) == {"f1", *baselines, *diverged}


def test_networks_trained_against_another_f1_are_refused(isolated_run_dirs):
    training.configure(0)
    exp = experiment.Experiment(_params(n_seeds=1), progress=False)
    f1 = exp.attacker()
    exp.baselines(f1)
    exp.diverged(f1)
    keras.utils.set_random_seed(99)  # replace f1 by another network, as a rerun of 02 would
    other = exp.build_network(99)
    training.save_network(other, config.models_dir("exp") / "f1.keras")
    with pytest.raises(ValueError, match="trained against another f1"):
        exp.all_networks()


def test_a_damaged_parameters_file_is_named(isolated_run_dirs):
    path = config.models_dir("exp") / "f1.json"
    artifacts.write_text_atomic(path, "{not json")
    with pytest.raises(ValueError, match="f1.json is damaged"):
        training.read_params(path, "02_baseline_training")

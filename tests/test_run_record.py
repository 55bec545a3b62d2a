"""The run's record of its training parameters: written by 02 (and `train`), read by 03-05,
and checked by `python -m pdc_utils run` before a notebook that reads it starts."""

import json

import pytest

from pdc_utils import config, run_record


@pytest.fixture
def smoke(isolated_run_dirs):
    return {**config.profile("smoke"), "run_name": "rec"}


def test_written_record_is_read_back_and_printed(smoke, capsys):
    run_record.write(smoke, "02_baseline_training")
    params = run_record.for_notebook("rec", "04_attack_evaluation", eps_grid=[0.05])
    assert params["eps_grid"] == [0.05]
    assert {k: params[k] for k in config.TRAINING_KEYS} == run_record.training_parameters(smoke)
    line = capsys.readouterr().out
    assert "run 'rec': digits, resnet18 width 4, 1 epoch of batch 64" in line
    assert "2 seed pairs, 2 attackers, α 1 with penalty v, seed 0" in line


def test_a_missing_record_names_the_notebook_beside_and_a_command(smoke):
    with pytest.raises(config.MissingPrerequisite,
                       match=r"run the notebook 02_baseline_training.ipynb \(beside this one\) "
                             r"with run_name = 'rec'.*--run-name rec --notebooks 02"):
        run_record.read("rec", "03_diverge_training")


@pytest.mark.parametrize("content", ["[1, 2]", '{"parameters": {"seed": 0}}',
                                     '{"parameters": [1]}'])
def test_a_record_of_the_wrong_shape_is_named_damaged(smoke, content):
    path = run_record.path("rec")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ValueError, match=r"run\.json is damaged"):
        run_record.read("rec", "03_diverge_training")


def test_own_choices_are_validated(smoke):
    run_record.write(smoke, "02_baseline_training")
    with pytest.raises(ValueError, match="eps_grid must be"):
        run_record.for_notebook("rec", "04_attack_evaluation", eps_grid=[2.0])


def test_reconcile_refuses_other_training_values_naming_each(smoke):
    run_record.write(smoke, "02_baseline_training")
    asked = {**smoke, "epochs": 12, "alpha": 3.0}
    with pytest.raises(ValueError, match=r"epochs = 1 \(this command: 12\), alpha = 1\.0 "
                                         r"\(this command: 3\.0\).*include notebook 02"):
        run_record.reconcile(asked, ["04_attack_evaluation"], "run")
    run_record.reconcile(asked, ["02_baseline_training", "04_attack_evaluation"], "run")
    run_record.reconcile(asked, ["01_distance_correlation", "06_is_the_effect_real"], "run")


def test_reconcile_takes_how_keys_and_writes_a_missing_record(smoke):
    run_record.reconcile(smoke, ["03_diverge_training"], "run")  # no record yet: written
    assert run_record.read("rec", "03")["epochs"] == 1
    run_record.reconcile({**smoke, "strategy": "default"}, ["03_diverge_training"], "run")
    record = json.loads(run_record.path("rec").read_text())
    assert record["parameters"]["strategy"] == "default" and record["written_by"] == "run"


def test_profiles_show_each_profiles_seeds_and_quick_chose_nothing():
    from pdc_utils import run

    listing = run.describe_profiles()
    assert "seeds: f1 3000, pairs 3001–3003, attackers 903001–903002" in listing
    # the validation study (base 0), the first and the powered confirmation (5000, 7000)
    study = {0, *range(1, 6), 900001, 900002, 10001, 20001}
    confirmations = {5000, *range(5001, 5009), 905001, 905002, 905003, 805000,
                     7000, *range(7001, 7035), 907001, 907002, 907003, 807000}
    quick = config.profile("quick")
    seeds = {quick["seed"], *(quick["seed"] + 1 + s for s in range(quick["n_seeds"])),
             *(quick["seed"] + config.ATTACKER_SEED_OFFSET + k
               for k in range(1, quick["n_attackers"]))}
    assert not seeds & (study | confirmations)

"""Score one cell of a study: every network of the cell on every attacker's adversarial images.

What one scoring job computes (it needs TensorFlow; the jobs runner calls it once the cell's
networks are trained and the attackers and shared baselines are in the cell's run). Every
attacker crafts its images deterministically (no random start under the ``pixel`` protocol;
a seeded one under ``paper``), so scoring the cells one by one gives the numbers that scoring
them all at once gave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pdc_utils import attacks, data, experiment, features
from pdc_utils.study.grid import ATTACKS, Cell


def network_seed(exp: experiment.Experiment, pair: int, role: str) -> int:
    """The seed network ``role`` (baseline or diverge) of pair ``pair`` was trained with."""
    if role == "diverge" and exp.p["design"] == "paper_code":
        return experiment.chain_seed(exp.p["seed"], pair, exp.p["n_nets"] - 1)
    return experiment.pair_seed(exp.p["seed"], pair)


def score_cell(exp: experiment.Experiment, cell: Cell, split: str, eps_grid: Sequence[float],
               attack_params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every network of ``cell`` (its run ``exp``) on ``split``:
    ``(per-network rows, white-box rows)``.

    Per network (cell, pair index ``seed``, role, and ``train_seed``, the seed it was trained
    with): clean accuracy, accuracy on every attacker's adversarial images per attack and ε
    (columns ``<attacker>/<attack>_<eps>``), the exact dCor² (V and U) of its row-normalised
    features to its cell's reference (f1, or the untrained network of the control), their
    effective dimension, and the cosine of its input gradient to f1's. The white-box rows name
    each attacker with its training seed.
    """
    p = exp.p
    # attack_limit: the first images only (imagenet2012 scores 10,000 of its 50,000)
    dataset = data.load_split(p["dataset"], split, batch_size=256,
                              limit=attack_params.get("attack_limit", 0))
    attackers = exp.load(exp.attacker_names, "02_baseline_training")
    nets = exp.all_networks()
    targets, owner = {}, {}
    for s, pair in enumerate(exp.pairs):
        for role, name in zip(("baseline", "diverge"), pair, strict=True):
            key = f"{cell.name}/{name}"
            targets[key], owner[key] = nets[name], (s, role)
    protocol = attack_params["protocol"]
    info = data.dataset_info(p["dataset"])
    normalise = {"mean": info.mean, "std": info.std} if protocol == "paper" else {}
    per_example = attacks.transfer_from_attackers(
        attackers, targets, dataset, attacks=list(ATTACKS), eps_grid=list(eps_grid),
        protocol=protocol, eps_iter=attack_params["pgd_step"],
        steps=attack_params["pgd_steps"], progress=False, **normalise)
    accuracy = (per_example.groupby(["attacker", "attack", "eps", "model"], sort=False)
                ["correct"].mean() * 100)
    f1 = attackers[experiment.ATTACKER]
    reference = features.predict(exp.untrained() if cell.diverge_from == "untrained" else f1,
                                 dataset)
    cosine = attacks.gradient_alignment(f1, targets, dataset).set_index("model")["cosine_mean"]
    rows = []
    for key, (s, role) in owner.items():
        out = features.predict(targets[key], dataset)
        table = features.feature_dcor_table(
            {"reference": reference["features"], "net": out["features"]},
            reference="reference").set_index("model").loc["net"]
        row = {**cell.params(), "cell": cell.name, "seed": s, "role": role, "name": key,
               "train_seed": network_seed(exp, s, role),
               "clean": accuracy[(experiment.ATTACKER, "clean", 0.0, key)],
               "v_to_reference": table["dcor_sqr"], "u_to_reference": table["u_dcor_sqr"],
               "effective_dim": table["effective_dim"],
               "top_pc_fraction": table["top_pc_fraction"], "cosine_to_f1": cosine[key]}
        for attacker in attackers:
            for attack in ATTACKS:
                for eps in eps_grid:
                    row[f"{attacker}/{attack}_{eps:g}"] = accuracy[(attacker, attack, eps, key)]
        rows.append(row)
    white_box = pd.DataFrame([
        {"attacker": a, "train_seed": experiment.attacker_seed(p["seed"], k), "attack": attack,
         "eps": eps, "accuracy": accuracy[(a, attack, eps, a)]}
        for k, a in enumerate(attackers) for attack in ATTACKS for eps in eps_grid])
    return pd.DataFrame(rows), white_box

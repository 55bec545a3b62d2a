"""Shared by the diverge studies (``diverge_study.py``: choose on validation;
``diverge_confirm.py``: confirm on the test split): train a set of cells, score every network
on every attacker's adversarial images, and test diverged − baseline over seed pairs.

A *cell* is one setting (design, penalty, α, keep_dim, diverge_from) with ``n_seeds`` pairs,
trained as one run of the series (``pdc_utils.experiment``) under ``runs/<study>/``; finished
networks are reused, so an interrupted study continues where it stopped, and networks that
do not depend on the setting (the attackers; the baselines of cells that differ only in what
the diverged networks do) are copied between cells instead of trained again.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pdc_utils import attacks, config, data, evidence, experiment, features

#: The attacks of every study.
ATTACKS = ("fgm", "pgd")


@dataclass(frozen=True)
class Cell:
    """One setting of a study."""

    design: str
    penalty: str
    alpha: float
    keep_dim: float = 0.0
    diverge_from: str = "attacker"

    @property
    def name(self) -> str:
        extra = (f"_k{self.keep_dim:g}" if self.keep_dim else "") + (
            "_untrained" if self.diverge_from == "untrained" else "")
        return f"{self.design}_{self.penalty}_a{self.alpha:g}{extra}"

    def params(self) -> dict[str, Any]:
        return {"design": self.design, "penalty": self.penalty, "alpha": self.alpha,
                "keep_dim": self.keep_dim, "diverge_from": self.diverge_from}


def _copy_finished(source: str, target: str, names: Sequence[str]) -> None:
    """Put finished networks of run ``source`` into run ``target``; the run reuses them only
    if their records match what it would train (else it moves them aside and trains)."""
    for name in names:
        for sub, file in (("models", f"{name}.keras"), ("models", f"{name}.json"),
                          ("results", f"history_{name}.csv")):
            src = config.run_dir(source) / sub / file
            dst = config.run_dir(target) / sub / file
            if src.exists() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


def train_cells(base: Mapping[str, Any], cells: Sequence[Cell], n_seeds: int,
                n_attackers: int, prefix: str) -> dict[Cell, experiment.Experiment]:
    """Train (or reuse) every cell; the experiments, checked and ready to load."""
    runs: dict[Cell, experiment.Experiment] = {}
    for cell in cells:
        params = {**base, **cell.params(), "n_seeds": n_seeds, "n_attackers": n_attackers,
                  "run_name": f"{prefix}{cell.name}"}
        exp = experiment.Experiment(params, progress=False)
        for other, done in runs.items():  # attackers, and baselines where they can match
            names = list(done.attacker_names)
            if other.design == cell.design == "reference" and other.penalty == cell.penalty:
                names += [b for b, _ in done.pairs]
            _copy_finished(done.p["run_name"], params["run_name"], names)
        f1 = exp.attackers()[experiment.ATTACKER]
        exp.baselines(f1)
        exp.diverged(f1)
        runs[cell] = exp
        print(f"{cell.name}: trained", flush=True)
    return runs


def network_seed(exp: experiment.Experiment, pair: int, role: str) -> int:
    """The seed network ``role`` (baseline or diverge) of pair ``pair`` was trained with."""
    if role == "diverge" and exp.p["design"] == "paper_code":
        return experiment.chain_seed(exp.p["seed"], pair, exp.p["n_nets"] - 1)
    return experiment.pair_seed(exp.p["seed"], pair)


def score(runs: Mapping[Cell, experiment.Experiment], split: str, eps_grid: Sequence[float],
          attack_params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every network of every cell on ``split``: ``(per-network rows, white-box rows)``.

    Per network (cell, pair index ``seed``, role, and ``train_seed``, the seed it was trained
    with): clean accuracy, accuracy on every attacker's adversarial
    images per attack and ε (columns ``<attacker>/<attack>_<eps>``), the exact dCor² (V and U)
    of its row-normalised features to its cell's reference (f1, or the untrained network of
    the control), their effective dimension, and the cosine of its input gradient to f1's.
    The white-box rows name each attacker with its training seed.
    """
    first = next(iter(runs.values()))
    p = first.p
    dataset = data.load_split(p["dataset"], split, batch_size=256)
    attackers = first.load(first.attacker_names, "02_baseline_training")
    targets, owner = {}, {}
    for cell, exp in runs.items():
        nets = exp.all_networks()
        for s, pair in enumerate(exp.pairs):
            for role, name in zip(("baseline", "diverge"), pair, strict=True):
                key = f"{cell.name}/{name}"
                targets[key], owner[key] = nets[name], (cell, s, role, exp)
    per_example = attacks.transfer_from_attackers(
        attackers, targets, dataset, attacks=list(ATTACKS), eps_grid=list(eps_grid),
        protocol="pixel", eps_iter=attack_params["pgd_step"], steps=attack_params["pgd_steps"],
        progress=False)
    accuracy = (per_example.groupby(["attacker", "attack", "eps", "model"], sort=False)
                ["correct"].mean() * 100)
    outputs = {key: features.predict(net, dataset) for key, net in targets.items()}
    f1_out = features.predict(attackers[experiment.ATTACKER], dataset)
    cosine = attacks.gradient_alignment(attackers[experiment.ATTACKER], targets, dataset) \
        .set_index("model")["cosine_mean"]
    rows = []
    untrained_out: dict[str, dict] = {}
    for key, (cell, s, role, exp) in owner.items():
        reference = f1_out
        if cell.diverge_from == "untrained":
            if exp.p["run_name"] not in untrained_out:
                untrained_out[exp.p["run_name"]] = features.predict(exp.untrained(), dataset)
            reference = untrained_out[exp.p["run_name"]]
        table = features.feature_dcor_table(
            {"reference": reference["features"], "net": outputs[key]["features"]},
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


def differences(frame: pd.DataFrame, eps_grid: Sequence[float], attackers: Sequence[str],
                margin: float | None = None) -> pd.DataFrame:
    """Diverged − baseline per cell, attack, ε and attacker family (``f1`` alone; ``others``:
    the mean over the independent attackers within each pair), over seed pairs: mean,
    t-interval, p-value; then Holm and Benjamini–Hochberg over the **whole** table (every
    cell, attack, ε and family: the study's family of comparisons). Clean rows carry the
    accuracy cost and are not in the family. With ``margin`` (points), every row also gets
    the two one-sided tests against ±margin (``p_gain``, ``p_loss``, ``p_tost``: see
    :func:`pdc_utils.evidence.tost`)."""
    def tests(d: np.ndarray) -> dict[str, float]:
        return {**evidence.t_summary(d), **(evidence.tost(d, margin) if margin else {})}

    families = {evidence.REFERENCE_ATTACKER: [attackers[0]]}
    if len(attackers) > 1:
        families[evidence.OTHER_ATTACKERS] = list(attackers[1:])
    rows = []
    for cell, g in frame.groupby("cell", sort=False):
        base = g[g["role"] == "baseline"].set_index("seed")
        div = g[g["role"] == "diverge"].set_index("seed").loc[base.index]
        info = {k: g[k].iloc[0] for k in ("design", "penalty", "alpha", "keep_dim",
                                          "diverge_from")}
        d = (div["clean"] - base["clean"]).to_numpy()
        rows.append({"cell": cell, **info, "attack": "clean", "eps": 0.0, "attackers": "none",
                     **tests(d), "n_seeds": d.size})
        for attack in ATTACKS:
            for eps in eps_grid:
                for family, members in families.items():
                    cols = [f"{a}/{attack}_{eps:g}" for a in members]
                    d = (div[cols].to_numpy() - base[cols].to_numpy()).mean(axis=1)
                    rows.append({"cell": cell, **info, "attack": attack, "eps": eps,
                                 "attackers": family, **tests(d), "n_seeds": d.size})
    table = pd.DataFrame(rows)
    attacked = table["attack"] != "clean"
    table["p_holm"] = np.nan
    table["q_bh"] = np.nan
    table.loc[attacked, "p_holm"] = evidence.holm(table.loc[attacked, "p_value"].to_numpy())
    table.loc[attacked, "q_bh"] = evidence.benjamini_hochberg(
        table.loc[attacked, "p_value"].to_numpy())
    return table


def interval(row: Any) -> str:
    """``+1.23 [−0.40, +2.86]``, with ``*`` where Holm's p < 0.05 and ``°`` where only the
    uncorrected p < 0.05."""
    mark = " *" if row.p_holm < 0.05 else (" °" if row.p_value < 0.05 else "")
    return f"{row.difference:+.2f} [{row.low:+.2f}, {row.high:+.2f}]{mark}"

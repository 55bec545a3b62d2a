"""The study's statistics: diverged − baseline over seed pairs per cell, attack, ε and
attacker family, and the confirm stage's paired contrasts between settings.

Every table comes from the per-network scores alone (one row per network: its cell, pair,
role and accuracies, ``<attacker>/<attack>_<eps>`` columns), so a report can be remade from
the committed CSVs without any network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pdc_utils import evidence
from pdc_utils.study.grid import ATTACKS


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


def confirm_differences(frame: pd.DataFrame, eps_grid: Sequence[float],
                        attackers: Sequence[str], margin: float | None) -> pd.DataFrame:
    """:func:`differences` for the confirm stage: Holm and BH over the whole table renamed
    ``p_holm_all`` / ``q_bh_all``, a ``setting`` column, and Holm within each setting's own
    family (``p_holm``; with ``margin`` also the TOST p-values' ``*_holm``)."""
    diffs = differences(frame, eps_grid, attackers, margin=margin)
    diffs = diffs.rename(columns={"p_holm": "p_holm_all", "q_bh": "q_bh_all"})
    label_of = dict(zip(frame["cell"], frame["setting"], strict=False))
    diffs.insert(0, "setting", diffs["cell"].map(label_of))
    attacked = diffs["attack"] != "clean"
    holm_columns = {"p_value": "p_holm"}
    if margin:
        holm_columns.update({"p_gain": "p_gain_holm", "p_loss": "p_loss_holm",
                             "p_tost": "p_tost_holm"})
    for raw, adjusted in holm_columns.items():
        diffs[adjusted] = np.nan
        for _, g in diffs[attacked].groupby("setting"):
            diffs.loc[g.index, adjusted] = evidence.holm(g[raw].to_numpy())
    return diffs


def contrasts(frame: pd.DataFrame, cells: Mapping[str, str], eps: Sequence[float],
              attackers: Sequence[str]) -> pd.DataFrame:
    """Paired contrasts of diverged networks between settings that share pair seeds (the
    reference-design settings): ``reference − X`` per attack, ε and attacker family, Holm
    within each contrast. ``cells`` maps ``reference`` and the settings compared with it
    (``control``, ``keep_dim``, ``grad_align`` where present) to their cell names; each is
    labelled with its ``setting`` in ``frame``."""
    div = frame[frame["role"] == "diverge"]
    label_of = dict(zip(frame["cell"], frame["setting"], strict=False))
    families = {evidence.REFERENCE_ATTACKER: list(attackers[:1]),
                evidence.OTHER_ATTACKERS: list(attackers[1:])}
    rows = []
    ref = div[div["cell"] == cells["reference"]].set_index("seed")
    for setting in (x for x in ("control", "keep_dim", "grad_align") if x in cells):
        name = f"reference − {label_of[cells[setting]]}"
        other = div[div["cell"] == cells[setting]].set_index("seed").loc[ref.index]
        d = (ref["clean"] - other["clean"]).to_numpy()
        rows.append({"contrast": name, "attack": "clean", "eps": 0.0, "attackers": "none",
                     **evidence.t_summary(d), "n_seeds": d.size})
        for attack in ATTACKS:
            for e in eps:
                for family, members in families.items():
                    cols = [f"{a}/{attack}_{e:g}" for a in members]
                    d = (ref[cols].to_numpy() - other[cols].to_numpy()).mean(axis=1)
                    rows.append({"contrast": name, "attack": attack, "eps": e,
                                 "attackers": family, **evidence.t_summary(d),
                                 "n_seeds": d.size})
    table = pd.DataFrame(rows)
    table["p_holm"] = np.nan
    for _, g in table[table["attack"] != "clean"].groupby("contrast"):
        table.loc[g.index, "p_holm"] = evidence.holm(g["p_value"].to_numpy())
    return table


def interval(row: Any) -> str:
    """``+1.23 [−0.40, +2.86]``, with ``*`` where Holm's p < 0.05 and ``°`` where only the
    uncorrected p < 0.05."""
    mark = " *" if row.p_holm < 0.05 else (" °" if row.p_value < 0.05 else "")
    return f"{row.difference:+.2f} [{row.low:+.2f}, {row.high:+.2f}]{mark}"

"""The study's reports: tables (CSV, Markdown) and figures from the per-network scores.

``select_report`` and ``confirm_report`` take the per-network table (and the attackers'
white-box table) and nothing else, so ``study report`` (from the scoring jobs' files) and the
bench scripts' ``--report-only`` (from committed CSVs) make the same reports. Files, in the
results folder, with stem ``NAME`` (``diverge_study`` / ``diverge_confirm`` by default):

- select: ``NAME.{md,csv,png}``, ``NAME_differences.csv``, ``NAME_white_box.csv`` and
  ``diverge_selection.json`` (what the rules chose, read by the confirm stage);
- confirm: ``NAME.{md,csv,png}``, ``NAME_attackers.csv``, ``NAME_differences.csv``,
  ``NAME_contrasts.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdc_utils import data, evidence
from pdc_utils.study import rules, tables
from pdc_utils.study.grid import ATTACKS, Cell
from pdc_utils.study.tables import interval

SELECTION_FILE = "diverge_selection.json"


@dataclass(frozen=True)
class Recipe:
    """What the report says about how the networks were made."""

    profile: str
    dataset: str
    network: str
    width: int
    epochs: int
    batch_size: int
    limit: int = 0  # attack_limit: how many images of the split were scored (0: all)

    @classmethod
    def of(cls, profile: str, params: Mapping[str, Any]) -> Recipe:
        return cls(profile, params["dataset"], params["network"], params["width"],
                   params["epochs"], params["batch_size"], params.get("attack_limit", 0))

    def images(self, split: str) -> int:
        """How many images of ``split`` every network was scored on."""
        return data.num_examples(self.dataset, split, self.limit)

    def network_words(self) -> str:
        cifar = self.dataset in ("digits", "cifar10") and self.network.startswith("resnet")
        name = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                "resnet152": "ResNet-152", "mobilenet_v3_small": "MobileNetV3-Small",
                "efficientnet_b0": "EfficientNet-B0"}[self.network]
        return f"CIFAR {name}" if cifar else name


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds == seconds else ""


# --------------------------------------------------------------------------- select


def select_report(frame: pd.DataFrame, white_box: pd.DataFrame, selection: Mapping[str, Any],
                  candidate_eps: Sequence[float], recipe: Recipe, results: Path, stem: str,
                  seconds: float = float("nan")) -> str:
    """Write the select stage's tables, figure and selection; return the Markdown."""
    attackers = rules.attacker_names(white_box)
    diffs = tables.differences(frame, candidate_eps, attackers)  # Holm/BH over the family
    results.mkdir(parents=True, exist_ok=True)
    (results / SELECTION_FILE).write_text(json.dumps(selection, indent=2) + "\n")
    frame.to_csv(results / f"{stem}.csv", index=False)
    diffs.to_csv(results / f"{stem}_differences.csv", index=False)
    white_box.to_csv(results / f"{stem}_white_box.csv", index=False)
    text = select_markdown(frame, diffs, white_box, selection, candidate_eps, recipe, stem,
                           seconds)
    (results / f"{stem}.md").write_text(text)
    select_plot(frame, diffs, max(selection["eps_grid"]), results / f"{stem}.png")
    return text


def select_markdown(frame: pd.DataFrame, diffs: pd.DataFrame, white_box: pd.DataFrame,
                    selection: Mapping[str, Any], candidate_eps: Sequence[float],
                    recipe: Recipe, stem: str, seconds: float) -> str:
    wb = white_box.groupby(["attack", "eps"])["accuracy"].mean()
    eps = selection["eps_grid"]
    n_images = recipe.images("validation")
    timing = _minutes(seconds)
    lines = [
        f"# Diverge study on {recipe.dataset}, validation split (`{stem}`)",
        "",
        f"{date.today()}; `{recipe.profile}` recipe ({recipe.dataset}, "
        f"{recipe.network_words()} at width {recipe.width}, "
        f"{recipe.epochs} epochs, batch {recipe.batch_size}); {selection['seeds']} seed pairs "
        f"per cell (a pair shares its seed; chains of paper_code have a seed per net); "
        f"validation attackers {', '.join(selection['attackers'])}; "
        f"every network scored on the **validation** split ({n_images} images never trained "
        f"on); the test split is not used." + (f" {timing}." if timing else "")
        + f" Raw numbers: `{stem}.csv` (per network), `{stem}_differences.csv` (per test).",
        "",
        "White-box accuracy of the attackers on their own adversarial images (%, mean over "
        "attackers): " + ", ".join(f"{a} {e:g}: {wb[(a, e)]:.1f}" for a, e in wb.index) + ".",
        "",
        "## What the rules chose (fixed before the run; see the script's docstring)",
        "",
        f"- ε grid (rule 1: white-box PGD near 75 / 40 / 10 %): {eps}",
        f"- reference design (rule 2): penalty `{selection['reference']['penalty']}`, "
        f"α = {selection['reference']['alpha']:g}",
    ]
    if selection.get("paper_code"):
        lines.append(f"- paper_code design (rule 2): penalty "
                     f"`{selection['paper_code']['penalty']}`, "
                     f"α = {selection['paper_code']['alpha']:g}")
    lines += [
        f"- GAL at matched clean cost (rule 3): α = {selection['grad_align_alpha']:g}",
        f"- keep_dim (rule 4): {selection['keep_dim']:g}",
        "",
        "## Features: dependence and geometry (validation, mean over pairs)",
        "",
        "V, U: exact dCor² of row-normalised penultimate features to the cell's reference "
        "(f1; the untrained network for a control); eff. dim: participation ratio of the "
        "feature covariance; cosine: input-gradient cosine to f1.",
        "",
        "| cell | V: base → div | U: base → div | eff. dim: base → div | clean: base → div | "
        "cosine: base → div |",
        "|---|---|---|---|---|---|",
    ]
    for cell, g in frame.groupby("cell", sort=False):
        b, d = g[g["role"] == "baseline"], g[g["role"] == "diverge"]

        def pair(col: str, fmt: str = ".3f", b: pd.DataFrame = b, d: pd.DataFrame = d) -> str:
            return f"{b[col].mean():{fmt}} → {d[col].mean():{fmt}}"

        lines.append(f"| {cell} | {pair('v_to_reference')} | {pair('u_to_reference')} | "
                     f"{pair('effective_dim', '.1f')} | {pair('clean', '.2f')} | "
                     f"{pair('cosine_to_f1')} |")
    attacked = diffs[diffs["attack"] != "clean"]
    m = len(attacked)
    lines += [
        "",
        "## Diverged − baseline accuracy on the attackers' images (points, validation)",
        "",
        f"Mean over pairs, 95 % t-interval; `*`: Holm-adjusted p < 0.05 over all {m} tests "
        "of the study; `°`: p < 0.05 before correction only. `f1`: attacker 0 (the network "
        "diverged from, under reference); `others`: mean over the independent attackers.",
        "",
        "| cell | attackers | clean | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                   for e in candidate_eps) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(candidate_eps)),
    ]
    for cell, g in diffs.groupby("cell", sort=False):
        clean = _clean_text(g, mark=True)
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            cells = [interval(r) for r in rows.itertuples()]
            lines.append(f"| {cell} | {family} | {clean} | " + " | ".join(cells) + " |")

    def count(column: str, sign: int) -> int:
        return int(((attacked[column] < 0.05) & (sign * attacked["difference"] > 0)).sum())

    lines += [
        "",
        f"Of the {m} tests: p < 0.05 before correction in {count('p_value', 1)} in favour of "
        f"diverging and {count('p_value', -1)} against; Holm (family-wise 5 %) keeps "
        f"{count('p_holm', 1)} in favour and {count('p_holm', -1)} against; "
        f"Benjamini–Hochberg (q < 0.05) {count('q_bh', 1)} and {count('q_bh', -1)}. The "
        f"smallest p-value is {attacked['p_value'].min():.2g}. The cells share their "
        f"attackers and (within a design and penalty) their baselines, so the tests are "
        f"correlated; Holm holds under any dependence.",
        "",
    ]
    return "\n".join(lines) + "\n"


def _clean_text(g: pd.DataFrame, mark: bool) -> str:
    row = g[g["attack"] == "clean"].iloc[0]
    sign = " °" if mark and row["p_value"] < 0.05 else ""
    return f"{row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]{sign}"


def select_plot(frame: pd.DataFrame, diffs: pd.DataFrame, eps: float, path: Path) -> None:
    """Left: V and U dCor² to the reference against effective dimension (every diverged
    network; baselines in grey); right: diverged − baseline under PGD at ``eps`` per cell,
    independent attackers, mean and 95 % interval."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    div = frame[frame["role"] == "diverge"]
    for penalty, g in div.groupby("penalty", sort=False):
        axes[0].scatter(g["effective_dim"], g["v_to_reference"], alpha=0.7, s=14,
                        label=f"diverged ({penalty}): V")
        axes[0].scatter(g["effective_dim"], g["u_to_reference"], alpha=0.7, s=14,
                        facecolors="none", edgecolors="black", linewidths=0.5)
    base = frame[frame["role"] == "baseline"]
    axes[0].scatter(base["effective_dim"], base["v_to_reference"], c="grey", marker="x",
                    label="baselines: V")
    axes[0].set_xlabel("effective dimension of the features (validation)")
    axes[0].set_ylabel("dCor² to the reference (filled: V, open: U)")
    axes[0].legend(fontsize=7)
    rows = diffs[(diffs["attack"] == "pgd") & (diffs["eps"] == eps)
                 & (diffs["attackers"] == evidence.OTHER_ATTACKERS)]
    x = np.arange(len(rows))
    axes[1].errorbar(x, rows["difference"], yerr=[rows["difference"] - rows["low"],
                                                  rows["high"] - rows["difference"]],
                     fmt="o", color="C3", capsize=3)
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_xticks(x, rows["cell"], rotation=90, fontsize=7)
    axes[1].set_ylabel(f"diverged − baseline, PGD ε={eps:g} (points)")
    axes[1].set_title("independent validation attackers: mean, 95 % t-interval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- confirm


def confirm_tables(frame: pd.DataFrame, white_box: pd.DataFrame, named: Mapping[str, Cell],
                   eps: Sequence[float], margin: float | None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(differences, contrasts, attackers)`` of the confirm stage from its scores."""
    attackers = rules.attacker_names(white_box)
    diffs = tables.confirm_differences(frame, eps, attackers, margin)
    contrast = tables.contrasts(frame, {k: c.name for k, c in named.items()}, eps, attackers)
    return diffs, contrast, attackers


def confirm_report(frame: pd.DataFrame, white_box: pd.DataFrame, named: Mapping[str, Cell],
                   selection: Mapping[str, Any], base_seed: int, n_seeds: int,
                   margin: float | None, recipe: Recipe, results: Path, stem: str,
                   seconds: float = float("nan"), write_scores: bool = True) -> str:
    """Write the confirm stage's tables and figure; return the Markdown. ``frame`` has a
    ``setting`` column (the label of each network's setting)."""
    eps = [float(e) for e in selection["eps_grid"]]
    diffs, contrast, attackers = confirm_tables(frame, white_box, named, eps, margin)
    results.mkdir(parents=True, exist_ok=True)
    if write_scores:
        frame.to_csv(results / f"{stem}.csv", index=False)
        white_box.to_csv(results / f"{stem}_attackers.csv", index=False)
    diffs.to_csv(results / f"{stem}_differences.csv", index=False)
    contrast.to_csv(results / f"{stem}_contrasts.csv", index=False)
    text = confirm_markdown(frame, diffs, contrast, white_box, named, eps, base_seed, n_seeds,
                            margin, attackers, recipe, seconds)
    (results / f"{stem}.md").write_text(text)
    confirm_plot(diffs, eps, results / f"{stem}.png")
    return text


def confirm_markdown(frame: pd.DataFrame, diffs: pd.DataFrame, contrast: pd.DataFrame,
                     white_box: pd.DataFrame, named: Mapping[str, Cell], eps: Sequence[float],
                     base_seed: int, n_seeds: int, margin: float | None,
                     attackers: Sequence[str], recipe: Recipe, seconds: float) -> str:
    wb = white_box.groupby(["attack", "eps"])["accuracy"].mean()
    n_images = recipe.images("test")
    label_of = dict(zip(frame["cell"], frame["setting"], strict=False))
    timing = _minutes(seconds)
    lines = [
        f"# Confirmatory run: diverge training on {recipe.dataset}, test split, fresh seeds",
        "",
        f"{date.today()}; settings chosen on the validation split by the select stage's "
        "written rules (`diverge_selection.json`), trained again "
        f"with fresh seeds (base {base_seed}: f1 {base_seed}, pairs "
        f"{base_seed + 1}–{base_seed + n_seeds}), {n_seeds} seed pairs per setting, "
        f"{len(attackers)} attackers ({', '.join(attackers)}: f1 and "
        f"{len(attackers) - 1} independent), scored once on the {n_images} test images. "
        f"`{recipe.profile}` recipe" + (f"; {timing}." if timing else "."),
        "",
        "Attackers and their training seeds: " + ", ".join(
            f"{a} ({int(s)})" for a, s in white_box.groupby("attacker", sort=False)
            ["train_seed"].first().items()) + "; every network's seed is in the "
        "`train_seed` column of the per-network table." if "train_seed" in white_box else "",
        "",
        "White-box accuracy of the attackers on their own images (%, mean): "
        + ", ".join(f"{a} {e:g}: {wb[(a, e)]:.1f}" for a, e in wb.index) + ".",
        "",
        "| setting | design | penalty | α | keep_dim | diverged from |",
        "|---|---|---|---:|---:|---|",
    ]
    for cell in named.values():
        source = (cell.diverge_from if cell.design == "reference"
                  else "the earlier nets of its chain")
        lines.append(f"| {label_of[cell.name]} | {cell.design} | {cell.penalty} | "
                     f"{cell.alpha:g} | {cell.keep_dim:g} | {source} |")
    lines += [
        "",
        "## Features (test split, mean over pairs)",
        "",
        "| setting | V to its reference: base → div | U: base → div | eff. dim: base → div | "
        "top-PC share of the diverged | clean %: base → div | grad. cosine to f1: base → div |",
        "|---|---|---|---|---:|---|---|",
    ]
    for label, g in frame.groupby("setting", sort=False):
        b, d = g[g["role"] == "baseline"], g[g["role"] == "diverge"]

        def pair(col: str, fmt: str = ".3f", b: pd.DataFrame = b, d: pd.DataFrame = d) -> str:
            return f"{b[col].mean():{fmt}} → {d[col].mean():{fmt}}"

        lines.append(f"| {label} | {pair('v_to_reference')} | {pair('u_to_reference')} | "
                     f"{pair('effective_dim', '.1f')} | {d['top_pc_fraction'].mean():.2f} | "
                     f"{pair('clean', '.2f')} | {pair('cosine_to_f1')} |")
    n_family = 2 * len(eps) * 2
    lines += [
        "",
        "## Diverged − baseline accuracy on adversarial test images (points)",
        "",
        "Mean over pairs, 95 % t-interval; `*`: Holm-adjusted p < 0.05 within the setting's "
        f"family of {n_family} tests (2 attacks × {len(eps)} ε × 2 attacker families); `°`: "
        "p < 0.05 before "
        "correction only. `f1`: attacker 0 (under reference and keep_dim the network diverged "
        "from; for the control and paper_code an independent network); `others`: mean over "
        "the independent attackers within each pair.",
        "",
        "| setting | attackers | clean | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                      for e in eps) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(eps)),
    ]
    for label, g in diffs.groupby("setting", sort=False):
        clean_text = _clean_text(g, mark=True)
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | {clean_text} | "
                         + " | ".join(interval(r) for r in rows.itertuples()) + " |")
    lines += ["", f"## Verdict per setting (Holm within the setting, {n_family} tests)", ""]
    for label, g in diffs.groupby("setting", sort=False):
        lines.append(f"- **{label}**: {_verdict(g[g['attack'] != 'clean'])}.")
    if margin:
        lines += tost_lines(diffs, margin, n_family)
    whole = diffs[diffs["attack"] != "clean"]
    lines += [
        "",
        f"Over the whole table ({len(whole)} tests): Holm keeps "
        f"{int((whole['p_holm_all'] < 0.05).sum())}, Benjamini–Hochberg "
        f"{int((whole['q_bh_all'] < 0.05).sum())}; the smallest p-value is "
        f"{whole['p_value'].min():.2g}.",
        "",
        "## Contrasts between settings (diverged networks, same pair seeds)",
        "",
        "`reference − control` > 0 would mean that independence of f1 itself, not the "
        "penalty's regularisation, makes f1's images transfer less; `reference − keep_dim` > 0 "
        "that the collapse of the features helps; `reference − grad_align` > 0 that the dCor "
        "penalty "
        f"beats the standard baseline at the same clean cost. `*`: Holm within the contrast "
        f"({n_family} tests).",
        "",
        "| contrast | attackers | clean | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                       for e in eps) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(eps)),
    ]
    for label, g in contrast.groupby("contrast", sort=False):
        clean_text = _clean_text(g, mark=False)
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | {clean_text} | "
                         + " | ".join(interval(r) for r in rows.itertuples()) + " |")
    return "\n".join(lines) + "\n"


def _verdict(a: pd.DataFrame) -> str:
    up = a[(a["p_holm"] < 0.05) & (a["difference"] > 0)]
    down = a[(a["p_holm"] < 0.05) & (a["difference"] < 0)]
    words = []
    if len(up):
        words.append("in favour of diverging: " + ", ".join(
            f"{r.attack} {r.eps:g} ({r.attackers}, {r.difference:+.1f})" for r in up.itertuples()))
    if len(down):
        words.append("against: " + ", ".join(
            f"{r.attack} {r.eps:g} ({r.attackers}, {r.difference:+.1f})"
            for r in down.itertuples()))
    raw = int((a["p_value"] < 0.05).sum())
    return ("; ".join(words) if words else
            f"no test significant after Holm ({raw} of {len(a)} at p < 0.05 before correction)")


def tost_lines(diffs: pd.DataFrame, margin: float, n_family: int) -> list[str]:
    """The equivalence section: per setting and test, what the two one-sided tests against
    ±margin rule out, after Holm within the setting (the same family as the t-tests)."""
    eps = sorted(set(diffs["eps"]) - {0.0})
    lines = ["", f"## Equivalence: what the data rule out (TOST, margin ±{margin:g} points)", "",
             f"Per test, with Holm within the setting ({n_family} tests): *gain > {margin:g} "
             f"ruled out* "
             f"where the one-sided test of a gain of at least {margin:g} points rejects; "
             f"*equivalent* where both one-sided tests reject (the difference lies within "
             f"±{margin:g}); *cannot rule out a gain of {margin:g}* otherwise. The interval "
             "shown is the 95 % t-interval.", "",
             "| setting | attackers | " + " | ".join(f"{a} {e:g}" for a in ATTACKS for e in eps)
             + " |", "|---|---|" + "---|" * (len(ATTACKS) * len(eps))]
    for label, g in diffs[diffs["attack"] != "clean"].groupby("setting", sort=False):
        for family, rows in g.groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | " + " | ".join(
                tost_words(r, margin) for r in rows.itertuples()) + " |")
    return lines


def tost_words(row: Any, margin: float) -> str:
    """A test's TOST reading in a few words (Holm-adjusted, level 0.05)."""
    if row.p_tost_holm < 0.05:
        return f"equivalent (±{margin:g})"
    if row.p_gain_holm < 0.05:
        return f"gain > {margin:g} ruled out"
    return f"cannot rule out a gain of {margin:g}"


def confirm_plot(diffs: pd.DataFrame, eps: Sequence[float], path: Path) -> None:
    """Diverged − baseline against ε, per attack (rows) and attacker family (columns), one
    line per setting with its 95 % interval."""
    plt = _pyplot()
    families = [evidence.REFERENCE_ATTACKER, evidence.OTHER_ATTACKERS]
    fig, axes = plt.subplots(len(ATTACKS), 2, figsize=(11, 7), sharey=True, squeeze=False)
    settings = list(dict.fromkeys(diffs["setting"]))
    for r, attack in enumerate(ATTACKS):
        for c, family in enumerate(families):
            ax = axes[r][c]
            for i, label in enumerate(settings):
                rows = diffs[(diffs["setting"] == label) & (diffs["attack"] == attack)
                             & (diffs["attackers"] == family)].sort_values("eps")
                x = np.arange(len(rows)) + (i - len(settings) / 2) * 0.07
                ax.errorbar(x, rows["difference"], yerr=[rows["difference"] - rows["low"],
                                                         rows["high"] - rows["difference"]],
                            fmt="o-", capsize=3, label=label, color=f"C{i}")
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(eps)), [f"{e:g}" for e in eps])
            ax.set_xlabel("ε (pixel units)")
            who = "f1" if family == "f1" else "independent attackers (mean)"
            ax.set_title(f"{attack.upper()} from {who}")
            if c == 0:
                ax.set_ylabel("diverged − baseline (points)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Confirmatory run (test split, fresh seeds): mean over pairs, 95 % t-interval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""Choose on validation data: which setting of diverge training, which ε grid, which controls.

Every choice the series makes about diverge training is made here, on the **validation**
split (288 digits images carved from the training data, never trained on) with **validation
attackers** (f1 and two independent attackers, seeds 0, 900001, 900002), by rules fixed below
before this script was first run. The test split is not touched: ``diverge_confirm.py`` then
trains the chosen settings again on fresh seeds and scores them on the test split once.

Stage 1 trains, with 5 seed pairs each (the ``quick`` recipe, seed 0):
- dCor cells: design ∈ {reference, paper_code} × penalty ∈ {v, u} × α ∈ {0.05, 0.3, 1, 3}
  for reference, α ∈ {0.3, 1, 3} for paper_code (a chain costs three networks per pair, and
  this machine two cores; the reference cells keep the paper's 0.05);
- GAL cells (the standard baseline for reducing transfer): reference design, penalty
  ``grad_align``, α ∈ {0.3, 1, 3}.
Stage 2 trains the spread-keeping term ``keep_dim`` ∈ {0.3, 1, 3} at the chosen reference
setting. Every network is scored on every validation attacker's FGM and PGD images (pixel
protocol, PGD 40 steps of 0.01, no random start) at ε ∈ {0.03, 0.05, 0.1, 0.2, 0.3}.

The rules (``choose``), in order:
1. **ε grid**: for each target of f1-family white-box PGD accuracy 75 %, 40 % and 10 %
   (mild, medium, strong; mean over the validation attackers), the candidate ε closest to it.
2. **Setting, per design**: among the dCor cells of that design whose mean clean-accuracy
   cost (diverged − baseline, over pairs) is at most 1 point, the one with the largest mean
   diverged − baseline accuracy over both attacks, the rule-1 ε and all validation attackers
   (each attacker weighted equally). If none costs at most 1 point, the cheapest.
3. **GAL's α**: the GAL cell whose mean clean cost is closest to that of the chosen
   reference-design setting (ties: the smaller α): GAL at a matched clean-accuracy cost.
4. **keep_dim**: the smallest value whose diverged networks keep a mean effective dimension
   of at least 80 % of their baselines' (validation features); if none does, the largest.
The quick profile takes rule 2's reference-design setting and rule 1's grid.

Writes ``bench/results/diverge_study.{md,csv,png}`` (``--out``), the differences with their
intervals, p-values, Holm and Benjamini–Hochberg over the study's whole family, and
``bench/results/diverge_selection.json``. Runs live in ``runs/_diverge_study/`` unless
``PDC_RUNS_DIR`` says otherwise; an interrupted study resumes.

    python bench/diverge_study.py [--seeds 5] [--out diverge_study]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from study_common import ATTACKS, Cell, differences, interval, score, train_cells  # noqa: E402

from pdc_utils import config, evidence, training  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CANDIDATE_EPS = [0.03, 0.05, 0.1, 0.2, 0.3]
WHITE_BOX_TARGETS = (75.0, 40.0, 10.0)
MAX_CLEAN_COST = 1.0
MIN_DIM_SHARE = 0.8
ALPHAS = [0.05, 0.3, 1.0, 3.0]
PAPER_CODE_ALPHAS = [0.3, 1.0, 3.0]
GAL_ALPHAS = [0.3, 1.0, 3.0]
KEEP_DIMS = [0.3, 1.0, 3.0]
N_ATTACKERS = 3


def choose_eps(white_box: pd.DataFrame) -> list[float]:
    """Rule 1: the candidate ε closest to each white-box PGD accuracy target."""
    pgd = white_box[white_box["attack"] == "pgd"].groupby("eps")["accuracy"].mean()
    chosen = []
    for target in WHITE_BOX_TARGETS:
        left = pgd.drop(chosen)
        chosen.append(float((left - target).abs().idxmin()))
    return sorted(chosen)


def attack_score(diffs: pd.DataFrame, cell: str, eps: list[float], n_attackers: int) -> float:
    """Mean diverged − baseline over both attacks, ``eps`` and all attackers (equal weight)."""
    rows = diffs[(diffs["cell"] == cell) & diffs["eps"].isin(eps)
                 & diffs["attack"].isin(ATTACKS)]
    weight = rows["attackers"].map({evidence.REFERENCE_ATTACKER: 1,
                                    evidence.OTHER_ATTACKERS: n_attackers - 1})
    return float((rows["difference"] * weight).sum() / weight.sum())


def clean_cost(diffs: pd.DataFrame, cell: str) -> float:
    return float(diffs[(diffs["cell"] == cell) & (diffs["attack"] == "clean")]
                 ["difference"].iloc[0])


def choose_setting(diffs: pd.DataFrame, cells: list[Cell], eps: list[float],
                   n_attackers: int) -> Cell:
    """Rule 2 over ``cells`` (one design's dCor cells)."""
    cheap = [c for c in cells if clean_cost(diffs, c.name) >= -MAX_CLEAN_COST]
    if not cheap:
        return max(cells, key=lambda c: clean_cost(diffs, c.name))
    return max(cheap, key=lambda c: attack_score(diffs, c.name, eps, n_attackers))


def choose_gal(diffs: pd.DataFrame, gal_cells: list[Cell], chosen: Cell) -> Cell:
    """Rule 3: GAL at the clean cost closest to the chosen setting's."""
    target = clean_cost(diffs, chosen.name)
    return min(gal_cells, key=lambda c: (abs(clean_cost(diffs, c.name) - target), c.alpha))


def choose_keep_dim(frame: pd.DataFrame, keep_cells: list[Cell]) -> Cell:
    """Rule 4: the smallest keep_dim whose diverged features keep ≥ 80 % of the baselines'
    effective dimension; else the largest."""
    for cell in sorted(keep_cells, key=lambda c: c.keep_dim):
        g = frame[frame["cell"] == cell.name]
        share = (g[g["role"] == "diverge"]["effective_dim"].mean()
                 / g[g["role"] == "baseline"]["effective_dim"].mean())
        if share >= MIN_DIM_SHARE:
            return cell
    return max(keep_cells, key=lambda c: c.keep_dim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="diverge_study",
                        help="stem of the files written to bench/results/ (.md, .csv, .png)")
    args = parser.parse_args()
    os.environ.setdefault("PDC_RUNS_DIR", str(config.project_root() / "runs" / "_diverge_study"))
    base = config.profile("quick")
    training.configure(base["seed"])
    start = time.perf_counter()

    dcor = [Cell(d, p, a) for d in config.DESIGNS for p in ("v", "u")
            for a in (ALPHAS if d == "reference" else PAPER_CODE_ALPHAS)]
    gal = [Cell("reference", "grad_align", a) for a in GAL_ALPHAS]
    runs = train_cells(base, dcor + gal, args.seeds, N_ATTACKERS, "select_")
    frame, white_box = score(runs, "validation", CANDIDATE_EPS, base)
    attackers = list(next(iter(runs.values())).attacker_names)
    diffs = differences(frame, CANDIDATE_EPS, attackers)
    eps = choose_eps(white_box)
    chosen = {d: choose_setting(diffs, [c for c in dcor if c.design == d], eps, N_ATTACKERS)
              for d in config.DESIGNS}
    gal_chosen = choose_gal(diffs, gal, chosen["reference"])
    ref = chosen["reference"]
    keep = [Cell(ref.design, ref.penalty, ref.alpha, keep_dim=k) for k in KEEP_DIMS]
    keep_runs = train_cells(base, keep, args.seeds, N_ATTACKERS, "select_")
    keep_frame, _ = score(keep_runs, "validation", CANDIDATE_EPS, base)
    frame = pd.concat([frame, keep_frame], ignore_index=True)
    keep_chosen = choose_keep_dim(frame, keep)
    diffs = differences(frame, CANDIDATE_EPS, attackers)  # Holm/BH over the whole family

    selection = {
        "eps_grid": eps,
        "reference": ref.params(), "paper_code": chosen["paper_code"].params(),
        "grad_align_alpha": gal_chosen.alpha, "keep_dim": keep_chosen.keep_dim,
        "rules": {"white_box_targets": WHITE_BOX_TARGETS, "max_clean_cost": MAX_CLEAN_COST,
                  "min_dim_share": MIN_DIM_SHARE},
        "split": "validation", "seeds": args.seeds, "attackers": attackers,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diverge_selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    frame.to_csv(RESULTS / f"{args.out}.csv", index=False)
    diffs.to_csv(RESULTS / f"{args.out}_differences.csv", index=False)
    white_box.to_csv(RESULTS / f"{args.out}_white_box.csv", index=False)
    write_report(frame, diffs, white_box, selection, args, time.perf_counter() - start, base)


def write_report(frame, diffs, white_box, selection, args, seconds, base) -> None:
    wb = white_box.groupby(["attack", "eps"])["accuracy"].mean()
    eps = selection["eps_grid"]
    lines = [
        f"# Diverge study on digits, validation split (`{args.out}`)",
        "",
        f"{date.today()}; `quick` recipe (digits, CIFAR ResNet-18 at width {base['width']}, "
        f"{base['epochs']} epochs, batch {base['batch_size']}); {args.seeds} seed pairs per "
        f"cell (a pair shares its seed; chains of paper_code have a seed per net); "
        f"validation attackers {', '.join(selection['attackers'])}; "
        f"every network scored on the **validation** split (288 images never trained on); "
        f"the test split is not used. {seconds / 60:.0f} min on a 2-core CPU. Raw numbers: "
        f"`{args.out}.csv` (per network), `{args.out}_differences.csv` (per test).",
        "",
        "White-box accuracy of the attackers on their own adversarial images (%, mean over "
        "attackers): " + ", ".join(f"{a} {e:g}: {wb[(a, e)]:.1f}" for a, e in wb.index) + ".",
        "",
        "## What the rules chose (fixed before the run; see the script's docstring)",
        "",
        f"- ε grid (rule 1: white-box PGD near 75 / 40 / 10 %): {eps}",
        f"- reference design (rule 2): penalty `{selection['reference']['penalty']}`, "
        f"α = {selection['reference']['alpha']:g}",
        f"- paper_code design (rule 2): penalty `{selection['paper_code']['penalty']}`, "
        f"α = {selection['paper_code']['alpha']:g}",
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

        def pair(col, fmt=".3f", b=b, d=d):
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
                                                   for e in CANDIDATE_EPS) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(CANDIDATE_EPS)),
    ]
    for cell, g in diffs.groupby("cell", sort=False):
        clean = _clean_row(g)
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            cells = [interval(r) for r in rows.itertuples()]
            lines.append(f"| {cell} | {family} | {clean} | " + " | ".join(cells) + " |")
    holm_up = int(((attacked["p_holm"] < 0.05) & (attacked["difference"] > 0)).sum())
    holm_down = int(((attacked["p_holm"] < 0.05) & (attacked["difference"] < 0)).sum())
    bh_up = int(((attacked["q_bh"] < 0.05) & (attacked["difference"] > 0)).sum())
    bh_down = int(((attacked["q_bh"] < 0.05) & (attacked["difference"] < 0)).sum())
    raw_up = int(((attacked["p_value"] < 0.05) & (attacked["difference"] > 0)).sum())
    raw_down = int(((attacked["p_value"] < 0.05) & (attacked["difference"] < 0)).sum())
    lines += [
        "",
        f"Of the {m} tests: p < 0.05 before correction in {raw_up} in favour of diverging and "
        f"{raw_down} against; Holm (family-wise 5 %) keeps {holm_up} in favour and "
        f"{holm_down} against; Benjamini–Hochberg (q < 0.05) {bh_up} and {bh_down}. The "
        f"smallest p-value is {attacked['p_value'].min():.2g}. The cells share their "
        f"attackers and (within a design and penalty) their baselines, so the tests are "
        f"correlated; Holm holds under any dependence.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    plot(frame, diffs, max(eps), RESULTS / f"{args.out}.png")


def _clean_row(g: pd.DataFrame) -> str:
    row = g[g["attack"] == "clean"].iloc[0]
    mark = " °" if row["p_value"] < 0.05 else ""
    return f"{row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]{mark}"


def plot(frame: pd.DataFrame, diffs: pd.DataFrame, eps: float, path: Path) -> None:
    """Left: V and U dCor² to the reference against effective dimension (every diverged
    network; baselines in grey); right: diverged − baseline under PGD at ``eps`` per cell,
    independent attackers, mean and 95 % interval."""
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


if __name__ == "__main__":
    main()

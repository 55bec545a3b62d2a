"""Confirm on the test split, once: the settings the validation study chose, on fresh seeds.

``diverge_study.py`` chose, on validation data and by rules written before it ran
(``bench/results/diverge_selection.json``): the ε grid, the dCor setting of each design, GAL's
α at a matched clean-accuracy cost and the spread weight ``keep_dim``. This script trains,
with the ``quick`` recipe and **fresh seeds** (base seed 5000: attackers 5000 and
905001–905003, pairs 5001–5008; the study used 0, 900001–900002 and 1–5):

- ``reference``: the chosen reference-design setting (diverged from f1);
- ``control``: the same penalty and α against an **untrained** frozen network of the same
  architecture (``diverge_from="untrained"``): what the penalty does without any attacker to
  become independent of;
- ``keep_dim``: the chosen setting plus the spread term, so the features cannot collapse;
- ``gal``: GAL (squared cosine of input gradients to f1's), the standard way to reduce
  transfer, at the clean cost the study matched;
- ``paper_code``: the chosen setting of the paper code's design (chains of 3, attacked by an
  independent f1);

each with 8 seed pairs, and 4 attackers (f1 and 3 independent ones), and scores every network
on the **test** split once (FGM and PGD, pixel protocol, PGD 40 steps of 0.01). Per setting:
diverged − baseline over pairs per attack, ε and attacker family (``f1``; ``others``: mean over
the independent attackers), 95 % t-interval, paired t-test, Holm over the setting's own family
(2 attacks × 3 ε × 2 families = 12 tests) and over the whole table. Contrasts between the
settings (same pair seeds, so paired): reference − control, reference − keep_dim,
reference − gal, on the diverged networks' accuracies.

Writes ``bench/results/diverge_confirm.{md,csv,png}`` (and ``_differences.csv``,
``_contrasts.csv``). Runs live in ``runs/_diverge_confirm/`` unless ``PDC_RUNS_DIR`` says
otherwise; an interrupted run resumes.

    python bench/diverge_confirm.py [--seeds 8] [--attackers 4]
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

from pdc_utils import config, data, evidence, training  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CONFIRM_SEED = 5000


def settings(selection: dict) -> dict[str, Cell]:
    """The confirmatory settings, named, from the validation study's selection."""
    ref = Cell(**selection["reference"])
    return {
        "reference": ref,
        "control": Cell(ref.design, ref.penalty, ref.alpha, diverge_from="untrained"),
        "keep_dim": Cell(ref.design, ref.penalty, ref.alpha, keep_dim=selection["keep_dim"]),
        "gal": Cell("reference", "grad_align", selection["grad_align_alpha"]),
        "paper_code": Cell(**selection["paper_code"]),
    }


def contrasts(frame: pd.DataFrame, named: dict[str, Cell], eps: list[float],
              attackers: list[str]) -> pd.DataFrame:
    """Paired contrasts of diverged networks between settings that share pair seeds (all
    reference-design settings): ``reference − X`` per attack, ε and attacker family."""
    div = frame[frame["role"] == "diverge"]
    families = {evidence.REFERENCE_ATTACKER: attackers[:1],
                evidence.OTHER_ATTACKERS: attackers[1:]}
    rows = []
    ref = div[div["cell"] == named["reference"].name].set_index("seed")
    for label in ("control", "keep_dim", "gal"):
        other = div[div["cell"] == named[label].name].set_index("seed").loc[ref.index]
        d = (ref["clean"] - other["clean"]).to_numpy()
        rows.append({"contrast": f"reference − {label}", "attack": "clean", "eps": 0.0,
                     "attackers": "none", **evidence.t_summary(d), "n_seeds": d.size})
        for attack in ATTACKS:
            for e in eps:
                for family, members in families.items():
                    cols = [f"{a}/{attack}_{e:g}" for a in members]
                    d = (ref[cols].to_numpy() - other[cols].to_numpy()).mean(axis=1)
                    rows.append({"contrast": f"reference − {label}", "attack": attack,
                                 "eps": e, "attackers": family, **evidence.t_summary(d),
                                 "n_seeds": d.size})
    table = pd.DataFrame(rows)
    table["p_holm"] = np.nan
    for _, g in table[table["attack"] != "clean"].groupby("contrast"):
        table.loc[g.index, "p_holm"] = evidence.holm(g["p_value"].to_numpy())
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--attackers", type=int, default=4)
    args = parser.parse_args()
    selection_path = RESULTS / "diverge_selection.json"
    if not selection_path.exists():
        raise SystemExit(f"error: {selection_path} is missing: run bench/diverge_study.py "
                         "first (the confirmatory run takes its settings from it)")
    selection = json.loads(selection_path.read_text())
    os.environ.setdefault("PDC_RUNS_DIR",
                          str(config.project_root() / "runs" / "_diverge_confirm"))
    base = {**config.profile("quick"), "seed": CONFIRM_SEED}
    training.configure(CONFIRM_SEED)
    start = time.perf_counter()
    named = settings(selection)
    eps = [float(e) for e in selection["eps_grid"]]
    runs = train_cells(base, list(named.values()), args.seeds, args.attackers, "confirm_")
    frame, white_box = score(runs, "test", eps, base)
    attackers = list(next(iter(runs.values())).attacker_names)
    diffs = differences(frame, eps, attackers)
    diffs = diffs.rename(columns={"p_holm": "p_holm_all", "q_bh": "q_bh_all"})
    diffs["p_holm"] = np.nan
    for _, g in diffs[diffs["attack"] != "clean"].groupby("cell"):
        diffs.loc[g.index, "p_holm"] = evidence.holm(g["p_value"].to_numpy())
    label_of = {cell.name: label for label, cell in named.items()}
    diffs.insert(0, "setting", diffs["cell"].map(label_of))
    frame.insert(0, "setting", frame["cell"].map(label_of))
    contrast = contrasts(frame, named, eps, attackers)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "diverge_confirm.csv", index=False)
    diffs.to_csv(RESULTS / "diverge_confirm_differences.csv", index=False)
    contrast.to_csv(RESULTS / "diverge_confirm_contrasts.csv", index=False)
    write_report(frame, diffs, contrast, white_box, named, selection, args, attackers,
                 time.perf_counter() - start)


def write_report(frame, diffs, contrast, white_box, named, selection, args, attackers,
                 seconds) -> None:
    eps = [float(e) for e in selection["eps_grid"]]
    wb = white_box.groupby(["attack", "eps"])["accuracy"].mean()
    n_images = data.num_examples("digits", "test")
    lines = [
        "# Confirmatory run: diverge training on digits, test split, fresh seeds",
        "",
        f"{date.today()}; settings chosen on the validation split by "
        "`bench/diverge_study.py`'s written rules (`diverge_selection.json`), trained again "
        f"with fresh seeds (base {CONFIRM_SEED}), {args.seeds} seed pairs per setting, "
        f"{len(attackers)} attackers ({', '.join(attackers)}: f1 and "
        f"{len(attackers) - 1} independent), scored once on the {n_images} test images. "
        f"`quick` recipe; {seconds / 60:.0f} min on a 2-core CPU.",
        "",
        "White-box accuracy of the attackers on their own images (%, mean): "
        + ", ".join(f"{a} {e:g}: {wb[(a, e)]:.1f}" for a, e in wb.index) + ".",
        "",
        "| setting | design | penalty | α | keep_dim | diverged from |",
        "|---|---|---|---:|---:|---|",
    ]
    for label, cell in named.items():
        source = (cell.diverge_from if cell.design == "reference"
                  else "the earlier nets of its chain")
        lines.append(f"| {label} | {cell.design} | {cell.penalty} | {cell.alpha:g} | "
                     f"{cell.keep_dim:g} | {source} |")
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

        def pair(col, fmt=".3f", b=b, d=d):
            return f"{b[col].mean():{fmt}} → {d[col].mean():{fmt}}"

        lines.append(f"| {label} | {pair('v_to_reference')} | {pair('u_to_reference')} | "
                     f"{pair('effective_dim', '.1f')} | {d['top_pc_fraction'].mean():.2f} | "
                     f"{pair('clean', '.2f')} | {pair('cosine_to_f1')} |")
    lines += [
        "",
        "## Diverged − baseline accuracy on adversarial test images (points)",
        "",
        "Mean over pairs, 95 % t-interval; `*`: Holm-adjusted p < 0.05 within the setting's "
        "family of 12 tests (2 attacks × 3 ε × 2 attacker families); `°`: p < 0.05 before "
        "correction only. `f1`: attacker 0 (under reference and keep_dim the network diverged "
        "from; for the control and paper_code an independent network); `others`: mean over "
        "the independent attackers within each pair.",
        "",
        "| setting | attackers | clean | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                      for e in eps) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(eps)),
    ]
    for label, g in diffs.groupby("setting", sort=False):
        clean = g[g["attack"] == "clean"].iloc[0]
        clean_text = (f"{clean['difference']:+.2f} [{clean['low']:+.2f}, {clean['high']:+.2f}]"
                      + (" °" if clean["p_value"] < 0.05 else ""))
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | {clean_text} | "
                         + " | ".join(interval(r) for r in rows.itertuples()) + " |")
    lines += ["", "## Verdict per setting (Holm within the setting, 12 tests)", ""]
    for label, g in diffs.groupby("setting", sort=False):
        a = g[g["attack"] != "clean"]
        up = a[(a["p_holm"] < 0.05) & (a["difference"] > 0)]
        down = a[(a["p_holm"] < 0.05) & (a["difference"] < 0)]
        raw = int((a["p_value"] < 0.05).sum())
        words = []
        if len(up):
            words.append("in favour of diverging: " + ", ".join(
                f"{r.attack} {r.eps:g} ({r.attackers}, {r.difference:+.1f})"
                for r in up.itertuples()))
        if len(down):
            words.append("against: " + ", ".join(
                f"{r.attack} {r.eps:g} ({r.attackers}, {r.difference:+.1f})"
                for r in down.itertuples()))
        lines.append(f"- **{label}**: " + ("; ".join(words) if words else
                     f"no test significant after Holm ({raw} of {len(a)} at p < 0.05 "
                     "before correction)") + ".")
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
        "that the collapse of the features helps; `reference − gal` > 0 that the dCor penalty "
        "beats the standard baseline at the same clean cost. `*`: Holm within the contrast "
        "(12 tests).",
        "",
        "| contrast | attackers | clean | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                       for e in eps) + " |",
        "|---|---|---:|" + "---:|" * (len(ATTACKS) * len(eps)),
    ]
    for label, g in contrast.groupby("contrast", sort=False):
        clean = g[g["attack"] == "clean"].iloc[0]
        clean_text = f"{clean['difference']:+.2f} [{clean['low']:+.2f}, {clean['high']:+.2f}]"
        for family, rows in g[g["attack"] != "clean"].groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | {clean_text} | "
                         + " | ".join(interval(r) for r in rows.itertuples()) + " |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "diverge_confirm.md").write_text(text)
    print(text)
    plot(diffs, eps, RESULTS / "diverge_confirm.png")


def plot(diffs: pd.DataFrame, eps: list[float], path: Path) -> None:
    """Diverged − baseline against ε, per attack (rows) and attacker family (columns), one
    line per setting with its 95 % interval."""
    families = [evidence.REFERENCE_ATTACKER, evidence.OTHER_ATTACKERS]
    fig, axes = plt.subplots(len(ATTACKS), 2, figsize=(11, 7), sharey=True, squeeze=False)
    settings_ = list(dict.fromkeys(diffs["setting"]))
    for r, attack in enumerate(ATTACKS):
        for c, family in enumerate(families):
            ax = axes[r][c]
            for i, label in enumerate(settings_):
                rows = diffs[(diffs["setting"] == label) & (diffs["attack"] == attack)
                             & (diffs["attackers"] == family)].sort_values("eps")
                x = np.arange(len(rows)) + (i - len(settings_) / 2) * 0.07
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


if __name__ == "__main__":
    main()

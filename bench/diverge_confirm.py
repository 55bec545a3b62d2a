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
- ``grad_align``: the gradient-alignment penalty (squared cosine of input gradients to a
  frozen f1's; a variant of GAL, whose published form trains an ensemble jointly on signed
  cosines), the usual way to reduce transfer, at the clean cost the study matched (the first
  run's tables call it ``gal``);
- ``paper_code``: the chosen setting of the paper code's design (chains of 3, attacked by an
  independent f1);

each with 8 seed pairs, and 4 attackers (f1 and 3 independent ones), and scores every network
on the **test** split once (FGM and PGD, pixel protocol, PGD 40 steps of 0.01). Per setting:
diverged − baseline over pairs per attack, ε and attacker family (``f1``; ``others``: mean over
the independent attackers), 95 % t-interval, paired t-test, Holm over the setting's own family
(2 attacks × 3 ε × 2 families = 12 tests) and over the whole table. Contrasts between the
settings (same pair seeds, so paired): reference − control, reference − keep_dim,
reference − grad_align, on the diverged networks' accuracies. With ``--margin``, every
test also gets the two one-sided tests (TOST) against ±margin points, Holm-corrected within
the setting (``bench/results/diverge_power.md`` fixed the powered run's margin and pairs).

Writes ``bench/results/<out>.{md,csv,png}`` (and ``_attackers.csv`` with every attacker's
seed, ``_differences.csv``, ``_contrasts.csv``; ``--out`` defaults to ``diverge_confirm``) and
refuses to replace existing tables unless ``--write``. Runs live in ``runs/_diverge_confirm/``
unless ``PDC_RUNS_DIR`` says otherwise; an interrupted run resumes.

    python bench/diverge_confirm.py [--seeds 8] [--attackers 4] [--base-seed 5000]
        [--settings reference,control,...] [--margin 5] [--out NAME] [--write] [--report-only]

The powered confirmation: ``--seeds 34 --base-seed 7000 --settings
reference,control,grad_align --margin 5 --out diverge_confirm_powered``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

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
SETTINGS = ("reference", "control", "keep_dim", "grad_align", "paper_code")


def settings(selection: dict) -> dict[str, Cell]:
    """The confirmatory settings, named, from the validation study's selection.

    ``grad_align`` is the gradient-alignment penalty: the squared cosine between the diverged
    network's and a *frozen* f1's cross-entropy input gradients. It is a variant of GAL
    (Kariyappa & Qureshi 2019), whose published form penalises the log-sum-exp of signed
    cosines within an ensemble trained jointly; the first run's tables call it ``gal``.
    """
    ref = Cell(**selection["reference"])
    return {
        "reference": ref,
        "control": Cell(ref.design, ref.penalty, ref.alpha, diverge_from="untrained"),
        "keep_dim": Cell(ref.design, ref.penalty, ref.alpha, keep_dim=selection["keep_dim"]),
        "grad_align": Cell("reference", "grad_align", selection["grad_align_alpha"]),
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
    for label in (x for x in ("control", "keep_dim", "grad_align") if x in named):
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seed pairs per setting")
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--base-seed", type=int, default=CONFIRM_SEED,
                        help="f1's seed; pairs, attackers and the control derive from it")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--margin", type=float, default=None,
                        help="TOST equivalence margin in points (bench/results/"
                             "diverge_power.md fixes it for the powered run)")
    parser.add_argument("--out", default="diverge_confirm",
                        help="name of the tables in bench/results/ and of the runs")
    parser.add_argument("--write", action="store_true",
                        help="replace existing tables of that name (committed ones included)")
    parser.add_argument("--report-only", action="store_true",
                        help="remake the report from the per-network table, training nothing")
    args = parser.parse_args()
    chosen = [x.strip() for x in args.settings.split(",") if x.strip()]
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown or not chosen or "reference" not in chosen:
        parser.error(f"--settings {args.settings!r}: give settings of {', '.join(SETTINGS)}, "
                     "reference among them (the contrasts are made against it)")
    if args.seeds < 3 or args.attackers < 2:
        parser.error("--seeds must be at least 3 (a t-test needs 3 pairs) and --attackers at "
                     "least 2 (f1 and an independent one)")
    args.settings = chosen
    return args


def main() -> None:
    args = parse_args()
    selection_path = RESULTS / "diverge_selection.json"
    if not selection_path.exists():
        raise SystemExit(f"error: {selection_path} is missing: run bench/diverge_study.py "
                         "first (the confirmatory run takes its settings from it)")
    selection = json.loads(selection_path.read_text())
    named = {k: v for k, v in settings(selection).items() if k in args.settings}
    eps = [float(e) for e in selection["eps_grid"]]
    table = RESULTS / f"{args.out}.csv"
    if args.report_only:
        frame = pd.read_csv(table)
        white_box = pd.read_csv(RESULTS / f"{args.out}_attackers.csv")
        seconds = float("nan")
    else:
        if table.exists() and not args.write:
            raise SystemExit(f"error: {table} exists (perhaps committed): --write replaces "
                             "it, --report-only remakes its report without training")
        os.environ.setdefault("PDC_RUNS_DIR",
                              str(config.project_root() / "runs" / "_diverge_confirm"))
        base = {**config.profile("quick"), "seed": args.base_seed}
        training.configure(args.base_seed)
        start = time.perf_counter()
        runs = train_cells(base, list(named.values()), args.seeds, args.attackers,
                           f"{args.out}_")
        frame, white_box = score(runs, "test", eps, base)
        label_of = {cell.name: label for label, cell in named.items()}
        frame.insert(0, "setting", frame["cell"].map(label_of))
        RESULTS.mkdir(exist_ok=True)
        frame.to_csv(table, index=False)  # the scores first: a report can be remade from them
        white_box.to_csv(RESULTS / f"{args.out}_attackers.csv", index=False)
        seconds = time.perf_counter() - start
    attackers = list(dict.fromkeys(white_box["attacker"]))
    diffs = differences(frame, eps, attackers, margin=args.margin)
    diffs = diffs.rename(columns={"p_holm": "p_holm_all", "q_bh": "q_bh_all"})
    label_of = dict(zip(frame["cell"], frame["setting"], strict=False))
    diffs.insert(0, "setting", diffs["cell"].map(label_of))
    attacked = diffs["attack"] != "clean"
    holm_columns = {"p_value": "p_holm"}
    if args.margin:
        holm_columns.update({"p_gain": "p_gain_holm", "p_loss": "p_loss_holm",
                             "p_tost": "p_tost_holm"})
    for raw, adjusted in holm_columns.items():
        diffs[adjusted] = np.nan
        for _, g in diffs[attacked].groupby("setting"):
            diffs.loc[g.index, adjusted] = evidence.holm(g[raw].to_numpy())
    contrast = contrasts(frame, named, eps, attackers)
    diffs.to_csv(RESULTS / f"{args.out}_differences.csv", index=False)
    contrast.to_csv(RESULTS / f"{args.out}_contrasts.csv", index=False)
    write_report(frame, diffs, contrast, white_box, named, selection, args, attackers, seconds)


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
        f"with fresh seeds (base {args.base_seed}: f1 {args.base_seed}, pairs "
        f"{args.base_seed + 1}–{args.base_seed + args.seeds}), {args.seeds} seed pairs per "
        "setting, "
        f"{len(attackers)} attackers ({', '.join(attackers)}: f1 and "
        f"{len(attackers) - 1} independent), scored once on the {n_images} test images. "
        "`quick` recipe" + (f"; {seconds / 60:.0f} min on a 2-core CPU." if seconds == seconds
                            else "."),
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
    if args.margin:
        lines += tost_lines(diffs, args.margin)
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
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    plot(diffs, eps, RESULTS / f"{args.out}.png")


def tost_lines(diffs: pd.DataFrame, margin: float) -> list[str]:
    """The equivalence section: per setting and test, what the two one-sided tests against
    ±margin rule out, after Holm within the setting (the same family as the t-tests)."""
    lines = ["", f"## Equivalence: what the data rule out (TOST, margin ±{margin:g} points)", "",
             f"Per test, with Holm within the setting (12 tests): *gain > {margin:g} ruled out* "
             f"where the one-sided test of a gain of at least {margin:g} points rejects; "
             f"*equivalent* where both one-sided tests reject (the difference lies within "
             f"±{margin:g}); *cannot rule out a gain of {margin:g}* otherwise. The interval "
             "shown is the 95 % t-interval.", "",
             "| setting | attackers | " + " | ".join(f"{a} {e:g}" for a in ATTACKS
                                                 for e in sorted(set(diffs['eps']) - {0.0}))
             + " |", "|---|---|" + "---|" * (len(ATTACKS) * (diffs["eps"].nunique() - 1))]
    for label, g in diffs[diffs["attack"] != "clean"].groupby("setting", sort=False):
        for family, rows in g.groupby("attackers", sort=False):
            lines.append(f"| {label} | {family} | " + " | ".join(
                f"{tost_words(r, margin)}" for r in rows.itertuples()) + " |")
    return lines


def tost_words(row: Any, margin: float) -> str:
    """A test's TOST reading in a few words (Holm-adjusted, level 0.05)."""
    if row.p_tost_holm < 0.05:
        return f"equivalent (±{margin:g})"
    if row.p_gain_holm < 0.05:
        return f"gain > {margin:g} ruled out"
    return f"cannot rule out a gain of {margin:g}"


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

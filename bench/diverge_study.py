"""Does diverge training make f1's adversarial examples transfer less? The study on digits.

Cells: design ∈ {reference, paper_code} × penalty ∈ {v, u} × α ∈ {0.05, 0.3, 1, 3}, each with
K seed pairs (quick profile recipe). One attacker f1 (seed 0) is shared by every cell and
attacks once per (attack, ε); every network of every cell is scored on the same adversarial
images. Per cell: exact test-set V and U dCor² to the attacker and (paper_code) to the chain
references, the effective dimension of the features, clean accuracy, diverged − baseline per
attack and ε with a 95 % t-interval over seeds, and the input-gradient cosine to the attacker.

Training is resumable and reused (the runs live in ``runs/_diverge_study/`` unless
``PDC_RUNS_DIR`` says otherwise), so an interrupted study continues where it stopped.

    python bench/diverge_study.py [--seeds 5] [--alphas 0.05 0.3 1 3] [--designs ...]
        [--paper-code-alphas 0.05 1] [--penalties v u] [--out diverge_study]

The U penalty's clamp at 0 was chosen with
``python bench/diverge_study.py --designs reference --penalties u u_raw --alphas 1 --out
u_clamp``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pdc_utils import attacks, config, experiment, features, training  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EPS_GRID = [0.03, 0.05, 0.1, 0.2, 0.3]


def _copy_finished(source: str, target: str, names: list[str]) -> None:
    """Put finished networks of run ``source`` into run ``target`` (reused, not retrained)."""
    for name in names:
        for sub, file in (("models", f"{name}.keras"), ("models", f"{name}.json"),
                          ("results", f"history_{name}.csv")):
            src = config.run_dir(source) / sub / file
            dst = config.run_dir(target) / sub / file
            if src.exists() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


def train_cell(params: dict, shared: str | None) -> experiment.Experiment:
    exp = experiment.Experiment(params, progress=False)
    if shared:  # f1, and under the reference design the baselines, do not depend on α
        names = [experiment.ATTACKER]
        if params["design"] == "reference":
            names += [b for b, _ in exp.pairs]
        _copy_finished(shared, params["run_name"], names)
    f1 = exp.attacker()
    exp.baselines(f1)
    exp.diverged(f1)
    return exp


def cell_rows(cell: dict, exp: experiment.Experiment, test) -> list[dict]:
    nets = {**exp.all_networks(), **exp.load(exp.chain_members, "03_diverge_training")}
    outputs = {n: features.predict(net, test) for n, net in nets.items()}
    accuracy = {n: 100 * float(np.mean(o["predictions"] == o["labels"]))
                for n, o in outputs.items()}
    refs = {n: [r for r in exp.references_of(n) if r != "f1"] for n in nets}
    table = features.feature_dcor_table({n: o["features"] for n, o in outputs.items()},
                                        reference="f1", references=refs)
    rows = []
    for s, (base, div) in enumerate(exp.pairs):
        for role, name in (("baseline", base), ("diverge", div)):
            own = table[table["model"] == name]
            to_f1 = own[own["reference"] == "f1"].iloc[0]
            to_refs = own[own["reference"] != "f1"]
            rows.append({**cell, "seed": s, "role": role, "name": name,
                         "v_to_f1": to_f1["dcor_sqr"], "u_to_f1": to_f1["u_dcor_sqr"],
                         "v_to_refs": to_refs["dcor_sqr"].mean() if len(to_refs) else np.nan,
                         "u_to_refs": to_refs["u_dcor_sqr"].mean() if len(to_refs) else np.nan,
                         "effective_dim": to_f1["effective_dim"],
                         "top_pc_fraction": to_f1["top_pc_fraction"],
                         "clean": accuracy[name]})
    return rows


def _interval(values: np.ndarray) -> str:
    from scipy import stats

    n = values.size
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    mark = " *" if values.mean() - half > 0 or values.mean() + half < 0 else ""
    return f"{values.mean():+.2f} [{values.mean() - half:+.2f}, {values.mean() + half:+.2f}]{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.3, 1.0, 3.0])
    parser.add_argument("--designs", nargs="+", default=list(config.DESIGNS))
    parser.add_argument("--paper-code-alphas", type=float, nargs="+", default=None,
                        help="α grid of the paper_code cells (default: --alphas); each costs "
                             "n_nets networks per seed")
    parser.add_argument("--penalties", nargs="+", default=["v", "u"])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", default="diverge_study",
                        help="stem of the files written to bench/results/ (.md, .csv, .png)")
    args = parser.parse_args()
    os.environ.setdefault("PDC_RUNS_DIR", str(config.project_root() / "runs" / "_diverge_study"))
    base = config.profile(args.profile)
    training.configure(base["seed"])
    start = time.perf_counter()

    cells, runs = [], {}
    for design in args.designs:
        for penalty in args.penalties:
            shared = None
            alphas = args.alphas
            if design == "paper_code" and args.paper_code_alphas:
                alphas = args.paper_code_alphas
            for alpha in alphas:
                cell = {"design": design, "penalty": penalty, "alpha": alpha}
                run = f"{design}_{penalty}_a{alpha:g}"
                params = {**base, **cell, "n_seeds": args.seeds, "run_name": run}
                t0 = time.perf_counter()
                runs[run] = train_cell(params, shared or (next(iter(runs)) if runs else None))
                shared = shared or run
                print(f"{run}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
                cells.append((cell, run))

    first = next(iter(runs.values()))
    test = first.test_data
    f1 = first.load(["f1"], "02_baseline_training")["f1"]
    rows, targets = [], {"f1": f1}
    for cell, run in cells:
        exp = runs[run]
        rows += cell_rows(cell, exp, test)
        for name, net in exp.all_networks().items():
            if name != "f1":
                targets[f"{run}/{name}"] = net
    per_example = attacks.transfer_evaluation(
        f1, targets, test, attacks=["fgm", "pgd"], eps_grid=EPS_GRID, protocol="pixel",
        eps_iter=base["pgd_step"], steps=base["pgd_steps"], progress=False)
    accuracy = attacks.accuracy_table(per_example).set_index(["attack", "eps", "model"])
    cosine = attacks.gradient_alignment(f1, targets, test).set_index("model")["cosine_mean"]
    frame = pd.DataFrame(rows)
    frame["key"] = [f"{d}_{p}_a{a:g}/{n}" for d, p, a, n in
                    zip(frame["design"], frame["penalty"], frame["alpha"], frame["name"],
                        strict=True)]
    frame["cosine"] = frame["key"].map(cosine)
    settings = [(a, e) for a in ("fgm", "pgd") for e in EPS_GRID]
    for attack, eps in settings:
        frame[f"{attack}_{eps:g}"] = [accuracy.loc[(attack, eps, k), "accuracy"]
                                      for k in frame["key"]]
    white_box = {f"{a}_{e:g}": accuracy.loc[(a, e, "f1"), "accuracy"] for a, e in settings}
    RESULTS.mkdir(exist_ok=True)
    frame.drop(columns="key").to_csv(RESULTS / f"{args.out}.csv", index=False)
    write_report(frame, settings, white_box, args, time.perf_counter() - start,
                 int(per_example["example"].nunique()), base)


def write_report(frame, settings, white_box, args, seconds, n_images, base) -> None:
    lines = [
        f"# Diverge study on digits (`{args.out}`)",
        "",
        f"{date.today()}; `{args.profile}` recipe (digits, CIFAR ResNet-{base['network'][6:]} "
        f"at width {base['width']}, {base['epochs']} epochs, batch {base['batch_size']}); "
        f"{args.seeds} seed pairs per cell (baseline and diverged share initial weights and "
        f"batch order); one attacker f1 (seed {base['seed']}) whose FGM/PGD images (pixel "
        f"protocol, PGD {base['pgd_steps']} steps of {base['pgd_step']}, no random start) "
        f"score every network, on {n_images} test images. {seconds / 60:.0f} min on a 2-core "
        f"CPU. Raw numbers: `{args.out}.csv`.",
        "",
        "White-box accuracy of f1 on its own adversarial images (%): "
        + ", ".join(f"{k} {v:.1f}" for k, v in white_box.items()) + ".",
        "",
        "## Features: dependence and geometry (mean over seeds)",
        "",
        "V and U: exact test-set V- and U-statistic dCor² of row-normalised penultimate "
        "features; `refs`: to the earlier nets of the chain (paper_code); eff. dim: "
        "participation ratio of the feature covariance.",
        "",
        "| design | penalty | α | V to f1: base → div | U to f1: base → div | V to refs | "
        "U to refs | eff. dim: base → div | clean: base → div | grad. cosine: base → div |",
        "|---|---|---:|---|---|---:|---:|---|---|---|",
    ]
    groups = frame.groupby(["design", "penalty", "alpha"], sort=False)
    for (design, penalty, alpha), g in groups:
        b, d = g[g["role"] == "baseline"], g[g["role"] == "diverge"]

        def pair(col, fmt=".3f", b=b, d=d):
            return f"{b[col].mean():{fmt}} → {d[col].mean():{fmt}}"

        refs = (f"{d['v_to_refs'].mean():.3f}", f"{d['u_to_refs'].mean():.3f}") \
            if design == "paper_code" else ("–", "–")
        lines.append(f"| {design} | {penalty} | {alpha:g} | {pair('v_to_f1')} | "
                     f"{pair('u_to_f1')} | {refs[0]} | {refs[1]} | "
                     f"{pair('effective_dim', '.1f')} | {pair('clean', '.2f')} | "
                     f"{pair('cosine')} |")
    lines += [
        "",
        "## Diverged − baseline accuracy on f1's adversarial images (points)",
        "",
        "Mean over seed pairs with its 95 % t-interval; `*` marks an interval that excludes 0.",
        "",
        "| design | penalty | α | clean | " + " | ".join(f"{a} {e:g}" for a, e in settings)
        + " |",
        "|---|---|---:|" + "---:|" * (1 + len(settings)),
    ]
    gains = []
    for (design, penalty, alpha), g in groups:
        b = g[g["role"] == "baseline"].set_index("seed")
        d = g[g["role"] == "diverge"].set_index("seed")
        cells = []
        for col in ["clean"] + [f"{a}_{e:g}" for a, e in settings]:
            diff = (d[col] - b[col]).to_numpy()
            cells.append(_interval(diff))
            if col != "clean":
                gains.append((design, penalty, alpha, col, cells[-1]))
        lines.append(f"| {design} | {penalty} | {alpha:g} | " + " | ".join(cells) + " |")
    significant = [g for g in gains if g[4].endswith("*")]
    up = [g for g in significant if not g[4].startswith("-")]
    down = [g for g in significant if g[4].startswith("-")]
    lines += [
        "",
        f"Of {len(gains)} attacked (cell, setting) intervals, {len(up)} exclude 0 in favour of "
        f"diverge training and {len(down)} against it.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    plot(frame, settings, RESULTS / f"{args.out}.png")


def plot(frame: pd.DataFrame, settings, path: Path) -> None:
    """Left: V vs U dCor² to f1 against effective dimension; right: gain at the largest ε."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (design, penalty), g in frame.groupby(["design", "penalty"], sort=False):
        d = g[g["role"] == "diverge"]
        marker = "o" if design == "reference" else "s"
        axes[0].scatter(d["effective_dim"], d["v_to_f1"], marker=marker, alpha=0.7,
                        label=f"{design}, {penalty}: V")
        axes[0].scatter(d["effective_dim"], d["u_to_f1"], marker=marker, alpha=0.7,
                        facecolors="none", edgecolors="black", linewidths=0.6)
    base = frame[frame["role"] == "baseline"]
    axes[0].scatter(base["effective_dim"], base["v_to_f1"], c="grey", marker="x",
                    label="baselines: V")
    axes[0].set_xlabel("effective dimension of the features")
    axes[0].set_ylabel("dCor² to f1 (filled: V, open: U)")
    axes[0].legend(fontsize=7)
    col = f"pgd_{max(e for _, e in settings):g}"
    labels = []
    for i, ((design, penalty, alpha), g) in enumerate(
            frame.groupby(["design", "penalty", "alpha"], sort=False)):
        b = g[g["role"] == "baseline"].set_index("seed")[col]
        d = g[g["role"] == "diverge"].set_index("seed")[col]
        diff = (d - b).to_numpy()
        axes[1].scatter(np.full(diff.size, i), diff, s=10, color="grey")
        axes[1].plot(i, diff.mean(), "o", color="C3")
        labels.append(f"{design[:3]} {penalty} {alpha:g}")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes[1].set_ylabel(f"diverge − baseline, {col} (points)")
    axes[1].set_title("per seed pair (grey) and mean (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

"""How much of the quick run's diverge-vs-baseline gap survives another training seed?

Notebook 04's bootstrap interval covers the sampling of test images, not the randomness of
training. This script trains one f1 (quick profile, seed 0), K baseline networks and, for each
α, K diverged networks; each diverged network shares its seed (initial weights and batch
order) with one baseline. It attacks f1 once per (attack, ε) and scores every network on the
same adversarial images. It reports, per α and setting, the mean accuracy over seeds and the
paired difference diverge − baseline with a t-interval over the K seeds.

    python bench/seed_repeats.py [--seeds 5] [--alphas 0.3 1 3]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from quick_training import quick_setup  # noqa: E402  (bench/ is on sys.path)
from scipy import stats  # noqa: E402

from pdc_utils import attacks, features  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "seed_repeats.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per method")
    parser.add_argument("--alphas", type=float, nargs="+", default=None,
                        help="penalty weights to try (default: the quick profile's)")
    args = parser.parse_args()
    p, test, train = quick_setup("seed_repeats_")
    alphas = args.alphas or [p["alpha"]]

    start = time.perf_counter()
    f1 = train("f1", p["seed"])
    nets, dcor = {"f1": f1}, {}
    reference = features.predict(f1, test)["features"]
    for k in range(args.seeds):
        seed = 1000 + k
        for method, alpha in [("baseline", 0.0)] + [(f"diverge{a:g}", a) for a in alphas]:
            name = f"{method}_{k}"
            nets[name] = train(name, seed, references=[f1], alpha=alpha)
            own = features.predict(nets[name], test)["features"]
            table = features.feature_dcor_table({"f1": reference, name: own})
            dcor[name] = float(table.set_index("model").loc[name, "dcor_sqr"])
            print(f"{name}: dCor² to f1 {dcor[name]:.3f}", flush=True)
    per_example = attacks.transfer_evaluation(
        f1, nets, test, attacks=p["attacks"], eps_grid=p["eps_grid"], protocol=p["protocol"],
        eps_iter=p["pgd_step"], steps=p["pgd_steps"], progress=False)
    accuracy = attacks.accuracy_table(per_example)

    base_dcor = [dcor[f"baseline_{k}"] for k in range(args.seeds)]
    sections = []
    for alpha in alphas:
        rows = []
        for (attack, eps), group in accuracy.groupby(["attack", "eps"], sort=False):
            acc = group.set_index("model")["accuracy"]
            base = np.array([acc[f"baseline_{k}"] for k in range(args.seeds)])
            div = np.array([acc[f"diverge{alpha:g}_{k}"] for k in range(args.seeds)])
            diff = div - base
            half = stats.t.ppf(0.975, args.seeds - 1) * diff.std(ddof=1) / np.sqrt(args.seeds)
            label = "clean" if attack == "clean" else f"{attack} {eps:g}"
            rows.append(f"| {label} | {base.mean():.2f} ± {base.std(ddof=1):.2f} | "
                        f"{div.mean():.2f} ± {div.std(ddof=1):.2f} | {diff.mean():+.2f} "
                        f"[{diff.mean() - half:+.2f}, {diff.mean() + half:+.2f}] | "
                        f"{int((diff > 0).sum())}/{args.seeds} |")
        div_dcor = [dcor[f"diverge{alpha:g}_{k}"] for k in range(args.seeds)]
        sections += [
            f"## α = {alpha:g}",
            "",
            f"Exact test-set dCor² to f1: baseline {np.mean(base_dcor):.3f} ± "
            f"{np.std(base_dcor, ddof=1):.3f}, diverge {np.mean(div_dcor):.3f} ± "
            f"{np.std(div_dcor, ddof=1):.3f} (mean ± sd over seeds).",
            "",
            "| setting | baseline accuracy (%) | diverge accuracy (%) | diverge − baseline, "
            "95% t-interval over seeds | seeds where diverge is ahead |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    lines = [
        "# Training-seed repeats of the quick run",
        "",
        f"{date.today()}; quick profile (digits, CIFAR ResNet-18 at width {p['width']}, "
        f"{p['epochs']} epochs, {p['protocol']} protocol, PGD "
        f"{p['pgd_steps']} steps of {p['pgd_step']}); one f1 (seed {p['seed']}), {args.seeds} "
        f"baseline networks and {args.seeds} diverged networks per α (seeds "
        f"1000…{999 + args.seeds}, shared by each pair), all scored on the same adversarial "
        f"images made on f1 "
        f"({per_example['example'].nunique()} test images). {time.perf_counter() - start:.0f} s.",
        "",
        *sections,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()

"""Choose the quick profile's α by measurement: exact test-set dCor² to f1 and accuracy vs α.

Trains f1 once with the quick profile, then one f2 per α (same seed, so the only difference is
the penalty) and records, for each, the exact dCor² of its (row-normalised) penultimate
features to f1's over the whole test set and its test accuracy. Notebook 03 explains the
choice this table supports.

    python bench/sweep_alpha.py [--alphas 0 0.05 0.3 1 3] [--epochs N]
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

from pdc_utils import features  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "sweep_alpha.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0, 0.05, 0.3, 1, 3])
    parser.add_argument("--epochs", type=int, default=None, help="default: the quick profile's")
    args = parser.parse_args()
    p, test, train = quick_setup("sweep_alpha_", args.epochs)
    epochs = args.epochs or p["epochs"]

    f1 = train("f1", p["seed"])
    reference = features.predict(f1, test)["features"]
    rows = []
    for alpha in args.alphas:
        start = time.perf_counter()
        net = train(f"f2_{alpha:g}", p["seed"] + 2, references=[f1], alpha=alpha)
        out = features.predict(net, test)
        table = features.feature_dcor_table({"f1": reference, "f2": out["features"]})
        rows.append((alpha, float(table.set_index("model").loc["f2", "dcor_sqr"]),
                     100 * np.mean(out["predictions"] == out["labels"]),
                     time.perf_counter() - start))
        print(f"alpha {alpha:g}: dCor² {rows[-1][1]:.3f}, accuracy {rows[-1][2]:.1f} %", flush=True)
    lines = [
        "# α sweep on the quick profile",
        "",
        f"{date.today()}; digits, CIFAR ResNet-{p['network'][6:]} at width {p['width']}, "
        f"{epochs} epochs, seed {p['seed'] + 2} for every f2 (f1: seed {p['seed']}). dCor² is "
        "exact over the whole test set, on row-normalised features.",
        "",
        "| α | dCor² to f1 | test accuracy (%) | training time (s) |",
        "|---:|---:|---:|---:|",
        *[f"| {a:g} | {d:.3f} | {acc:.1f} | {t:.0f} |" for a, d, acc, t in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()

"""How much the quick run's numbers move between two numerically different set-ups.

The same ``quick`` run, run twice with one numeric setting changed (e.g. oneDNN's fused
kernels on and off, ``TF_ENABLE_ONEDNN_OPTS=1`` / ``0``, or another thread count), trains
networks that differ by float rounding, which training amplifies: this compares the two runs'
``diverge_minus_baseline.csv`` and clean accuracies and writes the table to
``bench/results/quick_portability.md``. Run the two runs first, e.g.

    TF_ENABLE_ONEDNN_OPTS=1 python -m pdc_utils run --profile quick --run-name quick_a
    TF_ENABLE_ONEDNN_OPTS=0 python -m pdc_utils run --profile quick --run-name quick_b
    python bench/quick_portability.py quick_a quick_b --labels "oneDNN on" "oneDNN off"
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import pandas as pd

from pdc_utils import artifacts, config

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2, help="the two run names")
    parser.add_argument("--labels", nargs=2, default=None, help="what differs between them")
    args = parser.parse_args()
    labels = args.labels or args.runs
    gaps = []
    for run in args.runs:
        path = config.results_dir(run) / "diverge_minus_baseline.csv"
        if not path.exists():
            raise SystemExit(f"error: {path} is missing: run the quick profile with "
                             f"--run-name {run} first")
        gaps.append(pd.read_csv(path).set_index(["attack", "eps", "attackers"]))
    env = json.loads((config.results_dir(args.runs[0]) / "environment.json").read_text())
    rows = []
    for key in gaps[0].index:
        a, b = (g.loc[key] for g in gaps)
        rows.append({"attack": key[0], "eps": key[1], "attackers": key[2],
                     labels[0]: f"{a['difference']:+.1f} [{a['low']:+.1f}, {a['high']:+.1f}]",
                     labels[1]: f"{b['difference']:+.1f} [{b['low']:+.1f}, {b['high']:+.1f}]",
                     "moved by": f"{abs(a['difference'] - b['difference']):.1f}",
                     "p_holm": f"{a['p_holm']:.2f} / {b['p_holm']:.2f}"})
    table = pd.DataFrame(rows)
    moved = (gaps[0]["difference"] - gaps[1]["difference"]).abs()
    lines = [
        "# The quick run on two numeric set-ups",
        "",
        f"{date.today()}; runs `{args.runs[0]}` ({labels[0]}) and `{args.runs[1]}` "
        f"({labels[1]}), `quick` profile, same seeds, on {env.get('device', 'this machine')} "
        f"(TensorFlow {env.get('versions', {}).get('tensorflow', '?')}). Diverged − baseline "
        "accuracy (points), mean over the 3 seed pairs with its 95 % t-interval, then how far "
        "the mean moved between the two set-ups, and Holm's p in each.",
        "",
        artifacts_markdown(table),
        "",
        f"The means moved by {moved.median():.1f} points in the median and up to "
        f"{moved.max():.1f}: a 3-pair run's numbers change with float rounding, which is why "
        "the README quotes the confirmatory study, not this run.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    artifacts.write_text_atomic(RESULTS / "quick_portability.md", "\n".join(lines))
    print("\n".join(lines))


def artifacts_markdown(frame: pd.DataFrame) -> str:
    """A plain Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


if __name__ == "__main__":
    main()

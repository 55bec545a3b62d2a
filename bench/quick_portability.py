"""How much the quick run's numbers move between two numerically different set-ups.

The same ``quick`` run, run twice with one numeric setting changed (e.g. oneDNN's fused
kernels on and off, ``TF_ENABLE_ONEDNN_OPTS=1`` / ``0``, or another thread count), trains
networks that differ by float rounding, which training amplifies: this compares the two runs'
``diverge_minus_baseline.csv`` and clean accuracies and writes the table to
``bench/results/quick_portability.md``. Run the two runs first, e.g.

    TF_ENABLE_ONEDNN_OPTS=1 python -m pdc_utils run --profile quick --run-name quick_a
    TF_ENABLE_ONEDNN_OPTS=0 python -m pdc_utils run --profile quick --run-name quick_b
    python bench/quick_portability.py quick_a quick_b --labels "oneDNN on" "oneDNN off" --write

Both runs must be ``quick`` profile runs (their recorded training parameters, notebook 04's
parameters and its table all the profile's, with the profile's seed pairs), since the table
says so; anything else stops with a message naming the run and the difference. The table is
printed; it replaces the committed ``bench/results/quick_portability.md`` (which the README
cites) only with ``--write``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import pandas as pd

from pdc_utils import artifacts, config, run_record
from pdc_utils import run as series

RESULTS = Path(__file__).parent / "results"
PROFILE = "quick"


def quick_gaps(run: str) -> pd.DataFrame:
    """Run ``run``'s diverged − baseline table, refused (``SystemExit`` naming the run and
    what differs) unless the run is a ``quick`` run: the profile's training parameters in its
    record, the table made by notebook 04 with the profile's parameters and unchanged since,
    and one row per setting with the profile's number of seed pairs."""
    params = {**config.profile(PROFILE), "run_name": run}
    path = config.results_dir(run) / "diverge_minus_baseline.csv"
    remake = f"python -m pdc_utils run --profile {PROFILE} --run-name {run}"
    if not path.exists():
        raise SystemExit(f"error: {path} is missing: make it with `{remake}` first")
    try:
        recorded = run_record.read(run, "04_attack_evaluation")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    differ = run_record.differences(recorded, params)
    if differ:
        listed = ", ".join(f"{k} = {old!r} (quick: {new!r})" for k, (old, new) in differ.items())
        raise SystemExit(f"error: run {run!r} is not a {PROFILE} profile run: {listed}; this "
                         f"table is about {PROFILE} runs, made with `{remake}`")
    why = series.why_not_current(run, "04_attack_evaluation", path.name, params)
    if why:
        raise SystemExit(f"error: {path} was {why}; remake it with `{remake} --notebooks 04`")
    gaps = pd.read_csv(path)
    pairs = set(gaps["n_seeds"])
    if pairs != {params["n_seeds"]}:
        raise SystemExit(f"error: {path} holds {sorted(pairs)} seed pairs, not the {PROFILE} "
                         f"profile's {params['n_seeds']}")
    return gaps.set_index(["attack", "eps", "attackers"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2, help="the two run names (quick profile runs)")
    parser.add_argument("--labels", nargs=2, default=None, help="what differs between them")
    parser.add_argument("--write", action="store_true",
                        help="replace bench/results/quick_portability.md (default: print only)")
    args = parser.parse_args(argv)
    labels = args.labels or args.runs
    gaps = [quick_gaps(run) for run in args.runs]
    if not gaps[0].index.equals(gaps[1].index):
        raise SystemExit(f"error: runs {args.runs[0]!r} and {args.runs[1]!r} hold different "
                         "settings (attacks, ε or attacker families)")
    try:
        env = artifacts.read_json(config.results_dir(args.runs[0]) / "environment.json")
    except (ValueError, FileNotFoundError):
        env = {}
    pairs = config.profile(PROFILE)["n_seeds"]
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
        f"accuracy (points), mean over the {pairs} seed pairs with its 95 % t-interval, then "
        "how far the mean moved between the two set-ups, and Holm's p in each.",
        "",
        artifacts_markdown(table),
        "",
        f"The means moved by {moved.median():.1f} points in the median and up to "
        f"{moved.max():.1f}: a {pairs}-pair run's numbers change with float rounding, which is why "
        "the README quotes the confirmatory study, not this run.",
        "",
    ]
    print("\n".join(lines))
    target = RESULTS / "quick_portability.md"
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        artifacts.write_text_atomic(target, "\n".join(lines))
        print(f"written to {target}")
    else:
        print(f"not written: add --write to replace {target}", file=sys.stderr)


def artifacts_markdown(frame: pd.DataFrame) -> str:
    """A plain Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


if __name__ == "__main__":
    main()

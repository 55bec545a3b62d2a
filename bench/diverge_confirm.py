"""Confirm on the test split, once: the settings the validation study chose, on fresh seeds.

The ``confirm`` stage of the study (:mod:`pdc_utils.study`) on the ``quick`` profile, in one
process. ``diverge_study.py`` chose, on validation data and by rules written before it ran
(``bench/results/diverge_selection.json``): the ε grid, the dCor setting of each design, GAL's
α at a matched clean-accuracy cost and the spread weight ``keep_dim``. This script trains,
with the ``quick`` recipe and **fresh seeds** (base seed 5000: attackers 5000 and
905001–905003, pairs 5001–5008; the study used 0, 900001–900002 and 1–5):

- ``reference``: the chosen reference-design setting (diverged from f1);
- ``control``: the same penalty and α against an **untrained** frozen network of the same
  architecture (``diverge_from="untrained"``);
- ``keep_dim``: the chosen setting plus the spread term, so the features cannot collapse;
- ``grad_align``: the gradient-alignment penalty (a variant of GAL) at the clean cost the
  study matched (the first run's tables call it ``gal``);
- ``paper_code``: the chosen setting of the paper code's design (chains of 3, attacked by an
  independent f1);

each with 8 seed pairs, and 4 attackers (f1 and 3 independent ones), and scores every network
on the **test** split once (FGM and PGD, pixel protocol, PGD 40 steps of 0.01). Per setting:
diverged − baseline over pairs, 95 % t-interval, paired t-test, Holm within the setting and
over the whole table; paired contrasts reference − control / keep_dim / grad_align; with
``--margin``, TOST against ±margin points, Holm-corrected within the setting
(``bench/results/diverge_power.md`` fixed the powered run's margin and pairs).

Writes ``bench/results/<out>.{md,csv,png}`` (and ``_attackers.csv`` with every attacker's
seed, ``_differences.csv``, ``_contrasts.csv``; ``--out`` defaults to ``diverge_confirm``) and
refuses to replace existing tables unless ``--write``. Runs live in ``runs/_diverge_confirm/``
unless ``PDC_RUNS_DIR`` says otherwise, named ``<out>_<cell>``; an interrupted run resumes.
The same stage on any profile and over many machines: ``python -m pdc_utils study
plan|run|report --stage confirm``.

    python bench/diverge_confirm.py [--seeds 8] [--attackers 4] [--base-seed 5000]
        [--settings reference,control,...] [--margin 5] [--out NAME] [--write] [--report-only]

The powered confirmation: ``--seeds 34 --base-seed 7000 --settings
reference,control,grad_align --margin 5 --out diverge_confirm_powered``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402
from study_common import RESULTS, run_stage, study_folder  # noqa: E402

from pdc_utils import config  # noqa: E402
from pdc_utils.study import grid, report  # noqa: E402

SELECTION = RESULTS / "diverge_selection.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=grid.CONFIRM_DEFAULTS["n_seeds"],
                        help="seed pairs per setting")
    parser.add_argument("--attackers", type=int, default=grid.CONFIRM_DEFAULTS["n_attackers"])
    parser.add_argument("--base-seed", type=int, default=grid.CONFIRM_DEFAULTS["seed"],
                        help="f1's seed; pairs, attackers and the control derive from it")
    parser.add_argument("--settings", default=",".join(grid.SETTINGS),
                        help=f"comma-separated, of {', '.join(grid.SETTINGS)}")
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
    args.settings = [x.strip() for x in args.settings.split(",") if x.strip()]
    try:  # the package's checks, before any work
        grid.split_options("confirm", "quick", overrides(args))
    except ValueError as err:
        parser.error(str(err))
    return args


def overrides(args: argparse.Namespace) -> dict:
    return {"n_seeds": args.seeds, "n_attackers": args.attackers, "seed": args.base_seed,
            "settings": args.settings, "margin": args.margin, "selection": str(SELECTION),
            "prefix": f"{args.out}_"}


def report_only(args: argparse.Namespace) -> str:
    """The report remade from ``<out>.csv`` and ``<out>_attackers.csv``."""
    paths = [RESULTS / f"{args.out}.csv", RESULTS / f"{args.out}_attackers.csv"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"error: --report-only needs {' and '.join(missing)} (the per-network "
                         "scores and the attackers' white-box table)")
    frame, white_box = (pd.read_csv(p) for p in paths)
    selection = grid.read_selection(SELECTION)
    named = {k: v for k, v in grid.confirm_settings(selection).items() if k in args.settings}
    recipe = report.Recipe.of("quick", config.profile("quick"))
    return report.confirm_report(frame, white_box, named, selection, args.base_seed,
                                 args.seeds, args.margin, recipe, RESULTS, args.out,
                                 write_scores=False)


def main() -> None:
    args = parse_args()
    if args.report_only:
        print(report_only(args))
        return
    table = RESULTS / f"{args.out}.csv"
    if table.exists() and not args.write:
        raise SystemExit(f"error: {table} exists (perhaps committed): --write replaces "
                         "it, --report-only remakes its report without training")
    print(run_stage("confirm", overrides(args), study_folder("_diverge_confirm"), args.out))


if __name__ == "__main__":
    main()

"""``python -m pdc_utils study plan|run|report``: the command's options and what each does.

Kept apart from ``pdc_utils.__main__`` so the study's command line lives with the study.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from pdc_utils import config


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``study`` to the command line's subcommands."""
    study = commands.add_parser(
        "study", help="the two-stage study (select on validation, confirm on the test split) "
        "as a plan of independent jobs: plan, run (a shard of it), report")
    study.add_argument("action", choices=["plan", "run", "report"])
    study.add_argument("--stage", required=True, choices=["select", "confirm"])
    study.add_argument("--profile", default="quick", choices=list(config.PROFILES),
                       help="parameter profile (default: quick)")
    study.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a study option (n_seeds, n_attackers, seed, alphas, settings, "
                       "margin, selection, prefix, ...) or a profile parameter (repeatable)")
    study.add_argument("--dir", default=None,
                       help="the study's folder (default: runs/study_<profile>)")
    study.add_argument("--results", default=None,
                       help="where report writes its tables (default: <dir>/results)")
    study.add_argument("--name", default=None, help="stem of the report's files (default: "
                       "diverge_study / diverge_confirm)")
    study.add_argument("--shard", default=None, metavar="K/N",
                       help="run: the K-th of N slices of the plan (0 <= K < N); default: "
                       "the Slurm array task or Kubernetes completion index, else all")
    study.add_argument("--shards", type=int, default=None,
                       help="run: the number of slices of a Kubernetes indexed Job "
                       "(or PDC_STUDY_SHARDS)")
    study.add_argument("--no-timing", action="store_true",
                       help="plan: skip the measured step timing (counts only)")
    study.add_argument("--json", action="store_true", help="plan: print the plan as JSON")


def main(args: argparse.Namespace) -> int:
    """Do ``study ACTION``; the exit status (1 for an error or unfinished jobs)."""
    from pdc_utils import run
    from pdc_utils.study import MissingJobs, cost, jobs, report_stage
    from pdc_utils.study import plan as plan_module

    try:
        overrides = dict(run.parse_override(p) for p in args.param)
        folder = Path(args.dir) if args.dir else plan_module.default_folder(args.profile)
        results = Path(args.results) if args.results else None
        plan = plan_module.build_plan(args.stage, args.profile, overrides, folder.resolve(),
                                      results)
        if args.action == "plan":
            path = plan_module.write(plan)
            print(plan_module.dumps(plan) if args.json else plan_module.describe(plan))
            measured = None if args.no_timing else cost.measure(plan.params)
            print("\n" + cost.describe(plan, measured))
            print(f"\nplan written to {path}")
            return 0
        if args.action == "run":
            index, count = jobs.choose_shard(args.shard, os.environ, args.shards)
            plan_module.write(plan)
            with run.sigterm_raises():
                done = jobs.run_slice(plan, overrides, index, count)
            print(f"shard {index}/{count}: {len(done)} jobs done")
            return 0
        text = report_stage(plan, args.name)
        print(text)
        print(f"report written to {plan.results}")
        return 0
    except KeyboardInterrupt as err:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 128 + getattr(err, "signal", signal.SIGINT)
    except (ValueError, FileNotFoundError, MissingJobs) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

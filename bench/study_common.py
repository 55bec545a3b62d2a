"""What the two bench scripts share: a whole stage of the study in this one process.

The study itself lives in :mod:`pdc_utils.study` (``python -m pdc_utils study plan|run|report
--stage select|confirm --profile P``, which also runs it in shards on a cluster); these
scripts keep the command lines that made the committed digits tables
(``bench/results/diverge_study.*``, ``diverge_confirm*``): the ``quick`` profile, the runs in
``runs/_diverge_study/`` and ``runs/_diverge_confirm/`` (or ``$PDC_RUNS_DIR``) and the
tables in ``bench/results/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pdc_utils import config
from pdc_utils.study import build_plan, jobs, report_stage

RESULTS = Path(__file__).resolve().parent / "results"


def study_folder(default: str) -> Path:
    """``$PDC_RUNS_DIR`` if set, else ``runs/<default>`` of the project."""
    return Path(os.environ.get("PDC_RUNS_DIR",
                               config.project_root() / "runs" / default)).resolve()


def run_stage(stage: str, overrides: Mapping[str, Any], folder: Path, stem: str) -> str:
    """Train, score and report a whole stage of the ``quick`` study in this process (an
    interrupted one resumes); the report's Markdown."""
    start = time.perf_counter()
    plan = build_plan(stage, "quick", overrides, folder, RESULTS)
    jobs.run_slice(plan, overrides, 0, 1)
    plan = build_plan(stage, "quick", overrides, folder, RESULTS)
    return report_stage(plan, stem, seconds=time.perf_counter() - start)

"""Choose on validation data: which setting of diverge training, which ε grid, which controls.

The ``select`` stage of the study (:mod:`pdc_utils.study`) on the ``quick`` profile, in one
process: every choice the series makes about diverge training is made here, on the
**validation** split (288 digits images carved from the training data, never trained on)
with **validation attackers** (f1 and two independent attackers, seeds 0, 900001, 900002), by
rules fixed before this script was first run (:mod:`pdc_utils.study.rules`). The test split
is not touched: ``diverge_confirm.py`` then trains the chosen settings again on fresh seeds
and scores them on the test split once.

Phase 1 trains, with 5 seed pairs each (the ``quick`` recipe, seed 0):
- dCor cells: design ∈ {reference, paper_code} × penalty ∈ {v, u} × α ∈ {0.05, 0.3, 1, 3}
  for reference, α ∈ {0.3, 1, 3} for paper_code (a chain costs three networks per pair, and
  this machine two cores; the reference cells keep the paper's 0.05);
- GAL cells (the standard baseline for reducing transfer): reference design, penalty
  ``grad_align``, α ∈ {0.3, 1, 3}.
Phase 2 trains the spread-keeping term ``keep_dim`` ∈ {0.3, 1, 3} at the chosen reference
setting. Every network is scored on every validation attacker's FGM and PGD images (pixel
protocol, PGD 40 steps of 0.01, no random start) at ε ∈ {0.03, 0.05, 0.1, 0.2, 0.3}.

The rules, in order: (1) the ε grid where white-box PGD accuracy is nearest 75 / 40 / 10 %;
(2) per design, the dCor cell with the largest mean gain among those costing at most 1 point
of clean accuracy; (3) GAL at the matched clean cost; (4) the smallest keep_dim that keeps
80 % of the baselines' effective dimension. The quick profile takes rule 2's
reference-design setting and rule 1's grid.

Writes ``bench/results/diverge_study.{md,csv,png}`` (``--out``), the differences with their
intervals, p-values, Holm and Benjamini–Hochberg over the study's whole family, and
``bench/results/diverge_selection.json``. Runs live in ``runs/_diverge_study/`` unless
``PDC_RUNS_DIR`` says otherwise; an interrupted study resumes. The same stage, on any profile
and over many machines: ``python -m pdc_utils study plan|run|report --stage select``.

    python bench/diverge_study.py [--seeds 5] [--out diverge_study]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from study_common import run_stage, study_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="diverge_study",
                        help="stem of the files written to bench/results/ (.md, .csv, .png)")
    args = parser.parse_args()
    print(run_stage("select", {"n_seeds": args.seeds}, study_folder("_diverge_study"),
                    args.out))


if __name__ == "__main__":
    main()

"""The two-stage study as a package command: ``python -m pdc_utils study plan|run|report
--stage select|confirm --profile P [-p KEY=VALUE ...]``.

- :mod:`~pdc_utils.study.grid`: the cells of each stage and the study's options;
- :mod:`~pdc_utils.study.plan`: the stage as a plan of independent, idempotent jobs;
- :mod:`~pdc_utils.study.cost`: its size and a measured estimate of its time;
- :mod:`~pdc_utils.study.jobs`: a slice of the plan run by this process (``--shard K/N``, a
  Slurm job array or a Kubernetes indexed Job), safely beside any number of others;
- :mod:`~pdc_utils.study.scoring`, :mod:`~pdc_utils.study.scores`: one cell scored, and the
  scores on disk;
- :mod:`~pdc_utils.study.rules`, :mod:`~pdc_utils.study.tables`,
  :mod:`~pdc_utils.study.report`: the written selection rules, the statistics and the reports.

``report_stage`` turns a finished plan's scores into its report, and names the jobs still to
do when it is not finished.
"""

from __future__ import annotations

from pdc_utils.study.plan import Job, Plan, build_plan


class MissingJobs(RuntimeError):
    """``study report`` before every job is done; the message names the jobs left."""


def report_stage(plan: Plan, stem: str | None = None, seconds: float = float("nan")) -> str:
    """Write the stage's report from its scores; return its Markdown (``seconds``: the wall
    time to quote, when one process did it all). Raises :class:`MissingJobs` naming every job
    not done yet while any cell is not scored, before anything is written."""
    from pdc_utils.study import report, rules, scores
    from pdc_utils.study.plan import DEFAULT_STEMS

    missing = scores.missing_jobs(plan)
    if any(j.kind == "score" for j in missing):
        shown = "\n".join(f"  {j.id} ({j.kind})" for j in missing[:60])
        more = f"\n  ... and {len(missing) - 60} more" if len(missing) > 60 else ""
        raise MissingJobs(
            f"the {plan.stage} stage in {plan.folder} is not finished: {len(missing)} of "
            f"{len(plan.jobs)} jobs are not done:\n{shown}{more}\nRun them with `python -m "
            f"pdc_utils study run --stage {plan.stage} --profile {plan.profile} ...` (the same "
            f"-p options; any number of shards), then report again.")
    stem = stem or DEFAULT_STEMS[plan.stage]
    loaded = scores.load(plan, list(plan.slots))
    assert loaded is not None  # every scoring job is done
    frame, white_box = loaded
    recipe = report.Recipe.of(plan.profile, plan.params)
    if plan.stage == "select":
        selection = rules.select(plan, frame, white_box)
        return report.select_report(frame, white_box, selection, plan.eps_grid, recipe,
                                    plan.results, stem, seconds)
    named = {label: plan.slots[cell] for cell, label in plan.labels.items()}
    frame.insert(0, "setting", frame["cell"].map(plan.labels))
    return report.confirm_report(frame, white_box, named, plan.selection,
                                 plan.params["seed"], plan.options["n_seeds"],
                                 plan.options["margin"], recipe, plan.results, stem, seconds)


__all__ = ["Job", "MissingJobs", "Plan", "build_plan", "report_stage"]

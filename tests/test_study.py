"""The study command (pdc_utils.study): plans that list exactly the trainings of the committed
digits tables, reports remade from the committed scores, shards, locks and missing jobs.

The end-to-end runs (training on the smoke profile) are in test_study_e2e.py.
"""

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pdc_utils import experiment
from pdc_utils.study import MissingJobs, build_plan, grid, jobs, report, report_stage, rules, scores
from pdc_utils.study import plan as plan_module

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
POWERED = {"n_seeds": 34, "seed": 7000, "settings": "reference,control,grad_align",
           "margin": 5}


def _store_scores(plan, frame, white_box):
    """Put per-network rows into the study folder as the scoring jobs would (resolved slots
    only); the slots stored."""
    stored = []
    for slot, cell in plan.slots.items():
        if cell is None:
            continue
        rows = frame[frame["cell"] == cell.name].drop(columns=["setting"], errors="ignore")
        scores.save(plan, slot, rows, white_box if slot == next(iter(plan.slots)) else None,
                    0.0)
        stored.append(slot)
    return stored


@pytest.fixture(scope="module")
def committed_select(tmp_path_factory):
    """The quick select plan in a folder holding the committed study's scores (so phase 2 is
    resolved), and the report remade from them."""
    folder = tmp_path_factory.mktemp("select")
    frame = pd.read_csv(RESULTS / "diverge_study.csv")
    white_box = pd.read_csv(RESULTS / "diverge_study_white_box.csv")
    plan = build_plan("select", "quick", {}, folder)
    assert plan.pending, "phase 2 is not known before phase 1 is scored"
    _store_scores(plan, frame, white_box)
    plan = build_plan("select", "quick", {}, folder)  # phase 1 scored: phase 2 resolved
    assert not plan.pending
    _store_scores(plan, frame, white_box)
    text = report_stage(plan, "diverge_study")
    return plan, folder / "results", text


def _plan_networks(plan):
    """``{(cell, pair, role): (cell parameters of the training job, its seed)}`` from the
    plan's training jobs; a cell's baselines may come from the job of another cell with the
    same design and penalty (their home), as the studies shared them."""
    trained = [(job, name, seed) for job in plan.jobs
               for name, seed in zip(job.networks, job.seeds, strict=True)]
    out = {}
    for slot, cell in plan.slots.items():
        for s in range(plan.options["n_seeds"]):
            for role, name in (("baseline", experiment.baseline_name(s)),
                               ("diverge", experiment.diverge_name(s))):
                own = [(j.cell, seed) for j, n, seed in trained if j.slot == slot and n == name]
                shared = [(j.cell, seed) for j, n, seed in trained
                          if role == "baseline" and n == name and j.kind == "baseline"
                          and j.cell["penalty"] == cell.penalty
                          and j.cell["design"] == cell.design]
                assert len(own or shared) == 1, (slot, name)
                out[(cell.name, s, role)] = (own or shared)[0]
    return out


def _check_rows_against_plan(frame, plan, seeds_of):
    networks = _plan_networks(plan)
    rows = {(r.cell, r.seed, r.role): r for r in frame.itertuples()}
    assert set(rows) == set(networks), "the plan trains exactly the networks of the table"
    for key, row in rows.items():
        params, seed = networks[key]
        assert seed == seeds_of(row), key
        assert params["design"] == row.design and params["penalty"] == row.penalty
        if row.role == "diverge":  # the diverged network's own setting
            assert {k: params[k] for k in ("alpha", "keep_dim", "diverge_from")} == {
                "alpha": row.alpha, "keep_dim": row.keep_dim, "diverge_from": row.diverge_from}


def test_select_plan_lists_the_committed_study_trainings(committed_select):
    plan, _, _ = committed_select
    frame = pd.read_csv(RESULTS / "diverge_study.csv")
    selection = json.loads((RESULTS / "diverge_selection.json").read_text())

    def seed(row):  # the validation study's seeds: pairs 1-5, chains + 10000 per net
        if row.design == "paper_code" and row.role == "diverge":
            return experiment.chain_seed(0, row.seed, 2)
        return experiment.pair_seed(0, row.seed)

    _check_rows_against_plan(frame, plan, seed)
    attackers = [j for j in plan.jobs if j.kind == "attacker"]
    assert [j.networks[0] for j in attackers] == selection["attackers"]
    assert [j.seeds[0] for j in attackers] == [0, 900001, 900002]
    assert list(dict.fromkeys(frame["cell"])) == [c.name for c in plan.slots.values()]


def test_confirm_plan_lists_the_committed_confirmation_trainings(tmp_path):
    plan = build_plan("confirm", "quick", {}, tmp_path)  # the committed selection
    frame = pd.read_csv(RESULTS / "diverge_confirm.csv")

    def seed(row):
        if row.design == "paper_code" and row.role == "diverge":
            return experiment.chain_seed(5000, row.seed, 2)
        return experiment.pair_seed(5000, row.seed)

    _check_rows_against_plan(frame, plan, seed)
    labels = dict(zip(frame["cell"], frame["setting"], strict=True))
    renamed = {"gal": "grad_align"}  # the first run's name of the setting
    assert {c: renamed.get(v, v) for c, v in labels.items()} == plan.labels
    attackers = [j for j in plan.jobs if j.kind == "attacker"]
    assert [j.seeds[0] for j in attackers] == [5000, 905001, 905002, 905003]


def test_confirm_plan_expresses_the_powered_run(tmp_path):
    plan = build_plan("confirm", "quick", {**POWERED, "prefix": "diverge_confirm_powered_"},
                      tmp_path)
    assert list(plan.labels.values()) == ["reference", "control", "grad_align"]
    assert plan.options["margin"] == 5
    assert plan.run_name("reference_v_a3") == "diverge_confirm_powered_reference_v_a3"
    diverged = [j for j in plan.jobs if j.kind == "diverge"]
    assert len(diverged) == 3 * 34
    assert sorted({j.seeds[0] for j in diverged}) == list(range(7001, 7035))
    baselines = [j for j in plan.jobs if j.kind == "baseline"]  # v (shared) and grad_align
    assert len(baselines) == 2 * 34
    text = plan_module.describe(plan)
    assert "pairs 7001–7034" in text and "untrained reference 807000" in text


def test_select_report_from_the_committed_scores_equals_the_committed_one(committed_select):
    _, out, text = committed_select
    assert json.loads((out / "diverge_selection.json").read_text()) == json.loads(
        (RESULTS / "diverge_selection.json").read_text())
    for name in ("diverge_study.csv", "diverge_study_white_box.csv"):
        assert (out / name).read_bytes() == (RESULTS / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_csv(out / "diverge_study_differences.csv"),
                                  pd.read_csv(RESULTS / "diverge_study_differences.csv"),
                                  rtol=1e-12, atol=0)
    made, committed = text.splitlines(), (RESULTS / "diverge_study.md").read_text().splitlines()
    assert len(made) == len(committed)
    # line 2 holds the date and the time the run took; every other line is the same
    assert [m for i, m in enumerate(made) if i != 2] == [
        c for i, c in enumerate(committed) if i != 2]
    assert (out / "diverge_study.png").stat().st_size > 0


def test_confirm_tables_from_the_committed_scores_equal_the_committed_ones(tmp_path):
    frame = pd.read_csv(RESULTS / "diverge_confirm.csv")
    selection = grid.read_selection(RESULTS / "diverge_selection.json")
    named = grid.confirm_settings(selection)
    attackers = ["f1", "f1_a1", "f1_a2", "f1_a3"]
    # the first confirmation kept no white-box table; its report's white-box line is not
    # compared, so any accuracies stand in for it here
    white_box = pd.DataFrame([{"attacker": a, "attack": k, "eps": e, "accuracy": 50.0}
                              for a in attackers for k in grid.ATTACKS
                              for e in selection["eps_grid"]])
    recipe = report.Recipe.of("quick", build_plan("confirm", "quick", {}, tmp_path).params)
    text = report.confirm_report(frame, white_box, named, selection, 5000, 8, None, recipe,
                                 tmp_path, "diverge_confirm", write_scores=False)
    for name in ("diverge_confirm_differences.csv", "diverge_confirm_contrasts.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name),
                                      pd.read_csv(RESULTS / name), rtol=1e-12, atol=0)
    committed = (RESULTS / "diverge_confirm.md").read_text().splitlines()

    def results(lines):  # every table row and verdict, the numbers of the report
        return [line for line in lines
                if line.startswith(("| ", "- **", "Over the whole table"))]

    assert results(text.splitlines()) == results(committed)
    assert len(results(committed)) > 30


def test_confirm_report_with_a_margin_has_the_equivalence_section(tmp_path):
    frame = pd.read_csv(RESULTS / "diverge_confirm.csv")
    selection = grid.read_selection(RESULTS / "diverge_selection.json")
    white_box = pd.DataFrame([{"attacker": a, "train_seed": seed, "attack": "pgd",
                               "eps": 0.1, "accuracy": 40.0}
                              for a, seed in (("f1", 5000), ("f1_a1", 905001),
                                              ("f1_a2", 905002), ("f1_a3", 905003))])
    recipe = report.Recipe.of("quick", build_plan("confirm", "quick", {}, tmp_path).params)
    text = report.confirm_report(frame, white_box, grid.confirm_settings(selection), selection,
                                 5000, 8, 5.0, recipe, tmp_path, "x")
    assert "## Equivalence: what the data rule out (TOST, margin ±5 points)" in text
    assert "Attackers and their training seeds: f1 (5000), f1_a1 (905001)" in text
    diffs = pd.read_csv(tmp_path / "x_differences.csv")
    assert {"p_tost", "p_tost_holm", "p_gain_holm"} <= set(diffs.columns)
    assert (tmp_path / "x_attackers.csv").exists() and (tmp_path / "x.png").exists()


def test_the_rules_choose_what_the_study_chose():
    frame = pd.read_csv(RESULTS / "diverge_study.csv")
    white_box = pd.read_csv(RESULTS / "diverge_study_white_box.csv")
    assert rules.choose_eps(white_box) == [0.05, 0.1, 0.2]
    # a white-box table where 0.03 is nearest every target picks distinct ε all the same
    flat = white_box.assign(accuracy=50.0)
    assert len(set(rules.choose_eps(flat))) == 3
    keep = [grid.Cell("reference", "v", 3.0, keep_dim=k) for k in (0.3, 1.0, 3.0)]
    assert rules.choose_keep_dim(frame, keep).keep_dim == 3.0


def test_shards_from_the_option_slurm_and_kubernetes():
    assert jobs.parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(jobs.ShardError, match="0 <= K < N"):
            jobs.parse_shard(bad)
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4",
             "SLURM_ARRAY_TASK_COUNT": "3"}
    assert jobs.choose_shard(None, slurm) == (1, 3)
    assert jobs.choose_shard("0/2", slurm) == (0, 2)  # the option wins
    with pytest.raises(jobs.ShardError, match="contiguous"):
        jobs.choose_shard(None, {**slurm, "SLURM_ARRAY_TASK_ID": "9"})
    assert jobs.choose_shard(None, {"JOB_COMPLETION_INDEX": "2", "PDC_STUDY_SHARDS": "4"}) \
        == (2, 4)
    assert jobs.choose_shard(None, {"JOB_COMPLETION_INDEX": "2"}, shards=3) == (2, 3)
    with pytest.raises(jobs.ShardError, match="number of shards"):
        jobs.choose_shard(None, {"JOB_COMPLETION_INDEX": "2"})
    assert jobs.choose_shard(None, {}) == (0, 1)


def test_shards_split_the_plan_without_overlap(tmp_path):
    plan = build_plan("confirm", "quick", {}, tmp_path)
    slices = [jobs.slice_of(plan, k, 3) for k in range(3)]
    ids = [j.id for s in slices for j in s]
    assert sorted(ids) == sorted(j.id for j in plan.jobs) and len(set(ids)) == len(ids)


def test_report_before_the_jobs_are_done_names_the_missing_ones(tmp_path):
    plan = build_plan("confirm", "smoke", {"selection": str(RESULTS /
                                                            "diverge_selection.json")},
                      tmp_path)
    with pytest.raises(MissingJobs) as caught:
        report_stage(plan)
    message = str(caught.value)
    assert f"{len(plan.jobs)} of {len(plan.jobs)} jobs are not done" in message
    assert "reference_v_a3/f1 (attacker)" in message and "paper_code_v_a3/score" in message
    assert not (tmp_path / "results").exists()


def test_bad_options_are_refused_before_any_work(tmp_path):
    for overrides, words in (({"n_seeds": 2}, "n_seeds must be"),
                             ({"settings": "control"}, "reference among them"),
                             ({"alphas": "0.3,-1"}, "alphas must be"),
                             ({"bogus": 1}, "not a study option"),
                             ({"epochs": 0}, "epochs must be")):
        stage = "confirm" if "settings" in overrides else "select"
        with pytest.raises(ValueError, match=words):
            build_plan(stage, "quick", overrides, tmp_path)
    with pytest.raises(FileNotFoundError, match="select stage first"):
        build_plan("confirm", "smoke", {}, tmp_path)


def _hold(folder, job_id, ready, release):
    with jobs.job_lock(Path(folder), job_id):
        ready.set()
        release.wait(30)


def test_a_job_lock_waits_for_its_holder_and_is_freed_when_it_dies(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(tmp_path, "a/f1", ready, release))
    holder.start()
    assert ready.wait(30)
    start = time.perf_counter()
    killer = multiprocessing.Process(target=_kill_later, args=(holder.pid,))
    killer.start()
    with jobs.job_lock(tmp_path, "a/f1"):  # waits until the holder is killed
        waited = time.perf_counter() - start
    killer.join()
    holder.join()
    assert waited > 0.4


def _kill_later(pid):
    import os
    import signal

    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)


def test_study_plan_command_prints_the_plan_and_its_cost(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pdc_utils", "study", "plan", "--stage", "select", "--profile",
         "cifar10", "-p", "protocol=paper", "--dir", str(tmp_path), "--no-timing"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "study select on profile 'cifar10'" in done.stdout
    assert "(paper protocol" in done.stdout
    assert "cost: 178 trainings" in done.stdout and "time: not measured" in done.stdout
    assert (tmp_path / "plan_select.json").exists()
    bad = subprocess.run([sys.executable, "-m", "pdc_utils", "study", "report", "--stage",
                          "select", "--profile", "smoke", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "jobs are not done" in bad.stderr

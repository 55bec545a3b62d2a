"""The notebooks: how they are stored, their parameters, and a smoke run of the whole series."""

from __future__ import annotations

import ast
import re

import keras
import nbformat
import pandas as pd
import papermill
import pytest
from test_book import check_built_book

from pdc_utils import book, config, run, run_record
from pdc_utils.exercises import EXERCISES

NOTEBOOKS = sorted(run.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
REFERENCE_COLUMNS = list(pd.read_csv(config.package_file("paper_table1.csv")).columns)


def test_the_series_is_complete():
    assert [p.stem for p in NOTEBOOKS] == list(config.NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_one_parameters_cell(path):
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs are stored"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown").lower()
    for heading in ("what you will learn", "summary", "exercises"):
        assert heading in text, f"{path.name} has no '{heading}' section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_typed_commented_and_default_to_the_quick_profile(path):
    declared = papermill.inspect_notebook(str(path))
    assert "run_name" in declared
    trained = set(declared) & set(config.TRAINING_KEYS)
    if path.stem == run_record.WRITER:  # 02 declares and records every training parameter
        assert trained == set(config.TRAINING_KEYS)
    elif path.stem in run_record.READERS:  # 03-05 read them from the run's record
        assert not trained, f"{sorted(trained)} belong to notebook 02 (the run's record)"
    quick = config.profile("quick")
    for name, info in declared.items():
        assert info["inferred_type_name"] != "None", f"{name} has no type annotation"
        assert info["help"].strip(), f"{name} has no comment"
        assert name in quick, f"{name} is not a profile parameter, so runs cannot set it"
        assert ast.literal_eval(info["default"]) == quick[name], f"{name} default != quick"


def _check_verdicts(folder) -> dict[str, str]:
    """``{exercise id: what its check printed}`` over the executed notebooks in ``folder``."""
    verdicts = {}
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            for output in cell.get("outputs", []):
                for line in output.get("text", "").splitlines():
                    match = re.match(r"(\d\d\.\w+): (.*)", line)
                    if match:
                        verdicts[match[1]] = match[2]
    return verdicts


def _names(source: str, context: type) -> set[str]:
    """Names a cell binds (``ast.Store``: assignments, loops; plus defs and imports) or reads
    (``ast.Load``)."""
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, context)}
    if context is ast.Store:
        names |= {n.name for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_kept_cell_needs_a_name_only_a_solution_cell_binds(path):
    """Student copies drop the cells tagged ``solution``: a later cell that students keep must
    not read a name that only a solution cell had bound, or their copy would fail there."""
    kept, only_in_solutions = set(), set()
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type != "code":
            continue
        binds = _names(cell.source, ast.Store)
        if "solution" in cell.metadata.get("tags", []):
            only_in_solutions |= binds - kept
            continue
        missing = (_names(cell.source, ast.Load) - binds) & only_in_solutions
        assert not missing, (f"{path.name}, cell {cell.get('id')}: reads {sorted(missing)}, "
                             "which only a solution cell binds")
        kept |= binds
        only_in_solutions -= binds


@pytest.mark.notebook
def test_smoke_run_of_the_whole_series(isolated_run_dirs, eager_steps):
    summary = run.run_series("smoke", run_name="smoke", progress=False)
    run_dir = isolated_run_dirs / "runs" / "smoke"
    assert summary == run_dir / "summary.md"
    for name in config.NOTEBOOKS:
        assert (run_dir / "notebooks" / f"{name}.ipynb").exists()

    for name in ("f1", "f1_a1", "f2_baseline", "f2_diverge", "f2_baseline_s1", "f2_diverge_s1"):
        network = keras.models.load_model(run_dir / "models" / f"{name}.keras")
        logits, features = network(keras.ops.zeros((2, 8, 8, 3)))
        assert logits.shape == (2, 10) and features.shape[0] == 2

    results = run_dir / "results"
    table = pd.read_csv(results / "transfer_attack.csv")
    assert list(table.columns) == ["dataset", "network", "method", "clean", "fgm_0.05",
                                   "pgd_0.05", "fgm_0.10", "pgd_0.10"]
    assert list(table["method"]) == ["source", "baseline", "diverge"]
    assert table.drop(columns=["dataset", "network", "method"]).stack().between(0, 100).all()
    seeds = pd.read_csv(results / "transfer_attack_seeds.csv")
    assert list(seeds.columns) == [*table.columns, "seed", "attacker"]
    assert list(seeds["seed"]) == [-1, 0, 0, 1, 1] * 2
    assert list(seeds["attacker"]) == ["f1"] * 5 + ["f1_a1"] * 5
    gap = pd.read_csv(results / "diverge_minus_baseline.csv")
    assert (gap["n_seeds"] == 2).all()
    assert {"difference", "low", "high", "attackers", "p_value", "p_holm"} <= set(gap.columns)
    attacked = gap[gap["attack"] != "clean"]
    # two pairs: intervals, but no p-value (a t-test needs three) and no claim either way
    assert set(attacked["attackers"]) == {"f1", "others"} and attacked["low"].notna().all()
    assert attacked[["p_value", "p_holm"]].isna().all().all()
    verdict = (results / "verdict.md").read_text()
    assert "no claim either way: 2 seed pairs" in verdict and "illustration" in verdict
    alignment = pd.read_csv(results / "gradient_alignment.csv")
    assert list(alignment.columns) == ["model", "attack_source", "cosine_mean", "cosine_std", "n"]

    dcor = pd.read_csv(results / "feature_dcor.csv")
    assert list(dcor.columns) == ["model", "reference", "dcor_sqr", "n", "u_dcor_sqr",
                                  "effective_dim", "top_pc_fraction"]
    assert set(dcor["model"]) >= {"f2_baseline", "f2_diverge", "f2_diverge_s1"}
    assert (dcor["n"] == config.profile("smoke")["test_limit"]).all()

    figures = list((isolated_run_dirs / "figures" / "smoke").glob("*.png"))
    assert {f.name[:2] for f in figures} == {"01", "02", "03", "04", "05", "06"}
    layers = pd.read_csv(results / "layer_dcor.csv")
    assert list(layers.columns) == ["model_a", "layer_a", "model_b", "layer_b", "dcor_sqr",
                                    "cka", "n"]
    assert layers[["dcor_sqr", "cka"]].stack().between(0, 1 + 1e-9).all()
    partial = pd.read_csv(results / "partial_dcor.csv")
    assert list(partial.columns) == ["x", "y", "given", "pdcor", "p_value", "n"]
    assert partial["p_value"].between(0, 1).all()
    text = summary.read_text()
    assert "Transfer attack" in text and "Wall time per notebook" in text
    assert "Partial distance correlation" in text

    # the lecturer's notebooks: every exercise checks out with its solution cell
    verdicts = _check_verdicts(run_dir / "notebooks")
    assert len(verdicts) == len(EXERCISES)
    unchecked = {"03.upen": "not attempted"}  # needs a second run, so it has no solution cell
    for exercise, verdict in verdicts.items():
        assert verdict.startswith(unchecked.get(exercise, "correct")), (exercise, verdict)

    # the book of this run (make book), built before the students' copies replace 01 and 06
    check_built_book(book.build("smoke", "lecturer", isolated_run_dirs / "book"), "smoke",
                     "smoke")

    # the students' copies: no solution cells, every exercise "not attempted", nothing fails.
    # Two of them run here (a third of the suite's time would go to running all six again);
    # test_no_kept_cell_needs_a_name_only_a_solution_cell_binds covers the rest statically.
    copies = run.write_student_copies(isolated_run_dirs / "students")
    assert len(copies) == len(NOTEBOOKS)
    run.run_series("smoke", run_name="smoke", directory=isolated_run_dirs / "students",
                   notebooks=["01", "06"], progress=False)
    verdicts = {k: v for k, v in _check_verdicts(run_dir / "notebooks").items()
                if k[:2] in ("01", "06")}
    assert len(verdicts) == len([e for e in EXERCISES if e[:2] in ("01", "06")])
    assert all(v.startswith("not attempted") for v in verdicts.values()), verdicts



@pytest.mark.notebook
def test_smoke_run_of_the_paper_code_design_with_the_gal_penalty(isolated_run_dirs, eager_steps):
    # under the seed's protocol too (eps in normalised units, no clipping, random PGD start)
    run.run_series("smoke", run_name="chain",
                   overrides={"design": "paper_code", "penalty": "grad_align",
                              "protocol": "paper"},
                   notebooks=["02", "03", "04"], progress=False)
    models = isolated_run_dirs / "runs" / "chain" / "models"
    assert {p.stem for p in models.glob("*.keras")} == {
        "f1", "f1_a1", "f2_baseline", "chain_s0_net1", "f2_diverge", "f2_baseline_s1",
        "chain_s1_net1", "f2_diverge_s1"}
    history = pd.read_csv(isolated_run_dirs / "runs" / "chain" / "results"
                          / "history_f2_diverge.csv")
    assert {"grad_cos_sqr", "val_grad_cos_sqr"} <= set(history.columns)
    dcor = pd.read_csv(isolated_run_dirs / "runs" / "chain" / "results" / "feature_dcor.csv")
    refs = dcor[dcor["model"] == "f2_diverge"]["reference"].tolist()
    assert refs == ["f1", "f2_baseline", "chain_s0_net1"]
    results = isolated_run_dirs / "runs" / "chain" / "results"
    paper = pd.read_csv(results / "transfer_attack.csv")
    assert list(paper["method"]) == ["source", "baseline", "diverge"]
    assert "fgm_0.05" in paper.columns and paper.filter(like="_0.").notna().all().all()
    assert "protocol paper" in (results / "verdict.md").read_text()


@pytest.mark.notebook
def test_smoke_run_of_the_untrained_control_with_the_spread_term(isolated_run_dirs, eager_steps):
    overrides = {"diverge_from": "untrained", "penalty": "u", "keep_dim": 1.0}
    run.run_series("smoke", run_name="control", overrides=overrides,
                   notebooks=["02", "03", "04"], progress=False)
    folder = isolated_run_dirs / "runs" / "control"
    assert (folder / "models" / "f0_untrained.keras").exists()
    record = pd.read_json(folder / "models" / "f2_diverge.json", typ="series")
    assert record["keep_dim"] == 1.0 and record["alpha"] > 0
    assert "diverge_from untrained" in (folder / "results" / "verdict.md").read_text()
    # notebook 05 with other training values than the networks': refused before it runs,
    # the values named (the run record)
    with pytest.raises(ValueError, match=r"keep_dim = 1\.0 \(this command: 0\.5\)"):
        run.run_series("smoke", run_name="control", overrides={**overrides, "keep_dim": 0.5},
                       notebooks=["05"], progress=False)


@pytest.mark.parametrize("name", ["cifar10", "imagenette", "imagenet2012"])
def test_full_scale_profiles_give_the_paper_table_columns(name):
    profile = config.profile(name)
    columns = ["dataset", "network", "method", "clean"] + [
        f"{a}_{e:.2f}" for e in profile["eps_grid"] for a in profile["attacks"]]
    assert columns == REFERENCE_COLUMNS

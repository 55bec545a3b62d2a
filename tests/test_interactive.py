"""What a notebook shows when it runs in a plain kernel, as in JupyterLab: no TensorFlow log
lines, and a missing prerequisite as its message alone.

The notebooks are built here and executed with nbclient in a temporary folder. The kernel's
file descriptor 2 is forwarded into the cells' outputs (ipykernel's default), as in JupyterLab,
and the kernel imports the pdc_utils under test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import papermill
import pytest
from nbclient import NotebookClient
from papermill.exceptions import PapermillExecutionError

import pdc_utils

#: TensorFlow's C++ log lines (``I0000 00:00:...``) and the start-up notes that come with them.
LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|oneDNN custom operations"
                      r"|loop_optimizer", re.MULTILINE)

IMPORTS = """\
from pdc_utils import data, models, objective
# isort: split
import keras
import tensorflow as tf
"""

#: One step of the penalised training notebook 03 runs (``DivergeModel.train_on_batch``): its
#: compiled step is where grappler's loop optimiser warns.
ONE_STEP = """\
info = data.dataset_info("digits")
images, labels = next(iter(data.load_split("digits", "train", batch_size=16, limit=16)))
f1, f2 = (models.build_network("resnet18", info, width=4) for _ in range(2))
model = objective.DivergeModel(f2, [f1], alpha=1.0, penalty="v")
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
logs = model.train_on_batch(images, labels, return_dict=True)
print(f"trained one step: loss {logs['loss']:.3f} on {len(tf.config.list_logical_devices())}"
      " device(s)")
"""

#: A line written to file descriptor 2 after the import, as C++ code writes: it must show (the
#: filter is gone, and ipykernel forwards the descriptor, so the test is not blind).
FD_2 = 'import os\nos.write(2, b"E0000 written to fd 2 after the import\\n")'


def notebook(*sources: str) -> nbformat.NotebookNode:
    book = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "language": "python", "display_name": "Python 3"}})
    book.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return book


def outputs_text(cells: list[nbformat.NotebookNode]) -> str:
    """Everything the cells showed: streams, results and error tracebacks."""
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append("\n".join(output.get("traceback", [])))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


def kernel_env() -> dict[str, str]:
    """The environment of a kernel JupyterLab starts: no ``TF_CPP_MIN_LOG_LEVEL`` (the tests'
    conftest sets one), no ``PYTEST_CURRENT_TEST`` (with it, ipykernel leaves file descriptor 2
    alone, so C++ log lines would not reach the outputs), and this checkout's pdc_utils first
    on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTEST_CURRENT_TEST")}
    root = str(Path(pdc_utils.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def execute(book: nbformat.NotebookNode, folder: Path, **options) -> nbformat.NotebookNode:
    """Execute ``book`` with nbclient from a copy in ``folder`` (its working directory), in a
    kernel started with :func:`kernel_env`."""
    path = folder / "notebook.ipynb"
    nbformat.write(book, str(path))
    copy = nbformat.read(str(path), as_version=4)
    NotebookClient(copy, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}, **options
                   ).execute(env=kernel_env())
    return copy


def test_a_training_notebook_shows_no_tensorflow_log_lines(tmp_path):
    imports, step, fd_2 = execute(notebook(IMPORTS, ONE_STEP, FD_2), tmp_path).cells
    shown = outputs_text([imports, step])
    assert "trained one step: loss" in shown
    assert not LOG_LINE.findall(shown), shown
    assert "E0000 written to fd 2 after the import" in outputs_text([fd_2])


@pytest.mark.parametrize(("level", "kept", "filtered"),
                         [(None, "2", True), ("3", "3", True), ("0", "0", False)])
def test_the_users_log_level_is_kept_and_level_0_shows_every_line(level, kept, filtered):
    env = kernel_env()
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    probe = ("import os, sys, pdc_utils; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], "
             "any(type(f).__name__ == '_QuietFinder' for f in sys.meta_path), "
             "'tensorflow' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert shown == [kept, str(filtered), "False"]  # and importing pdc_utils loads no TF


def test_a_missing_prerequisite_shows_its_message_only_and_still_fails_papermill(
        isolated_run_dirs, tmp_path):
    cell = ('from pdc_utils import config\n'
            'config.require(config.models_dir("quick") / "f2_diverge.keras", '
            '"03_diverge_training")')
    book = notebook(cell)
    executed = execute(book, tmp_path, allow_errors=True)
    errors = [o for o in executed.cells[0].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "MissingPrerequisite"
    message = errors[0].evalue
    assert errors[0].traceback == [message]  # no "Traceback", no frames of pdc_utils' files
    assert "f2_diverge.keras does not exist: run notebook 03_diverge_training.ipynb first" in (
        message)

    # under papermill the cell still fails, and the run stops with the same error
    source = tmp_path / "papermill.ipynb"
    nbformat.write(book, str(source))
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                   cwd=str(tmp_path), progress_bar=False)
    assert failed.value.ename == "MissingPrerequisite" and failed.value.evalue == message


# --- issue 25: refusals as their message, and the run's lock, in a notebook's kernel --------

REFUSAL = 'from pdc_utils import config\nconfig.validate({"penalty": "u", "batch_size": 3})'
OWN_ERROR = 'import pdc_utils\nraise ValueError("a student\'s own error")'


def error_of(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return errors[0]


def test_a_refusal_shows_its_message_only_and_a_students_error_its_traceback(tmp_path):
    refused, own = execute(notebook(REFUSAL, OWN_ERROR), tmp_path, allow_errors=True).cells
    error = error_of(refused)
    assert error.ename == "ValueError"
    assert error.traceback == ["batch_size must be >= 4 with penalty 'u' (a U-statistic needs 4 "
                               "samples per batch), got batch_size=3; use a larger batch_size "
                               "or penalty 'v' (2 or more)"]
    shown = "\n".join(error_of(own).traceback)
    assert "a student's own error" in shown and len(error_of(own).traceback) > 1


def test_a_refusal_still_fails_papermill(tmp_path):
    source = tmp_path / "refused.ipynb"
    nbformat.write(notebook(REFUSAL, "print('never reached')"), str(source))
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                   cwd=str(tmp_path), progress_bar=False)
    assert failed.value.ename == "ValueError"
    assert "batch_size must be >= 4 with penalty 'u'" in failed.value.evalue
    executed = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert "never reached" not in outputs_text(executed.cells)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pdc_utils import locking
    with locking.run_lock(sys.argv[1], "train"):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_a_notebook_that_trains_takes_the_runs_lock_and_says_who_holds_it(isolated_run_dirs,
                                                                         tmp_path):
    """A kernel (JupyterLab, or papermill on the notebook directly) that trains into a run that
    `train` works on stops at once with the lock's message, alone, and fails papermill."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, "busy"], env=kernel_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        cell = ("from pdc_utils import locking\n"
                "with locking.training_lock('busy'):\n"
                "    print('trained')")
        source = tmp_path / "trains.ipynb"
        nbformat.write(notebook(cell), str(source))
        with pytest.raises(PapermillExecutionError) as failed:
            papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                       cwd=str(tmp_path), progress_bar=False)
        assert failed.value.ename == "RunInUse"
        assert f"run 'busy' is in use by process {holder.pid} (started " in (
            failed.value.evalue)
        executed = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
        error = error_of(next(c for c in executed.cells if c.cell_type == "code"))
        assert error.traceback == [failed.value.evalue]
    finally:
        holder.kill()
        holder.wait()

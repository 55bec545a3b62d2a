"""Run All on notebooks in JupyterLab in headless Chromium, as a student does, and report
every output a student would read as a problem.

    python tests/browser/check_lab.py [NOTEBOOK_DIR] [--notebooks 01 02 ...] [--screenshots DIR]

(``make lab-check`` runs it on the students' copies in ``student/``.) It starts JupyterLab
on NOTEBOOK_DIR (with the course's ``lab-settings``, on 127.0.0.1 with a random token),
opens each notebook, runs *Run › Run All Cells*, waits for the kernel, and reads the
notebook's own outputs: any error, any text on stderr (warnings, log lines) and any cell left
unexecuted is a problem. It also fails on a dialog left open (JupyterLab's news pop-up, a
kernel chooser). One screenshot per notebook goes to ``--screenshots`` (default:
``screenshots/`` beside NOTEBOOK_DIR), and the seconds each Run All took are printed.

The students' notebooks read the runs under ``runs/`` (or ``$PDC_RUNS_DIR``): run ``make
tutorial`` first, or the trainings of 02 and 03 happen inside the check. Exit status as
``check_book.py``: 0 all right, 1 problems (each listed), 2 not checked (what is missing).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_book import NotCheckable, start_browser  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]

# The notebook widget's model: executed cells, outputs, kernel state (JupyterLab 4 API,
# reachable because the server runs with expose_app_in_browser)
_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = [];
for (const cell of panel.content.model.cells) {
  if (cell.type !== "code") continue;
  cells.push({count: cell.executionCount, outputs: cell.outputs.toJSON(),
              source: cell.sharedModel.getSource().slice(0, 60)});
}
return {ready: panel.context.isReady && panel.sessionContext.isReady,
        status: kernel ? kernel.status : "none", cells: cells,
        dialogs: document.querySelectorAll(".jp-Dialog").length};
"""

_RUN_ALL = "window.jupyterapp.commands.execute('notebook:run-all-cells');"
_SHUTDOWN = """
const done = arguments[arguments.length - 1];
window.jupyterapp.shell.currentWidget.sessionContext.shutdown()
  .then(() => done(true), (err) => done(String(err)));
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(folder: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab serving ``folder``, with the course's settings and the app in the page."""
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        raise NotCheckable(f"{jupyter} not found: install the package (`make setup`)")
    command = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
               "--LabApp.expose_app_in_browser=True",
               f"--LabApp.app_settings_dir={PROJECT / 'lab-settings'}"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise NotCheckable(f"JupyterLab stopped at start: {server.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise NotCheckable("JupyterLab did not start within 120 s")


def wait_for(driver, condition, timeout: float, what: str):
    """Poll the notebook's state until ``condition(state)`` holds; the last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(_STATE)
        if state and condition(state):
            return state
        time.sleep(1.0)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def problems_in(name: str, state: dict) -> list[str]:
    """What a student would see as wrong in the executed notebook."""
    problems = []
    for k, cell in enumerate(state["cells"], 1):
        first_line = (cell["source"].splitlines() or [""])[0]
        where = f"{name}, code cell {k} ({first_line!r})"
        if cell["count"] is None:
            problems.append(f"{where}: not executed")
        for output in cell["outputs"]:
            kind = output.get("output_type")
            if kind == "error":
                problems.append(f"{where}: {output.get('ename')}: {output.get('evalue')}")
            elif kind == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", "")).strip()
                problems.append(f"{where}: stderr: {text[:300]}")
    if state["dialogs"]:
        problems.append(f"{name}: {state['dialogs']} dialog(s) open over the notebook")
    return problems


def check_notebook(driver, base: str, token: str, path: Path, screenshots: Path,
                   timeout: float) -> list[str]:
    """Open one notebook, Run All, wait for the kernel to finish, report its problems."""
    driver.get(f"{base}/lab/tree/{path.name}?token={token}")
    wait_for(driver, lambda s: s["ready"] and s["status"] == "idle", 180, f"{path.name} opening")
    started = time.monotonic()
    driver.execute_script(_RUN_ALL)
    # Run All stops at an error, leaving later cells unexecuted: done when the kernel is idle
    # and every cell ran, or an error was printed
    state = wait_for(driver, lambda s: s["status"] == "idle" and (
        all(c["count"] is not None for c in s["cells"])
        or any(o.get("output_type") == "error" for c in s["cells"] for o in c["outputs"])),
        timeout, f"Run All of {path.name}")
    print(f"{path.name}: Run All took {time.monotonic() - started:.0f} s", flush=True)
    screenshots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshots / f"{path.stem}.png"))
    driver.execute_async_script(_SHUTDOWN)
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]:
            print(f"  (browser console: {entry['message'][:200]})")
    return problems_in(path.name, state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook_dir", nargs="?", default=str(PROJECT / "student"))
    parser.add_argument("--notebooks", nargs="*", help="two-digit numbers (default: all)")
    parser.add_argument("--screenshots", help="where the screenshots go")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds one Run All may take (default 1800)")
    args = parser.parse_args(argv)
    folder = Path(args.notebook_dir).resolve()
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [p for p in notebooks if p.name[:2] in args.notebooks]
    if not notebooks:
        print(f"not checked: {folder} holds no numbered notebooks (make student writes them)")
        return 2
    screenshots = Path(args.screenshots or folder.parent / "screenshots")
    port, token = free_port(), secrets.token_hex(16)
    try:
        server = start_lab(folder, port, token)
        driver = start_browser()
    except NotCheckable as err:
        print(f"not checked: {err}")
        return 2
    problems = []
    try:
        for path in notebooks:
            problems += check_notebook(driver, f"http://127.0.0.1:{port}", token, path,
                                       screenshots, args.timeout)
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=60)
    for problem in problems:
        print(problem)
    print(f"{len(notebooks)} notebook(s) run in JupyterLab: "
          + (f"{len(problems)} problem(s)" if problems else "no error, warning or log output"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

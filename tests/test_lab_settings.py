"""``make lab`` and ``make student-lab`` open JupyterLab with the course's settings: no news
pop-up over the first notebook, no update check (lab-settings/overrides.json, passed as the
app settings directory; the user's home is not touched)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "lab-settings"
PLUGIN = "@jupyterlab/apputils-extension:notification"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(("target", "folder"), [("lab", "notebooks/"), ("student-lab", "student/")])
def test_the_lab_targets_pass_the_course_settings(target, folder):
    printed = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True,
                             text=True, check=True).stdout
    commands = [line for line in printed.splitlines() if "jupyter lab" in line]
    assert commands and all(line.endswith(f" {folder}") for line in commands), printed
    assert all(f"--LabApp.app_settings_dir='{SETTINGS}'" in line for line in commands), commands


def test_the_overrides_turn_the_news_and_update_check_off_as_jupyterlab_reads_them():
    from jupyterlab_server.settings_utils import _get_overrides

    overrides, error = _get_overrides(str(SETTINGS))
    assert not error
    assert overrides[PLUGIN] == {"fetchNews": "false", "checkForUpdates": False}
    assert json.loads((SETTINGS / "overrides.json").read_text()) == overrides


def test_the_overrides_are_valid_values_of_the_plugins_schema():
    schema_file = (Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas" / "@jupyterlab"
                   / "apputils-extension" / "notification.json")
    if not schema_file.exists():
        pytest.skip(f"JupyterLab's schemas are not at {schema_file}")
    properties = json.loads(schema_file.read_text())["properties"]
    values = json.loads((SETTINGS / "overrides.json").read_text())[PLUGIN]
    assert values["fetchNews"] in [option["const"] for option in properties["fetchNews"]["oneOf"]]
    assert properties["checkForUpdates"]["type"] == "boolean"

"""Shared test set-up: quiet TensorFlow, and runs/figures written to a temporary folder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def isolated_run_dirs(tmp_path, monkeypatch):
    """Point runs/ and figures/ at a temporary folder for the duration of a test."""
    monkeypatch.setenv("PDC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PDC_FIGURES_DIR", str(tmp_path / "figures"))
    return tmp_path

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


@pytest.fixture
def eager_steps(monkeypatch):
    """Training steps run eagerly (``PDC_EAGER_STEPS=1``, kernels included): for tests that
    train smoke networks of a few steps each to test what comes after the training. The
    compiled steps are tested where the training itself is (test_training, test_distribute,
    test_multi_worker)."""
    monkeypatch.setenv("PDC_EAGER_STEPS", "1")


#: The longest tests, started first and in this order: pytest-xdist hands out the first tests
#: to its two workers in turn, so the longest two run side by side from the start instead of
#: one of them after everything else (the suite's wall time is set by its longest worker).
LONGEST_FIRST = ("test_smoke_run_of_the_whole_series",
                 "test_smoke_run_of_the_paper_code_design_with_the_gal_penalty",
                 "test_a_killed_worker_stops_the_chief_and_both_resume",
                 "test_smoke_run_of_the_untrained_control_with_the_spread_term")


def pytest_collection_modifyitems(items):
    """Move the tests named in :data:`LONGEST_FIRST` to the front, in that order."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.originalname, len(rank)))

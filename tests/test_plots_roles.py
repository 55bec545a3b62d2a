"""One colour per role across notebooks 02-05, and whole epochs on the learning curves."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

from pdc_utils import plots

matplotlib.use("Agg")


@pytest.mark.parametrize(("name", "role"), [
    ("f1", "attacker"), ("f1_a2", "attacker"), ("f2_baseline", "baseline"),
    ("f2_baseline_s3", "baseline"), ("f2_diverge", "diverged"), ("f2_diverge_s1", "diverged"),
    ("chain_s0_net1", "chain net"), ("untrained", "other"),
    ("f2_baseline (shuffled rows)", "other"), ("f10", "other")])
def test_each_network_has_its_roles_colour(name, role):
    assert plots.role(name) == role
    assert plots.model_color(name) == plots.ROLE_COLORS[role]


def test_the_roles_colours_differ_and_the_tables_methods_share_them():
    trained = [plots.ROLE_COLORS[r] for r in ("attacker", "baseline", "diverged", "chain net")]
    assert len(set(trained)) == 4 and plots.ROLE_COLORS["other"] not in trained
    for method, role in (("source", "attacker"), ("baseline", "baseline"),
                         ("diverge", "diverged")):
        assert plots.model_color(method) == plots.ROLE_COLORS[role]


@pytest.mark.parametrize("epochs", [1, 3, 30])
def test_learning_curves_have_whole_epoch_ticks(epochs):
    history = pd.DataFrame({"epoch": range(epochs), "ce": 1.0, "val_ce": 1.0,
                            "accuracy": 0.5, "val_accuracy": 0.5})
    fig = plots.role_histories({"f1": history, "f2_baseline": history},
                               {"attacker": ["f1"], "baseline": ["f2_baseline"]},
                               ("ce", "accuracy"), titles={"ce": "cross-entropy"})
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= epochs]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert fig.axes[0].get_ylabel() == "cross-entropy" and fig.axes[1].get_ylabel() == "%"
    plots.close(fig)

"""Notebook 03's predict-then-run exercise (03.shrink_top): the check computes the value
itself, from the notebook's ``outputs``, and names the common mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from pdc_utils import exercises
from pdc_utils.exercises import check
from pdc_utils.features import row_normalized, top_direction


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch):
    monkeypatch.setattr(exercises, "_LATEST", {})


def said(capsys, *args) -> str:
    check(*args)
    return capsys.readouterr().out


def _outputs(seed=5, n=120):
    """f1's features, and f2_diverge's: a large coin flip over a small copy of f1's."""
    rng = np.random.default_rng(seed)
    f1 = rng.normal(size=(n, 6)) + 2.0
    coin = rng.choice([-1.0, 1.0], size=n)
    f2 = np.column_stack([6 * coin, f1 @ rng.normal(size=(6, 5)) + rng.normal(size=(n, 5))])
    return {"f1": {"features": f1}, "f2_diverge": {"features": f2 + 3.0}}


def test_shrinking_the_top_direction_is_computed_and_lands_near_the_rest(capsys):
    outputs = _outputs()
    normed = [row_normalized(outputs[n]["features"]) for n in ("f2_diverge", "f1")]
    centred = normed[0] - normed[0].mean(axis=0)
    v = np.linalg.svd(centred, full_matrices=False)[2][0]
    shrunk = centred - 0.9 * np.outer(centred @ v, v)
    by_hand = exercises._u_dcor(shrunk, normed[1])
    assert exercises._shrunk_top(outputs) == pytest.approx(by_hand, rel=1e-9)
    top = top_direction(outputs["f2_diverge"]["features"], np.zeros(120), outputs["f1"][
        "features"])
    assert exercises._shrunk_top(outputs, factor=0.0) == pytest.approx(top["u_dcor_rest"])
    assert exercises._shrunk_top(outputs, factor=1.0) == pytest.approx(top["u_dcor_all"])
    assert abs(by_hand - top["u_dcor_rest"]) < abs(by_hand - top["u_dcor_all"])  # (b)
    assert said(capsys, "03.shrink_top", by_hand, outputs) == "03.shrink_top: correct.\n"


def test_shrinking_the_top_direction_names_each_mistake(capsys):
    outputs = _outputs()
    for factor, told in [(0.0, "the rest's dCor², with the top direction removed"),
                         (10.0, "multiplies the top direction's coordinates by 10"),
                         (1.0, "the whole features' dCor², unchanged")]:
        out = said(capsys, "03.shrink_top", exercises._shrunk_top(outputs, factor=factor),
                   outputs)
        assert out.startswith("03.shrink_top: not yet - your answer") and told in out, out
    out = said(capsys, "03.shrink_top", exercises._shrunk_top(outputs, u_statistic=False),
               outputs)
    assert "the V-statistic dCor²" in out
    out = said(capsys, "03.shrink_top", exercises._shrunk_top(outputs, normalise=False),
               outputs)
    assert "row-normalise both first" in out
    assert "Hint: centre the row-normalised features" in said(capsys, "03.shrink_top", 0.123,
                                                               outputs)
    assert said(capsys, "03.shrink_top", None, outputs).startswith("03.shrink_top: not attempted")

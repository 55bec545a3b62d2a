"""Notebook 05's worked use of partial distance correlation: dependence through a common cause.

Two representations made from the same network's features ``z`` look strongly dependent, and
partial dCor given ``z`` tells whether anything beyond ``z`` links them:

- *only through z*: ``x`` and ``y`` are two noisy copies of ``z`` (the noise independent), so
  all their dependence goes through ``z``;
- *through z and a shared w*: each also carries a copy of the same extra variable ``w``, which
  ``z`` does not explain.

Copies, not arbitrary maps of ``z``: the projection of pdCor removes what lines up *linearly*
with z's U-centred distance matrix (notebook 01), and a noisy copy's distances are z's plus
noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ONLY_Z = "only through z"
Z_AND_W = "through z and a shared w"


def _unit_rms(a: np.ndarray) -> np.ndarray:
    """``a`` centred and scaled so that its rows' mean squared length is 1."""
    a = a - a.mean(axis=0)
    return a / np.sqrt(np.mean(np.sum(a**2, axis=1)))


def noisy_copies(z: np.ndarray, seed: int, noise: float = 0.5, w_dim: int = 2
                 ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``(z scaled, {case: (x, y)})`` for the two cases of the module docstring. ``z`` (n × d)
    is centred and scaled to unit mean squared row length; each copy adds independent Gaussian
    noise of mean squared row length ``noise²``; ``w`` (n × ``w_dim``) has unit mean squared
    row length, and y's copy of it has noise of the same size as the copies of z."""
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or len(z) < 4:
        raise ValueError(f"z must be an (n, d) array with n >= 4, got shape {z.shape}")
    if not noise > 0:
        raise ValueError(f"noise must be positive, got {noise}")
    rng = np.random.default_rng(seed)
    z = _unit_rms(z)

    def copy(a: np.ndarray) -> np.ndarray:
        return a + noise * rng.normal(size=a.shape) / np.sqrt(a.shape[1])

    w = _unit_rms(rng.normal(size=(len(z), w_dim)))
    x, y = copy(z), copy(z)
    return z, {ONLY_Z: (x, y), Z_AND_W: (np.c_[x, w], np.c_[y, copy(w)])}


def pdcor_table(z: np.ndarray, cases: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Per case, the bias-corrected dCor² of x and y and pdCor(x, y; z), by
    :mod:`pdc_utils.distance` in float64."""
    from pdc_utils import distance

    rows = [{"case": case,
             "U dCor²(x, y)": float(distance.u_distance_correlation_sqr(x, y)),
             "pdCor(x, y; z)": float(distance.partial_distance_correlation(x, y, z))}
            for case, (x, y) in cases.items()]
    return pd.DataFrame(rows).set_index("case")


def reading(table: pd.DataFrame) -> str:
    """The table's numbers in one sentence, case by case: the dependence of x and y before
    and after z is projected out."""
    parts = []
    for case, row in table.iterrows():
        parts.append(f"*{case}*: bias-corrected dCor²(x, y) = {row['U dCor²(x, y)']:.3f}, "
                     f"pdCor(x, y; z) = {row['pdCor(x, y; z)']:+.3f}")
    return "**This run.** " + "; ".join(parts) + "."

"""Checks for the notebooks' exercises.

Each exercise cell sets an answer (``None`` until the student fills it in) and calls
:func:`check`. A check never raises, so the series still runs end to end with papermill while
the exercises are unanswered; it prints what is right, or a hint about what is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check(name: str, answer: Any, expected: Any, *, rtol: float = 1e-2, atol: float = 1e-3,
          hint: str = "") -> None:
    """Compare ``answer`` with ``expected`` (numbers, arrays or exact values) and say so.

    Numbers and arrays are compared with ``np.allclose(answer, expected, rtol, atol)``; other
    values with ``==``; ``None`` counts as not attempted. It returns nothing, so a notebook
    shows only the verdict, not a stray value after it.
    """
    if answer is None:
        print(f"{name}: not attempted yet - replace None with your answer and run the cell again.")
        return
    try:
        ok = bool(np.allclose(np.asarray(answer, dtype=float), np.asarray(expected, dtype=float),
                              rtol=rtol, atol=atol))
    except (TypeError, ValueError):
        ok = answer == expected
    if ok:
        print(f"{name}: correct.")
    else:
        print(f"{name}: not yet." + (f" Hint: {hint}" if hint else ""))

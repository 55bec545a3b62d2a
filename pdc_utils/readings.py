"""Sentences that read a notebook's own numbers (notebooks 01 and 05), so that what a lesson
says about "this run" is computed from the run and true whatever the numbers are.

Each function takes the numbers a notebook cell computed and returns Markdown; the reasoning
that holds for any run stays in the notebook's prose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def monte_carlo_se(p: float, permutations: int) -> float:
    """The Monte-Carlo standard error of a permutation p-value estimated from ``permutations``
    random permutations, ``sqrt(p (1 - p) / B)``: the spread of the estimate over draws of the
    permutations (around the p-value all permutations would give)."""
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    return float(np.sqrt(p * (1 - p) / permutations))


def permutation_reading(p_values: Mapping[str, tuple[float, float]], permutations: int,
                        level: float = 0.05) -> str:
    """Notebook 01, section 5: for each test ``name -> (p by hand, p of the library)``, both
    from ``permutations`` permutations drawn differently, the two estimates, their Monte-Carlo
    standard error, how many standard errors apart they are, and whether they fall on the same
    side of ``level``."""
    sentences = []
    for name, (by_hand, library) in p_values.items():
        se = monte_carlo_se((by_hand + library) / 2, permutations)
        se_difference = float(np.sqrt(2) * se)  # two independent estimates
        apart = abs(by_hand - library)
        size = (f"{apart / se_difference:.1f} times the standard error of a difference of two "
                f"such estimates (about {se_difference:.3f})" if se_difference > 0 else
                "and their standard error is 0 only because both sit at 0 or 1")
        sides = ("on the same side of" if (by_hand < level) == (library < level)
                 else "on either side of")
        sentences.append(
            f"*{name}*: p = {by_hand:.3f} by hand and {library:.3f} from the library, "
            f"{sides} {level:g}. With {permutations} permutations each estimate has a "
            f"Monte-Carlo standard error of about {se:.3f}; the two differ by {apart:.3f}, "
            f"{size}.")
    return "**This run.** " + " ".join(sentences)


def speedup_reading(timing: Mapping[str, Mapping[int, float]], sizes: Sequence[int],
                    dim: int) -> str:
    """Notebook 01, section 6: how many times slower the broadcast form was than the Gram form
    at the sizes where both ran, and whether the factor grew with n in this run (d was fixed,
    so nothing is said about d)."""
    both = [n for n in sizes if n in timing["broadcast"]]
    if not both:
        return (f"**This run.** The broadcast form was skipped at every n (its n × n × d tensor "
                f"would exceed the limit at d = {dim}), so only the Gram form was timed.")
    factors = [timing["broadcast"][n] / timing["gram"][n] for n in both]
    parts = [f"{f:.1f} times at n = {n}" for n, f in zip(both, factors, strict=True)]
    parts[0] = parts[0].replace("times", "times the Gram form's time")
    measured = ", ".join(parts)
    if len(both) == 1:
        trend = "one size only, so this run says nothing about how the factor changes with n"
    elif all(b > a for a, b in zip(factors, factors[1:], strict=False)):
        trend = "the factor grew with every larger n"
    elif factors[-1] > factors[0]:
        trend = ("the factor was larger at the largest n than at the smallest, though not at "
                 "every step")
    else:
        trend = "the factor did not grow with n here (timings of small, fast calls are noisy)"
    faster = ("faster at every size where both ran" if min(factors) > 1
              else "not faster at every size")
    return (f"**This run** (d = {dim} fixed): the broadcast form took {measured}, so the Gram "
            f"form was {faster}; {trend}.")


def bias_by_n_reading(by_n, name: str) -> str:
    """Notebook 05, section 4: how the V- and U-statistic dCor² of ``name``'s and f1's
    features moved from the smallest to the largest n of the table ``by_n`` (columns ``n``,
    ``V dCor²``, ``U dCor²``), and how far apart the two were at each end."""
    first, last = by_n.iloc[0], by_n.iloc[-1]
    if len(by_n) == 1:
        return (f"**This run.** One n only ({int(first['n'])}): V dCor² {first['V dCor²']:.3f}, "
                f"U dCor² {first['U dCor²']:.3f}, so the table shows no trend.")
    gap_first = first["V dCor²"] - first["U dCor²"]
    gap_last = last["V dCor²"] - last["U dCor²"]
    change = ("narrower" if abs(gap_last) < abs(gap_first) else "not narrower")
    return (f"**This run** ({name} against f1): from n = {int(first['n'])} to "
            f"{int(last['n'])}, the V-statistic went from {first['V dCor²']:.3f} to "
            f"{last['V dCor²']:.3f} and the U-statistic from {first['U dCor²']:.3f} to "
            f"{last['U dCor²']:.3f}; V − U was {gap_first:+.3f} at the smallest n and "
            f"{gap_last:+.3f} at the largest, {change} at the largest n.")

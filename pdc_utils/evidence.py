"""What a run's transfer numbers show: differences over seed pairs, tests, and their correction.

A run scores every pair (baseline s, diverged s) on the adversarial images of every attacker.
For attack a, ε and attacker k, pair s gives one difference in points,

    d_sk = acc(diverged_s) − acc(baseline_s)      (same images for both)

and training randomness is what makes it vary from pair to pair, so the pairs are the unit of
every interval and test here. Two families of attackers are kept apart:

- ``f1``: attacker 0. Under the ``reference`` design with ``diverge_from="attacker"`` it is the
  network the diverged networks were penalised against ("transfer from the network I diverged
  from"); otherwise it is one more independent attacker, reported alone for comparison.
- ``others``: attackers 1 … K−1, never a reference of anyone. Pair s contributes the mean of
  d_sk over them ("transfer from networks I never saw"), so attacker-to-attacker variation
  averages out within a pair instead of counting as extra pairs.

Per (attack, ε, attackers): the mean over pairs, its 95 % t-interval, the two-sided paired
t-test p-value (H0: mean difference 0), and Holm's adjustment over the run's family — every
attacked (attack, ε, attackers) row — which keeps the chance of any false claim in the family
at 5 %. A study with several settings uses :func:`holm` and :func:`benjamini_hochberg` over all
of its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The attackers column's values: attacker 0, the mean over the independent attackers, and
#: the row of clean accuracy (which no attacker changes).
REFERENCE_ATTACKER, OTHER_ATTACKERS, NO_ATTACKER = "f1", "others", "none"
#: Seed pairs of the confirmatory study; a run with fewer is called an illustration.
CONFIRMATORY_PAIRS = 8


def _p_values(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``p_values`` as a float array, refused unless every non-NaN value is in [0, 1]."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a flat sequence, got an array of shape {p.shape}")
    bad = p[~np.isnan(p) & ((p < 0) | (p > 1))]
    if bad.size:
        raise ValueError(f"p-values must lie in [0, 1] (NaN for a missing test); got "
                         f"{', '.join(f'{v:g}' for v in bad[:3])}")
    return p


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: ``p_(i) · (m − i + 1)``, made monotone, capped at 1.

    Rejecting where the adjusted value is below α keeps the family-wise error rate at α for
    any dependence between the tests (the settings of a study share their baselines and
    attackers, so their tests are correlated). NaN stays NaN and does not count in m.
    """
    p = _p_values(p_values)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values): ``min_{j ≥ i} p_(j) · m / j``.

    Rejecting where q < 0.05 keeps the expected share of false claims among the claims at 5 %
    (under independence or positive dependence). Weaker than Holm, so it finds more. NaN stays
    NaN and does not count in m.
    """
    p = _p_values(p_values)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


#: The fewest seed pairs whose differences get a p-value: with two, the t-test has one degree
#: of freedom and its interval spans most of the real line, and two equal differences give a
#: spread of float rounding that would read as certainty.
MIN_TEST_PAIRS = 3
#: A spread of the differences below this share of their size (or of 1 point) is float
#: rounding: identical differences computed in another order differ by about 1e-15.
ROUNDING_SPREAD = 1e-9


def no_test_reason(d: Sequence[float] | np.ndarray) -> str | None:
    """Why the differences ``d`` get no p-value, or ``None`` if they can be tested.

    A t-test needs at least :data:`MIN_TEST_PAIRS` pairs and a spread that is more than float
    rounding (``sd ≤ 1e-9 · max(1, |mean|)``): a test of differences that do not vary would
    divide by rounding noise and call any mean certain.
    """
    d = np.asarray(d, dtype=float)
    if d.size < MIN_TEST_PAIRS:
        return (f"{d.size} seed pair{'s' if d.size != 1 else ''} (a test needs at least "
                f"{MIN_TEST_PAIRS})")
    if float(d.std(ddof=1)) <= ROUNDING_SPREAD * max(1.0, abs(float(d.mean()))):
        return "the pairs' differences do not vary beyond float rounding"
    return None


def t_summary(d: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Mean of ``d`` with its t-interval and the two-sided one-sample t-test of mean 0.

    ``mean ± t_{(1+level)/2, n−1} · sd / √n``. Differences that :func:`no_test_reason` refuses
    (fewer than 3 pairs, or a spread of float rounding) get NaN for the p-value, and for the
    interval too when there is no spread to build it from.
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}")
    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("t_summary needs at least one difference; got none")
    mean = float(d.mean())
    if n < 2:
        return {"difference": mean, "low": np.nan, "high": np.nan, "sd": np.nan,
                "p_value": np.nan}
    sd = float(d.std(ddof=1))
    if no_test_reason(d) is not None:
        flat = sd <= ROUNDING_SPREAD * max(1.0, abs(mean))
        half = np.nan if flat else float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n))
        return {"difference": mean, "low": mean - half, "high": mean + half, "sd": sd,
                "p_value": np.nan}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n))
    p = float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(n)), n - 1))
    return {"difference": mean, "low": mean - half, "high": mean + half, "sd": sd, "p_value": p}


def _check_margin(margin: float) -> float:
    if not (isinstance(margin, (int, float, np.floating)) and np.isfinite(margin)
            and margin > 0):
        raise ValueError(f"margin must be a positive number of points, not {margin!r}")
    return float(margin)


def tost(d: Sequence[float] | np.ndarray, margin: float) -> dict[str, float]:
    """Two one-sided t-tests (TOST) of the mean difference against ``±margin``.

    With ``se = sd/√n`` and ``n − 1`` degrees of freedom:

    - ``p_gain``: H0 mean ≥ +margin against mean < +margin, ``t = (mean − margin)/se``,
      lower tail. Small: a gain as large as the margin is ruled out.
    - ``p_loss``: H0 mean ≤ −margin against mean > −margin, ``t = (mean + margin)/se``,
      upper tail. Small: a loss as large as the margin is ruled out.
    - ``p_tost = max(p_gain, p_loss)``. Small: the mean lies within ±margin (equivalence).

    Differences :func:`no_test_reason` refuses give NaN.
    """
    from scipy import stats

    margin = _check_margin(margin)
    d = np.asarray(d, dtype=float)
    if no_test_reason(d) is not None:
        return {"p_gain": np.nan, "p_loss": np.nan, "p_tost": np.nan}
    n = d.size
    se = float(d.std(ddof=1)) / np.sqrt(n)
    mean = float(d.mean())
    p_gain = float(stats.t.cdf((mean - margin) / se, n - 1))
    p_loss = float(stats.t.sf((mean + margin) / se, n - 1))
    return {"p_gain": p_gain, "p_loss": p_loss, "p_tost": max(p_gain, p_loss)}


def _check_design(sd: float, n: int, alpha: float) -> None:
    if not (np.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be a positive spread of the pair differences, not {sd!r}")
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n (seed pairs) must be an integer of at least 2, not {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be a test level between 0 and 1 (e.g. 0.05), not "
                         f"{alpha!r}")


def t_test_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` to detect a mean difference
    ``effect`` when pair differences have spread ``sd``, with ``n`` pairs.

    Under the alternative ``t = (Z + λ)/√(Q/(n−1))`` with ``Z`` standard normal, ``Q ~
    χ²_{n−1}`` and ``λ = effect·√n/sd`` (a non-central t); the power
    ``P(t > c) + P(t < −c)``, ``c = t_{1−α/2, n−1}``, is the integral over ``Q`` of
    ``Φ(λ − c√(Q/(n−1))) + Φ(−λ − c√(Q/(n−1)))`` (scipy's non-central t gives NaN in the far
    tail, which this form does not).
    """
    from scipy import integrate, stats

    _check_design(sd, n, alpha)
    df, nc = n - 1, effect * np.sqrt(n) / sd
    c = stats.t.ppf(1 - alpha / 2, df)

    def integrand(q: float) -> float:
        shift = c * np.sqrt(q / df)
        return (stats.norm.cdf(nc - shift) + stats.norm.cdf(-nc - shift)) * stats.chi2.pdf(q, df)

    value, _ = integrate.quad(integrand, 0.0, np.inf, limit=200)
    return float(min(max(value, 0.0), 1.0))


def tost_power(margin: float, sd: float, n: int, alpha: float = 0.05,
               effect: float = 0.0) -> float:
    """Power of :func:`tost` at level ``alpha`` (each one-sided test) to rule out ±``margin``
    when the true mean difference is ``effect``, exactly.

    TOST rejects when ``|mean| < margin − c·s/√n`` (``c = t_{1−α, n−1}``, ``s`` the sample
    sd). Given ``s`` the mean is normal, so the power is the integral over the distribution
    of ``s`` (``(n−1)s²/σ² ~ χ²_{n−1}``) of
    ``Φ((margin − c s/√n − effect)/(σ/√n)) − Φ((−margin + c s/√n − effect)/(σ/√n))``.
    """
    from scipy import integrate, stats

    margin = _check_margin(margin)
    _check_design(sd, n, alpha)
    df = n - 1
    c = stats.t.ppf(1 - alpha, df)
    scale = sd / np.sqrt(n)
    s_max = margin * np.sqrt(n) / c  # beyond it the acceptance interval is empty

    def integrand(q: float) -> float:
        s = sd * np.sqrt(q / df)
        half = margin - c * s / np.sqrt(n)
        return (stats.norm.cdf((half - effect) / scale)
                - stats.norm.cdf((-half - effect) / scale)) * stats.chi2.pdf(q, df)

    q_max = df * (s_max / sd) ** 2
    value, _ = integrate.quad(integrand, 0.0, q_max, limit=200)
    return float(min(max(value, 0.0), 1.0))


def pairs_needed(power_of: Callable[[int], float], target: float = 0.8, most: int = 10_000) -> int:
    """The fewest pairs ``n ≥ 2`` with ``power_of(n) ≥ target`` (power grows with n)."""
    if not 0 < target < 1:
        raise ValueError(f"target power must be between 0 and 1 (e.g. 0.8), not {target!r}")
    low, high = 2, 2
    while power_of(high) < target:
        low, high = high + 1, high * 2
        if high > most:
            raise ValueError(f"more than {most} pairs would be needed for power {target}")
    while low < high:
        mid = (low + high) // 2
        if power_of(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return high


def _accuracy(per_example: pd.DataFrame) -> pd.DataFrame:
    """Accuracy in % per (attacker, attack, eps, model)."""
    keys = ["attacker", "attack", "eps", "model"]
    return (per_example.groupby(keys, sort=False)["correct"].mean() * 100.0).reset_index(
        name="accuracy")


def seed_differences(per_example: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                     attackers: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Diverged − baseline accuracy per attack, ε and attacker family, over seed pairs.

    ``per_example`` holds the rows of :func:`pdc_utils.attacks.transfer_evaluation` for every
    attacker, with an ``attacker`` column; ``attackers[0]`` is f1, the others independent
    (see the module's docstring). Columns: ``attack, eps, attackers, difference, low, high,
    sd, seeds_ahead, n_seeds, n_attackers, p_value, p_holm`` (``p_holm``: Holm over every
    attacked row of the table; NaN for the clean row, which is a cost, not a claim).
    """
    if "attacker" not in per_example:
        raise ValueError("per_example needs an 'attacker' column (one transfer evaluation per "
                         "attacker, concatenated)")
    missing = sorted(set(attackers) - set(per_example["attacker"]))
    if not attackers or missing:
        raise ValueError(f"attackers must name attackers of the table; missing: {missing}")
    unknown = sorted({name for pair in pairs for name in pair} - set(per_example["model"]))
    if not pairs or unknown:
        raise ValueError(f"pairs must be (baseline, diverged) names of models in the table; "
                         f"not in it: {unknown or 'no pairs given'} (its models: "
                         f"{sorted(set(per_example['model']))})")
    accuracy = _accuracy(per_example).set_index(["attacker", "attack", "eps", "model"])[
        "accuracy"]
    families = [(REFERENCE_ATTACKER, [attackers[0]])]
    if len(attackers) > 1:
        families.append((OTHER_ATTACKERS, list(attackers[1:])))
    settings = per_example[["attack", "eps"]].drop_duplicates()
    rows = []
    for attack, eps in settings.itertuples(index=False):
        groups = [(NO_ATTACKER, [attackers[0]])] if attack == "clean" else families
        for family, members in groups:
            d = np.array([np.mean([accuracy[(k, attack, eps, div)]
                                   - accuracy[(k, attack, eps, base)] for k in members])
                          for base, div in pairs])
            rows.append({"attack": attack, "eps": eps, "attackers": family,
                         **t_summary(d, level), "seeds_ahead": int((d > 0).sum()),
                         "n_seeds": d.size, "n_attackers": len(members)})
    table = pd.DataFrame(rows)
    columns = ["attack", "eps", "attackers", "difference", "low", "high", "sd", "seeds_ahead",
               "n_seeds", "n_attackers", "p_value"]
    table = table[columns]
    attacked = table["attack"] != "clean"
    table["p_holm"] = np.nan
    table.loc[attacked, "p_holm"] = holm(table.loc[attacked, "p_value"].to_numpy())
    return table


def _family_words(family: str, design: str, diverge_from: str) -> str:
    if family == OTHER_ATTACKERS:
        return "from independent attackers (never a reference)"
    if design == "reference" and diverge_from == "attacker":
        return "from f1, the network diverged from"
    return "from f1 (an independent attacker here)"


def verdict_text(gap: pd.DataFrame, *, run_name: str, dataset: str, design: str,
                 penalty: str, alpha: float, protocol: str, diverge_from: str = "attacker",
                 alpha_level: float = 0.05) -> str:
    """One paragraph stating what :func:`seed_differences` shows, computed from it.

    A difference is called a finding only where Holm's adjusted p-value is below
    ``alpha_level``; the text says how many comparisons the family had, and what a run with
    few pairs is (an illustration, not a result).
    """
    attacked = gap[gap["attack"] != "clean"]
    n = int(gap["n_seeds"].iloc[0])
    head = (f"Run {run_name} ({dataset}, design {design}, penalty {penalty}, alpha {alpha:g}, "
            f"diverge_from {diverge_from}, protocol {protocol}, {n} seed "
            f"pair{'s' if n != 1 else ''}): ")
    parts = []
    for family, rows in attacked.groupby("attackers", sort=False):
        parts.append(f"{_family_words(family, design, diverge_from)}, mean diverge − baseline "
                     f"accuracy from {rows['difference'].min():+.1f} to "
                     f"{rows['difference'].max():+.1f} points over {len(rows)} settings "
                     f"({int(rows['n_attackers'].iloc[0])} attacker(s) per pair)")
    text = head + "; ".join(parts)
    if n < 2:
        return text + ". One pair is one draw of training randomness: no interval, no test."
    clean = gap[gap["attack"] == "clean"].iloc[0]
    interval = ("" if np.isnan(clean["low"]) else
                 f" [{clean['low']:+.1f}, {clean['high']:+.1f}]")
    ending = (f"On clean images: {clean['difference']:+.1f}{interval}. "
              + (f"{n} pairs make an illustration, not a result: "
                 "bench/results/diverge_confirm.md holds the confirmatory study."
                 if n < CONFIRMATORY_PAIRS else ""))
    m = int(attacked["p_holm"].notna().sum())
    if m == 0:
        reason = no_test_reason(np.zeros(n)) or ("the pairs' differences do not vary beyond "
                                                 "float rounding")
        return text + f"; no p-value and no claim either way: {reason}. " + ending
    untested = len(attacked) - m
    if untested:
        text += (f" ({untested} of them get no test: their pairs' differences do not vary "
                 "beyond float rounding)")
    up = attacked[(attacked["p_holm"] < alpha_level) & (attacked["difference"] > 0)]
    down = attacked[(attacked["p_holm"] < alpha_level) & (attacked["difference"] < 0)]
    uncorrected = int((attacked["p_value"] < alpha_level).sum())

    def named(rows: pd.DataFrame) -> str:
        return ", ".join(f"{r.attack} ε={r.eps:g} ({r.attackers}: {r.difference:+.1f}, "
                         f"p_holm {r.p_holm:.3f})" for r in rows.itertuples())

    if len(up) or len(down):
        claim = (f"after Holm's correction over the {m} comparisons, the difference is "
                 f"significant at {alpha_level:g}"
                 + (f" in favour of diverging in {named(up)}" if len(up) else "")
                 + (" and" if len(up) and len(down) else "")
                 + (f" against it in {named(down)}" if len(down) else ""))
    else:
        claim = (f"after Holm's correction over the {m} comparisons no difference is "
                 f"significant at {alpha_level:g} ({uncorrected} of {m} would be without the "
                 f"correction): this run finds no evidence of an effect either way, which "
                 f"is not evidence that there is none")
    return text + "; " + claim + ". " + ending


#: The committed tables of the studies (``bench/results/``), by the name notebook 06 uses,
#: with the script that writes each: the validation study, the first confirmatory run (8
#: pairs), the power analysis written before the powered confirmatory run, and that run.
STUDY_TABLES = {
    "selection": ("diverge_selection.json", "bench/diverge_study.py"),
    "study": ("diverge_study_differences.csv", "bench/diverge_study.py"),
    "confirm": ("diverge_confirm.csv", "bench/diverge_confirm.py"),
    "differences": ("diverge_confirm_differences.csv", "bench/diverge_confirm.py"),
    "contrasts": ("diverge_confirm_contrasts.csv", "bench/diverge_confirm.py"),
    "power": ("diverge_power.csv", "bench/diverge_power.py"),
    "powered": ("diverge_confirm_powered.csv", "bench/diverge_confirm.py --out "
                "diverge_confirm_powered (see diverge_power.md)"),
    "powered_differences": ("diverge_confirm_powered_differences.csv",
                            "bench/diverge_confirm.py --report-only --out "
                            "diverge_confirm_powered"),
    "powered_contrasts": ("diverge_confirm_powered_contrasts.csv",
                          "bench/diverge_confirm.py --report-only --out "
                          "diverge_confirm_powered"),
}
#: The first confirmatory run's name for the gradient-alignment setting; later tables call
#: it by its penalty's name.
SETTING_ALIASES = {"gal": "grad_align"}


def study_tables(folder: str | Path) -> dict[str, Any]:
    """Read the studies' tables (:data:`STUDY_TABLES`) from ``folder``.

    ``selection`` is the JSON the validation study's written rules produced; the others are
    DataFrames: ``study`` (validation differences of every setting), ``confirm`` and
    ``powered`` (one row per network of the first and the powered confirmatory run),
    ``differences`` / ``powered_differences`` (their diverged − baseline tests),
    ``contrasts`` / ``powered_contrasts`` (paired contrasts between settings) and ``power``
    (the power analysis). Settings are named as :data:`SETTING_ALIASES` says. A missing file
    is named with the script that writes it, before anything is read; a file that cannot be
    read, or lacks the columns the notebook uses, is named as damaged.
    """
    import json

    folder = Path(folder)
    missing = [f"{name} (made by {script})" for name, script in STUDY_TABLES.values()
               if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(missing)}: these tables are committed with the "
            "repository; in a checkout without them, run the scripts named (the validation "
            "study first)")
    tables: dict[str, Any] = {}
    for key, (name, _) in STUDY_TABLES.items():
        path = folder / name
        try:
            if path.suffix == ".json":
                tables[key] = json.loads(path.read_text())
                if not isinstance(tables[key], dict):
                    raise ValueError("not a JSON object")
                continue
            table = pd.read_csv(path)
        except (ValueError, pd.errors.EmptyDataError, pd.errors.ParserError) as err:
            raise ValueError(f"{path} is damaged ({err}): restore the committed copy with "
                             f"`git checkout -- {path.name}` in {folder}") from None
        if table.empty:
            raise ValueError(f"{path} is damaged (it has no rows): restore the committed copy "
                             f"with `git checkout -- {path.name}` in {folder}")
        if "setting" in table:
            table["setting"] = table["setting"].replace(SETTING_ALIASES)
        tables[key] = table
    return tables


def holm_counts(differences: pd.DataFrame, level: float = 0.05) -> pd.DataFrame:
    """Per setting of a confirmatory ``differences`` table: its attacked tests, and how many
    favour diverging (difference > 0) or go against it with Holm's p (within the setting)
    below ``level``. The one-line reading notebooks 03 and 04 give of the committed table."""
    attacked = differences[differences["attack"] != "clean"]
    kept = attacked["p_holm"] < level
    rows = [{"setting": setting, "tests": len(group),
             "favour": int((kept[group.index] & (group["difference"] > 0)).sum()),
             "against": int((kept[group.index] & (group["difference"] < 0)).sum())}
            for setting, group in attacked.groupby("setting", sort=False)]
    return pd.DataFrame(rows).set_index("setting")


def largest_difference_reading(gap: pd.DataFrame, level: float = 0.05) -> str:
    """Markdown that reconciles a run's largest difference with its verdict, computed from
    :func:`seed_differences`' table: how many pairs are ahead, how wide the t-interval is at
    this number of pairs (the t multiplier ``t_{0.975, n−1}`` against 1.96), what the paired
    t-test and Holm's correction over the run's tests make of it, and how often that many
    pairs would all be ahead by chance (a sign test, ``2 · 0.5^n``).

    A few pairs can all point one way with a mean of several points and still give no
    finding: that is what a run of three pairs is, an illustration.
    """
    from scipy import stats

    attacked = gap[gap["attack"] != "clean"]
    if attacked.empty:
        raise ValueError("the table has no attacked rows (only clean accuracy)")
    row = attacked.loc[attacked["difference"].abs().idxmax()]
    n = int(row["n_seeds"])
    name = (f"{row['attack'].upper()} at ε = {row['eps']:g} from "
            + ("f1" if row["attackers"] == REFERENCE_ATTACKER else "the independent attackers"))
    ahead = int(row["seeds_ahead"])
    text = (f"**The largest difference of this run**, {name}: {row['difference']:+.1f} points, "
            f"with {ahead} of {n} pairs ahead of their baselines.")
    if n < MIN_TEST_PAIRS or np.isnan(row["p_value"]):
        why = (f"a test needs at least {MIN_TEST_PAIRS} pairs" if n < MIN_TEST_PAIRS
               else "the pairs' differences do not vary beyond float rounding")
        return text + (f" There is no test here ({why}): {n} pair{'s' if n != 1 else ''} "
                       "are draws of training randomness, not evidence either way.")
    t = float(stats.t.ppf(0.975, n - 1))
    m = int(attacked["p_value"].notna().sum())
    excludes = row["low"] > 0 or row["high"] < 0
    sign_p = min(1.0, 2 * 0.5 ** n) if ahead in (0, n) else None
    text += (f" With {n} pairs the 95 % interval is the mean ± {t:.2f} · sd/√{n} (the "
             f"multiplier is 1.96 for many pairs): [{row['low']:+.1f}, {row['high']:+.1f}], "
             f"which {'excludes' if excludes else 'includes'} 0. The paired t-test gives "
             f"p = {row['p_value']:.3f}; Holm's correction over the run's {m} tests makes it "
             f"{row['p_holm']:.3f}, {'below' if row['p_holm'] < level else 'above'} "
             f"{level:g}.")
    if sign_p is not None:
        text += (f" All {n} pairs pointing the same way happens by chance with probability "
                 f"2 · 0.5^{n} = {sign_p:.2f} when diverging changes nothing.")
    return text + (" A run of this many pairs is an illustration; the confirmatory runs "
                   "(notebook 06) are the evidence." if n < CONFIRMATORY_PAIRS else "")


#: The committed confirmatory runs, in the order they ran: (name of their tables in
#: ``bench/results/``, what to call them).
CONFIRMATIONS = (("diverge_confirm", "the first confirmatory run"),
                 ("diverge_confirm_powered", "the powered confirmatory run"))


def tost_verdict(row: Any, margin: float, level: float = 0.05) -> str:
    """What the Holm-adjusted two one-sided tests of one row rule out, in a few words:
    ``"within ±5 points"`` (both sides), ``"a gain larger than 5 points is ruled out"`` (the
    upper side only) or ``"a gain of 5 points cannot be ruled out"``."""
    if row.p_tost_holm < level:
        return f"an effect beyond ±{margin:g} points is ruled out"
    if row.p_gain_holm < level:
        return f"a gain larger than {margin:g} points is ruled out"
    return f"a gain of {margin:g} points cannot be ruled out"


def confirmation_reading(folder: str | Path, margin: float = 5.0,
                         level: float = 0.05) -> tuple[Path | None, str]:
    """The newest committed confirmatory run's figure and a reading of every run's tables in
    Markdown: per setting, the number of pairs, the tests Holm keeps (within the setting) in
    favour of diverging and against it, and, where the run has the two one-sided tests, what
    they rule out at PGD (or FGM) at the largest ε from f1. Notebooks 03 and 04 show it."""
    folder = Path(folder)
    figure, parts = None, []
    for name, title in CONFIRMATIONS:
        path = folder / f"{name}_differences.csv"
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path)
            table["setting"] = table["setting"].replace(SETTING_ALIASES)
            counts = holm_counts(table)
        except (ValueError, KeyError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"{path} is damaged ({err}); it is committed with the repository: "
                             "restore it with git checkout") from None
        if (folder / f"{name}.png").is_file():
            figure = folder / f"{name}.png"
        words = []
        for setting, row in counts.iterrows():
            rows = table[(table["setting"] == setting) & (table["attack"] != "clean")]
            text = (f"`{setting}` ({int(rows['n_seeds'].max())} pairs): {row.favour} in favour "
                    f"and {row.against} against, of {row.tests}")
            if "p_tost_holm" in rows:
                strongest = "pgd" if "pgd" in set(rows["attack"]) else rows["attack"].iloc[0]
                top = rows[(rows["attack"] == strongest) & (rows["attackers"] == "f1")
                           & (rows["eps"] == rows["eps"].max())].iloc[0]
                text += (f"; {strongest.upper()} ε = {top.eps:g} from f1 "
                         f"{top.difference:+.1f} [{top.low:+.1f}, {top.high:+.1f}]: "
                         + tost_verdict(top, margin, level))
            words.append(text)
        parts.append(f"**{title.capitalize()}** (tests Holm keeps within each setting): "
                     + "; ".join(words) + ".")
    if not parts:
        return None, ("(no confirmatory table in " + str(folder) + ": run "
                      "`python bench/diverge_confirm.py` to make one)")
    return figure, "\n\n".join(parts)


def powered_reading(differences: pd.DataFrame, margin: float, level: float = 0.05) -> str:
    """Markdown reading of a confirmatory table with the two one-sided tests (TOST): per
    setting, the tests Holm keeps (with their sizes), the primary test (the strongest attack
    at the largest ε from f1) with its interval and TOST verdict, and how many of the
    setting's tests rule out a gain larger than ``margin``. True whatever the numbers."""
    lines = []
    attacked = differences[differences["attack"] != "clean"]
    for setting, rows in attacked.groupby("setting", sort=False):
        n = int(rows["n_seeds"].max())
        kept = rows[rows["p_holm"] < level]
        strongest = "pgd" if "pgd" in set(rows["attack"]) else rows["attack"].iloc[0]
        top = rows[(rows["attack"] == strongest) & (rows["attackers"] == REFERENCE_ATTACKER)
                   & (rows["eps"] == rows["eps"].max())].iloc[0]
        ruled_out = int((rows["p_gain_holm"] < level).sum())
        found = ("Holm keeps none of its " + str(len(rows)) + " tests" if kept.empty else
                 f"Holm keeps {len(kept)} of its {len(rows)} tests: " + ", ".join(
                     f"{r.attack.upper()} ε = {r.eps:g} from {r.attackers} "
                     f"({r.difference:+.1f})" for r in kept.itertuples()))
        lines.append(
            f"- **`{setting}`** ({n} pairs): {found}. {strongest.upper()} ε = {top.eps:g} from "
            f"f1: {top.difference:+.1f} [{top.low:+.1f}, {top.high:+.1f}] points, "
            f"{tost_verdict(top, margin, level)}. A gain larger than {margin:g} points is "
            f"ruled out in {ruled_out} of its {len(rows)} tests.")
    return "\n".join(lines)

"""How many seed pairs the powered confirmation needs: a power analysis written before it runs.

The first confirmatory run (``diverge_confirm.py``, 8 pairs per setting) found no gain of the
dCor penalty, but with 8 pairs its tests could only detect large ones. This script fixes, from
that run's committed spreads and **before any network of the powered run is trained**:

- the smallest gain worth detecting, ``DELTA`` points of adversarial accuracy (about half the
  paper's CIFAR-10 PGD gains, which are +6.5 to +9.9 points);
- the equivalence margin of the two one-sided tests (TOST), ``MARGIN`` points: "a gain (or
  loss) larger than the margin is ruled out" is said only where its Holm-adjusted one-sided
  p-value is below 0.05;
- the primary test: PGD at the largest ε, from f1, of the ``reference`` setting (the validation
  study's largest effect, and the paper's claim about transfer from the network diverged from);
- the number of pairs: the fewest that give **every** test of the ``reference`` setting 80 %
  power for ``DELTA`` at Holm's first step within the setting's family of 12 tests
  (α = 0.05 / 12), each with its spread in the first run.

It then reports, at that number of pairs, every test's power for ``DELTA`` and its TOST power
(if the true difference is 0) for the settings the powered run trains. Writes
``bench/results/diverge_power.{md,csv}``; refuses to replace them unless ``--write``.

    python bench/diverge_power.py [--write]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pdc_utils import evidence

RESULTS = Path(__file__).parent / "results"
#: The smallest gain (points) a user of diverge training would care about.
DELTA = 5.0
#: The TOST equivalence margin (points), fixed before the powered run.
MARGIN = 5.0
LEVEL = 0.05
TARGET_POWER = 0.8
#: Tests per setting's Holm family: 2 attacks × 3 ε × 2 attacker families.
FAMILY = 12
#: The settings the powered confirmation trains (keep_dim and paper_code stay at 8 pairs).
POWERED_SETTINGS = ("reference", "control", "grad_align")
#: f1's seed in the powered run; every other seed of it derives from this one.
POWERED_BASE_SEED = 7000
PRIMARY = {"setting": "reference", "attack": "pgd", "attackers": "f1"}


def analysis(differences: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """The number of pairs, and per (setting, test) of the powered settings: the first run's
    sd, power at its 8 pairs and at the chosen number, TOST power, pairs needed alone."""
    attacked = differences[differences["attack"] != "clean"].copy()
    step = LEVEL / FAMILY  # Holm's first, most demanding, step
    primary = attacked[(attacked["setting"] == PRIMARY["setting"])
                       & (attacked["attack"] == PRIMARY["attack"])
                       & (attacked["attackers"] == PRIMARY["attackers"])]
    primary = primary[primary["eps"] == primary["eps"].max()].iloc[0]
    rows = []
    for r in attacked[attacked["setting"].isin(POWERED_SETTINGS)].itertuples():
        rows.append({
            "setting": r.setting, "attack": r.attack, "eps": r.eps, "attackers": r.attackers,
            "sd_first_run": r.sd, "n_first_run": int(r.n_seeds),
            "power_first_run": evidence.t_test_power(DELTA, r.sd, int(r.n_seeds), step),
            "pairs_needed": evidence.pairs_needed(
                lambda k, sd=r.sd: evidence.t_test_power(DELTA, sd, k, step), TARGET_POWER),
            "primary": bool(r.Index == primary.name)})
    table = pd.DataFrame(rows)
    n = int(table.loc[table["setting"] == PRIMARY["setting"], "pairs_needed"].max())
    table["power"] = [evidence.t_test_power(DELTA, sd, n, step) for sd in table["sd_first_run"]]
    table["power_sd_plus_25pc"] = [evidence.t_test_power(DELTA, 1.25 * sd, n, step)
                                   for sd in table["sd_first_run"]]
    table["tost_power"] = [evidence.tost_power(MARGIN, sd, n, step)
                           for sd in table["sd_first_run"]]
    return n, table


def report(n: int, table: pd.DataFrame, paper: pd.DataFrame) -> str:
    gains = [paper.loc["diverge", c] - paper.loc["baseline", c]
             for c in ("pgd_0.03", "pgd_0.05", "pgd_0.10")]
    primary = table[table["primary"]].iloc[0]
    reference = table[table["setting"] == PRIMARY["setting"]]
    worst = reference.loc[reference["sd_first_run"].idxmax()]
    lines = [
        "# Power analysis for the powered confirmation (written before it ran)",
        "",
        "Inputs: the first confirmatory run's spreads over its 8 seed pairs "
        "(`diverge_confirm_differences.csv`). Fixed here, before any network of the powered "
        "run was trained:",
        "",
        f"- **Smallest gain worth detecting: {DELTA:g} points** of adversarial accuracy, "
        "about half the paper's CIFAR-10 PGD gains (" + ", ".join(f"{g:+.1f}" for g in gains)
        + " points at ε = 0.03, 0.05, 0.10).",
        f"- **Equivalence margin: ±{MARGIN:g} points.** Beside every t-test the report gives "
        "the two one-sided tests (TOST): \"a gain larger than "
        f"{MARGIN:g} points is ruled out\" where the one-sided test of a gain ≥ {MARGIN:g} "
        "rejects, after Holm within the setting; \"cannot be ruled out\" otherwise.",
        f"- **Tests and corrections: α = {LEVEL:g}, Holm within each setting's family of "
        f"{FAMILY} tests** (FGM and PGD × 3 ε × attackers f1 and the others), as in the first "
        "run; the TOST p-values get their own Holm correction within the same family.",
        f"- **Primary test:** PGD ε = {primary['eps']:g} from f1, `reference` setting (the "
        "validation study's largest effect, +10.1 points, and the paper's claim about "
        "transfer from the network diverged from).",
        f"- **Pairs: {n}** — the fewest that give every test of the `reference` setting "
        f"{TARGET_POWER:.0%} power to detect {DELTA:g} points at Holm's first step (α = "
        f"{LEVEL:g}/{FAMILY}), each test with its spread in the first run (the largest, "
        f"{worst['sd_first_run']:.2f}, is {worst['attack'].upper()} ε = {worst['eps']:g} from "
        f"{worst['attackers']}). The primary test (sd {primary['sd_first_run']:.2f}) had "
        f"{primary['power_first_run']:.0%} power with the first run's 8 pairs and has "
        f"{primary['power']:.0%} with {n}.",
        "",
        "The powered run trains reference, control and grad_align (the first run's `gal`: the "
        "squared cosine of input gradients to a frozen f1, a variant of GAL) at "
        f"{n} pairs each, with the "
        "first run's 4 attackers' scheme (f1 and 3 independent attackers) on fresh seeds. "
        "`keep_dim` and `paper_code` stay at the first run's 8 pairs (two cores do not give "
        "the time); their verdicts keep the first run's power.",
        "",
        f"**Seeds** (base {POWERED_BASE_SEED}, never used before): f1 {POWERED_BASE_SEED}, "
        f"independent attackers {POWERED_BASE_SEED + 900001}–{POWERED_BASE_SEED + 900003}, "
        f"pairs {POWERED_BASE_SEED + 1}–{POWERED_BASE_SEED + n}, the control's untrained "
        f"reference {POWERED_BASE_SEED + 800000}. The validation study used 0, 1–5, "
        "900001–900002 (and 10001–10005, 20001–20005 in its chains), the earlier test-split "
        "study 0–5, the first confirmation 5000, 5001–5008, 905001–905003, 805000 (and "
        "15001–15008, 25001–25008), the `quick` profile 3000, 3001–3003, 903001–903002.",
        "",
        "The command: `python bench/diverge_confirm.py --seeds "
        f"{n} --base-seed {POWERED_BASE_SEED} --settings reference,control,grad_align "
        f"--margin {MARGIN:g} --out diverge_confirm_powered`.",
        "",
        "A spread estimated from 8 pairs is itself uncertain: the column *sd +25 %* gives the "
        "power if the true spread is a quarter larger than the first run's.",
        "",
        f"## Every test of the powered settings at {n} pairs",
        "",
        f"Power: of the two-sided t-test at α = {LEVEL:g}/{FAMILY} for a difference of "
        f"{DELTA:g} points. TOST power: of ruling out ±{MARGIN:g} points at α = {LEVEL:g}/"
        f"{FAMILY} per side if the true difference is 0. Needed: pairs for {TARGET_POWER:.0%} "
        "power for that test alone.",
        "",
        "| setting | test | sd (first run) | power at 8 | needed | power | power, sd +25 % | "
        "TOST power |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        name = f"{r.attack.upper()} {r.eps:g} from {r.attackers}" + (" (primary)"
                                                                     if r.primary else "")
        lines.append(f"| {r.setting} | {name} | {r.sd_first_run:.2f} | "
                     f"{r.power_first_run:.2f} | {r.pairs_needed} | {r.power:.2f} | "
                     f"{r.power_sd_plus_25pc:.2f} | {r.tost_power:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="replace bench/results/diverge_power.{md,csv} if they exist")
    args = parser.parse_args()
    targets = [RESULTS / "diverge_power.md", RESULTS / "diverge_power.csv"]
    if any(t.exists() for t in targets) and not args.write:
        raise SystemExit(f"error: {targets[0]} exists and was committed before the powered "
                         "run; --write replaces it (it should not change after that run)")
    differences = pd.read_csv(RESULTS / "diverge_confirm_differences.csv")
    differences["setting"] = differences["setting"].replace({"gal": "grad_align"})
    paper = pd.read_csv(Path(evidence.__file__).parent / "paper_table1.csv")
    paper = paper[paper["dataset"] == "cifar10"].set_index("method")
    n, table = analysis(differences)
    text = report(n, table, paper)
    table.to_csv(targets[1], index=False, float_format="%.4f")
    targets[0].write_text(text)
    print(text)


if __name__ == "__main__":
    main()

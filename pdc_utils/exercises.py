"""The notebooks' exercises: their checks, and the expected answers, which live here.

A notebook's exercise cell sets an answer (``None`` until the student fills it in), a cell
tagged ``solution`` holds the reference answer, and a third cell calls
``check(exercise_id, answer, *data)`` with plain names only: the expected answer is computed
*here* from ``data`` (or fixed here), so no notebook cell shows it.
``python -m pdc_utils student-copies --out DIR`` writes the notebooks without their solution
cells and lecturer notes, for a lecturer to hand out.

Four kinds of exercise:

- a number or array, compared with ``np.allclose``;
- a name (a string), compared exactly;
- a multiple choice, a letter, compared with the stored SHA-256 of the right letter (so the
  key is not written in clear here either);
- a function the student implements, called on inputs made here and compared with the
  package's own implementation.

A check never raises (the series runs end to end with papermill while exercises are
unanswered) and returns nothing: it prints ``correct``, ``not yet`` with a hint,
``not attempted``, or ``not a valid answer`` saying what the exercise expects when the answer
has the wrong type or shape (a list or the text ``"1/100"`` for a number, a number for a
function), so that such an answer is neither judged right by broadcasting nor taken for an
unanswered exercise. A wrong number that a common mistake explains (dCor for dCor², the U- for
the V-statistic, a percentage for a fraction, the rounded printed value, ...) is told that
mistake instead of the hint; a right multiple choice is told why it is right.

Each check's latest outcome is kept in the kernel, so that :func:`score` can say how many of a
notebook's exercises are correct; :func:`grade_notebooks` reads the same outcomes back from
executed notebooks, for ``python -m pdc_utils grade DIR``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NOT_ATTEMPTED = "not attempted yet - replace None with your answer and run the cells again."


@dataclass(frozen=True)
class Exercise:
    """``kind`` is ``value``, ``name``, ``choice`` or ``function``; ``expected(*data)`` gives
    the expected value (or, for ``function``, ``(inputs, reference function)`` cases).

    ``mistakes(expected, *data)`` (value exercises) gives the values that common mistakes
    produce from the same data, keyed by the sentence that names the mistake: a wrong answer
    equal to one of them is told that sentence instead of ``hint``. ``explanation`` (choice
    exercises) is printed after a right answer: why it is right and the others are not.

    ``shape_mistakes`` maps an answer's shape (for a value exercise expecting another shape)
    to the sentence that names the mistake that gives it (``np.corrcoef``'s 2 × 2 matrix for
    one correlation). ``too_low`` / ``too_high`` (predict-then-run exercises, whose expected
    value is what the run measured) are said to a wrong answer no mistake explains, by the
    side it is on, instead of the hint: they give the direction, never the value.
    """

    kind: str
    expected: Callable[..., Any]
    hint: str
    rtol: float = 1e-4
    atol: float = 1e-6
    mistakes: Callable[..., dict[str, Any]] | None = None
    explanation: str = ""
    shape_mistakes: dict[tuple[int, ...], str] | None = None
    too_low: str = ""
    too_high: str = ""


def _sha(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()


# --------------------------------------------------------------------- expected answers


def _dcor(x, y) -> float:
    from pdc_utils.distance import distance_correlation_sqr

    return float(distance_correlation_sqr(np.asarray(x, np.float64), np.asarray(y, np.float64)))


def _u_dcor(x, y) -> float:
    from pdc_utils.distance import u_distance_correlation_sqr

    return float(u_distance_correlation_sqr(np.asarray(x, np.float64),
                                            np.asarray(y, np.float64)))


def _fewest_permutations(level: float) -> int:
    """The fewest permutations B with which a permutation test can report p < ``level``: its
    smallest p-value is 1 / (B + 1)."""
    return int(np.floor(1 / level))  # 1 / (B + 1) < level  <=>  B > 1 / level - 1


def _distance_matrices():
    rng = np.random.default_rng(11)
    cases = []
    for n, d in ((6, 1), (9, 3), (12, 5)):
        x = rng.normal(size=(n, d))
        cases.append(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)))
    return cases


def _centring_cases(which: str):
    from pdc_utils import distance

    reference = distance.double_centered if which == "double" else distance.u_centered
    return [((a,), lambda a, f=reference: np.asarray(f(a))) for a in _distance_matrices()]


def _objective_cases():
    from pdc_utils.objective import feature_penalty

    rng = np.random.default_rng(12)

    def reference(logits, labels, features, reference_features, alpha):
        logits = np.asarray(logits, np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ce = -np.mean(log_p[np.arange(len(labels)), labels])
        return ce + alpha * float(feature_penalty(features, [reference_features], True, "v"))

    cases = []
    for n, alpha in ((16, 1.0), (32, 0.05)):
        args = (rng.normal(size=(n, 10)).astype(np.float32), rng.integers(0, 10, n),
                rng.normal(size=(n, 8)).astype(np.float32),
                rng.normal(size=(n, 12)).astype(np.float32), alpha)
        cases.append((args, reference))
    return cases


def _sgd_cases():
    """Notebook 02's optimiser update: Keras' SGD with momentum on the gradient plus the
    coupled weight decay, from a given momentum buffer; ``[new_w, new_velocity]``. The inputs
    are read-only, so an update made in place fails loudly instead of changing the reference's
    inputs."""
    import keras

    rng = np.random.default_rng(15)

    def reference(w, g, velocity, lr, momentum, weight_decay):
        variable = keras.Variable(np.asarray(w, np.float32))
        optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
        optimizer.build([variable])
        optimizer.momentums[0].assign(np.asarray(velocity, np.float32))
        optimizer.apply([np.asarray(g + weight_decay * w, np.float32)], [variable])
        return np.stack([np.asarray(variable), np.asarray(optimizer.momentums[0])])

    cases = []
    for shape, lr, momentum, weight_decay in (((6,), 0.1, 0.9, 5e-4), ((3, 4), 0.05, 0.5, 0.01)):
        arrays = [rng.normal(size=shape) for _ in range(3)]
        for array in arrays:
            array.setflags(write=False)
        cases.append(((*arrays, lr, momentum, weight_decay), reference))
    return cases


def _logit_labels(outputs, onehot, name) -> str:
    """Notebook 05: whose logits depend more on the labels (U-statistic), f1's or ``name``'s."""
    values = {n: _u_dcor(outputs[n]["logits"], onehot) for n in ("f1", name)}
    return max(values, key=values.get)


def _pdcor_swapped(penultimate, base, div) -> float:
    """Notebook 05, exercise 4: pdCor(φ_div, φ_base; φ_f1), the answer's pdCor with X and Y
    swapped, in float64."""
    from pdc_utils.distance import partial_distance_correlation

    x, y, z = (np.asarray(penultimate[k], np.float64) for k in (div, base, "f1"))
    return float(partial_distance_correlation(x, y, z))


def _pgd_cases():
    import tensorflow as tf

    from pdc_utils.attacks import pgd

    rng = np.random.default_rng(13)
    w = tf.constant(rng.normal(size=(12, 4)), tf.float32)

    def model(x):
        return tf.reshape(x, [tf.shape(x)[0], -1]) @ w

    cases = []
    for eps, seed in ((0.05, 1), (0.2, 2)):
        x = tf.constant(rng.uniform(size=(8, 2, 2, 3)), tf.float32)
        y = tf.constant(rng.integers(0, 4, 8), tf.int64)
        noise = tf.random.stateless_uniform(x.shape, [seed, 0], -eps, eps)  # as pgd draws it

        def reference(m, x, y, e, step, steps, noise, seed=seed):
            return np.asarray(pgd(m, x, e, step, steps, y=y, rand_init=True, seed=seed))

        cases.append(((model, x, y, eps, 0.01, 5, noise), reference))
    return cases


def _transfer_gap(table, attacks, eps_grid) -> float:
    column = f"{'pgd' if 'pgd' in attacks else 'fgm'}_{max(eps_grid):.2f}"
    by_method = table.set_index("method")[column]
    return float(by_method["baseline"] - by_method["source"])


def _strongest_sd(gap, attacks, eps_grid) -> float:
    """The spread over pairs of the strongest attack at the largest ε, from f1."""
    strongest = "pgd" if "pgd" in attacks else "fgm"
    row = gap[(gap["attack"] == strongest) & (gap["eps"] == max(eps_grid))
              & (gap["attackers"] == "f1")]
    return float(row["sd"].iloc[0])


def _halfwidth(gap, attacks, eps_grid, pairs: int = 34) -> float:
    """Half-width of the 95 % t-interval with ``pairs`` pairs of the row's spread."""
    from scipy import stats

    return float(stats.t.ppf(0.975, pairs - 1) * _strongest_sd(gap, attacks, eps_grid)
                 / np.sqrt(pairs))


def _halfwidth_mistakes(expected, gap, attacks, eps_grid) -> dict[str, float]:
    sd = _strongest_sd(gap, attacks, eps_grid)
    n_run = int(gap["n_seeds"].iloc[0])
    return {
        "that is 1.96 · sd/√34: with a sample's sd the multiplier is t's quantile with 33 "
        "degrees of freedom, a little larger": 1.959964 * sd / np.sqrt(34),
        "that is the whole width: the half-width is half of it": 2 * expected,
        "that is t · sd without dividing by √34: the interval is for the mean": expected
        * np.sqrt(34),
        "that is this run's own half-width: the question asks for 34 pairs": _halfwidth(
            gap, attacks, eps_grid, n_run) if n_run > 1 else np.nan}


def _pairs_for_3_points(sd, level, m, effect: float = 3.0) -> int:
    """Pairs for 80 % power to detect ``effect`` points at Holm's first step (level / m)."""
    from pdc_utils import evidence

    return evidence.pairs_needed(lambda n: evidence.t_test_power(effect, sd, n, level / m))


def _pairs_for_3_points_mistakes(expected, sd, level, m) -> dict[str, int]:
    from scipy import stats

    from pdc_utils import evidence

    z = stats.norm.ppf(1 - level / m / 2) + stats.norm.ppf(0.8)
    return {
        "that is the number without Holm's correction: the first step tests at level / m":
            evidence.pairs_needed(lambda n: evidence.t_test_power(3.0, sd, n, level)),
        "that is for a 5-point gain: the question asks for 3 points":
            _pairs_for_3_points(sd, level, m, effect=5.0),
        "that is the normal approximation ((z + z)·sd/δ)², which ignores that the t-test "
        "estimates the spread: the exact power needs a few more pairs":
            int(np.ceil((z * sd / 3.0) ** 2))}


def _budget(shown, images, attacks, eps_show) -> float:
    adversarial = np.asarray(shown[f"{attacks[0]} ε={eps_show}"])
    return float(np.max(np.abs(adversarial - np.asarray(images))))


def _reverse(nets, images, labels, eps, protocol, mean, std) -> float:
    from pdc_utils import attacks

    source = attacks.logits_fn(nets["f2_diverge"])
    adversarial = attacks.craft(source, images, "fgm", eps, protocol=protocol, mean=mean,
                                std=std)
    predictions = np.argmax(nets["f1"](adversarial, training=False)[0], axis=1)
    return 100 * float(np.mean(predictions == labels))


def _upen_dim() -> float | None:
    import pandas as pd

    from pdc_utils import config

    path = config.results_dir("upen") / "feature_dcor.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path)
    rows = table[(table["reference"] == "f1") & table["model"].str.startswith("f2_diverge")]
    return float(rows["effective_dim"].mean())


def _shrunk_top(outputs, factor: float = 0.1, normalise: bool = True,
                u_statistic: bool = True) -> float:
    """Notebook 03, exercise 4: U-statistic dCor² with f1's row-normalised features of
    ``f2_diverge``'s row-normalised features with their coordinate on the top principal
    direction multiplied by ``factor`` (0.1: shrunk tenfold; 0: removed; 10: grown). The
    other arguments make the common mistakes' values."""
    prepare = _rows if normalise else np.asarray
    phi, phi_f1 = (np.asarray(prepare(outputs[n]["features"]), np.float64)
                   for n in ("f2_diverge", "f1"))
    centred = phi - phi.mean(axis=0)
    top = np.linalg.svd(centred, full_matrices=False)[2][0]
    changed = centred - (1.0 - factor) * np.outer(centred @ top, top)
    return _u_dcor(changed, phi_f1) if u_statistic else _dcor(changed, phi_f1)


def _shrunk_top_mistakes(value: float, outputs) -> dict[str, float]:
    return _squares(value) | {
        _V_FOR_U: _shrunk_top(outputs, u_statistic=False),
        "your answer is the rest's dCor², with the top direction removed; the exercise keeps "
        "it, a tenth as long": _shrunk_top(outputs, factor=0.0),
        "your answer multiplies the top direction's coordinates by 10; divide them by 10":
        _shrunk_top(outputs, factor=10.0),
        "your answer is for the features as they are; row-normalise both first "
        "(features.row_normalized)": _shrunk_top(outputs, normalise=False),
        "your answer is the whole features' dCor², unchanged; shrink the top direction first":
        _shrunk_top(outputs, factor=1.0)}


def _bh_cases():
    from pdc_utils.evidence import benjamini_hochberg

    rng = np.random.default_rng(14)
    cases = [rng.uniform(size=n) ** 2 for n in (5, 12, 40)]
    cases.append(np.array([0.01, 0.04, 0.03, 0.2, 0.04]))  # ties and a running minimum
    return [((p,), benjamini_hochberg) for p in cases]


def _bh_count(differences, level) -> float:
    from pdc_utils.evidence import benjamini_hochberg

    attacked = differences[differences["attack"] != "clean"]
    return float((benjamini_hochberg(attacked["p_value"].to_numpy()) < level).sum())


def _bh_count_mistakes(expected, differences, level) -> dict[str, float]:
    from pdc_utils.evidence import holm

    p = differences.loc[differences["attack"] != "clean", "p_value"].to_numpy()
    return {"that is the count without any correction (raw p-values below level): adjust "
            "them with your bh_by_hand first": float((p < level).sum()),
            "that is the count with Holm's adjusted values: this exercise asks for "
            "Benjamini–Hochberg's": float((holm(p) < level).sum())}


# --------------------------------------------------------------------- common mistakes
# Each gives {sentence naming the mistake: the value it produces}, from the expected value and
# the exercise's data; only called for a wrong answer, so the extra statistics cost nothing
# when the answer is right.

_U_FOR_V = ("your answer is the U-statistic dCor² (u_distance_correlation_sqr); this exercise "
            "asks for the V-statistic (distance_correlation_sqr)")
_V_FOR_U = ("your answer is the V-statistic dCor² (distance_correlation_sqr); this exercise "
            "asks for the U-statistic (u_distance_correlation_sqr)")


def _squares(value: float) -> dict[str, float]:
    """dCor given where dCor² is asked, and dCor² squared once more."""
    found = {}
    if value > 0:  # a U-statistic dCor² can be negative: it has no square root
        found["your answer is the square root of the expected value: dCor where dCor² is asked "
              "(square it, or use the function whose name ends in _sqr)"] = np.sqrt(value)
    found["your answer is the square of the expected value: dCor² squared once more (the "
          "functions whose names end in _sqr already return dCor²)"] = value**2
    return found


def _v_mistakes(value: float, x, y) -> dict[str, float]:
    """For a V-statistic dCor² of ``x`` and ``y``: dCor, its square, the U-statistic."""
    return _squares(value) | {_U_FOR_V: _u_dcor(x, y)}


def _raw_feature_mistakes(value: float, outputs) -> dict[str, float]:
    """For notebook 02's dCor² of the raw features: also the row-normalised features' (the
    table's value, which the exercise asks to compare with)."""
    f2, f1 = outputs["f2_baseline"]["features"], outputs["f1"]["features"]
    return _v_mistakes(value, f2, f1) | {
        "your answer is dCor² of the row-normalised features (the table's); this exercise asks "
        "for the raw features": _dcor(_rows(f2), _rows(f1))}


def _u_feature_mistakes(value: float, outputs) -> dict[str, float]:
    """For notebook 03's U-statistic dCor² of row-normalised features: the V-statistic, and the
    U-statistic of the features as they are."""
    f2, f1 = outputs["f2_diverge"]["features"], outputs["f2_baseline"]["features"]
    return _squares(value) | {
        _V_FOR_U: _dcor(_rows(f2), _rows(f1)),
        "your answer is the U-statistic dCor² of the features as they are; row-normalise both "
        "first (features.row_normalized)": _u_dcor(f2, f1)}


def _cka_mistakes(value: float, feats, name) -> dict[str, float]:
    """For notebook 05's linear CKA: the same formula without centring the columns."""
    x, y = (np.asarray(feats[k], np.float64) for k in ("f1", name))
    return {"your answer is CKA without centring: subtract each column's mean from both "
            "feature arrays first": np.linalg.norm(y.T @ x) ** 2
            / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))}


EXERCISES: dict[str, Exercise] = {
    # 01 · distance correlation
    "01.pearson": Exercise(
        "value", lambda x: np.corrcoef(x, x**2)[0, 1],
        "compute this sample's r from x_ex and x_ex ** 2 (np.corrcoef)",
        mistakes=lambda value, x: {
            "0 is r in the population (x symmetric around 0); the exercise asks for this "
            "sample's r, which is small but not exactly 0": 0.0},
        shape_mistakes={(2, 2): "np.corrcoef(a, b) gives the 2 × 2 matrix of correlations; "
                        "r of a with b is one of its off-diagonal entries"}),
    "01.dcor": Exercise("value", lambda x: _dcor(x, x**2),
                        "D.distance_correlation_sqr takes 1-D arrays too",
                        mistakes=lambda value, x: _v_mistakes(value, x, x**2)),
    "01.scaling": Exercise("value", lambda x, y: _dcor(x, y),
                           "a global scale multiplies dCov(X, Y) and sqrt(dVar(X)) alike",
                           mistakes=_v_mistakes),
    "01.permutations": Exercise(
        "value", lambda: _fewest_permutations(0.001),
        "the observed pairing counts as one of the permutations", rtol=0.0, atol=0.5,
        too_low="with that few permutations the test cannot report a p-value below 0.001, "
        "however strong the dependence (the run above shows what it reported)",
        too_high="that many permutations reach below 0.001, but fewer do too: the question "
        "asks for the fewest"),
    "01.pdcor_self": Exercise("value", lambda: 0.0,
                              "what is the residual P_Z(X) when Z's matrix is X's own?"),
    "01.double_centring": Exercise(
        "function", lambda: _centring_cases("double"),
        "subtract the column means and the row means, add back the grand mean"),
    "01.u_centring": Exercise(
        "function", lambda: _centring_cases("u"),
        "divide row and column sums by n - 2, the grand sum by (n-1)(n-2); zero diagonal"),
    "01.bias_128d": Exercise(
        "value", lambda v_values: float(np.mean(v_values)),
        "compare with section 3's V-statistic at n = 64, where the data had 3 dimensions",
        rtol=0.0, atol=0.15,
        too_low="the run's mean is well above your prediction: the V-statistic's bias grows "
        "with the dimension next to n",
        too_high="the run's mean is well below your prediction"),
    # 02 · baseline training
    "02.accuracy": Exercise(
        "value", lambda outputs: 100 * np.mean(outputs["f1"]["predictions"]
                                               == outputs["f1"]["labels"]),
        "compare predictions with labels, average, times 100", rtol=1e-6),
    "02.raw_dcor": Exercise(
        "value", lambda outputs: _dcor(outputs["f2_baseline"]["features"],
                                       outputs["f1"]["features"]),
        "the raw `features` arrays of both networks, as float64, no row normalisation",
        mistakes=_raw_feature_mistakes),
    "02.scaled_dcor": Exercise(
        "value", lambda outputs: _dcor(outputs["f2_baseline"]["features"],
                                       outputs["f1"]["features"]),
        "a global scale changes dCov and dVar alike", mistakes=_raw_feature_mistakes),
    "02.why_dependent": Exercise(
        "choice", lambda: _sha("b"), "the two networks share neither initial weights nor batches",
        explanation="both networks learn to predict the same labels from the same images, so "
        "the features of each are functions of the same image content, and so depend on each "
        "other. Not (a): each network starts from its own seed. Not (c): dCor pairs the two "
        "networks' features image by image, so the shared test images are how the dependence "
        "is measured, not its cause."),
    "02.sgd_step": Exercise(
        "function", _sgd_cases,
        "section 3's two update formulas, with its g: the gradient of the whole loss L(w), "
        "L2 term included", rtol=1e-5),
    # 03 · diverge training
    "03.bias_batch": Exercise(
        "choice", lambda: _sha("b"), "what happens to the V-statistic's bias as n grows?",
        explanation="the V-statistic's bias comes from the i = j terms, a share of about 1/n "
        "of the sum, so it shrinks as the batch grows; a larger batch makes the V penalty "
        "reward collapse less, but never removes the reward."),
    "03.u_dcor": Exercise(
        "value", lambda outputs: _u_dcor(_rows(outputs["f2_diverge"]["features"]),
                                         _rows(outputs["f2_baseline"]["features"])),
        "row-normalise both feature arrays first (features.row_normalized)",
        mistakes=_u_feature_mistakes),
    "03.objective": Exercise(
        "function", _objective_cases,
        "mean CE of the logits, plus alpha times the V-statistic dCor² of the row-normalised "
        "features (objective.feature_penalty does the second part)", rtol=1e-4),
    "03.shrink_top": Exercise(
        "value", _shrunk_top,
        "centre the row-normalised features; the top direction is the first right singular "
        "vector (np.linalg.svd), and a row's coordinate on it is a dot product",
        mistakes=_shrunk_top_mistakes),
    "03.upen": Exercise("value", _upen_dim, "read runs/upen/results/feature_dcor.csv",
                        rtol=1e-3),
    # 04 · attacks
    "04.transfer_gap": Exercise("value", _transfer_gap,
                                "the `baseline` row minus the `source` row of `table`, in the "
                                "column of the attack and ε", rtol=1e-6),
    "04.budget": Exercise("value", _budget,
                          "the largest absolute pixel change between `shown[...]` and `images`"),
    "04.reverse": Exercise("value", _reverse,
                           "craft on adv.logits_fn(nets['f2_diverge']), score with nets['f1']",
                           rtol=1e-6),
    "04.pgd_random": Exercise("function", _pgd_cases,
                              "start from clip(x + noise, 0, 1), then the steps of "
                              "pgd_by_hand, always projecting around the clean x", rtol=1e-5),
    "04.halfwidth": Exercise("value", _halfwidth,
                             "t.ppf(0.975, 33) times that row's sd, divided by √34",
                             mistakes=_halfwidth_mistakes),
    # 05 · comparing networks
    "05.cka": Exercise("value", lambda feats, name: _cka(feats["f1"], feats[name]),
                       "centre the columns of both, then ||YᵀX||² / (||XᵀX|| ||YᵀY||)",
                       mistakes=_cka_mistakes),
    "05.labels": Exercise("name", lambda table, name: table["U dCor² with labels"]
                          .loc[["f1", name]].idxmax(), "look at the U column of `with_labels`"),
    "05.symmetric": Exercise("value", _pdcor_swapped,
                             "partial_distance_correlation(x, y, z) of the penultimate "
                             "features; the check swaps x and y"),
    "05.logit_labels": Exercise(
        "name", _logit_labels,
        "u_distance_correlation_sqr of outputs[name]['logits'] (as float64) with onehot, for "
        "'f1' and for div; answer with the name of the larger"),
    # 06 · is the effect real?
    "06.familywise": Exercise("value", lambda m, level: 1 - (1 - level) ** m,
                              "no test false: each independently with probability 1 − level"),
    "06.bh": Exercise("function", _bh_cases,
                      "scale the i-th smallest by m / i, then a running minimum from the largest "
                      "down, and put the values back in the original order"),
    "06.bh_count": Exercise("value", _bh_count,
                            "all settings' attacked rows (attack != 'clean') form one family",
                            mistakes=_bh_count_mistakes),
    "06.more_settings": Exercise(
        "choice", lambda: _sha("b"), "the winner is the largest of more noisy zeros",
        explanation="the maximum of more draws of the same noise is larger on average, so the "
        "more settings a study compares, the more its winner's own estimate overstates it."),
    "06.pairs_3pt": Exercise("value", _pairs_for_3_points,
                             "the fewest n with evidence.t_test_power(3.0, sd, n, level / m) "
                             "at least 0.8 (evidence.pairs_needed finds it)",
                             mistakes=_pairs_for_3_points_mistakes),
}


def _rows(features):
    from pdc_utils.features import row_normalized

    return row_normalized(features)


def _cka(x, y) -> float:
    from pdc_utils.compare import linear_cka

    return linear_cka(x, y)


# --------------------------------------------------------------------- checking

OUTCOMES = ("correct", "not yet", "not attempted", "invalid", "not checked")
"""What a check can conclude; ``not checked``: the data it needs is not there yet, or (for
:func:`score` and :func:`grade_notebooks`) its check has not run."""

_SAYS = {"correct": "correct", "not yet": "not yet", "not attempted": "not attempted",
         "invalid": "not a valid answer", "not checked": "cannot be checked yet"}
"""How a check's printed verdict starts, after ``<exercise id>: ``, for each outcome."""

_OUTCOME_OF = {words: outcome for outcome, words in _SAYS.items()}

_LATEST: dict[str, str] = {}
"""Each exercise's latest outcome in this kernel, for :func:`score`."""


class _Invalid(Exception):
    """An answer of the wrong type or shape; the message says what was expected instead."""


class _NotReady(Exception):
    """The data an exercise is checked against does not exist yet (e.g. another run's table);
    its own class, so that a student's function raising ``KeyError`` is not mistaken for it."""


def _describe(value: Any) -> str:
    """A short description of a value for a message: its type and what it holds."""
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list | tuple | set | dict):
        kind = type(value).__name__
        if not value:
            return f"an empty {kind}"
        if all(item is None for item in value):
            return f"a {kind} of None only (replace None itself with your answer)"
        if not isinstance(value, dict):
            return f"a {kind} of {len(value)} values"
    if isinstance(value, bool | np.bool_):
        return f"bool {value} (a yes/no value, not a number)"
    shape = getattr(value, "shape", ())
    if shape:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# a number or arithmetic in quotes, such as "0.01" or "1/100": the quotes are the only mistake
_ARITHMETIC = re.compile(r"[\d\s.eE+\-*/()]*\d[\d\s.eE+\-*/()]*")


def _numbers(value: Any, expected: Any, expects: str,
             shape_mistakes: dict[tuple[int, ...], str] | None = None) -> np.ndarray:
    """``value`` as a float array if it is numeric with the shape of ``expected``; else
    :class:`_Invalid` that starts with ``expects`` (e.g. "this exercise expects") and, if
    ``shape_mistakes`` names the mistake that gives the answer's shape, says it."""
    shape = np.shape(expected)
    wanted = "one number such as 0.01" if not shape else f"an array of shape {shape}"
    if isinstance(value, str):
        quoted = "; write it without quotes" if _ARITHMETIC.fullmatch(value.strip()) else ""
        raise _Invalid(f"{expects} {wanted}, got {_describe(value)}{quoted}")
    try:
        values = np.asarray(value)
    except (ValueError, TypeError):  # e.g. a ragged list
        values = None
    if values is None or values.dtype.kind not in "iuf" or values.shape != shape:
        told = (shape_mistakes or {}).get(values.shape) if values is not None else None
        raise _Invalid(f"{expects} {wanted}, got {_describe(value)}"
                       + (f" - {told}" if told else ""))
    return values.astype(float)


def _close(a: Any, b: Any, exercise: Exercise) -> bool:
    return bool(np.allclose(a, b, rtol=exercise.rtol, atol=exercise.atol))


def _rounded_to(values: np.ndarray, expected: np.ndarray,
                decimals_tried: tuple[int, ...] = (4, 3, 2, 1)) -> int | None:
    """The most decimals (of ``decimals_tried``; 1 to 4 as the notebooks print) to which
    ``expected`` rounds to ``values`` exactly, if any (a rounded 0 does not count: it says
    nothing)."""
    for decimals in decimals_tried:
        rounded = np.round(expected, decimals)
        if np.any(rounded != 0) and np.allclose(values, rounded, rtol=1e-12, atol=1e-12):
            return decimals
    return None


def _mistake(exercise: Exercise, values: np.ndarray, expected: np.ndarray,
             data: tuple) -> str | None:
    """The common mistake a wrong numeric answer shows, if one explains it: not a finite
    number, one of the exercise's own ``mistakes``, a percentage for a fraction or the other way
    round, the expected value rounded as printed. A mistake value that is itself close to the
    expected value or to 0 is not used: it could not tell the mistake from another."""
    if not np.all(np.isfinite(values)):
        return "your answer is not a finite number (nan or inf): a step of its computation failed"
    candidates: dict[str, Any] = {}
    if exercise.mistakes is not None:
        try:
            candidates.update(exercise.mistakes(expected, *data))
        except (LookupError, OSError):  # the data lack what a mistake is computed from
            pass
    candidates["your answer is 100 times the expected value (a percentage, where a fraction is "
               "asked)"] = 100 * expected
    candidates["your answer is the expected value divided by 100 (a fraction, where a "
               "percentage is asked)"] = expected / 100
    candidates["your answer is the expected value with the opposite sign: subtract the other "
               "way round"] = -expected
    for sentence, value in candidates.items():
        value = np.asarray(value, dtype=float)
        if (value.shape == values.shape and np.all(np.isfinite(value))
                and not _close(value, expected, exercise) and _tells(values, value, exercise)):
            return sentence
    decimals = _rounded_to(values, expected)
    if decimals is not None:
        return (f"your answer matches to {decimals} decimal{'s' * (decimals > 1)}: use the "
                "unrounded value (the variable, not the printed number)")
    if _rounded_to(values, 100 * expected, (2, 1, 0)) is not None:
        return ("your answer is a rounded percentage, where a fraction is asked: give the "
                "unrounded fraction (between 0 and 1 for a probability)")
    if _rounded_to(values, expected / 100, (4, 3, 2)) is not None:
        return ("your answer is a rounded fraction, where a percentage is asked: give the "
                "unrounded percentage (100 times the fraction)")
    return None


def _tells(values: np.ndarray, value: np.ndarray, exercise: Exercise) -> bool:
    """Whether an answer equal to a mistake's ``value`` shows that mistake: a value close to 0
    shows it only when both are exactly 0 (a mistake that gives 0 itself, such as a
    population value); otherwise a 0 could come from any mistake."""
    if _close(value, 0, exercise):
        return bool(np.all(value == 0) and np.all(values == 0))
    return _close(values, value, exercise)


def _judge(exercise: Exercise, answer: Any, data: tuple) -> tuple[bool | None, str | None]:
    """Whether ``answer`` is right (``None`` if it was not attempted) and, for a wrong number,
    the common mistake it shows (see :func:`_mistake`), if any.

    Raises :class:`_Invalid` for an answer of the wrong type or shape, :class:`_NotReady` when
    the expected answer cannot be computed yet.
    """
    if answer is None:
        return None, None
    if exercise.kind == "function":
        if not callable(answer):
            raise _Invalid(f"this exercise expects a function (def ...), got {_describe(answer)}")
        for inputs, reference in exercise.expected():
            given = answer(*inputs)
            if given is None:
                return None, None
            expected = np.asarray(reference(*inputs), dtype=float)
            if not _close(_numbers(given, expected, "your function should return"), expected,
                          exercise):
                return False, None
        return True, None
    if exercise.kind == "choice" and not (isinstance(answer, str) and len(answer.strip()) == 1):
        raise _Invalid(f"this exercise expects one letter in quotes such as 'a', got "
                       f"{_describe(answer)}")
    if exercise.kind == "name" and not isinstance(answer, str):
        raise _Invalid(f"this exercise expects a name in quotes (a string), got "
                       f"{_describe(answer)}")
    try:
        expected = exercise.expected(*data)
    except (LookupError, OSError) as err:  # the notebook's data lacks what the check reads
        raise _NotReady(f"the data this exercise is checked against lacks it "
                        f"({type(err).__name__}: {err})") from err
    if expected is None:
        raise _NotReady("the data this exercise is checked against is not there yet")
    if exercise.kind == "choice":
        return _sha(answer) == expected, None
    if exercise.kind == "name":  # "F1" and " f1 " name f1 too
        return answer.strip().lower() == str(expected).strip().lower(), None
    values = _numbers(answer, expected, "this exercise expects", exercise.shape_mistakes)
    expected = np.asarray(expected, dtype=float)
    if _close(values, expected, exercise):
        return True, None
    mistake = _mistake(exercise, values, expected, data)
    if mistake is None and (exercise.too_low or exercise.too_high):
        mistake = exercise.too_low if np.all(values < expected) else exercise.too_high
    return False, mistake


def _assess(exercise: Exercise, answer: Any, data: tuple) -> tuple[str, str]:
    """The outcome of ``answer`` (one of :data:`OUTCOMES`) and the verdict to print for it,
    which starts with the outcome's words in :data:`_SAYS`."""
    try:
        verdict, mistake = _judge(exercise, answer, data)
    except _NotReady as err:
        return "not checked", f"cannot be checked yet: {err}. Hint: {exercise.hint}"
    except _Invalid as err:
        return "invalid", (f"not a valid answer: {err}. Change the answer and run the cells "
                           "again.")
    except Exception as err:  # a student's function may fail in any way
        return "not yet", (f"not yet - your answer raised {type(err).__name__}: {err}. "
                           f"Hint: {exercise.hint}")
    if verdict is None:
        return "not attempted", NOT_ATTEMPTED
    if verdict:
        why = f" Why: {exercise.explanation}" if exercise.explanation else ""
        return "correct", f"correct.{why}"
    if mistake:
        return "not yet", f"not yet - {mistake}."
    return "not yet", f"not yet. Hint: {exercise.hint}"


def _data_names(exercise: Exercise) -> list[str]:
    """The names of the data an exercise's check is computed from (none for a function
    exercise, whose cases are made here); parameters with defaults are the module's own."""
    if exercise.kind == "function":
        return []
    return [name for name, parameter in inspect.signature(exercise.expected).parameters.items()
            if parameter.default is inspect.Parameter.empty]


def _check_data(exercise_id: str, data: tuple) -> None:
    """Refuse a call of ``check`` without the data its expected answer is computed from, or
    with ``None`` for them (a cell above not run), in one line that names them; before any
    work, so the student is not told that their answer failed."""
    names = _data_names(EXERCISES[exercise_id])
    call = f"check({exercise_id!r}, answer{''.join(', ' + n for n in names)})"
    if len(data) != len(names):
        needs = f"needs {', '.join(names)}" if names else "takes no data"
        raise TypeError(f"this exercise's check {needs} after the answer, as in the notebook: "
                        f"{call}; got {len(data)} data argument{'s' * (len(data) != 1)}")
    missing = [name for name, value in zip(names, data, strict=True) if value is None]
    if missing:
        raise ValueError(f"this exercise's check got None for {', '.join(missing)}: run the "
                         f"cells above that make {'it' if len(missing) == 1 else 'them'} first, "
                         f"then {call}")


def check(exercise_id: str, answer: Any, *data: Any) -> None:
    """Say whether ``answer`` to exercise ``exercise_id`` is right, with a hint if not (or the
    common mistake the answer shows, or for a right choice why it is right).

    ``data`` are the notebook's objects the expected answer is computed from. Never raises for
    a wrong answer (an answer that fails to run counts as not yet right); returns nothing. The
    outcome is kept for :func:`score`. A wrong call raises, in one line that names what was
    wrong: ``ValueError`` for an unknown exercise or ``None`` for its data, ``TypeError`` for
    missing or extra data.
    """
    if exercise_id not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; known: {', '.join(EXERCISES)}")
    _check_data(exercise_id, data)
    outcome, verdict = _assess(EXERCISES[exercise_id], answer, data)
    _LATEST[exercise_id] = outcome
    print(f"{exercise_id}: {verdict}")


def _exercises_of(notebook: str | int | os.PathLike) -> tuple[str, list[str]]:
    """A notebook's two-digit number (from ``3``, ``"03"`` or ``"03_diverge_training"``) and
    its exercise ids, in the series' order."""
    found = re.match(r"\d+", Path(str(notebook)).name)
    number = f"{int(found.group()):02d}" if found else str(notebook)
    return number, [e for e in EXERCISES if e.startswith(f"{number}.")]


def score(notebook: str | int) -> None:
    """Print how many of a notebook's exercises (``"03"`` or ``3`` for notebook 03) are correct
    by their latest check in this kernel, and list the others by outcome; an exercise whose
    check has not run in this kernel counts as ``not checked``. Returns nothing.

    ``ValueError`` for anything but a notebook number (an int, or its digits as text such as
    ``"01"`` or a notebook's file name), or a notebook without exercises."""
    known = sorted({e[:2] for e in EXERCISES})
    if (isinstance(notebook, bool) or not isinstance(notebook, int | str)
            or not re.fullmatch(r"\d{1,2}(_\w*)?", str(notebook).strip())):
        raise ValueError(f"score takes a notebook number such as 1 or \"01\" (notebooks with "
                         f"exercises: {', '.join(known)}), got {_describe(notebook)}")
    number, exercises = _exercises_of(str(notebook).strip())
    if not exercises:
        raise ValueError(f"notebook {notebook!r} has no exercises; notebooks with exercises: "
                         f"{', '.join(known)}")
    outcomes = {e: _LATEST.get(e, "not checked") for e in exercises}
    correct = sum(o == "correct" for o in outcomes.values())
    lines = [f"notebook {number}: {correct} of {len(exercises)} exercises correct"]
    for outcome in OUTCOMES[1:]:
        names = [e for e, o in outcomes.items() if o == outcome]
        if names:
            lines.append(f"  {outcome}: {', '.join(names)}")
    print("\n".join(lines))


_VERDICT = re.compile(rf"^(\d\d\.\w+): ({'|'.join(_SAYS.values())})", re.MULTILINE)


def grade_notebooks(directory: str | os.PathLike):
    """A table of the executed notebooks (``*.ipynb``) in ``directory``: one row per notebook,
    the number of its exercises per outcome (columns :data:`OUTCOMES`, then ``exercises``),
    read from the latest ``check`` verdict each exercise printed in the saved outputs. An
    exercise of the notebook that printed none counts as ``not checked``; a notebook that was
    not executed at all has all its exercises there.

    ``FileNotFoundError`` if ``directory`` does not exist, ``ValueError`` if it holds no
    notebook that has been executed (or one that cannot be read).
    """
    import nbformat
    import pandas as pd

    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder; give the folder that holds the "
                                "students' executed notebooks")
    paths = sorted(folder.glob("*.ipynb"))
    rows, executed = {}, 0
    for path in paths:
        try:
            notebook = nbformat.read(str(path), as_version=4)
        except (ValueError, OSError) as err:
            raise ValueError(f"cannot read {path.name} as a notebook: {err}") from err
        code = [c for c in notebook.cells if c.cell_type == "code"]
        executed += any(bool(c.get("outputs") or c.get("execution_count")) for c in code)
        said = {}
        for cell in code:
            text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                           if o.get("output_type") == "stream")
            for exercise, words in _VERDICT.findall(text):
                said[exercise] = _OUTCOME_OF[words]
        _, exercises = _exercises_of(path.stem)
        outcomes = {e: "not checked" for e in exercises} | said
        counts = {o: sum(v == o for v in outcomes.values()) for o in OUTCOMES}
        rows[path.stem] = counts | {"exercises": len(outcomes)}
    if not executed:
        what = (f"{len(paths)} notebooks, none of them executed (no outputs)" if paths
                else "no notebooks (*.ipynb)")
        raise ValueError(f"{directory} holds {what}: grade reads the check verdicts of executed "
                         "notebooks; run them (Run › Run All Cells), save, and grade again")
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("notebook")

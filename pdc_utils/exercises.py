"""The notebooks' exercises: their checks, and the expected answers, which live here.

A notebook's exercise cell sets an answer (``None`` until the student fills it in), a cell
tagged ``solution`` holds the reference answer, and a third cell calls
``check(exercise_id, answer, *data)`` with plain names only: the expected answer is computed
*here* from ``data`` (or fixed here), so no notebook cell shows it.
``python -m pdc_utils student-copies --out DIR`` writes the notebooks without their solution
cells, for a lecturer to hand out.

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
unanswered exercise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

NOT_ATTEMPTED = "not attempted yet - replace None with your answer and run the cells again."


@dataclass(frozen=True)
class Exercise:
    """``kind`` is ``value``, ``name``, ``choice`` or ``function``; ``expected(*data)`` gives
    the expected value (or, for ``function``, ``(inputs, reference function)`` cases)."""

    kind: str
    expected: Callable[..., Any]
    hint: str
    rtol: float = 1e-4
    atol: float = 1e-6


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


def _white_box(table, attacks, eps_grid) -> float:
    column = f"{'pgd' if 'pgd' in attacks else 'fgm'}_{max(eps_grid):.2f}"
    return float(table.set_index("method").loc["source", column])


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


EXERCISES: dict[str, Exercise] = {
    # 01 · distance correlation
    "01.pearson": Exercise("value", lambda x: np.corrcoef(x, x**2)[0, 1],
                           "np.corrcoef(a, b) gives a matrix; you want an off-diagonal entry"),
    "01.dcor": Exercise("value", lambda x: _dcor(x, x**2),
                        "D.distance_correlation_sqr takes 1-D arrays too"),
    "01.scaling": Exercise("value", lambda x, y: _dcor(x, y),
                           "a global scale multiplies dCov(X, Y) and sqrt(dVar(X)) alike"),
    "01.smallest_p": Exercise("value", lambda: 1 / 100,
                              "the observed pairing counts as one of the permutations"),
    "01.pdcor_self": Exercise("value", lambda: 0.0,
                              "what is the residual P_Z(X) when Z's matrix is X's own?"),
    "01.double_centring": Exercise(
        "function", lambda: _centring_cases("double"),
        "subtract the column means and the row means, add back the grand mean"),
    "01.u_centring": Exercise(
        "function", lambda: _centring_cases("u"),
        "divide row and column sums by n - 2, the grand sum by (n-1)(n-2); zero diagonal"),
    "01.bias": Exercise("choice", lambda: _sha("b"),
                        "which estimator's dCov² part is unbiased (section 4)?"),
    # 02 · baseline training
    "02.accuracy": Exercise(
        "value", lambda outputs: 100 * np.mean(outputs["f1"]["predictions"]
                                               == outputs["f1"]["labels"]),
        "compare predictions with labels, average, times 100", rtol=1e-6),
    "02.raw_dcor": Exercise(
        "value", lambda outputs: _dcor(outputs["f2_baseline"]["features"],
                                       outputs["f1"]["features"]),
        "the raw `features` arrays of both networks, as float64, no row normalisation"),
    "02.scaled_dcor": Exercise(
        "value", lambda outputs: _dcor(outputs["f2_baseline"]["features"],
                                       outputs["f1"]["features"]),
        "a global scale changes dCov and dVar alike"),
    "02.why_dependent": Exercise("choice", lambda: _sha("b"),
                                 "the two networks share neither initial weights nor batches"),
    "02.sgd_step": Exercise(
        "function", _sgd_cases,
        "add weight_decay * w to g first; then velocity = momentum * velocity - lr * gradient "
        "and new_w = w + velocity", rtol=1e-5),
    # 03 · diverge training
    "03.drop": Exercise("value", lambda summary: summary.loc["V dCor² to f1", "baseline"]
                        - summary.loc["V dCor² to f1", "diverged"],
                        "two cells of `summary`, subtracted", rtol=1e-3),
    "03.u_dcor": Exercise(
        "value", lambda outputs: _u_dcor(_rows(outputs["f2_diverge"]["features"]),
                                         _rows(outputs["f1"]["features"])),
        "row-normalise both feature arrays first (features.row_normalized)"),
    "03.objective": Exercise(
        "function", _objective_cases,
        "mean CE of the logits, plus alpha times the V-statistic dCor² of the row-normalised "
        "features (objective.feature_penalty does the second part)", rtol=1e-4),
    "03.collapse": Exercise("choice", lambda: _sha("b"),
                            "section 2: what does the V-statistic reward besides independence?"),
    "03.upen": Exercise("value", _upen_dim, "read runs/upen/results/feature_dcor.csv",
                        rtol=1e-3),
    # 04 · attacks
    "04.white_box": Exercise("value", _white_box, "the `source` row of `table`", rtol=1e-6),
    "04.budget": Exercise("value", _budget,
                          "the largest absolute pixel change between `shown[...]` and `images`"),
    "04.reverse": Exercise("value", _reverse,
                           "craft on adv.logits_fn(nets['f2_diverge']), score with nets['f1']",
                           rtol=1e-6),
    "04.pgd_random": Exercise("function", _pgd_cases,
                              "start from clip(x + noise, 0, 1), then the steps of "
                              "pgd_by_hand, always projecting around the clean x", rtol=1e-5),
    "04.interval": Exercise("choice", lambda: _sha("c"),
                            "an interval that contains 0 is compatible with a gain, a loss and "
                            "no effect"),
    # 05 · comparing networks
    "05.cka": Exercise("value", lambda feats, name: _cka(feats["f1"], feats[name]),
                       "centre the columns of both, then ||YᵀX||² / (||XᵀX|| ||YᵀY||)"),
    "05.labels": Exercise("name", lambda table, name: table["U dCor² with labels"]
                          .loc[["f1", name]].idxmax(), "look at the U column of `with_labels`"),
    "05.symmetric": Exercise("value", lambda lookup, x, y, given: lookup.loc[(x, y, given),
                                                                             "pdcor"],
                             "partial_distance_correlation(x, y, z) with x and y swapped"),
    "05.logit_labels": Exercise(
        "name", _logit_labels,
        "u_distance_correlation_sqr of outputs[name]['logits'] (as float64) with onehot, for "
        "'f1' and for div; answer with the name of the larger"),
}


def _rows(features):
    from pdc_utils.features import row_normalized

    return row_normalized(features)


def _cka(x, y) -> float:
    from pdc_utils.compare import linear_cka

    return linear_cka(x, y)


# --------------------------------------------------------------------- checking


class _Invalid(Exception):
    """An answer of the wrong type or shape; the message says what was expected instead."""


class _NotReady(Exception):
    """The data an exercise is checked against does not exist yet (e.g. another run's table);
    its own class, so that a student's function raising ``KeyError`` is not mistaken for it."""


def _describe(value: Any) -> str:
    """A short description of a value for a message: its type and what it holds."""
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} values"
    shape = getattr(value, "shape", ())
    if shape:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _numbers(value: Any, expected: Any, expects: str) -> np.ndarray:
    """``value`` as a float array if it is numeric with the shape of ``expected``; else
    :class:`_Invalid` that starts with ``expects`` (e.g. "this exercise expects")."""
    shape = np.shape(expected)
    wanted = "one number such as 0.01" if not shape else f"an array of shape {shape}"
    try:
        values = None if isinstance(value, str) else np.asarray(value)
    except (ValueError, TypeError):  # e.g. a ragged list
        values = None
    if values is None or values.dtype.kind not in "iuf":
        raise _Invalid(f"{expects} {wanted}, got {_describe(value)}")
    if values.shape != shape:
        raise _Invalid(f"{expects} {wanted}, got {_describe(value)}")
    return values.astype(float)


def _judge(exercise: Exercise, answer: Any, data: tuple) -> bool | None:
    """Whether ``answer`` is right; ``None`` if it was not attempted (or cannot be judged).

    Raises :class:`_Invalid` for an answer of the wrong type or shape, :class:`_NotReady` when
    the expected answer cannot be computed yet.
    """
    if answer is None:
        return None
    if exercise.kind == "function":
        if not callable(answer):
            raise _Invalid(f"this exercise expects a function (def ...), got {_describe(answer)}")
        for inputs, reference in exercise.expected():
            given = answer(*inputs)
            if given is None:
                return None
            expected = np.asarray(reference(*inputs), dtype=float)
            if not np.allclose(_numbers(given, expected, "your function should return"),
                               expected, rtol=exercise.rtol, atol=exercise.atol):
                return False
        return True
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
        return _sha(answer) == expected
    if exercise.kind == "name":
        return answer == expected
    return bool(np.allclose(_numbers(answer, expected, "this exercise expects"),
                            np.asarray(expected, dtype=float),
                            rtol=exercise.rtol, atol=exercise.atol))


def check(exercise_id: str, answer: Any, *data: Any) -> None:
    """Say whether ``answer`` to exercise ``exercise_id`` is right, with a hint if not.

    ``data`` are the notebook's objects the expected answer is computed from. Never raises for
    a wrong answer (an answer that fails to run counts as not yet right); returns nothing.
    """
    if exercise_id not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; known: {', '.join(EXERCISES)}")
    exercise = EXERCISES[exercise_id]
    try:
        verdict = _judge(exercise, answer, data)
    except _NotReady as err:
        print(f"{exercise_id}: cannot be checked yet: {err}. Hint: {exercise.hint}")
        return
    except _Invalid as err:
        print(f"{exercise_id}: not a valid answer: {err}. Change the answer and run the cells "
              "again.")
        return
    except Exception as err:  # a student's function may fail in any way
        print(f"{exercise_id}: not yet - your answer raised {type(err).__name__}: {err}. "
              f"Hint: {exercise.hint}")
        return
    if verdict is None:
        print(f"{exercise_id}: {NOT_ATTEMPTED}")
    elif verdict:
        print(f"{exercise_id}: correct.")
    else:
        print(f"{exercise_id}: not yet. Hint: {exercise.hint}")

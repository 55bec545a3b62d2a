"""What a plan costs, up front: trainings, epochs, steps and attack evaluations, and an
estimate of the time from a short measured step on the current device.

The measurement: a few training steps of the profile's network at the profile's batch size on
random images of the dataset's shape (a plain step and a diverge step against one frozen
reference, as the series trains them), and a few input-gradient computations at the attack
batch size (what FGM and PGD are made of). The estimate multiplies them by the plan's counts;
it leaves out data loading, evaluation after each epoch, saving and start-up, so it is a lower
bound, and it is labelled as an estimate. On a CPU it is a CPU figure, not GPU-hours.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from pdc_utils import data
from pdc_utils.study.plan import Plan


@dataclass(frozen=True)
class Counts:
    """How much work a plan holds."""

    trainings: int          # networks trained (a chain of n nets counts n)
    plain_epochs: int       # epochs of networks without a penalty (attackers, baselines)
    penalised_epochs: int   # epochs of penalised networks (one frozen reference or more)
    steps_per_epoch: int
    attack_evaluations: int  # (cell, attacker, attack, ε) → every network of the cell scored
    gradient_batches: int    # input-gradient computations on attack batches, all scoring jobs


def counts(plan: Plan) -> Counts:
    """Count the plan's trainings, epochs and attack evaluations (phase 2 of ``select``
    counted at its size even before its setting is known)."""
    p, o = plan.params, plan.options
    epochs = p["epochs"]
    plain = penalised = 0
    for job in plan.jobs:
        if job.kind == "attacker" or job.kind == "baseline":
            plain += 1
        elif job.kind == "diverge":
            penalised += 1
        elif job.kind == "chain":
            plain += 1
            penalised += len(job.networks) - 1
    n_train = data.num_examples(p["dataset"], "train", p["train_limit"])
    n_eval = data.num_examples(p["dataset"], plan.split, p["attack_limit"])
    cells = sum(1 for j in plan.jobs if j.kind == "score")
    n_attackers, n_eps = o["n_attackers"], len(plan.eps_grid)
    batches = math.ceil(n_eval / p["attack_batch_size"])
    # per attacker and ε: FGM one gradient, PGD pgd_steps; per cell (each job crafts anew)
    gradients = cells * n_attackers * n_eps * (1 + p["pgd_steps"]) * batches
    return Counts(plain + penalised, plain * epochs, penalised * epochs,
                  math.ceil(n_train / p["batch_size"]), cells * n_attackers * 2 * n_eps,
                  gradients)


def measure(params: dict[str, Any], steps: int = 2) -> dict[str, float]:
    """Seconds per plain step, per diverge step and per input-gradient batch of the
    profile's network on this device (medians of ``steps`` after one warm-up each; the input
    gradient is timed on a training batch and scaled to the attack batch)."""
    import keras
    import tensorflow as tf

    from pdc_utils import artifacts, attacks, models, objective, training

    training.configure(0)
    info = data.dataset_info(params["dataset"])
    batch, width = params["batch_size"], params["width"]
    x = tf.random.uniform((batch, *info.image_shape))
    y = tf.random.uniform((batch,), maxval=info.num_classes, dtype=tf.int32)

    def network() -> keras.Model:
        return models.build_network(params["network"], info, width=width)

    reference = network()
    result = {}
    for name, refs, alpha in (("plain", [], 0.0), ("diverge", [reference], params["alpha"]
                                                   or 0.05)):
        model = objective.DivergeModel(network(), refs, alpha=alpha,
                                       weight_decay=params["weight_decay"],
                                       penalty=params["penalty"])
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        model.optimizer.build(model.network.trainable_variables)
        runner = training.EpochRunner(model, tf.distribute.get_strategy())
        batches = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
        result[name] = _median(lambda runner=runner, batches=batches:
                               runner.train_step(batches), steps)
    # the input gradient of the training batch, scaled to the attack batch (linear in size)
    scale = params["attack_batch_size"] / batch
    result["gradient"] = scale * _median(lambda: attacks.input_gradients(reference, x, y),
                                         steps)
    result["device"] = artifacts.device_description()
    result["gpu"] = training.on_gpu()
    return result


def _median(step: Any, repeats: int) -> float:
    step_result = step()  # trace and warm up
    del step_result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = step()
        _ = [t.numpy() for t in _flat(out)]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _flat(out: Any) -> list[Any]:
    import tensorflow as tf

    return [t for t in tf.nest.flatten(out) if hasattr(t, "numpy")]


def describe(plan: Plan, measured: dict[str, Any] | None) -> str:
    """The plan's size and, with ``measured`` (:func:`measure`), its estimated time."""
    c = counts(plan)
    lines = [f"cost: {c.trainings} trainings ({c.plain_epochs + c.penalised_epochs} epochs of "
             f"{c.steps_per_epoch} steps: {c.plain_epochs} plain, {c.penalised_epochs} "
             f"penalised), {c.attack_evaluations} attack evaluations (cell × attacker × attack × "
             f"ε, every network of the cell scored; {c.gradient_batches} input-gradient "
             f"batches to craft the images)"]
    if measured is None:
        lines.append("time: not measured (--no-timing)")
        return "\n".join(lines)
    seconds = (c.plain_epochs * c.steps_per_epoch * measured["plain"]
               + c.penalised_epochs * c.steps_per_epoch * measured["diverge"]
               + c.gradient_batches * measured["gradient"])
    hours = seconds / 3600
    what = ("GPU-hours (one GPU)" if measured["gpu"]
            else "hours on this CPU (a CPU figure, not GPU-hours: run `study plan` on the GPU "
                 "machine for that)")
    lines.append(
        f"measured here ({measured['device']}): {measured['plain']:.3f} s per plain step, "
        f"{measured['diverge']:.3f} s per diverge step (batch {plan.params['batch_size']}), "
        f"{measured['gradient']:.3f} s per input gradient of {plan.params['attack_batch_size']} "
        f"images (scaled from a batch of {plan.params['batch_size']})")
    digits = 0 if hours >= 100 else 1
    lines.append(f"estimate: about {hours:,.{digits}f} {what}; an estimate from step timings "
                 f"alone (no data loading, per-epoch validation or start-up), so a lower bound")
    return "\n".join(lines)

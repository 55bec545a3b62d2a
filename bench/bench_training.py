"""Throughput of the plain, the diverge and the cached diverge training step, side by side,
and where time goes.

The diverge step adds one frozen forward pass of f1 (inference mode, no backward) and the dCor²
term on a batch of features. Its cost relative to the plain step (forward + backward of f2) is
what matters: the design asks for at least 0.7x the plain step's images per second on CPU.

With the ``reference`` design and no augmentation, f1's features of a training image never
change, so a run computes them once (``feature_cache``, see :mod:`pdc_utils.experiment`) and
every batch carries them: the cached step is the diverge step without f1's forward pass. Its
target is at least 0.95x the plain step's images per second.

Steps are timed in interleaved rounds (plain, diverge, cached, plain, ...) so that drifts of
the machine affect all alike; the table reports medians and the ratios.

    python bench/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pdc_utils import artifacts, data, models, objective, training  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bench_training.md"


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (results forced to the host)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model: objective.DivergeModel, batch: tuple) -> Callable[[], object]:
    """One training step of ``model`` on ``batch``: the compiled step of the series' own loop
    (:class:`pdc_utils.training.EpochRunner`), so all three steps are timed the way a run
    trains. The iterator is made once: making one (once per epoch in a run) sometimes takes
    0.6 s here for an in-memory batch, which would swamp a one-step timing."""
    model.optimizer.build(model.network.trainable_variables)
    runner = training.EpochRunner(model, tf.distribute.get_strategy())
    batches = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda: runner.train_step(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny sanity run")
    args = parser.parse_args()
    batch, width, rounds, steps = (32, 8, 2, 2) if args.quick else (128, 32, 5, 5)

    keras.utils.set_random_seed(0)
    info = data.dataset_info("cifar10")
    x = tf.random.uniform((batch, *info.image_shape))
    y = tf.random.uniform((batch,), maxval=info.num_classes, dtype=tf.int32)
    f1 = models.build_network("resnet18", info, width=width)
    plain = objective.DivergeModel(models.build_network("resnet18", info, width=width),
                                  weight_decay=5e-4)
    diverge = objective.DivergeModel(models.build_network("resnet18", info, width=width), [f1],
                                    alpha=0.05, weight_decay=5e-4)
    cached = objective.DivergeModel(models.build_network("resnet18", info, width=width), [f1],
                                   alpha=0.05, weight_decay=5e-4)
    _, features = f1(x, training=False)
    step = {}
    for name, model, inputs in (("plain", plain, (x, y)), ("diverge", diverge, (x, y)),
                                ("cached", cached, (x, y, (features,)))):
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        step[name] = train_step(model, inputs)
        step[name]()  # trace and warm up

    reference_forward = tf.function(lambda: f1(x, training=False)[1])
    features2 = tf.Variable(features + tf.random.normal(features.shape))

    @tf.function
    def dcor_forward_backward():
        with tf.GradientTape() as tape:
            value = objective.feature_penalty(features2, [features])
        return tape.gradient(value, features2)

    reference_forward()
    dcor_forward_backward()

    plain_times, diverge_times, cached_times, ref_times, dcor_times = [], [], [], [], []
    for _ in range(rounds):
        plain_times.append(timed(step["plain"], steps))
        diverge_times.append(timed(step["diverge"], steps))
        cached_times.append(timed(step["cached"], steps))
        ref_times.append(timed(reference_forward, steps))
        dcor_times.append(timed(dcor_forward_backward, steps))
    t_plain, t_div = statistics.median(plain_times), statistics.median(diverge_times)
    t_cached = statistics.median(cached_times)
    t_ref, t_dcor = statistics.median(ref_times), statistics.median(dcor_times)
    ratio, cached_ratio = t_plain / t_div, t_plain / t_cached
    lines = [
        "# Training step throughput: plain vs diverge vs diverge with cached f1 features",
        "",
        f"{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}, {artifacts.device_description()}.",
        f"CIFAR ResNet-18 at width {width} ({f1.count_params():,} parameters, "
        f"{f1.outputs[1].shape[-1]} features), batch {batch} of 32x32x3, float32, SGD momentum, "
        f"weight decay; medians of {rounds} interleaved rounds of {steps} steps.",
        "",
        "| step | ms / step | images / s | relative to plain |",
        "|---|---:|---:|---:|",
        f"| plain (α = 0, no reference) | {1e3 * t_plain:.1f} | {batch / t_plain:.0f} | 1.00 |",
        f"| diverge (α = 0.05, f1 frozen) | {1e3 * t_div:.1f} | {batch / t_div:.0f} "
        f"| {ratio:.3f} |",
        f"| diverge with cached f1 features (the batch carries them) | {1e3 * t_cached:.1f} "
        f"| {batch / t_cached:.0f} | {cached_ratio:.3f} |",
        "",
        "Where the extra time of the diverge step goes:",
        "",
        "| part | ms | share of the diverge step |",
        "|---|---:|---:|",
        f"| f1 forward (inference) | {1e3 * t_ref:.1f} | {t_ref / t_div:.0%} |",
        f"| dCor² forward + backward (n = {batch}, d = {features.shape[-1]}) | "
        f"{1e3 * t_dcor:.2f} | {t_dcor / t_div:.1%} |",
        f"| everything else (f2 forward + backward, update) | "
        f"{1e3 * (t_div - t_ref - t_dcor):.1f} | {(t_div - t_ref - t_dcor) / t_div:.0%} |",
        "",
        f"Targets: diverge at least 0.7x plain, measured {ratio:.3f}x "
        f"({'met' if ratio >= 0.7 else 'missed'}); diverge with cached f1 features at least "
        f"0.95x plain, measured {cached_ratio:.3f}x "
        f"({'met' if cached_ratio >= 0.95 else 'missed'}).",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(table)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

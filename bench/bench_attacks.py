"""Benchmark: our FGM and PGD-40 against cleverhans 4.0, same network, same batch, one run.

Both attack the images -> logits view (``pdc_utils.attacks.logits_fn``) of the quick
profile's network, the CIFAR-style ResNet-18 at width 16 on 8x8x3 digits-shaped inputs
(``build_network("resnet18", dataset_info("digits"), width=16)``); if ``pdc_utils.models``
cannot be imported, a small conv net defined here stands in, and the table says so. The batch
is uniform noise in [0, 1] (the speed of an attack does not depend on the pixel values).
Settings are the paper's: L-inf, eps = 0.03, PGD step 0.01, 40 steps, no random start.

Each method is called once to warm up (tracing excluded), then the two are timed alternately,
``--repeats`` times each, so drifting load on a shared machine hits both alike; the table gives
the median images per second and the ratio ours / cleverhans, and checks that the adversarial
images are identical. GPUs are hidden unless ``--gpu`` is given.

    .venv/bin/python bench/bench_attacks.py            # writes bench/results/bench_attacks.md
    .venv/bin/python bench/bench_attacks.py --quick    # a tiny sanity run, printed only
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bench_attacks.md"
sys.path.insert(0, str(ROOT))

EPS, EPS_ITER = 0.03, 0.01


def _network():
    """The quick profile's ResNet-18 (width 16), else a stand-in conv net; and its name."""
    import keras

    keras.utils.set_random_seed(0)
    try:
        from pdc_utils.data import dataset_info
        from pdc_utils.models import build_network
    except ImportError:
        inputs = keras.Input((8, 8, 3))
        h = keras.layers.Normalization(mean=[0.3] * 3, variance=[0.14] * 3)(inputs)
        for filters, strides in ((16, 1), (32, 2), (64, 2)):
            h = keras.layers.Conv2D(filters, 3, strides, padding="same", use_bias=False)(h)
            h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
        features = keras.layers.GlobalAveragePooling2D()(h)
        net = keras.Model(inputs, [keras.layers.Dense(10)(features), features])
        return net, "stand-in conv net (3 conv-BN-ReLU, 16-32-64 channels), 8x8x3"
    net = build_network("resnet18", dataset_info("digits"), width=16)
    return net, 'pdc_utils.models ResNet-18 (CIFAR stem, width 16), 8x8x3 ("digits")'


def _seconds(attack) -> float:
    """Wall time of one call of ``attack``, including fetching its result."""
    start = time.perf_counter()
    attack().numpy()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gpu", action="store_true", help="do not hide GPUs")
    parser.add_argument("--quick", action="store_true", help="tiny run, print only")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.steps, args.repeats = 16, 3, 2

    import keras
    import numpy as np
    import tensorflow as tf
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    from pdc_utils import attacks
    from pdc_utils.artifacts import device_description, write_text_atomic

    if not args.gpu:
        tf.config.set_visible_devices([], "GPU")
    net, description = _network()
    model = attacks.logits_fn(net)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(args.batch_size, *net.input_shape[1:])), tf.float32)

    methods = {
        f"PGD-{args.steps}": {
            "ours": lambda: attacks.pgd(model, x, EPS, EPS_ITER, args.steps),
            "cleverhans": lambda: projected_gradient_descent(
                model, x, EPS, EPS_ITER, args.steps, np.inf, clip_min=0.0, clip_max=1.0,
                rand_init=False, sanity_checks=False),
        },
        "FGM": {
            "ours": lambda: attacks.fgm(model, x, EPS),
            "cleverhans": lambda: fast_gradient_method(model, x, EPS, np.inf, clip_min=0.0,
                                                       clip_max=1.0),
        },
    }
    rows = []
    for name, pair in methods.items():
        identical = np.array_equal(pair["ours"]().numpy(), pair["cleverhans"]().numpy())
        repeats = args.repeats * (1 if name.startswith("PGD") else 4)
        times = {"ours": [], "cleverhans": []}
        for _ in range(repeats):  # alternate the two so that load changes hit both
            for who in ("ours", "cleverhans"):
                times[who].append(_seconds(pair[who]))
        speed = {who: args.batch_size / statistics.median(t) for who, t in times.items()}
        rows.append(f"| {name} | {speed['ours']:,.0f} | {speed['cleverhans']:,.0f} | "
                    f"{speed['ours'] / speed['cleverhans']:.2f} | "
                    f"{'yes' if identical else 'NO'} |")
        print(f"{name}: ours {speed['ours']:,.0f} img/s, cleverhans "
              f"{speed['cleverhans']:,.0f} img/s", flush=True)

    table = "\n".join([
        "# Attack speed: pdc_utils.attacks vs cleverhans 4.0",
        "",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- device: {device_description() if args.gpu else 'CPU, GPUs hidden'}; "
        f"{os.cpu_count()} logical cores, {platform.processor() or platform.machine()}",
        f"- TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"Python {sys.version.split()[0]}",
        f"- network: {description}",
        f"- batch {args.batch_size}, L-inf, eps {EPS}, PGD step {EPS_ITER}, "
        f"{args.steps} steps, no random start; median of {args.repeats} timed PGD calls "
        f"and {4 * args.repeats} FGM calls each, alternating, after one warm-up call",
        "",
        "| attack | ours (images/s) | cleverhans (images/s) | ours / cleverhans "
        "| identical images |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
    ])
    print()
    print(table)
    if not args.quick:
        write_text_atomic(RESULTS, table)
        print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

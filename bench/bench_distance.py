"""Benchmark: dCor² by the Gram identity vs the broadcast form vs the dcor package.

Three ways to compute the squared distance correlation of two (n, d) float32 feature batches:

* ``gram``: :func:`pdc_utils.distance.distance_correlation_sqr` (distances from the Gram
  matrix, O(n²) memory), what training uses;
* ``broadcast``: the same statistic on :func:`pdc_utils.distance.pairwise_distances_broadcast`
  (the paper code's n x n x d difference tensor, O(n²·d) memory);
* ``dcor``: ``dcor.distance_correlation_sqr`` (numpy, on the same float32 arrays, forward only).

Each case runs in a fresh subprocess, which reports the best wall time of a few calls (after
one warm-up call that also traces the ``tf.function``; the best, not the median, because the
machine may be shared) and its peak resident memory
(``ru_maxrss``) above the resident memory after imports, a tiny warm-up call (which loads
the runtime and its kernels) and input creation. Broadcast cases
and dcor cases that would need more than ``--max-gb`` are skipped, with the memory they would
need (the size of the n x n x d array times the number of such arrays alive at the peak,
measured on a smaller case).

    .venv/bin/python bench/bench_distance.py            # the full grid, several minutes
    .venv/bin/python bench/bench_distance.py --quick    # a tiny sanity run

The table is printed and written to ``bench/results/bench_distance.md`` (``--quick`` only
prints it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("gram", "broadcast", "dcor")
MODES = ("forward", "forward+backward")
#: Arrays of n x n x d float32 alive at the peak, assumed until a case with n >= 512 measures
#: it: the broadcast form holds the differences and their squares (forward), plus their
#: gradients (backward); dcor 0.7 computes distances by numpy broadcasting too (with
#: array_api_compat installed its scipy ``cdist`` path is not taken), one such array.
BIG_ARRAYS = {("broadcast", "forward"): 2.0, ("broadcast", "forward+backward"): 4.0,
              ("dcor", "forward"): 1.0}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(method: str, n: int, d: int, mode: str, min_seconds: float) -> dict:
    """Time one case in this process and return its timings and peak memory."""
    import dcor
    import numpy as np
    import tensorflow as tf

    from pdc_utils import distance

    def broadcast_dcor_sqr(a_in: tf.Tensor, b_in: tf.Tensor) -> tf.Tensor:
        a = distance.double_centered(distance.pairwise_distances_broadcast(a_in))
        b = distance.double_centered(distance.pairwise_distances_broadcast(b_in))
        return tf.reduce_mean(a * b) / tf.sqrt(tf.reduce_mean(a * a) * tf.reduce_mean(b * b))

    statistic = distance.distance_correlation_sqr if method == "gram" else broadcast_dcor_sqr

    @tf.function
    def forward_backward(a_in: tf.Tensor, b_in: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch([a_in, b_in])
            value = statistic(a_in, b_in)
        gradients = tape.gradient(value, [a_in, b_in])
        return value + tf.reduce_sum(gradients[0]) + tf.reduce_sum(gradients[1])

    compiled = tf.function(statistic) if mode == "forward" else forward_backward

    def step(x_np: np.ndarray, y_np: np.ndarray) -> float:
        if method == "dcor":
            return float(dcor.distance_correlation_sqr(x_np, y_np))
        return float(compiled(tf.constant(x_np), tf.constant(y_np)))

    rng = np.random.default_rng(0)

    def inputs(rows: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(rows, d)).astype(np.float32)
        return x, np.tanh(x[:, ::-1] + rng.normal(size=(rows, d)).astype(np.float32))

    step(*inputs(8))  # loads the runtime and kernels, so the baseline below includes them
    x_np, y_np = inputs(n)
    baseline = _rss_bytes()
    step(x_np, y_np)  # warm-up at full size (traces the tf.function for this shape)
    times: list[float] = []
    while len(times) < 3 or (sum(times) < min_seconds and len(times) < 7):
        start = time.perf_counter()
        step(x_np, y_np)
        times.append(time.perf_counter() - start)
        if times[0] > 20:  # one call of a slow case is enough
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"time_s": min(times), "peak_bytes": max(peak - baseline, 0), "calls": len(times)}


def _run_case(method: str, n: int, d: int, mode: str, min_seconds: float) -> dict:
    command = [sys.executable, __file__, "--worker", method, str(n), str(d), mode,
               str(min_seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import dcor
    import numpy as np
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {memory:.0f} GiB RAM, no GPU used; "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"NumPy {np.__version__}, dcor {dcor.__version__}; "
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")


def _fmt_time(result: dict | None) -> str:
    if result is None:
        return "-"
    if "skipped" in result:
        return f"skipped (needs ~{result['skipped'] / 2**30:.0f} GiB)"
    if "error" in result:
        return f"failed: {result['error'][:60]}"
    return f"{result['time_s'] * 1e3:,.1f} ms"


def _fmt_mem(result: dict | None) -> str:
    if result is None or "time_s" not in result:
        return "-"
    return f"{result['peak_bytes'] / 2**20:,.0f} MiB"


def _ratio(reference: dict | None, ours: dict, key: str) -> str:
    if reference is None or "time_s" not in reference or "time_s" not in ours:
        return "-"
    return f"{reference[key] / max(ours[key], 1e-12):,.1f}x"


def _table(results: dict, sizes: list[int], dims: list[int]) -> str:
    lines = [
        "| n | d | pass | gram (ours) | broadcast | dcor | speed-up vs broadcast "
        "| speed-up vs dcor | peak mem gram | peak mem broadcast | peak mem dcor "
        "| memory ratio vs broadcast | memory ratio vs dcor |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for d in dims:
            for mode in MODES:
                gram = results[("gram", n, d, mode)]
                broadcast = results.get(("broadcast", n, d, mode))
                numpy_ref = results.get(("dcor", n, d, mode))
                lines.append(
                    f"| {n} | {d} | {mode} | {_fmt_time(gram)} | {_fmt_time(broadcast)} "
                    f"| {_fmt_time(numpy_ref)} | {_ratio(broadcast, gram, 'time_s')} "
                    f"| {_ratio(numpy_ref, gram, 'time_s')} | {_fmt_mem(gram)} "
                    f"| {_fmt_mem(broadcast)} | {_fmt_mem(numpy_ref)} "
                    f"| {_ratio(broadcast, gram, 'peak_bytes')} "
                    f"| {_ratio(numpy_ref, gram, 'peak_bytes')} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a sanity run")
    parser.add_argument("--max-gb", type=float, default=12.0,
                        help="skip cases estimated to need more memory (GiB)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, n, d, mode, min_seconds = args.worker
        print(json.dumps(_worker(method, int(n), int(d), mode, float(min_seconds))))
        return

    sizes, dims = ([64], [16]) if args.quick else ([128, 1024, 4096], [512, 2048])
    min_seconds = 0.1 if args.quick else 1.0
    results: dict = {}
    load_before = os.getloadavg()[0]
    big_arrays = dict(BIG_ARRAYS)  # updated from the measured cases
    for n in sizes:
        for d in dims:
            for mode in MODES:
                for method in METHODS:
                    if method == "dcor" and mode != "forward":
                        continue
                    key = (method, n, d, mode)
                    array_bytes = 4 * n * n * d
                    need = big_arrays.get((method, mode), 0.0) * array_bytes
                    if need > args.max_gb * 2**30:
                        results[key] = {"skipped": need}
                    else:
                        results[key] = _run_case(method, n, d, mode, min_seconds)
                    if (method, mode) in big_arrays and "time_s" in results[key] and n >= 512:
                        big_arrays[method, mode] = results[key]["peak_bytes"] / array_bytes
                    print(f"{method:9s} n={n:5d} d={d:5d} {mode:16s} "
                          f"{_fmt_time(results[key])}, {_fmt_mem(results[key])}", flush=True)

    report = "\n".join([
        "# bench_distance: dCor² of two (n, d) float32 batches",
        "",
        f"Machine: {_machine()}.",
        "",
        f"Load average (1 min) of the machine, which other jobs may share: {load_before:.1f} "
        f"before the run, {os.getloadavg()[0]:.1f} after.",
        "",
        "gram = `pdc_utils.distance.distance_correlation_sqr` (Gram-identity distances); "
        "broadcast = the same statistic on `pairwise_distances_broadcast` (the paper code's "
        "n x n x d difference tensor); dcor = `dcor.distance_correlation_sqr` (numpy, on the "
        "same float32 arrays, forward only). Both TF forms run as a `tf.function` in float32; "
        "forward+backward also computes the gradients with respect to both inputs. Times are "
        "the best of 3 to 7 calls after a warm-up call; peak memory is the peak resident "
        "set size of a fresh process above its size after imports, a tiny warm-up call and "
        "input creation, so small cases mostly show the runtime's own allocations. Ratios "
        "are broadcast (or dcor) over gram: higher means gram is faster or smaller. Skipped "
        f"cases state the memory they would need (limit {args.max_gb:g} GiB): the size of "
        "the n x n x d float32 array times the number of such arrays alive at the peak, "
        "measured on the largest case of that method that ran. dcor 0.7 in this environment "
        "computes distances by numpy broadcasting (with array_api_compat installed its scipy "
        "`cdist` path is not taken), hence its O(n²·d) memory.",
        "",
        _table(results, sizes, dims),
        "",
    ])
    print()
    print(report)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "bench_distance.md").write_text(report)
        print(f"written to {RESULTS / 'bench_distance.md'}")


if __name__ == "__main__":
    main()

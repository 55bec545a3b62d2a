"""Training on several devices or machines with ``tf.distribute`` (parameter ``strategy``).

- ``auto``: mirror over all local GPUs when there are two or more, else one device.
- ``default``: one device (TensorFlow's default strategy).
- ``mirrored``: ``MirroredStrategy`` over all local GPUs, or over the logical CPUs that
  ``PDC_LOGICAL_CPUS`` made (how the mirrored path is tested on a CPU-only machine).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the machines (workers) that the
  ``TF_CONFIG`` environment variable lists; every worker runs the same command, worker 0 (or
  the ``chief``) writes the files. Tested with worker processes on 127.0.0.1.

The batch size of a profile is the **global** batch: each of R replicas gets a contiguous
slice of about 1/R of it (:func:`distribute_dataset`), and the diverge penalty is computed on
the whole global batch (see :meth:`pdc_utils.objective.DivergeModel._penalty`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import tensorflow as tf

from pdc_utils import config


def split_cpu_from_environment() -> int:
    """Split the CPU into ``$PDC_LOGICAL_CPUS`` logical devices (before TensorFlow starts its
    runtime); return the number of logical CPUs (1 when the variable is not set)."""
    value = os.environ.get("PDC_LOGICAL_CPUS", "")
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PDC_LOGICAL_CPUS must be a positive integer, got {value!r}")
    count = int(value)
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        except RuntimeError as err:
            raise RuntimeError(
                "PDC_LOGICAL_CPUS must take effect before TensorFlow initialises its devices: "
                "call pdc_utils.training.configure() first (restart the kernel)") from err
    return count


def cluster_from_environment() -> dict[str, Any]:
    """``TF_CONFIG`` parsed and checked for ``strategy = "multi_worker"``.

    It must name the cluster's workers and this process's task, e.g.
    ``{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker",
    "index": 0}}``. A clear ``ValueError`` says what is missing before TensorFlow starts.
    """
    raw = os.environ.get("TF_CONFIG", "")
    example = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not raw:
        raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable on "
                         f"every worker, e.g. TF_CONFIG='{example}' (see README, Scaling out)")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        hosts = cluster[task["type"]]
        if not 0 <= int(task["index"]) < len(hosts):
            raise IndexError
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({raw!r}); it needs "
                         f"'cluster' with a host list per task type and 'task' with this "
                         f"process's type and index into that list, e.g. {example}") from err
    return spec


_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by the ``strategy`` parameter.

    One strategy object per name and process: two mirrored strategies in one program can
    hand out the same collective-op keys and fail at run time, so a second call returns the
    first object. ``multi_worker`` connects to the other workers of ``TF_CONFIG`` and waits
    for them, so it must be made before any other TensorFlow work (``training.configure``
    makes it first).
    """
    config.validate({"strategy": name})
    if name not in _STRATEGIES:
        if name == "multi_worker":  # before anything starts TensorFlow's runtime
            cluster_from_environment()
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        elif name == "default":
            strategy = tf.distribute.get_strategy()
        else:
            gpus = tf.config.list_logical_devices("GPU")
            if name == "auto" and len(gpus) < 2:
                strategy = tf.distribute.get_strategy()
            else:
                devices = gpus or tf.config.list_logical_devices("CPU")
                strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        _STRATEGIES[name] = strategy
    return _STRATEGIES[name]


def _is_chief(task_type: str, task_id: int, task_types: Iterable[str]) -> bool:
    """The rule of which task writes the files: ``chief``, or ``worker`` 0 when there is none."""
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in task_types


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the files: always, except on the non-chief workers of a
    multi-worker strategy (the chief is task ``chief``, or ``worker`` 0 when there is none)."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return _is_chief(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def is_chief_task(spec: Mapping[str, Any]) -> bool:
    """:func:`is_chief` for the task a ``TF_CONFIG`` describes (from
    :func:`cluster_from_environment`), before any strategy exists: whether this process will
    write the files, and so check the run folder and lock it."""
    return _is_chief(spec["task"]["type"], int(spec["task"]["index"]), spec["cluster"])


def num_workers(strategy: tf.distribute.Strategy | None = None) -> int:
    """How many machines (processes) train together: 1 unless multi-worker."""
    strategy = strategy or tf.distribute.get_strategy()
    return int(getattr(strategy.extended, "_num_workers", 1))


def distribute_dataset(strategy: tf.distribute.Strategy,
                       dataset: tf.data.Dataset) -> tf.data.Dataset | Any:
    """Split every global batch of ``dataset`` over the strategy's replicas.

    Replica k of R gets rows ``[n·k // R, n·(k+1) // R)`` of each global batch of n rows, on
    whichever worker it lives: a contiguous slice, the same for one machine with R devices and
    for R machines with one device each, so the two train to the same weights (batch
    normalisation statistics included). Every element component (images, labels, cached
    features) is sliced alike. A global batch with fewer rows than replicas (a last batch of a
    few images) is skipped under R > 1: a replica with no rows would put NaN into batch
    normalisation's moving statistics. With one replica the dataset is returned unchanged.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return dataset

    def per_input_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(*element: tf.Tensor) -> tf.data.Dataset:
            rows = tf.shape(element[0], out_type=tf.int64)[0]

            def replica_slice(k: tf.Tensor) -> tuple:
                start, stop = rows * (first + k) // replicas, rows * (first + k + 1) // replicas
                return tuple(tf.nest.map_structure(lambda t: t[start:stop], element))

            return tf.data.Dataset.range(local).map(replica_slice)

        def enough(*element: tf.Tensor) -> tf.Tensor:
            return tf.shape(element[0])[0] >= replicas

        return dataset.filter(enough).flat_map(slices)

    return strategy.distribute_datasets_from_function(per_input_pipeline)


def average_over_replicas(strategy: tf.distribute.Strategy, variables: list) -> None:
    """Give every replica the mean over replicas (and workers) of each variable.

    For batch normalisation's moving statistics: each replica updates its own copy from its
    slice of the batch, so after an epoch the copies differ. Averaging them at the end of each
    epoch makes every replica, the backup and the saved network agree, so a network used as a
    frozen reference is the same on every replica (and the same after a resume) as the file
    that is attacked. (The mean of the per-replica moving variances ignores the spread of the
    per-replica means: a close, standard approximation of the global-batch statistics.)
    """
    if strategy.num_replicas_in_sync == 1:
        return
    for variable in variables:
        value = getattr(variable, "value", variable)  # a Keras variable wraps a tf.Variable
        local = strategy.run(lambda v=value: tf.identity(v))
        value.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None))


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The ``strategy`` parameter value that describes ``strategy``: ``multi_worker``,
    ``mirrored`` or ``default`` (one device)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"

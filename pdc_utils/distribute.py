"""Training on several devices or machines with ``tf.distribute`` (parameter ``strategy``).

- ``auto``: mirror over all local GPUs when there are two or more, else one device.
- ``default``: one device (TensorFlow's default strategy).
- ``mirrored``: ``MirroredStrategy`` over all local GPUs, or over the logical CPUs that
  ``PDC_LOGICAL_CPUS`` made (how the mirrored path is tested on a CPU-only machine).

Several machines (``MultiWorkerMirroredStrategy`` with ``TF_CONFIG``) are not offered: Keras
3's ``Model.fit`` fails under that strategy (keras-team/keras#20585, tensorflow#72388: the
first batch is reduced across workers before training and the reduction raises), and the
series trains with ``fit``. A custom training loop would lift that; see the README.

The batch size of a profile is the **global** batch: each of R replicas gets 1/R of it, and
the diverge penalty is computed on the whole global batch (see
:meth:`pdc_utils.training.DivergeModel._penalty`).
"""

from __future__ import annotations

import os

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


_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by the ``strategy`` parameter.

    One strategy object per name and process: two mirrored strategies in one program can
    hand out the same collective-op keys and fail at run time, so a second call returns the
    first object.
    """
    config.validate({"strategy": name})
    if name not in _STRATEGIES:
        gpus = tf.config.list_logical_devices("GPU")
        if name == "default" or (name == "auto" and len(gpus) < 2):
            strategy = tf.distribute.get_strategy()
        else:
            devices = gpus or tf.config.list_logical_devices("CPU")
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        _STRATEGIES[name] = strategy
    return _STRATEGIES[name]

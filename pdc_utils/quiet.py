"""TensorFlow's start-up log lines kept out of notebooks and terminals.

TensorFlow's C++ code logs to file descriptor 2, below Python's ``sys.stderr``. In JupyterLab
ipykernel forwards that descriptor into the notebook, so the notes TensorFlow prints on every
machine (absl's warning that logging is not initialised, oneDNN, no CUDA drivers, the failed
``cuInit`` of a machine without a GPU) show as a pink block under the first cell that imports
it, and grappler's warnings (``loop_optimizer.cc ... Skipping loop optimization``) under
training cells. None of them says anything about the run.

Importing :mod:`pdc_utils` calls :func:`quiet_tensorflow_import`, which only has an effect if
it runs before TensorFlow is first imported (so a notebook imports pdc_utils before tensorflow
or keras):

- ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2: TensorFlow drops C++ INFO and WARNING lines, the
  grappler warnings included. TensorFlow reads the variable once, when it is imported;
  processes started later (papermill's kernels, training workers) inherit it.
- The start-up lines are written whatever that level says (before TensorFlow applies it, or at
  ERROR level), so the import itself, and TensorFlow's first look for devices, where ``cuInit``
  fails, run with descriptor 2 passed through :func:`start_up_noise_filtered`. That filter
  only cuts the lines of :data:`START_UP_NOISE` and is removed when the import ends: later
  errors, and any other line of the import, reach the notebook or terminal as before.

A ``TF_CPP_MIN_LOG_LEVEL`` set by the user is kept; set to 0 (every C++ line) it also turns
the filter off.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType

#: Lines that every kernel prints at start-up and that say nothing about the run: TensorFlow's
#: C++ start-up notes (absl, oneDNN, CUDA on a machine without a GPU, CPU features) and
#: ipykernel's note that a local kernel talks over TCP without encryption.
START_UP_NOISE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]0000 [^\n]*?\] (oneDNN custom operations|Could not find cuda drivers"
    r"|failed call to cuInit|This TensorFlow binary is optimized"
    r"|Input of GeneratorDatasetOp::Dataset will not be optimized)"
    r"|To enable the following instructions: [^\n]* rebuild TensorFlow"
    r"|\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption)[^\n]*\n?")


@contextlib.contextmanager
def start_up_noise_filtered() -> Iterator[None]:
    """Within the block, the process's stderr (file descriptor 2, inherited by the processes it
    starts) passes through a filter that cuts out :data:`START_UP_NOISE`; everything else, real
    errors included, reaches the original stderr unchanged and as it is written."""
    try:
        original = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    read_end, write_end = os.pipe()

    def forward() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:  # a progress bar's "\r" updates may share a line with noise
                kept = START_UP_NOISE.sub("", line.decode("utf-8", "replace"))
                if kept:
                    os.write(original, kept.encode("utf-8"))

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees EOF
        thread.join(timeout=5)
        os.close(original)


class _QuietLoader(importlib.abc.Loader):
    """Executes the ``tensorflow`` package with its own loader, inside
    :func:`start_up_noise_filtered`, then lists the physical devices there too: that first
    look for devices is where ``cuInit`` fails on a machine without a GPU. Listing them does not
    initialise the devices, so logical devices and strategies can still be configured after."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # the module and its spec name TensorFlow's own loader, as after a plain import
        module.__loader__ = module.__spec__.loader = self.loader
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]
        with start_up_noise_filtered():
            self.loader.exec_module(module)
            module.config.list_physical_devices()


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` where Python's path finder does, with a :class:`_QuietLoader`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Default ``TF_CPP_MIN_LOG_LEVEL`` to 2 and, unless it is 0 or TensorFlow is already
    imported, have the first ``import tensorflow`` (also through keras or pdc_utils) run with
    :data:`START_UP_NOISE` filtered out of stderr (see the module docstring)."""
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if level.strip() == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())

"""One process per run folder: ``python -m pdc_utils run`` and ``train`` lock ``runs/<run>/``.

Two processes on the same run would overwrite each other's backups, models, tables and
TensorBoard files. Each command therefore holds an exclusive ``fcntl.flock`` on
``runs/<run>/.lock`` while it works, and writes into that file who holds it (process id, host,
command, start time); a second process stops at once with a message naming the holder.

The kernel releases a ``flock`` when its holder ends in any way, SIGKILL included, so a lock
left behind by a killed process is no lock at all: the next process simply takes it and
rewrites the record (there is no guessing from process ids, which could be reused or belong to
another host). The file itself is never removed: removing it while another process has it open
would let two processes lock two different files. On a network file system (a ``runs/``
folder shared by the workers of a multi-worker training) Linux takes the lock on the server,
which frees it when the holding host stops renewing it; a file system that cannot lock at all
gets a note on stderr, and the command runs unlocked.

Training takes the lock too (:func:`training_lock`, called by
:class:`pdc_utils.experiment.Experiment` around every training), so a notebook run in
JupyterLab, or directly by papermill, cannot train into a run that ``train`` or another kernel
is training, and gets the same message. A process that already holds the run's lock (``run``,
``train``) trains under it, and so does a notebook kernel that ``run`` started: the runner
names the run it holds in the environment variable :data:`HELD_BY_PARENT`, which its kernels
inherit, and a kernel accepts it only from its own parent process.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pdc_utils import config

#: The lock file's name inside ``runs/<run>/``.
LOCK_NAME = ".lock"
#: ``<pid>:<run folder>`` of the run whose lock this process holds, for the processes it
#: starts (papermill's kernels).
HELD_BY_PARENT = "PDC_RUN_LOCK_HELD"
#: The run folders whose lock this process holds.
_held: set[Path] = set()


class RunInUse(RuntimeError):
    """Another live process holds the run's lock; the message names it and what to do."""


def _holder(fd: int) -> dict[str, Any]:
    """The record the lock's holder wrote (empty if it has not written it yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _in_use(run_name: str, holder: dict[str, Any]) -> RunInUse:
    if not holder:
        who = "another process, which has just started"
    else:
        host = holder.get("host")
        where = f" on host {host}" if host and host != socket.gethostname() else ""
        command = holder.get("command", "?")
        doing = (f"`python -m pdc_utils {command}`" if command in ("run", "train")
                 else command)
        who = (f"process {holder.get('pid', '?')}{where} (started {holder.get('started', '?')}, "
               f"{doing})")
    return RunInUse(
        f"run {run_name!r} is in use by {who}: two processes on one run would overwrite each "
        f"other's backups, models and tables. Wait until it ends (or stop it) and run this "
        f"again, or use another run name (--run-name, or run_name in a notebook's parameters "
        f"cell).")


def _acquire(fd: int, path: Path, run_name: str) -> None:
    """Lock ``fd`` without waiting; :class:`RunInUse` if a live process holds the lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run_name, _holder(fd)) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        print(f"note: {path} cannot be locked on this file system ({err.strerror}); a second "
              f"process on run {run_name!r} will not be detected", file=sys.stderr)


@contextlib.contextmanager
def run_lock(run_name: str, command: str) -> Iterator[Path]:
    """Hold the lock of ``runs/<run_name>/`` for the block; yield the lock file's path.

    ``command`` (``"run"`` or ``"train"``) is recorded for the message another process shows.
    Raises :class:`RunInUse` at once, without waiting, when a live process holds the lock.
    """
    folder = config.run_dir(run_name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, path, run_name)
    except BaseException:
        os.close(fd)
        raise
    previous = os.environ.get(HELD_BY_PARENT)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "started": datetime.datetime.now().astimezone().isoformat(" ", "seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        _held.add(folder)
        os.environ[HELD_BY_PARENT] = f"{os.getpid()}:{folder}"
        yield path
    finally:
        _held.discard(folder)
        if previous is None:
            os.environ.pop(HELD_BY_PARENT, None)
        else:
            os.environ[HELD_BY_PARENT] = previous
        os.ftruncate(fd, 0)  # the record goes with the lock (a killed holder leaves it)
        os.close(fd)  # releases the lock


def _held_for_this_process(folder: Path) -> bool:
    """Whether this process, or the runner that started this kernel, holds ``folder``'s lock."""
    if folder in _held:
        return True
    pid, _, held = os.environ.get(HELD_BY_PARENT, "").partition(":")
    return pid == str(os.getppid()) and held == str(folder)


def _what_trains() -> str:
    """Who is training, in words, for the message another process shows."""
    if "ipykernel" in sys.modules:
        return "a notebook's kernel training networks (JupyterLab or papermill)"
    return f"a Python process training networks ({' '.join(sys.argv)[:80] or 'python'})"


@contextlib.contextmanager
def training_lock(run_name: str) -> Iterator[None]:
    """Hold the lock of ``runs/<run_name>/`` while networks train, unless this process (``run``,
    ``train``) or the runner that started this notebook kernel already holds it.

    Raises :class:`RunInUse` at once, naming the holder, when another process holds it: a
    notebook in JupyterLab never trains into a run that ``train`` or another kernel is
    training.
    """
    if _held_for_this_process(config.run_dir(run_name)):
        yield
        return
    with run_lock(run_name, _what_trains()):
        yield

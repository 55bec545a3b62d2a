"""Writing a run's files safely, and recording what produced them.

Every file a run keeps (models, tables, JSON) is written to a temporary name in the same
folder and then renamed with ``os.replace``, which is atomic on POSIX: an interrupted run
leaves either the previous file or the new one, never half a file.

Files are created with mode ``0o666`` less the process's umask, as ``open()`` creates them
(0644 under umask 022), not ``mkstemp``'s 0600: a shared ``runs/`` folder (multi-worker
training needs one) or a folder of student copies must be readable by others.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd


def _new_file_beside(path: Path) -> Path:
    """Create an empty file with a fresh hidden name beside ``path`` and return its path.

    The name keeps all of ``path``'s suffixes, so that e.g. Keras still sees a name ending in
    ``.weights.h5``. The file is opened with ``O_EXCL`` (never an existing file) and mode
    ``0o666``, which the kernel reduces by the umask: the permissions of a plain ``open()``,
    without reading the umask (``os.umask`` can only be read by setting it, which races with
    other threads creating files).
    """
    stem, suffixes = path.name.split(".")[0], "".join(path.suffixes)
    for _ in range(100):
        candidate = path.parent / f".{stem}.{secrets.token_hex(4)}{suffixes}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def _atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``; return ``path``."""
    with _atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_csv_atomic(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV (without the index) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


class DamagedFile(ValueError):
    """A run's JSON file that is not a JSON object (truncated, edited, or of another shape);
    the message names the file and what is wrong with it."""


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object written by :func:`write_json_atomic`.

    Every JSON file a run keeps holds one object; text that is not JSON, or JSON of another
    shape (a list, a number), raises :class:`DamagedFile` naming the file, so a caller never
    fails later on a ``.get`` of a list.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DamagedFile(f"{path} is damaged (not UTF-8 text: {err.reason})") from None
    except json.JSONDecodeError as err:
        raise DamagedFile(f"{path} is damaged (not valid JSON: {err.msg} at line {err.lineno})"
                          ) from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged (a JSON {type(data).__name__}, not the object it "
                          "should hold)")
    return data


#: The file that marks a complete snapshot of :func:`restored_unless_done`.
_SNAPSHOT_DONE = "complete"


def _files(folder: Path, spare: Callable[[Path], bool]) -> list[Path]:
    """The files under ``folder`` (relative paths) that ``spare`` does not exempt."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not spare(p))


def _restore(folders: Sequence[Path], store: Path, spare: Callable[[Path], bool]) -> None:
    """Put ``folders`` back as the snapshot in ``store`` holds them: files made since are
    removed, files changed or removed since are moved back (atomically, one by one)."""
    for index, folder in enumerate(folders):
        kept = store / str(index)
        saved = set(_files(kept, lambda p: False))
        for relative in _files(folder, spare):
            if relative not in saved:
                (folder / relative).unlink(missing_ok=True)
        for relative in saved:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(kept / relative, folder / relative)
    shutil.rmtree(store, ignore_errors=True)


@contextmanager
def restored_unless_done(folders: Sequence[str | os.PathLike], store: str | os.PathLike,
                         spare: Callable[[Path], bool] = lambda p: False) -> Iterator[None]:
    """Within the block, ``folders`` may change; if the block fails (any exception, Ctrl-C and
    SIGTERM included) they are put back as they were, so what a good run made is never mixed
    with what a failed one left.

    Before the block every file (but those ``spare`` exempts) is kept in ``store`` as a hard
    link (a copy where the file system cannot link): run files are replaced atomically, as
    new files (:func:`write_atomic`), so the link keeps the old content at no cost. A
    snapshot left complete by a process that was killed outright (SIGKILL, power loss) is
    restored first, so its failure changes nothing either.
    """
    folders = [Path(f) for f in folders]
    store = Path(store)
    if (store / _SNAPSHOT_DONE).exists():
        print(f"note: restoring the results of the last successful run from {store} (a run "
              "was stopped before it finished)")
        _restore(folders, store, spare)
    shutil.rmtree(store, ignore_errors=True)
    for index, folder in enumerate(folders):
        for relative in _files(folder, spare):
            target = store / str(index) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(folder / relative, target)
            except OSError:
                shutil.copy2(folder / relative, target)
    store.mkdir(parents=True, exist_ok=True)
    (store / _SNAPSHOT_DONE).touch()
    try:
        yield
    except BaseException:
        _restore(folders, store, spare)
        raise
    shutil.rmtree(store, ignore_errors=True)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour the results depend on."""
    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "tensorflow-datasets", "numpy", "pdc-utils"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description() -> str:
    """The accelerator TensorFlow will use, e.g. ``"GPU: NVIDIA H100"`` or ``"CPU (2 cores)"``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                 for g in gpus]
        return "GPU: " + ", ".join(names)
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


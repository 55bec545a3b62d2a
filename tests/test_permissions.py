"""Every file the package writes has the permissions the umask allows, as ``open()`` gives."""

from __future__ import annotations

import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pdc_utils import artifacts, plots, run  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    """Run the test under each umask, then restore the caller's."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    written = [
        artifacts.write_text_atomic(tmp_path / "summary.md", "x\n"),
        artifacts.write_json_atomic(tmp_path / "r.json", {"a": 1}),
        artifacts.write_csv_atomic(tmp_path / "t.csv", pd.DataFrame({"a": [1]})),
        artifacts.write_atomic(tmp_path / "w.weights.h5", lambda tmp: tmp.write_bytes(b"w")),
    ]
    for path in written:
        assert mode(path) == 0o666 & ~umask, path.name
    # replacing a file gives the new one the same permissions, whatever the old one had
    (tmp_path / "summary.md").chmod(0o600)
    assert mode(artifacts.write_text_atomic(tmp_path / "summary.md", "y\n")) == 0o666 & ~umask


def test_figures_follow_the_umask(tmp_path, umask):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = plots.save_figure(fig, "01_line", tmp_path)
    plots.close(fig)
    assert mode(path) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["01_line.png"]


def test_saved_networks_follow_the_umask(tmp_path, umask):
    """As the package saves networks and their backups: Keras writes the temporary file."""
    import keras

    inputs = keras.Input((3,))
    network = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    for name, save in (("f1.keras", network.save), ("f1.weights.h5", network.save_weights)):
        assert mode(artifacts.write_atomic(tmp_path / name, save)) == 0o666 & ~umask, name


def test_student_copies_follow_the_umask(tmp_path, umask):
    written = run.write_student_copies(tmp_path / "students")
    assert written and all(mode(path) == 0o666 & ~umask for path in written)

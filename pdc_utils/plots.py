"""The series' figures: one style, and one helper that saves them.

Every notebook calls :func:`use_style` once and :func:`save_figure` for each figure it keeps,
so figures look alike across the series and land in ``figures/<run>/``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

#: Colours of the three networks of the series, used by every figure that shows them.
MODEL_COLORS = {
    "f1": "#4C72B0",
    "source": "#4C72B0",
    "f2_baseline": "#DD8452",
    "baseline": "#DD8452",
    "f2_diverge": "#55A868",
    "diverge": "#55A868",
}


def use_style() -> None:
    """Set the series' matplotlib style (seaborn whitegrid, readable fonts, 110 dpi)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update(
        {"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.titleweight": "bold"}
    )


def save_figure(fig: matplotlib.figure.Figure, name: str, directory: str | os.PathLike) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` atomically and return the path.

    The file is written to a temporary name first and renamed, so an interrupted save never
    leaves a truncated PNG behind.
    """
    if not name or "/" in name or name.endswith(".png"):
        raise ValueError(f"name must be a bare file stem like '01_pearson_vs_dcor', got {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def close(fig: matplotlib.figure.Figure) -> None:
    """Close a figure that has been shown and saved, so long notebooks do not hoard memory."""
    plt.close(fig)


def plot_histories(histories: dict, metrics: tuple[str, ...] = ("accuracy", "ce"),
                   titles: dict | None = None) -> matplotlib.figure.Figure:
    """Per-epoch curves of several trainings side by side: one panel per metric.

    ``histories`` maps a model name (``f1``, ``f2_baseline``, ``f2_diverge``) to the
    per-epoch table that training wrote (``results/history_<name>.csv``). Training values are
    dashed, test values (``val_<metric>``) solid, each model in its series colour.
    """
    titles = titles or {}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for name, history in histories.items():
            color = MODEL_COLORS.get(name)
            epochs = history["epoch"] + 1
            if metric in history:
                ax.plot(epochs, history[metric], "--", color=color, alpha=0.7,
                        label=f"{name} (train)")
            if f"val_{metric}" in history:
                ax.plot(epochs, history[f"val_{metric}"], "-", color=color, label=f"{name} (test)")
        ax.set_xlabel("epoch")
        ax.set_title(titles.get(metric, metric))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig

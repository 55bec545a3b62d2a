"""The series' figures: one style, and one helper that saves them.

Every notebook calls :func:`use_style` once and :func:`save_figure` for each figure it keeps,
so figures look alike across the series and land in ``figures/<run>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from pdc_utils import artifacts

#: One colour per role of a network, used by every figure of notebooks 02-05 that shows
#: networks: the attackers (f1 and the independent ones), the baselines, the diverged networks,
#: and grey for references that are no trained role (an untrained network, shuffled pairs).
ROLE_COLORS = {
    "attacker": "#4C72B0",
    "baseline": "#DD8452",
    "diverged": "#55A868",
    "chain net": "#8172B3",
    "other": "#999999",
}

#: The same colours by the names the result tables use for a role (``method`` = ``source``,
#: ``baseline``, ``diverge``) and by the first network of each role.
MODEL_COLORS = {
    "f1": ROLE_COLORS["attacker"],
    "source": ROLE_COLORS["attacker"],
    "f2_baseline": ROLE_COLORS["baseline"],
    "baseline": ROLE_COLORS["baseline"],
    "f2_diverge": ROLE_COLORS["diverged"],
    "diverge": ROLE_COLORS["diverged"],
}


def role(name: str) -> str:
    """The role of a network of the series by its name: ``attacker`` (``f1``, ``f1_a<k>``),
    ``baseline`` (``f2_baseline``, ``f2_baseline_s<s>``), ``diverged`` (``f2_diverge…``),
    ``chain net`` (the middle nets of a ``paper_code`` chain), else ``other``."""
    for prefix, found in (("f2_baseline", "baseline"), ("f2_diverge", "diverged"),
                          ("f1", "attacker")):
        if name == prefix or name.startswith(prefix + "_"):
            return found
    return "chain net" if name.startswith("chain_") else "other"


def use_style() -> None:
    """Set the series' display style: matplotlib (seaborn whitegrid, readable fonts, 110 dpi)
    and pandas (wide tables are not wrapped, floats to 4 significant digits)."""
    import pandas as pd
    import seaborn as sns

    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.precision", 4)

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update(
        {"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.titleweight": "bold"}
    )


def save_figure(fig: matplotlib.figure.Figure, name: str, directory: str | os.PathLike) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` atomically and return the path.

    The file is written to a temporary name first and renamed, so an interrupted save never
    leaves a truncated PNG behind (:func:`pdc_utils.artifacts.write_atomic`, which also gives
    the file the permissions the umask allows).
    """
    if not name or "/" in name or name.endswith(".png"):
        raise ValueError(f"name must be a bare file stem like '01_pearson_vs_dcor', got {name!r}")
    path = Path(directory) / f"{name}.png"
    return artifacts.write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def close(fig: matplotlib.figure.Figure) -> None:
    """Close a figure that has been shown and saved, so long notebooks do not hoard memory."""
    plt.close(fig)


def model_color(name: str) -> str:
    """The series colour of a network, by its role (:func:`role`, :data:`ROLE_COLORS`),
    whatever its seed suffix; also for a table's ``method`` (``source``, ``baseline``,
    ``diverge``)."""
    return MODEL_COLORS.get(name, ROLE_COLORS[role(name)])


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
            color = model_color(name)
            epochs = history["epoch"] + 1
            if metric in history:
                ax.plot(epochs, history[metric], "--", color=color, alpha=0.7,
                        label=f"{name} (train)")
            if f"val_{metric}" in history:
                ax.plot(epochs, history[f"val_{metric}"], "-", color=color,
                        label=f"{name} (validation)")
        ax.set_xlabel("epoch")
        ax.set_title(titles.get(metric, metric))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def adversarial_grid(shown: dict, predictions: dict, labels, class_names,
                     models: list[str]) -> matplotlib.figure.Figure:
    """Clean and adversarial images (rows) with each model's prediction under every image.

    ``shown`` maps a row name (``"clean"``, ``"fgm ε=0.1"``, ...) to a batch of images;
    ``predictions[(row, model)]`` are class ids. Wrong predictions are red. Below each
    adversarial row, its perturbation ``x' - x`` (white = 0, averaged over the colour
    channels) shows what the attack changed, with a colour bar in pixel units.
    """
    import numpy as np

    clean = np.asarray(shown["clean"])
    rows = []
    for row, x in shown.items():
        rows.append((row, np.asarray(x), True))
        if row != "clean":
            rows.append((f"{row}: x' − x", np.asarray(x) - clean, False))
    n = len(labels)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n + 1.0, 1.75 * len(rows) + 0.6),
                             squeeze=False, layout="constrained")
    for r, (row, x, is_image) in enumerate(rows):
        scale = max(float(np.abs(x).max()), 1e-12)
        image = None
        for c in range(n):
            ax = axes[r, c]
            if is_image:
                ax.imshow(np.clip(x[c], 0, 1))
                for k, model in enumerate(models):
                    guess = predictions[(row, model)][c]
                    ax.text(1.02, 0.9 - 0.3 * k, f"{model}: {class_names[guess]}",
                            transform=ax.transAxes, fontsize=8, va="top",
                            color="black" if guess == labels[c] else "crimson")
            else:
                image = ax.imshow(x[c].mean(axis=-1), cmap="coolwarm", vmin=-scale,
                                  vmax=scale)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row, fontsize=9)
        if image is not None:
            fig.colorbar(image, ax=axes[r, -1], fraction=0.08, pad=0.05,
                         label="x' − x (pixels)")
    truth = ", ".join(class_names[y] for y in labels)
    fig.suptitle(f"Made on f1; true labels: {truth}. Red: wrong prediction", fontsize=10)
    return fig


def accuracy_vs_eps(accuracy, attacks: list[str], pairs: list[tuple[str, str]],
                    protocol: str) -> matplotlib.figure.Figure:
    """Accuracy against ε per attack: f1 white-box, and the mean ± sd over seed pairs of the
    baselines and the diverged networks, on the full 0–100 % axis so the white-box curve
    stays in the frame (the differences themselves are :func:`seed_intervals`' figure)."""
    import numpy as np

    fig, axes = plt.subplots(1, len(attacks), figsize=(5.2 * len(attacks), 3.8), squeeze=False)
    groups = {"f1 (white-box)": ["f1"], "baseline": [b for b, _ in pairs],
              "diverge": [d for _, d in pairs]}
    colours = {"f1 (white-box)": MODEL_COLORS["f1"], "baseline": MODEL_COLORS["baseline"],
               "diverge": MODEL_COLORS["diverge"]}
    clean = accuracy[accuracy["attack"] == "clean"].set_index("model")["accuracy"]
    for ax, attack in zip(axes[0], attacks, strict=True):
        rows = accuracy[accuracy["attack"] == attack]
        eps = sorted(set(rows["eps"]))
        for label, names in groups.items():
            by_eps = rows.pivot(index="eps", columns="model", values="accuracy")[names]
            values = np.vstack([clean[names].to_numpy(), by_eps.loc[eps].to_numpy()])
            mean, sd = values.mean(axis=1), values.std(axis=1)
            ax.plot([0.0, *eps], mean, "o-", color=colours[label], label=label)
            if len(names) > 1:
                ax.fill_between([0.0, *eps], mean - sd, mean + sd, color=colours[label],
                                alpha=0.2)
        ax.set_ylim(0.0, 101.0)
        units = "pixel units" if protocol == "pixel" else "normalised units"
        ax.set_xlabel(f"ε ({units})")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{attack.upper()} made on f1 (band: ± sd over seeds)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def seed_intervals(gap, n_seeds: int) -> matplotlib.figure.Figure:
    """Diverged − baseline accuracy per attack and ε: mean over seed pairs with its 95 %
    t-interval (the headline figure of notebook 04), one colour per attacker family (``f1``;
    ``others``: the mean over the independent attackers); a filled marker where Holm's
    adjusted p-value is below 0.05."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels = list(dict.fromkeys(a if a == "clean" else f"{a} {e:g}"
                                for a, e in zip(gap["attack"], gap["eps"], strict=True)))
    families = list(dict.fromkeys(gap["attackers"]))
    # both families are attackers: the attacker colour, dark for f1 and light for the others
    colours = {"none": "grey", "f1": ROLE_COLORS["attacker"], "others": "#9DB4DA"}
    for i, family in enumerate(families):
        rows = gap[gap["attackers"] == family]
        x = [labels.index(a if a == "clean" else f"{a} {e:g}") + 0.15 * (i - 1)
             for a, e in zip(rows["attack"], rows["eps"], strict=True)]
        low = (rows["difference"] - rows["low"]).fillna(0)
        high = (rows["high"] - rows["difference"]).fillna(0)
        significant = rows["p_holm"].fillna(1.0) < 0.05
        colour = colours.get(family, "black")
        ax.errorbar(x, rows["difference"], yerr=[low, high], fmt="none", ecolor=colour,
                    capsize=4)
        ax.scatter(x, rows["difference"], color=colour, zorder=3,
                   facecolors=[colour if s else "white" for s in significant])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_ylabel("diverge − baseline (points)")
    ax.set_title(f"Mean over {n_seeds} seed pairs, 95% t-interval")
    names = {"none": "clean accuracy", "f1": "attacker f1",
             "others": "independent attackers (mean)"}
    holm_legend(ax, {names.get(f, f): colours.get(f, "black") for f in families})
    fig.tight_layout()
    return fig


def holm_legend(ax: matplotlib.axes.Axes, colours: dict[str, str], **options) -> None:
    """A legend with one filled marker per ``label: colour`` and one hollow marker saying
    what hollow means, so a series' entry does not take the fill of its first point."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="none", color=c, markerfacecolor=c,
                      label=label) for label, c in colours.items()]
    handles.append(Line2D([], [], marker="o", linestyle="none", color="0.4",
                          markerfacecolor="white", label="hollow: not kept by Holm"))
    ax.legend(handles=handles, fontsize=8, **options)


def study_intervals(differences, eps_grid: list[float], level: float = 0.05,
                    title: str = "") -> matplotlib.figure.Figure:
    """A confirmatory run's diverged − baseline differences with their 95 % t-intervals: one
    panel per attack (columns) and attacker family (rows: ``f1``, ``others``), one colour per
    setting, a filled marker where Holm within the setting keeps the test (``p_holm`` <
    ``level``)."""
    import numpy as np

    attacked = differences[differences["attack"] != "clean"]
    settings = list(dict.fromkeys(attacked["setting"]))
    attacks = list(dict.fromkeys(attacked["attack"]))
    families = list(dict.fromkeys(attacked["attackers"]))
    fig, axes = plt.subplots(len(families), len(attacks), squeeze=False, sharey=True,
                             figsize=(5.5 * len(attacks), 3.2 * len(families)),
                             layout="constrained")
    colours = {name: f"C{k}" for k, name in enumerate(settings)}
    for i, family in enumerate(families):
        for j, attack in enumerate(attacks):
            ax = axes[i, j]
            for k, name in enumerate(settings):
                rows = attacked[(attacked["setting"] == name) & (attacked["attack"] == attack)
                                & (attacked["attackers"] == family)].sort_values("eps")
                x = np.array([eps_grid.index(e) for e in rows["eps"]], dtype=float)
                x += (k - (len(settings) - 1) / 2) * 0.12
                ax.errorbar(x, rows["difference"], yerr=[rows["difference"] - rows["low"],
                                                         rows["high"] - rows["difference"]],
                            fmt="none", ecolor=colours[name], lw=1)
                kept = (rows["p_holm"] < level).to_numpy()
                ax.scatter(x, rows["difference"], color=colours[name], zorder=3, s=22,
                           facecolors=np.where(kept, colours[name], "white"))
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(eps_grid)), [f"ε = {e:g}" for e in eps_grid])
            ax.set_title(f"{attack.upper()}, attackers: {family}", fontsize=10)
            if j == 0:
                ax.set_ylabel("diverged − baseline (points)")
    holm_legend(axes[0, -1], colours, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def layer_heatmaps(table, values: list[str], titles: dict[str, str]) -> matplotlib.figure.Figure:
    """Heat maps of a layer-by-layer comparison (``compare.layer_table`` rows): one row of
    panels per compared network, one column per statistic; rows of a map are the first
    network's layers, columns the second's."""
    import numpy as np

    pairs = list(dict.fromkeys(zip(table["model_a"], table["model_b"], strict=True)))
    fig, axes = plt.subplots(len(pairs), len(values), squeeze=False,
                             figsize=(4.3 * len(values), 3.6 * len(pairs)))
    for r, (model_a, model_b) in enumerate(pairs):
        rows = table[(table["model_a"] == model_a) & (table["model_b"] == model_b)]
        layers_a = list(dict.fromkeys(rows["layer_a"]))
        layers_b = list(dict.fromkeys(rows["layer_b"]))
        for c, value in enumerate(values):
            grid = rows.pivot(index="layer_a", columns="layer_b", values=value)
            grid = grid.loc[layers_a, layers_b].to_numpy()
            ax = axes[r, c]
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
            for (i, j), v in np.ndenumerate(grid):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 0.6 else "black")
            ax.set_xticks(range(len(layers_b)), layers_b, rotation=30, fontsize=8)
            ax.set_yticks(range(len(layers_a)), layers_a, fontsize=8)
            ax.set_xlabel(model_b)
            ax.set_ylabel(model_a)
            ax.set_title(titles.get(value, value), fontsize=10)
            ax.grid(False)
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def gram_vs_broadcast(timing: dict, memory: dict, sizes: list[int],
                      dim: int) -> matplotlib.figure.Figure:
    """Notebook 01's comparison: forward time (measured) and largest intermediate tensor
    (computed from sizes) of dCor² by Gram matrix and by broadcasting, against n.
    ``timing[form][n]`` in seconds (forms missing an n were skipped), ``memory[form][n]`` in
    bytes."""
    from matplotlib.ticker import FuncFormatter

    colours = {"gram": "#55A868", "broadcast": "#C44E52"}
    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(12, 4.2))
    for form, colour in colours.items():
        measured = sorted(timing[form])
        ax_time.plot(measured, [timing[form][n] * 1e3 for n in measured], "o-", color=colour,
                     label=form)
        ax_memory.plot(sizes, [memory[form][n] / 2**20 for n in sizes], "o-", color=colour,
                       label=form)
    skipped = [n for n in sizes if n not in timing["broadcast"]]
    if skipped:
        ax_memory.plot(skipped, [memory["broadcast"][n] / 2**20 for n in skipped], "x",
                       color="black", markersize=10, label="broadcast skipped")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax in (ax_time, ax_memory):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.yaxis.set_major_formatter(plain)
        ax.set_xlabel("batch size n")
    ax_time.legend(loc="best")
    ax_memory.legend(loc="upper left")
    ax_time.set_ylabel("forward time (ms, best of 3)")
    ax_time.set_title(f"Time of dCor², d = {dim} (measured)")
    ax_memory.set_ylabel("largest intermediate tensor (MiB)")
    ax_memory.set_title("Memory (computed from tensor sizes)")
    fig.tight_layout()
    return fig


def class_legend(ax, class_names) -> None:
    """Use ``ax`` for a legend of the class colours (tab10) instead of a plot."""
    from matplotlib.lines import Line2D

    colours = plt.get_cmap("tab10")
    handles = [Line2D([], [], marker="o", linestyle="", color=colours(k), label=str(name))
               for k, name in enumerate(class_names)]
    ax.legend(handles=handles, title="class", loc="center", ncol=2, frameon=False)
    ax.axis("off")


def role_histories(histories: dict, roles: dict[str, list[str]], metrics: tuple[str, ...],
                   titles: dict | None = None,
                   percent: tuple[str, ...] = ("accuracy",)) -> matplotlib.figure.Figure:
    """Per-epoch curves of several trainings grouped by role: one panel per metric.

    ``histories`` maps a network's name to its per-epoch table
    (``results/history_<name>.csv``); ``roles`` maps a role's label (``"baseline"``,
    ``"diverged"``) to its networks. Every network is one line in its role's series colour
    (:func:`model_color`), dashed for the training value (``<metric>``, the mean over the
    epoch's batches) and solid for the validation value (``val_<metric>``). The legend has one
    entry per role and one per line style, below the panels, so it never covers a curve.
    Metrics in ``percent`` (fractions in the tables) are drawn in %.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    titles = titles or {}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        scale = 100.0 if metric in percent else 1.0
        for names in roles.values():
            for name in names:
                history, color = histories[name], model_color(name)
                for column, style in ((metric, "o--"), (f"val_{metric}", "o-")):
                    if column in history:  # markers: a one-epoch training is a point
                        ax.plot(history["epoch"] + 1, scale * history[column], style,
                                color=color, lw=1.3, ms=2.5, alpha=0.8)
        epochs = max(int(histories[name]["epoch"].max()) + 1 for names in roles.values()
                     for name in names)
        if epochs <= 12:  # every epoch a tick (a locator would put fractions around one)
            ax.set_xticks(range(1, epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("%" if metric in percent else titles.get(metric, metric))
        ax.set_title(titles.get(metric, metric))
    handles = [Line2D([], [], color=model_color(names[0]), lw=3,
                      label=f"{role} ({len(names)} network{'s' * (len(names) > 1)})")
               for role, names in roles.items() if names]
    handles += [Line2D([], [], color="black", ls="--", label="training (batch mean)"),
                Line2D([], [], color="black", ls="-", label="validation")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig

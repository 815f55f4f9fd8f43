"""Figures, drawn with matplotlib's file-only backend (imported only when a figure is made)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from .console import BASELINE_LABEL


def loss_curve(
    history: list[dict[str, float]],
    path: Path,
    metric: str,
    title: str,
    kept_epoch: int = 0,
    best_epoch: int = 0,
    monitor: str = "val_loss",
) -> Path:
    """Train and validation loss per epoch, and the headline validation metric beside them;
    a dashed line marks the epoch whose weights were kept and, where it is another one, a
    dotted line the best epoch by the monitor."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    has_metric = any(f"val_{metric}" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(10 if has_metric else 5.5, 4))
    axes = axes if has_metric else [axes]
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    if any("val_loss" in r for r in history):
        axes[0].plot(epochs, [r.get("val_loss") for r in history], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    losses = [r["train_loss"] for r in history]
    if min(losses) > 0 and max(losses) / min(losses) > 20:  # a log scale only where it helps
        axes[0].set_yscale("log")
    if has_metric:
        axes[1].plot(epochs, [r.get(f"val_{metric}") for r in history], color="tab:orange")
        axes[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    marks: list[tuple[int, Literal["--", ":"], str]] = []
    if kept_epoch:
        also = f" (best {monitor})" if kept_epoch == best_epoch else ""
        marks.append((kept_epoch, "--", f"kept: epoch {kept_epoch}{also}"))
    if best_epoch and best_epoch != kept_epoch:
        marks.append((best_epoch, ":", f"best {monitor}: epoch {best_epoch}"))
    for ax in axes:
        ax.grid(alpha=0.3)
        for epoch, style, label in marks:
            ax.axvline(epoch, color="grey", linestyle=style, linewidth=1.2, label=label)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend, imported on first use. Text is never read as
    mathtext: column and run names such as `$x$` or `a$_$b` are drawn as they are written."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG under its final name only once it is complete."""
    from .atomic import atomic_write, make_folder

    try:
        make_folder(path.parent)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        pyplot().close(fig)
    return path


# Train and validation differ by marker as well as by line, so that a series of one point (no
# line to see) still tells them apart; a point none of whose trials completed is drawn as a cross.
SPLIT_STYLE: dict[str, dict[str, Any]] = {
    "train": {"linestyle": "-", "marker": "o", "word": "train"},
    "val": {"linestyle": "--", "marker": "s", "word": "validation"},
}
FAILED_STYLE: dict[str, Any] = {
    "marker": "x",
    "color": "black",
    "markersize": 9,
    "linestyle": "none",
}
FAILED_LABEL = "failed (no trial completed)"


def _series(points: list[dict[str, Any]], x_key: str) -> dict[str, list[dict[str, Any]]]:
    """Points grouped into lines: same depth and same other settings, sorted along x."""
    lines: dict[str, list[dict[str, Any]]] = {}
    several_depths = len({p.get("depth") for p in points}) > 1
    for p in points:
        others = [f"{k}={v}" for k, v in p["settings"].items() if k != "model.hidden"]
        label = " ".join(([f"depth {p['depth']}"] if several_depths else []) + others)
        lines.setdefault(label, []).append(p)
    return {k: sorted(v, key=lambda p: p[x_key]) for k, v in lines.items()}


def _failed(point: dict[str, Any]) -> bool:
    return not point.get("completed")


def _mark_failed(ax: Any, xs: list[Any]) -> None:
    """Crosses just above the x axis at failed points (they have no value to place them by)."""
    if xs:
        ax.plot(xs, [0.03] * len(xs), transform=ax.get_xaxis_transform(), **FAILED_STYLE)


def _legend_below(fig: Any, handles: list[Any], height: float) -> None:
    """One legend for the whole figure, under the axes, where it covers no data."""
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, min(0.6, _legend_height(len(handles)) / height), 1, 1))


def _legend_height(entries: int) -> float:
    """Inches under the axes for a legend of this many entries, three to a row."""
    return 0.1 + 0.2 * -(-entries // 3)


def sweep_curves(
    points: list[dict[str, Any]],
    path: Path,
    metric: str,
    x_key: str,
    title: str,
    baseline: dict[str, Any] | None = None,
) -> Path:
    """Train (solid, dots) and validation (dashed, squares) loss and metric against width or
    parameter count, mean over seeds with a band of one standard deviation; the linear
    baseline's point, if given, as horizontal lines across both plots."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    series = _series(points, x_key)
    failed = [p for p in points if _failed(p)]
    entries = len(series) + 2 + (1 if failed else 0) + (1 if baseline else 0)
    height = 4.2 + _legend_height(entries)
    fig, axes = plt.subplots(1, 2, figsize=(11, height))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (label, line) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        handles.append(Line2D([], [], color=colour, linewidth=3, label=label or "all points"))
        completed = [p for p in line if not _failed(p)]
        for ax, name in zip(axes, ("loss", metric)):
            _draw_series(ax, completed, x_key, name, colour)
    if baseline is not None:
        handles.append(_baseline_lines(axes, baseline, metric))
    for split, style in SPLIT_STYLE.items():
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                linestyle=style["linestyle"],
                marker=style["marker"],
                markerfacecolor="black" if split == "train" else "white",
                label=style["word"],
            )
        )
    if failed:
        handles.append(Line2D([], [], label=FAILED_LABEL, **FAILED_STYLE))
    xlabel = "hidden units per layer" if x_key == "width" else "parameters"
    widths = sorted({p[x_key] for p in points})
    for ax, name in zip(axes, ("loss", metric)):
        _mark_failed(ax, [p[x_key] for p in failed])
        ax.set_xscale("log", base=2 if x_key == "width" else 10)
        if x_key == "width":
            ax.set_xticks(widths, [str(w) for w in widths])
            ax.minorticks_off()
        ax.set(xlabel=xlabel, ylabel=name, title=f"{name}: train and validation")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _legend_below(fig, handles, height)
    return save_figure(fig, path)


def _draw_series(ax: Any, line: list[dict[str, Any]], x_key: str, name: str, colour: str) -> None:
    """One line of points on one plot: its train and validation means, each with a band of
    one standard deviation."""
    xs = [p[x_key] for p in line]
    for split, style in SPLIT_STYLE.items():
        mean = [p.get(f"{split}_{name}_mean", float("nan")) for p in line]
        std = [p.get(f"{split}_{name}_std", 0.0) for p in line]
        ax.plot(
            xs,
            mean,
            linestyle=style["linestyle"],
            marker=style["marker"],
            color=colour,
            markerfacecolor=colour if split == "train" else "white",
            markersize=7,
        )
        ax.fill_between(
            xs,
            [m - s for m, s in zip(mean, std)],
            [m + s for m, s in zip(mean, std)],
            color=colour,
            alpha=0.15,
        )


BASELINE_COLOUR = "dimgray"


def _baseline_lines(axes: Any, baseline: dict[str, Any], metric: str) -> Any:
    """The linear baseline (width 0, which a log axis cannot show) as horizontal lines: train
    solid, validation dashed, each with a band of one standard deviation. Returns its legend
    entry."""
    from matplotlib.lines import Line2D

    if _failed(baseline):
        return Line2D([], [], label=f"{BASELINE_LABEL}: {FAILED_LABEL}", **FAILED_STYLE)
    for ax, name in zip(axes, ("loss", metric)):
        for split, style in SPLIT_STYLE.items():
            mean = baseline.get(f"{split}_{name}_mean")
            if not isinstance(mean, (int, float)) or not math.isfinite(mean):
                continue
            std = baseline.get(f"{split}_{name}_std", 0.0)
            ax.axhline(mean, color=BASELINE_COLOUR, linestyle=style["linestyle"], linewidth=1.5)
            if std > 0:
                ax.axhspan(mean - std, mean + std, color=BASELINE_COLOUR, alpha=0.12, linewidth=0)
            if split == "val":  # named beside the axes too, where it covers no data
                ax.annotate(
                    BASELINE_LABEL.replace(" ", "\n"),
                    (1.0, mean),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    color=BASELINE_COLOUR,
                    fontsize=7,
                )
    return Line2D([], [], color=BASELINE_COLOUR, linewidth=3, label=BASELINE_LABEL)


def sweep_points(points: list[dict[str, Any]], path: Path, metric: str, title: str) -> Path:
    """Train and validation metric per grid point, mean over seeds with one-std error bars."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    labels = [
        BASELINE_LABEL
        if p.get("baseline")
        else " ".join(f"{k.split('.')[-1]}={v}" for k, v in p["settings"].items()) or "base"
        for p in points
    ]
    failed = [i for i, p in enumerate(points) if _failed(p)]
    entries = 2 + (1 if failed else 0)
    height = 4.5 + _legend_height(entries)
    fig, ax = plt.subplots(figsize=(max(5.5, 0.6 * len(points) + 2), height))
    xs = list(range(len(points)))
    handles = []
    for (split, style), colour in zip(SPLIT_STYLE.items(), ("tab:blue", "tab:orange")):
        ax.errorbar(
            xs,
            [p.get(f"{split}_{metric}_mean", float("nan")) for p in points],
            yerr=[p.get(f"{split}_{metric}_std", 0.0) for p in points],
            fmt=style["marker"],
            color=colour,
            markerfacecolor=colour if split == "train" else "white",
            markersize=7,
            capsize=3,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=style["marker"],
                color=colour,
                markerfacecolor=colour if split == "train" else "white",
                label=style["word"],
            )
        )
    _mark_failed(ax, failed)
    if failed:
        handles.append(Line2D([], [], label=FAILED_LABEL, **FAILED_STYLE))
    ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
    for i in failed:
        ax.get_xticklabels()[i].set_color("tab:red")
    ax.set(ylabel=metric, title=title)
    ax.grid(alpha=0.3)
    _legend_below(fig, handles, height)
    return save_figure(fig, path)

"""Figures, drawn with matplotlib's file-only backend (imported only when a figure is made)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from .config.registry import BASELINES
from .console import BASELINE_LABEL
from .runs.reading import as_number


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
    if loss_scale_is_log([r["train_loss"] for r in history]):
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
    fig.suptitle(literal(title))
    fig.tight_layout()
    return save_figure(fig, path)


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def literal(text: object) -> str:
    """Text from a run, a config or a data file, escaped so that it is drawn as written: a pair
    of `$` would otherwise start mathtext (`$x$`, `a$_$b`). matplotlib's own labels (a log
    axis's 10^-2) stay mathtext, so only names, labels and values pass through here."""
    return str(text).replace("$", r"\$")


def save_figure(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG under its final name only once it is complete."""
    from .runs.atomic import atomic_write, make_folder

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


def numeric_settings(points: list[dict[str, Any]]) -> list[str]:
    """The swept keys whose values are all numbers, at least two different ones: each is drawn
    on a numeric axis (vs_<key>.png) rather than as categories."""
    keys = list(dict.fromkeys(k for p in points for k in p["settings"]))
    numeric = []
    for key in keys:
        values = [as_number(p["settings"].get(key)) for p in points]
        if None not in values and len(set(values)) > 1:
            numeric.append(key)
    return numeric


def _x(point: dict[str, Any], x_key: str) -> float:
    """A point's place on the x axis: its width, depth or parameter count, or a swept setting."""
    if x_key in ("width", "params", "depth"):
        return point[x_key]
    number = as_number(point["settings"][x_key])
    assert number is not None  # numeric_settings chose the key
    return number


def _series(points: list[dict[str, Any]], x_key: str) -> dict[str, list[dict[str, Any]]]:
    """Points grouped into lines, sorted along x: against width or parameters, the same depth
    and other settings; against depth, the same parameter budget (named with its widths) and
    other settings; against a swept setting, the same other settings."""
    lines: dict[str, list[dict[str, Any]]] = {}
    by_size = x_key in ("width", "params")
    several_depths = by_size and len({p.get("depth") for p in points}) > 1
    skip = "model.hidden" if by_size or x_key == "depth" else x_key
    for p in points:
        others = [f"{k}={v}" for k, v in p["settings"].items() if k != skip]
        head = [f"depth {p['depth']}"] if several_depths else []
        if x_key == "depth" and "budget" in p:
            head = [f"{p['budget']:,} params"]
        lines.setdefault(" ".join(head + others), []).append(p)
    lines = {k: sorted(v, key=lambda p: _x(p, x_key)) for k, v in lines.items()}
    if x_key == "depth":  # each depth's width differs, so the legend names them
        return {_with_widths(k, v): v for k, v in lines.items()}
    return lines


def _with_widths(label: str, line: list[dict[str, Any]]) -> str:
    """'2,000 params: widths 666, 40, 28' (in the order of depth)."""
    widths = ", ".join(str(p["width"]) for p in line if "width" in p)
    return f"{label}: width{'s' if len(line) > 1 else ''} {widths}" if widths else label


def _failed(point: dict[str, Any]) -> bool:
    return not point.get("completed")


def _mark_failed(ax: Any, xs: list[Any]) -> None:
    """Crosses just above the x axis at failed points (they have no value to place them by)."""
    if xs:
        ax.plot(xs, [0.03] * len(xs), transform=ax.get_xaxis_transform(), **FAILED_STYLE)


def legend_outside(fig: Any, handles: list[Any], fontsize: float = 8) -> Any:
    """One legend for the whole figure, under its axes, which a constrained layout keeps clear
    of them (so it covers no data); as many entries to a row as the figure's width holds."""
    inches = [0.55 + 0.6 * fontsize / 72 * len(h.get_label()) for h in handles]
    width = fig.bbox.width / fig.dpi - 0.4  # a figure's or a subfigure's width, inches
    ncol = max(1, min(len(handles), int(width // max(inches, default=1.0))))
    return fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=fontsize)


def loss_scale_is_log(losses: list[float]) -> bool:
    """Whether a loss axis is drawn on a log scale: only where it helps, losses all positive
    that fall more than twentyfold."""
    return bool(losses) and all(v > 0 for v in losses) and max(losses) / min(losses) > 20


def log_scale_fits(values: list[float]) -> bool:
    """Whether values span two decades or more (and are all positive): a log axis then shows
    them apart; a linear one would crowd the small ones together."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 100


def _x_axis(axes: Any, points: list[dict[str, Any]], x_key: str) -> None:
    """Width on a log2 axis with a tick at each width; parameters on a log10 axis; a swept
    setting on a log10 axis when its values span two decades, else a linear one, with a tick
    at each value while there are few."""
    from matplotlib.ticker import LogFormatter

    values = sorted({_x(p, x_key) for p in points})
    label = {
        "width": "hidden units per layer",
        "params": "parameters",
        "depth": "hidden layers, at one parameter budget",
    }.get(x_key, x_key)
    for ax in axes:
        if x_key == "width":
            ax.set_xscale("log", base=2)
        elif x_key == "params" or log_scale_fits(values):
            ax.set_xscale("log", base=10)
        if x_key == "params":  # counts as 20, 300, 5000: narrower than 2x10^1, so none overlap
            ax.xaxis.set_major_formatter(LogFormatter())
            ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        if x_key != "params" and len(values) <= 10:
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
        ax.set_xlabel(literal(label))


def sweep_curves(
    points: list[dict[str, Any]],
    path: Path,
    metric: str,
    x_key: str,
    title: str,
    baseline: list[dict[str, Any]] | dict[str, Any] | None = None,
) -> Path:
    """Train (solid, dots) and validation (dashed, squares) loss and metric against width,
    parameter count, depth at a parameter budget, or a numeric swept setting (`x_key`), one
    line per value of the other settings, mean over seeds with a band of one
    standard deviation; each baseline's point, if given (the linear's, the kernel's), as
    horizontal lines across both plots."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    series = _series(points, x_key)
    failed = [p for p in points if _failed(p)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (label, line) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        text = literal(label or "all points")
        handles.append(Line2D([], [], color=colour, linewidth=3, label=text))
        completed = [p for p in line if not _failed(p)]
        for ax, name in zip(axes, ("loss", metric)):
            _draw_series(ax, completed, x_key, name, colour)
    baselines = [baseline] if isinstance(baseline, dict) else baseline or []
    for i, point in enumerate(baselines):
        colour = BASELINE_COLOURS[i % len(BASELINE_COLOURS)]
        handles.append(_baseline_lines(axes, point, metric, colour))
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
    for ax, name in zip(axes, ("loss", metric)):
        _mark_failed(ax, [_x(p, x_key) for p in failed])
        ax.set(ylabel=name, title=f"{name}: train and validation")
        ax.grid(alpha=0.3)
    _x_axis(axes, points, x_key)
    fig.suptitle(literal(title))
    legend_outside(fig, handles)
    return save_figure(fig, path)


def _draw_series(ax: Any, line: list[dict[str, Any]], x_key: str, name: str, colour: str) -> None:
    """One line of points on one plot: its train and validation means, each with a band of
    one standard deviation."""
    xs = [_x(p, x_key) for p in line]
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


BASELINE_COLOURS = (BASELINE_COLOUR, "saddlebrown")  # one per baseline point, in order


def baseline_label(point: dict[str, Any]) -> str:
    """A sweep's baseline point's name: 'linear baseline', 'kernel baseline'."""
    return BASELINES[point["model"]].label if point.get("model") in BASELINES else BASELINE_LABEL


def _baseline_lines(
    axes: Any, baseline: dict[str, Any], metric: str, colour: str = BASELINE_COLOUR
) -> Any:
    """A baseline (the linear model's width 0, which a log axis cannot show, or the kernel
    machine, which has no width) as horizontal lines: train solid, validation dashed, each with
    a band of one standard deviation; the kernel has no loss to draw. Returns its legend
    entry."""
    from matplotlib.lines import Line2D

    label = baseline_label(baseline)
    if _failed(baseline):
        return Line2D([], [], label=f"{label}: {FAILED_LABEL}", **FAILED_STYLE)
    for ax, name in zip(axes, ("loss", metric)):
        for split, style in SPLIT_STYLE.items():
            mean = baseline.get(f"{split}_{name}_mean")
            if not isinstance(mean, (int, float)) or not math.isfinite(mean):
                continue
            std = baseline.get(f"{split}_{name}_std", 0.0)
            ax.axhline(mean, color=colour, linestyle=style["linestyle"], linewidth=1.5)
            if std > 0:
                ax.axhspan(mean - std, mean + std, color=colour, alpha=0.12, linewidth=0)
            if split == "val":  # named beside the axes too, where it covers no data
                ax.annotate(
                    label.replace(" ", "\n"),
                    (1.0, mean),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    color=colour,
                    fontsize=7,
                )
    return Line2D([], [], color=colour, linewidth=3, label=label)


MAX_SIDE_BY_SIDE = 8  # points up to which by_point.png sets its two panels side by side


def sweep_points(points: list[dict[str, Any]], path: Path, metric: str, title: str) -> Path:
    """Train and validation loss and metric per grid point (settings that are not numbers, or
    one value of each), mean over seeds with one-std error bars: side by side, or the loss
    above the metric when there are many points."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    labels = [
        baseline_label(p)
        if p.get("baseline")
        else " ".join(f"{k.split('.')[-1]}={v}" for k, v in p["settings"].items()) or "base"
        for p in points
    ]
    failed = [i for i, p in enumerate(points) if _failed(p)]
    width = max(5.0, 0.6 * len(points) + 1.5)
    stacked = len(points) > MAX_SIDE_BY_SIDE
    shape, size = ((2, 1), (width, 9.0)) if stacked else ((1, 2), (2 * width, 5.2))
    fig, axes = plt.subplots(*shape, figsize=size, sharex=stacked, layout="constrained")
    xs = list(range(len(points)))
    handles = []
    for (split, style), colour in zip(SPLIT_STYLE.items(), ("tab:blue", "tab:orange")):
        for ax, name in zip(axes, ("loss", metric)):
            ax.errorbar(
                xs,
                [p.get(f"{split}_{name}_mean", float("nan")) for p in points],
                yerr=[p.get(f"{split}_{name}_std", 0.0) for p in points],
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
    if failed:
        handles.append(Line2D([], [], label=FAILED_LABEL, **FAILED_STYLE))
    for ax, name in zip(axes, ("loss", metric)):
        _mark_failed(ax, failed)
        ax.set_xticks(xs, [literal(label) for label in labels], rotation=30, ha="right")
        ax.tick_params(axis="x", labelsize=8, labelbottom=not stacked or name != "loss")
        for i in failed:
            ax.get_xticklabels()[i].set_color("tab:red")
        ax.set(ylabel=name, title=f"{name}: train and validation")
        ax.grid(alpha=0.3)
    fig.suptitle(literal(title))
    legend_outside(fig, handles)
    return save_figure(fig, path)


def compare_curves(
    curves: list[tuple[str, list[tuple[float, float]], list[tuple[float, float]]]],
    path: Path,
    title: str,
) -> Path:
    """Each run's (name, train loss, validation loss) per epoch in one panel: one colour per
    run, train solid, validation dashed; the legend names the runs, then the two line styles."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20").colors
    handles = []
    values: list[float] = []
    for i, (name, train, val) in enumerate(curves):
        colour = colours[i % len(colours)]
        for series, style in ((train, "-"), (val, "--")):
            if series:
                ax.plot(*zip(*series), color=colour, linestyle=style, linewidth=1.6)
                values += [v for _, v in series]
        handles.append(Line2D([], [], color=colour, label=literal(name)))
    for split in ("train", "val"):
        split_style = SPLIT_STYLE[split]
        handles.append(
            Line2D(
                [], [], color="grey", linestyle=split_style["linestyle"], label=split_style["word"]
            )
        )
    if loss_scale_is_log(values):
        ax.set_yscale("log")  # as in loss.png
    ax.set(xlabel="epoch", ylabel="loss", title="loss: train solid, validation dashed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.grid(alpha=0.3)
    fig.suptitle(literal(title))
    legend_outside(fig, handles)
    return save_figure(fig, path)

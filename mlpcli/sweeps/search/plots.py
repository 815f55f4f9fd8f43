"""The search's figures: every trial in parallel coordinates (plots/parallel.png), each searched
key's share of the objective's variance (importance.png), and the objective against epoch with
pruned trials ending where they were stopped (intermediate.png).

The driver passes plain data (SearchPoint, the space's Dims); nothing here imports Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...plots import legend_outside, literal, log_scale_fits, pyplot, save_figure
from ..grid import format_value
from .space import Dim

MAX_LABEL = 18  # characters of a tick label; longer ones (a dict choice) end in an ellipsis
PAD = 0.04  # margin above and below each parallel axis, as a share of its span
PRUNED = "0.62"  # pruned trials' grey, drawn under the completed ones
PRUNED_MARK = "0.3"  # the darker grey of the cross where a pruned trial stopped
RUNG = "0.5"
TICK_BOX = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.6}


@dataclass
class SearchPoint:
    """One trial of a search as its figures see it."""

    name: str  # "trial-003"
    status: str  # completed | pruned | failed
    params: dict[str, Any]  # the config value per searched key (a choice's value: [64, 64])
    value: float | None  # completed: the final val metric; pruned: its last report; failed: None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, objective) reported
    pruned_at: int | None = None  # the epoch after which a pruned trial stopped


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    """Text cut to `limit` characters, its end replaced by an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value(point: SearchPoint) -> float:
    """A trial's objective as a float, NaN where it has none."""
    value = point.value
    return float(value) if value is not None and _finite(value) else math.nan


def _counts(points: Sequence[SearchPoint], pruned_how: str) -> str:
    """'12 trials: 8 completed, 3 pruned (grey), 1 failed, not drawn'."""
    completed = sum(p.status == "completed" for p in points)
    pruned = sum(p.status == "pruned" for p in points)
    failed = len(points) - completed - pruned
    text = f"{len(points)} trials: {completed} completed, {pruned} pruned ({pruned_how})"
    return text + (f", {failed} failed, not drawn" if failed else "")


def _colour_scale(values: list[float], maximise: bool) -> tuple[Any, Any]:
    """(norm, colormap) for the objective: viridis, its bright end at the best value whether
    the objective is maximised or minimised; a log norm where the values span two decades."""
    from matplotlib.colors import LogNorm, Normalize

    plt = pyplot()
    cmap = plt.get_cmap("viridis" if maximise else "viridis_r")
    low, high = _spread(min(values, default=0.0), max(values, default=1.0))
    norm = LogNorm(low, high) if log_scale_fits(values) else Normalize(low, high)
    return norm, cmap


def _spread(low: float, high: float) -> tuple[float, float]:
    """A range that is not empty: one value gets a small span around it."""
    if high > low:
        return low, high
    step = abs(low) * 0.05 or 0.5
    return low - step, high + step


def _direction(maximise: bool) -> str:
    return "higher is better" if maximise else "lower is better"


class _Axis:
    """One vertical axis of the parallel coordinates: where a value lies on the shared [0, 1]
    scale the lines are drawn on, and the twin axes that shows the values there."""

    def __init__(self, name: str, low: float, high: float, log: bool = False) -> None:
        self.name, self.log = name, log
        self.low, self.high = (math.log10(low), math.log10(high)) if log else (low, high)
        if self.high <= self.low:  # a degenerate range still draws, its lines at the middle
            self.low, self.high = self.low - 1.0, self.high + 1.0
        self.labels: list[str] = []  # a choice's tick labels, at 0, 1, 2... on its own scale
        self.integer = False

    def unit(self, value: Any) -> float:
        """The value's place on [0, 1]; NaN (a gap in the line) for one it cannot place."""
        if not _finite(value) or (self.log and value <= 0):
            return math.nan
        place = math.log10(value) if self.log else float(value)
        return (place - self.low) / (self.high - self.low)

    def limits(self) -> tuple[float, float]:
        """The twin's y limits, in its own units, that put [0, 1] where the lines' scale has it."""
        span = self.high - self.low
        ends = (self.low - PAD * span, self.high + PAD * span)
        return (10 ** ends[0], 10 ** ends[1]) if self.log else ends

    def dress(self, twin: Any) -> None:
        """Scale, limits and a few tick labels on the twin axes."""
        from matplotlib.ticker import (
            FuncFormatter,
            LogFormatterSciNotation,
            LogLocator,
            MaxNLocator,
        )

        if self.log:
            twin.set_yscale("log")
        twin.set_ylim(*self.limits())
        if self.labels:
            places = range(len(self.labels))
            twin.set_yticks(list(places), [literal(shorten(t)) for t in self.labels])
        elif self.log and self.high - self.low < 2:  # too few decades to read: 2x and 5x too
            twin.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            twin.yaxis.set_minor_formatter(
                LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 2))
            )
        elif not self.log:
            twin.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=self.integer))
        if self.integer and self.log:  # an integer reads better as 100 than as 10^2
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            twin.yaxis.set_major_formatter(plain)
            twin.yaxis.set_minor_formatter(plain)


def _dim_axis(dim: Dim) -> _Axis:
    if dim.kind == "choice":
        labels = [format_value(c) for c in dim.choices]
        axis = _Axis(dim.key, 0.0, float(len(labels) - 1))
        axis.labels = labels
        return axis
    log = dim.kind == "log" or dim.log
    axis = _Axis(dim.key, float(dim.low or 0), float(dim.high or 0), log=log)
    axis.integer = dim.kind == "int"
    return axis


def _dim_value(dim: Dim, axis: _Axis, value: Any) -> float:
    """A trial's value of a key on that key's [0, 1] scale (a choice by its label)."""
    if dim.kind != "choice":
        return axis.unit(value)
    try:
        return axis.unit(axis.labels.index(format_value(value)))
    except Exception:  # a value outside the choices (or not YAML) has no place to be drawn
        return math.nan


def _axis_name(key: str) -> str:
    """A key as an axis's name under it: split after its first dot when long, each line
    shortened, so that neighbouring names do not run into each other."""
    if len(key) <= MAX_LABEL or "." not in key:
        return literal(shorten(key))
    head, tail = key.split(".", 1)
    return literal(shorten(head + ".")) + "\n" + literal(shorten(tail))


def parallel_figure(
    points: Sequence[SearchPoint],
    dims: dict[str, Dim],
    objective: str,
    maximise: bool,
    path: Path,
    title: str,
) -> Path:
    """Parallel coordinates: one vertical axis per searched key, in the space's order, and the
    objective last; one line per trial, coloured by its objective (the best the brightest and
    drawn on top), pruned trials thin and grey underneath, failed ones left out."""
    plt = pyplot()
    from matplotlib.collections import LineCollection

    drawn = [p for p in points if p.status in ("completed", "pruned") and _finite(p.value)]
    shown = [(_dim_axis(d), d) for d in dims.values()]
    values = [_value(p) for p in drawn]
    low, high = _spread(min(values, default=0.0), max(values, default=1.0))
    goal = _Axis(objective, low, high, log=log_scale_fits(values))
    xs = [float(i) for i in range(len(shown) + 1)]

    def line(p: SearchPoint) -> list[tuple[float, float]]:
        ys = [_dim_value(d, a, p.params.get(d.key)) for a, d in shown] + [goal.unit(p.value)]
        return list(zip(xs, ys))

    width = max(7.0, 1.45 * len(xs) + 3.2)
    fig = plt.figure(figsize=(width, 5.0))
    ax = fig.add_axes((0.9 / width, 0.11, 1 - 3.0 / width, 0.73))
    pruned = [line(p) for p in drawn if p.status == "pruned"]
    ax.add_collection(LineCollection(pruned, colors=PRUNED, linewidths=0.8, zorder=1))
    completed = _best_last([p for p in drawn if p.status == "completed"], maximise)
    norm, cmap = _colour_scale([_value(p) for p in completed], maximise)
    best = completed[-1] if completed else None
    lines = LineCollection(
        [line(p) for p in completed],
        cmap=cmap,
        norm=norm,
        linewidths=[2.6 if p is best else 1.3 for p in completed],
        zorder=2,
    )
    lines.set_array([_value(p) for p in completed])
    ax.add_collection(lines)
    ax.set(xlim=(xs[0] - 0.5, xs[0] + 0.5) if len(xs) == 1 else (xs[0], xs[-1]))
    ax.set_ylim(-PAD, 1 + PAD)
    ax.set_yticks([])
    ax.set_xticks(xs, [_axis_name(a.name) for a, _ in shown] + [_axis_name(objective)])
    ax.tick_params(axis="x", length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for i, (axis, _) in enumerate([*shown, (goal, None)]):
        _twin(ax, axis, 0.5 if len(xs) == 1 else i / (len(xs) - 1))
    cax = fig.add_axes((1 - 1.35 / width, 0.11, 0.16 / width, 0.73))
    fig.colorbar(lines, cax=cax, label=literal(f"{objective} ({_direction(maximise)})"))
    fig.suptitle(f"{literal(title)}\n{_counts(points, 'grey')}", fontsize=11)
    return save_figure(fig, path)


def _best_last(points: list[SearchPoint], maximise: bool) -> list[SearchPoint]:
    """Completed trials with a value, the worst first and the best last (drawn on top). Of
    trials that tie, the first is the best, as in summary.json."""
    scored = [p for p in points if p.status == "completed" and _finite(p.value)]
    order = {id(p): i for i, p in enumerate(scored)}
    return sorted(scored, key=lambda p: (_value(p) if maximise else -_value(p), -order[id(p)]))


def _twin(ax: Any, axis: _Axis, at: float) -> Any:
    """The axes that shows one key's values, its spine at `at` across the lines' axes."""
    twin = ax.twinx()
    twin.set_label(axis.name)  # so that a reader of the figure finds each key's axes
    for name, spine in twin.spines.items():
        spine.set_visible(name == "right")
    twin.spines["right"].set_position(("axes", at))
    axis.dress(twin)
    twin.tick_params(axis="y", which="both", labelsize=8)
    for label in [*twin.get_yticklabels(), *twin.get_yticklabels(minor=True)]:
        label.set_bbox(TICK_BOX)  # readable over the lines that cross it
    return twin


def importance_figure(
    importances: dict[str, float], objective: str, path: Path, title: str, note: str = ""
) -> Path:
    """Each searched key's share of the objective's variance as a horizontal bar, the most
    important on top, its value at the bar's end; `note` (the evaluator, the trials it used)
    goes in the panel's title."""
    plt = pyplot()
    ranked = sorted(importances.items(), key=lambda kv: -kv[1] if _finite(kv[1]) else 0.0)
    fig, ax = plt.subplots(figsize=(6.6, 1.9 + 0.45 * max(2, len(ranked))), layout="constrained")
    places = list(range(len(ranked)))[::-1]  # the first (most important) at the top
    shares = [float(v) if _finite(v) else 0.0 for _, v in ranked]
    ax.barh(places, shares, height=0.6, color="tab:blue")
    for place, share in zip(places, shares):
        inside = share > 0.85  # near the right edge: written inside the bar, in white
        ax.text(
            share + (-0.015 if inside else 0.015),
            place,
            f"{share:.2f}",
            va="center",
            ha="right" if inside else "left",
            color="white" if inside else "black",
            fontsize=9,
        )
    ax.set_yticks(places, [literal(key) for key, _ in ranked])
    if not ranked:
        ax.text(0.5, 0.5, "no importances to show", ha="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of the variance of {literal(objective)}")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("parameter importance" + (f": {literal(note)}" if note else ""), fontsize=10)
    fig.suptitle(literal(title), fontsize=11)
    return save_figure(fig, path)


def _until(curve: list[tuple[int, float]], epoch: int | None) -> list[tuple[int, float]]:
    """A curve in epoch order, up to and including `epoch` when given."""
    ordered = sorted(curve, key=lambda r: r[0])
    return [r for r in ordered if epoch is None or r[0] <= epoch] or ordered


def intermediate_figure(
    points: Sequence[SearchPoint],
    objective: str,
    maximise: bool,
    path: Path,
    title: str,
    rungs: Iterable[int] = (),
) -> Path:
    """The objective against epoch for every trial: completed ones coloured by their final
    value as in parallel.png (the best drawn thick, on top, and named), pruned ones thin grey
    lines ending in a cross at the epoch they stopped, and faint vertical lines at the
    pruner's rungs. Failed trials are left out and counted in the title."""
    plt = pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8.4, 5.6), layout="constrained")
    completed = [p for p in points if p.status == "completed" and p.curve]
    pruned = [p for p in points if p.status == "pruned" and p.curve]
    last = max((e for p in completed + pruned for e, _ in p.curve), default=1)
    shown_rungs = sorted({r for r in rungs if 0 < r <= last})
    for epoch in shown_rungs:
        ax.axvline(epoch, color=RUNG, linestyle=":", linewidth=1, alpha=0.6, zorder=0)
    for p in pruned:
        epochs, ys = zip(*_until(p.curve, p.pruned_at))
        ax.plot(epochs, ys, color=PRUNED, linewidth=0.9, zorder=1)
        ax.plot(epochs[-1:], ys[-1:], marker="x", color=PRUNED_MARK, markersize=6, zorder=1.5)
    norm, cmap = _draw_completed(ax, completed, maximise)
    every = [v for p in completed + pruned for _, v in p.curve if _finite(v)]
    if log_scale_fits(every):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=literal(objective))
    ax.grid(alpha=0.3)
    if completed:
        label = literal(f"final {objective} ({_direction(maximise)})")
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    handles = [
        Line2D([], [], color=cmap(0.5), linewidth=1.3, label="completed (colour: final value)"),
        Line2D(
            [],
            [],
            color=PRUNED,
            marker="x",
            markeredgecolor=PRUNED_MARK,
            label="pruned (x: the epoch it stopped)",
        ),
    ]
    if shown_rungs:
        words = ", ".join(str(r) for r in shown_rungs)
        handles.append(Line2D([], [], color=RUNG, linestyle=":", label=f"rungs: epochs {words}"))
    legend_outside(fig, handles)
    fig.suptitle(f"{literal(title)}\n{_counts(points, 'grey, x where stopped')}", fontsize=11)
    return save_figure(fig, path)


def _draw_completed(ax: Any, completed: list[SearchPoint], maximise: bool) -> tuple[Any, Any]:
    """Completed trials' curves coloured by their final value, the best thick with a dark
    edge, on top, and named at its end; returns the colour scale (norm, colormap)."""
    from matplotlib.patheffects import withStroke

    final = {  # a completed trial's value, else its last report
        id(p): _value(p) if _finite(p.value) else float(_until(p.curve, None)[-1][1])
        for p in completed
    }
    norm, cmap = _colour_scale([v for v in final.values() if _finite(v)], maximise)
    ranked = _best_last(completed, maximise)
    best = ranked[-1] if ranked else None
    for p in sorted(completed, key=lambda p: p is best):
        epochs, ys = zip(*_until(p.curve, None))
        style: dict[str, Any] = {"linewidth": 1.3, "zorder": 2}
        if p is best:
            edge = [withStroke(linewidth=4.2, foreground="black")]
            style = {"linewidth": 2.8, "zorder": 3, "path_effects": edge}
        ax.plot(epochs, ys, color=cmap(norm(final[id(p)])), label=literal(p.name), **style)
    if best is not None:
        epoch, value = _until(best.curve, None)[-1]
        ax.annotate(
            literal(f"best: {best.name} ({final[id(best)]:.4g})"),
            (epoch, value),
            xytext=(-6, 9),  # just above the end of its line
            textcoords="offset points",
            ha="right",
            fontsize=8,
            bbox=TICK_BOX,
            zorder=4,
        )
    return norm, cmap

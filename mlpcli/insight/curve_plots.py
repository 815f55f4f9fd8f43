"""The figure of a model with one numeric input: its output along that input (a regression's
fitted curve in the target's own units, or the probabilities of its classes), over the run's
train and validation points.

It reads a BoundaryGrid of one feature (boundary.boundary_grid) and shares the region figures'
layout: the held features under the legend, the first hidden layer's units under the panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plots import literal, save_figure
from .boundary import BoundaryGrid, NeuronMaps
from .boundary_plots import (
    MAX_PANELS,
    SPLIT_MARKERS,
    class_colours,
    finish,
    panels_figure,
    split_label,
)

CURVE_INCHES = 6.4  # width of each panel
CURVE_COLOUR = "black"
SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
RUG = {"train": -0.05, "val": -0.1, "test": -0.15}  # classes: where each split's points lie


def curve_panels(grid: BoundaryGrid) -> list[tuple[str, str, int]]:
    """(title, y-axis label, output column) of each panel, names escaped for drawing; column
    -1 draws every class's probability."""
    prep = grid.predictor.preprocessor
    target = literal(prep.targets[0])
    if grid.task == "binary":
        name = f"P({target} = {literal(prep.labels[1])})"
        return [(name, name, 0)]
    if grid.task == "classification":
        return [(f"probability of each {target}", "probability", -1)]
    if grid.task == "multilabel":
        return [
            (f"P({literal(label)} = 1)", "probability", i) for i, label in enumerate(prep.labels)
        ]
    return [(f"fitted {literal(t)}", literal(t), i) for i, t in enumerate(prep.targets)]


def curve_values(grid: BoundaryGrid, column: int) -> np.ndarray:
    """The model's output along the line: a regression target in its own units, or the
    probability the panel shows (every class's, as columns, for column -1)."""
    if grid.task == "regression":
        return grid.values()[:, column]
    return grid.outputs if column == -1 else grid.outputs[:, column]


def _point_heights(grid: BoundaryGrid, frame: Any, split: str, column: int) -> np.ndarray:
    """Where a split's rows lie on the y axis: their target, their label (0 or 1), or, for
    classes, a band just under 0 (their colour says their class)."""
    prep = grid.predictor.preprocessor
    if grid.task == "regression":
        return frame[prep.targets[column]].to_numpy(dtype=np.float64)
    if grid.task == "binary":
        return (frame[prep.targets[0]] == prep.labels[1]).to_numpy(dtype=np.float64)
    if grid.task == "multilabel":
        return frame[prep.labels[column]].to_numpy(dtype=np.float64)
    return np.full(len(frame), RUG[split])


def _point_colour(grid: BoundaryGrid, frame: Any, split: str) -> Any:
    """A split's colour, or for classes each row's class colour."""
    if grid.task != "classification":
        return SPLIT_COLOURS[split]
    prep = grid.predictor.preprocessor
    index = {label: i for i, label in enumerate(prep.labels)}
    codes = np.array([index.get(v, 0) for v in frame[prep.targets[0]].tolist()])
    return class_colours(len(prep.labels))[codes]


def draw_curve(ax: Any, grid: BoundaryGrid, column: int) -> list[Any]:
    """The points of each split drawn, then the model's curve(s) over them; returns legend
    handles."""
    from matplotlib.lines import Line2D

    prep = grid.predictor.preprocessor
    handles = []
    for split, style in SPLIT_MARKERS.items():
        frame = grid.shown(split)
        if frame is None or len(frame) == 0:
            continue
        x = frame[grid.features[0]].to_numpy(dtype=np.float64)
        colour = _point_colour(grid, frame, split)
        y = _point_heights(grid, frame, split, column)
        ax.scatter(x, y, **style, c=colour, alpha=0.55, linewidths=0, zorder=2)
        face = "grey" if grid.task == "classification" else SPLIT_COLOURS[split]
        marker = Line2D([], [], linestyle="none", marker=style["marker"], color=face)
        marker.set(label=split_label(grid, split, len(frame)))
        handles.append(marker)
    values = curve_values(grid, column)
    if column == -1:
        colours = class_colours(len(prep.labels))
        for k, label in enumerate(prep.labels):
            name = literal(f"P({prep.targets[0]} = {label})")
            ax.plot(grid.xs, values[:, k], color=colours[k], linewidth=2, label=name, zorder=3)
        handles = [*ax.get_lines(), *handles]
    else:
        (line,) = ax.plot(
            grid.xs, values, color=CURVE_COLOUR, linewidth=2, label="the model", zorder=3
        )
        handles = [line, *handles]
    return handles


def curve_figure(
    grid: BoundaryGrid, path: Path, title: str, neurons: NeuronMaps | None = None
) -> Path:
    """One panel per output (at most 6): the model's output along its one numeric input over
    the train and validation points; with `neurons`, each first-hidden-layer unit's activation
    along the same line under them."""
    shown = curve_panels(grid)[:MAX_PANELS]
    fig, top, axes = panels_figure(grid, len(shown), neurons, CURVE_INCHES)
    handles: list[Any] = []
    for ax, (panel_title, ylabel, column) in zip(axes, shown):
        handles = draw_curve(ax, grid, column)
        ax.set(xlabel=literal(grid.features[0]), ylabel=ylabel, title=panel_title)
        ax.set_xlim(grid.xs[0], grid.xs[-1])
        ax.grid(alpha=0.3)
    finish(fig, top, grid, handles, title)
    return save_figure(fig, path)

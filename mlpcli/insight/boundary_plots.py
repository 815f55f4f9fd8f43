"""Figures of what a network learned: decision regions or output surfaces with the data's points,
the first hidden layer's units over the same grid, and first-layer weights as images.

matplotlib is imported only when a figure is drawn (plots.pyplot); files are written through
plots.save_figure, atomically.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import legend_outside, literal, pyplot, save_figure
from .boundary import BoundaryGrid, NeuronMaps, held_categories, held_text
from .detectors import Detectors

MAX_PANELS = 6  # labels (multilabel) or outputs (multi-output regression) drawn side by side
MAX_HELD_LISTED = 64  # held features whose values the figure lists, the rest counted
HELD_FONTSIZE = 8
PANEL_INCHES = 4.6
REGION_ALPHA = 0.55  # how strongly regions are shaded; the points are drawn at full colour
PROBABILITY_MAP = "RdBu_r"  # P = 0 blue, 0.5 white, 1 red
SIGNED_MAP = "RdBu_r"  # activations and weights: negative blue, 0 white, positive red
SURFACE_MAP = "viridis"
# Train and test points differ by marker; their colour is their label or target.
SPLIT_MARKERS: dict[str, dict[str, Any]] = {
    "train": {"marker": "o", "s": 14},
    "val": {"marker": "s", "s": 20},
    "test": {"marker": "^", "s": 26},
}


def panels(grid: BoundaryGrid) -> list[tuple[str, int]]:
    """(title, output column) of each region panel, its names escaped for drawing; column -1
    is the argmax over classes."""
    prep = grid.predictor.preprocessor
    target = literal(prep.targets[0])
    if grid.task == "binary":
        return [(f"P({target} = {literal(prep.labels[1])})", 0)]
    if grid.task == "classification":
        return [(f"most likely {target} (shade: its probability)", -1)]
    if grid.task == "multilabel":
        return [(f"P({literal(label)} = 1)", i) for i, label in enumerate(prep.labels[:MAX_PANELS])]
    return [(f"predicted {literal(t)}", i) for i, t in enumerate(prep.targets[:MAX_PANELS])]


def class_colours(count: int) -> np.ndarray:
    """One RGB colour per class (tab10, tab20 beyond ten classes, then repeating)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N)[:3] for i in range(count)])


def draw_regions(ax: Any, grid: BoundaryGrid, column: int, norm: Any = None) -> Any:
    """Shade one panel: a probability with its 0.5 contour, the argmax class blended toward
    white as its probability falls, or a regression surface on the colour scale `norm` with
    contour lines. Returns the mappable for a colour bar (None for classes, which a legend
    explains)."""
    xs, ys = grid.xs, grid.ys
    if grid.task in ("binary", "multilabel"):
        p = grid.surface(grid.outputs[:, column])
        filled = ax.contourf(
            xs, ys, p, levels=np.linspace(0, 1, 21), cmap=PROBABILITY_MAP, alpha=REGION_ALPHA
        )
        ax.contour(xs, ys, p, levels=[0.5], colors="black", linewidths=1.4)
        return filled
    if grid.task == "classification":
        probs = grid.outputs.reshape(len(ys), len(xs), -1)
        count = probs.shape[-1]
        best, top = probs.argmax(axis=-1), probs.max(axis=-1)
        # 1/count (a tie of all classes) is white; a certain prediction the full region shade.
        strength = np.clip((top - 1 / count) / (1 - 1 / count), 0, 1)[..., None]
        rgb = 1 - REGION_ALPHA * strength * (1 - class_colours(count)[best])
        extent = (xs[0], xs[-1], ys[0], ys[-1])
        ax.imshow(rgb, origin="lower", extent=extent, aspect="auto", interpolation="nearest")
        return None
    return draw_surface(ax, grid, column, norm)


def draw_surface(ax: Any, grid: BoundaryGrid, column: int, norm: Any) -> Any:
    """A regression output's surface, filled in bands of the colour scale `norm` (which also
    spans the points' targets), with labelled contour lines at the surface's own levels, so a
    nearly flat surface still shows its shape. Returns a mappable for `norm`'s whole range."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import MaxNLocator

    xs, ys = grid.xs, grid.ys
    norm = norm or _regression_norm(grid, column)
    values = grid.surface(grid.values()[:, column])
    bands = MaxNLocator(15).tick_values(norm.vmin, norm.vmax)
    ax.contourf(xs, ys, values, levels=bands, cmap=SURFACE_MAP, norm=norm, alpha=0.85)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if high > low:
        lines = ax.contour(
            xs,
            ys,
            values,
            levels=MaxNLocator(7).tick_values(low, high)[1:-1],
            colors="black",
            linewidths=0.5,
        )
        ax.clabel(lines, fontsize=7, fmt="%.3g")
    return ScalarMappable(norm=norm, cmap=SURFACE_MAP)


def _two_colours() -> np.ndarray:
    """The colours of class 0 and class 1 (or label 0 and 1): the probability map's two ends."""
    from matplotlib import colormaps

    return np.array([colormaps[PROBABILITY_MAP](v)[:3] for v in (0.08, 0.92)])


def _point_colours(grid: BoundaryGrid, frame: Any, column: int, norm: Any) -> dict[str, Any]:
    """scatter() arguments that colour rows by their class, their label, or their target."""
    prep = grid.predictor.preprocessor
    if grid.task == "multilabel":
        return {"c": _two_colours()[frame[prep.labels[column]].astype(int).to_numpy()]}
    if grid.task == "regression":
        values = frame[prep.targets[column]].to_numpy(dtype=np.float64)
        return {"c": values, "cmap": SURFACE_MAP, "norm": norm}
    index = {label: i for i, label in enumerate(prep.labels)}
    codes = np.array([index.get(v, 0) for v in frame[prep.targets[0]].tolist()])
    colours = _two_colours() if grid.task == "binary" else class_colours(len(prep.labels))
    return {"c": colours[codes]}


def draw_points(ax: Any, grid: BoundaryGrid, column: int, norm: Any = None) -> list[Any]:
    """The train and test rows over the regions (those at the held categories), coloured by
    their label or target; returns legend handles for the two markers."""
    from matplotlib.lines import Line2D

    handles = []
    for split, style in SPLIT_MARKERS.items():
        frame = grid.shown(split)
        if frame is None or len(frame) == 0:
            continue
        x, y = (frame[f].to_numpy(dtype=np.float64) for f in grid.features)
        colour = _point_colours(grid, frame, column, norm)
        edge = "white" if split == "train" else "black"
        ax.scatter(x, y, **style, **colour, edgecolors=edge, linewidths=0.5, zorder=3)
        marker = Line2D([], [], linestyle="none", color="grey", marker=style["marker"])
        marker.set(markeredgecolor=edge, label=split_label(grid, split, len(frame)))
        handles.append(marker)
    return handles


def split_label(grid: BoundaryGrid, split: str, drawn: int) -> str:
    """'train (150)'; 'train (60 of 150 at the held colour = red)' where only the rows at the
    held categories are drawn; ', a sample' where not every one of those is."""
    full, matched = grid.points.split(split), grid.matching(split)
    if full is None or matched is None or drawn == len(full):
        return f"{split} ({drawn})"
    total = len(full)
    categories = held_categories(grid.predictor, grid.held)
    at = f" at the held {literal(held_text(categories))}" if len(matched) < total else ""
    sample = ", a sample" if drawn < len(matched) else ""
    return f"{split} ({drawn} of {total}{at}{sample})"


def _class_handles(grid: BoundaryGrid) -> list[Any]:
    """Legend patches for the classes (or a label's 0 and 1); none for regression."""
    from matplotlib.patches import Patch

    prep = grid.predictor.preprocessor
    if grid.task == "binary":
        names = [literal(f"{prep.targets[0]} = {label}") for label in prep.labels]
        return [Patch(color=c, label=n) for c, n in zip(_two_colours(), names)]
    if grid.task == "multilabel":
        return [Patch(color=c, label=f"label = {v}") for c, v in zip(_two_colours(), (0, 1))]
    if grid.task != "classification":
        return []
    colours = class_colours(len(prep.labels))
    names = [literal(f"{prep.targets[0]} = {label}") for label in prep.labels]
    return [Patch(color=c, label=name) for c, name in zip(colours, names)]


def _regression_norm(grid: BoundaryGrid, column: int) -> Any:
    """One colour scale over the surface and the drawn points' targets, so that a point that
    matches the surface disappears into it and one that does not can be read off the bar."""
    from matplotlib.colors import Normalize

    values = [grid.values()[:, column]]
    prep = grid.predictor.preprocessor
    for split in SPLIT_MARKERS:
        frame = grid.shown(split)
        if frame is not None and len(frame):
            values.append(frame[prep.targets[column]].to_numpy(dtype=np.float64))
    joined = np.concatenate(values)
    joined = joined[np.isfinite(joined)]
    low, high = (float(joined.min()), float(joined.max())) if len(joined) else (0.0, 1.0)
    if high == low:  # everything one value: a band around it
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    return Normalize(low, high)


def draw_panel(ax: Any, grid: BoundaryGrid, title: str, column: int) -> tuple[Any, list[Any]]:
    """Regions and points on one axes; returns the colour-bar mappable and legend handles."""
    norm = _regression_norm(grid, column) if grid.task == "regression" else None
    mappable = draw_regions(ax, grid, column, norm)
    handles = draw_points(ax, grid, column, norm)
    ax.set(xlabel=literal(grid.features[0]), ylabel=literal(grid.features[1]), title=title)
    ax.set_xlim(grid.xs[0], grid.xs[-1])
    ax.set_ylim(grid.ys[0], grid.ys[-1])
    return mappable, handles


def held_lines(grid: BoundaryGrid, width: float, fontsize: float) -> str:
    """The features held fixed and their values, wrapped to a figure `width` inches wide
    (so that none is cut off at its edges), and which points that leaves; '' for none. At
    most MAX_HELD_LISTED values are listed, the rest counted."""
    if not grid.held:
        return ""
    listed = dict(list(grid.held.items())[:MAX_HELD_LISTED])
    more = len(grid.held) - len(listed)
    text = "other features held at: " + held_text(listed)
    if more:
        text += f" and {more} more, each at its training mean (text: most frequent value)"
    categories = held_categories(grid.predictor, grid.held)
    if categories:
        text += "; points: only the rows with " + held_text(categories)
    if len(categories) < len(grid.held):
        text += "; the points' other numeric features vary around the values held"
    chars = max(30, int(width * 72 / (0.6 * fontsize)))  # about 0.6 em a character
    # No break inside "name = value": a no-break space, which textwrap does not split at.
    text = literal(text).replace(" = ", "\u00a0=\u00a0")
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False))


def boundary_figure(
    grid: BoundaryGrid, path: Path, title: str, neurons: NeuronMaps | None = None
) -> Path:
    """The region panels side by side, with the points on top; with `neurons`, a grid of small
    maps under them, one per first-hidden-layer unit over the same two features."""
    shown = panels(grid)
    fig, top, axes = panels_figure(grid, len(shown), neurons, PANEL_INCHES)
    handles: list[Any] = []
    for ax, (panel_title, column) in zip(axes, shown):
        mappable, handles = draw_panel(ax, grid, panel_title, column)
        if grid.task == "regression":  # each output on its own scale
            top.colorbar(mappable, ax=ax, shrink=0.85, label=panel_title)
    if grid.task in ("binary", "multilabel"):  # one probability scale for every panel
        top.colorbar(mappable, ax=list(axes), shrink=0.85, label="probability")
    finish(fig, top, grid, _class_handles(grid) + handles, title)
    return save_figure(fig, path)


def panels_figure(
    grid: BoundaryGrid, count: int, neurons: NeuronMaps | None, panel_width: float
) -> tuple[Any, Any, np.ndarray]:
    """A figure of `count` panels side by side (the returned axes, in its top part) and, with
    `neurons`, the first hidden layer's units under them; the top part is tall enough for the
    held features' lines that finish() writes over its panels."""
    plt = pyplot()
    width = max(panel_width * count + 1.2, 9.0 if neurons else 0.0)
    columns = min(8, len(neurons.units)) if neurons else 1
    side = width / columns  # a unit's square map; a curve's unit is a line, lower than wide
    side = side if len(grid.features) == 2 else min(side, 1.8) * 0.6
    rows = math.ceil(len(neurons.units) / columns) if neurons else 0
    held = held_lines(grid, width, HELD_FONTSIZE)
    top_height = PANEL_INCHES + 1.4 + _text_height(held, HELD_FONTSIZE)
    bottom_height = rows * (side + 0.2) + 0.6
    fig = plt.figure(figsize=(width, top_height + bottom_height), layout="constrained")
    if neurons:
        top, bottom = fig.subfigures(2, 1, height_ratios=[top_height, bottom_height])
        neuron_panels(bottom, grid, neurons, columns)
    else:
        top = fig.subfigures(1, 1)
    return fig, top, np.atleast_1d(top.subplots(1, count))


def finish(fig: Any, top: Any, grid: BoundaryGrid, handles: list[Any], title: str) -> None:
    """The figure's title; under it the held features' values (wrapped to the figure's width,
    so that none is cut off) over the panels of `top`, and their legend under them."""
    if handles:
        legend_outside(top, handles)
    fig.suptitle(literal(title), fontsize=11)
    held = held_lines(grid, fig.get_figwidth(), HELD_FONTSIZE)
    if held:  # the top part's own title: a constrained layout keeps it clear of the rest
        top.suptitle(held, fontsize=HELD_FONTSIZE)


def _text_height(text: str, fontsize: float) -> float:
    """Inches that the lines of a text take."""
    return (text.count("\n") + 1) * 1.3 * fontsize / 72 if text else 0.0


def neuron_panels(fig: Any, grid: BoundaryGrid, neurons: NeuronMaps, columns: int) -> None:
    """One small map per unit: its activation over the grid, each on its own scale centred on 0
    (red positive, blue negative), titled with the unit's number (1 = the layer's first); for
    a curve's line of rows, the activation along it, with 0 marked."""
    rows = math.ceil(len(neurons.units) / columns)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    extent = (grid.xs[0], grid.xs[-1], grid.ys[0], grid.ys[-1])
    for ax, unit, values in zip(axes, neurons.units, neurons.maps):
        limit = float(np.abs(values).max()) or 1.0
        if len(grid.features) == 1:
            ax.axhline(0, color="grey", linewidth=0.6)
            ax.plot(grid.xs, values[0], color="tab:red", linewidth=1.2)
            ax.set_ylim(-1.1 * limit, 1.1 * limit)
            ax.set_title(f"unit {unit + 1}", fontsize=7, pad=2)
            continue
        ax.imshow(
            values,
            origin="lower",
            extent=extent,
            aspect="auto",
            cmap=SIGNED_MAP,
            vmin=-limit,
            vmax=limit,
            interpolation="bilinear",
        )
        ax.set_title(f"unit {unit + 1}", fontsize=7, pad=2)
    _bare(axes, len(neurons.units))
    left = neurons.total - len(neurons.units)
    fig.suptitle(
        f"first hidden layer ({neurons.activation}): {len(neurons.units)} of {neurons.total} "
        f"units, the most active first (mean |activation| over the grid)"
        + (f"; {left} not drawn" if left else "")
        + "; each on its own scale"
        + (", red > 0 > blue" if len(grid.features) == 2 else ""),
        fontsize=9,
    )


def _bare(axes: Any, used: int) -> None:
    """Small panels without ticks; the grid's spare panels hidden."""
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[used:]:
        ax.set_axis_off()


def detectors_figure(detectors: Detectors, path: Path, title: str) -> Path:
    """Each unit's incoming weights as an image on one colour scale centred on 0: red pixels
    excite the unit, blue ones inhibit it."""
    plt = pyplot()
    from matplotlib import colormaps

    count = len(detectors.units)
    columns = min(8, count)
    rows = math.ceil(count / columns)
    height, width = detectors.images.shape[1:]
    side = min(1.4, 11.0 / columns)
    fig = plt.figure(
        figsize=(columns * side + 1.2, rows * side * height / width + 1.2), layout="constrained"
    )
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    limit = float(np.nanmax(np.abs(detectors.images))) or 1.0
    cmap = colormaps[SIGNED_MAP].with_extremes(bad="0.75")  # grey: a pixel constant in training
    image = None
    for ax, unit, weights in zip(axes, detectors.units, detectors.images):
        image = ax.imshow(weights, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"unit {unit + 1}", fontsize=7, pad=2)
    _bare(axes, count)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.6, label="weight (on standardised pixels)")
    left = detectors.total - count
    fig.suptitle(
        f"{literal(title)}\nfirst-layer weights as {height}x{width} images: {count} of "
        f"{detectors.total} units, ordered by {detectors.ranked_by}"
        + (f"; {left} not drawn" if left else "")
        + "\nred pixels excite a unit, blue ones inhibit it"
        + ("; grey: constant in the training rows" if np.isnan(detectors.images).any() else ""),
        fontsize=10,
    )
    return save_figure(fig, path)


def _same_axes(a: BoundaryGrid, b: BoundaryGrid) -> bool:
    return a.features == b.features and np.array_equal(a.xs, b.xs) and np.array_equal(a.ys, b.ys)


def _outer_labels_only(ax: Any, index: int, columns: int, count: int) -> None:
    """Tick labels and axis names on the left column and on the lowest panel of each column."""
    if index + columns < count:  # a panel below shows them
        ax.tick_params(labelbottom=False)
        ax.set_xlabel("")
    if index % columns:
        ax.tick_params(labelleft=False)
        ax.set_ylabel("")


def sweep_boundaries_figure(
    grids: list[tuple[str, BoundaryGrid | None]], path: Path, title: str
) -> Path:
    """One region panel per sweep point (None: no trial of it completed), titled with the
    point's settings. Panels over the same axes share them, their tick labels on the outer
    edges only."""
    plt = pyplot()
    columns = min(4, len(grids))
    rows = math.ceil(len(grids) / columns)
    side = 3.6
    fig = plt.figure(
        figsize=(columns * side + 0.6, rows * (side + 0.3) + 1.0), layout="constrained"
    )
    drawn = [g for _, g in grids if g is not None]
    same = all(_same_axes(g, drawn[0]) for g in drawn)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False, sharex=same, sharey=same))
    axes = axes.ravel()
    handles: list[Any] = []
    mappable = None
    for i, (ax, (label, grid)) in enumerate(zip(axes, grids)):
        if grid is None:
            ax.text(
                0.5,
                0.5,
                "no trial completed",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="tab:red",
            )
            ax.set_title(literal(label))
            ax.set_axis_off()  # not its ticks: they may be shared with the other panels
            continue
        mappable, handles = draw_panel(ax, grid, literal(label), panels(grid)[0][1])
        ax.title.set_fontsize(9)
        if same:
            _outer_labels_only(ax, i, columns, len(grids))
        if grid.task == "regression":  # each panel on its own scale
            fig.colorbar(mappable, ax=ax, shrink=0.8)
    for ax in axes[len(grids) :]:
        ax.set_axis_off()
    if drawn and drawn[0].task in ("binary", "multilabel"):
        fig.colorbar(mappable, ax=list(axes), shrink=0.6, label="probability")
    if drawn:
        handles = _class_handles(drawn[0]) + handles
        what = panels(drawn[0])[0][0]  # escaped already
        title = f"{literal(title)}: {what}, first seed of each point"
    else:
        title = literal(title)
    if handles:
        legend_outside(fig, handles)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)

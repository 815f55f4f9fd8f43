"""The linear probes' figure: each layer's representation of the held-out rows, projected to 2-D
by PCA and coloured by the target, its probe score in the panel's title (plots/representations.png).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import legend_outside, literal, pyplot, save_figure
from .boundary_plots import SURFACE_MAP, class_colours

PANEL_INCHES = 3.6
COLUMNS = 4  # panels per row


def representation_panels(
    projections: list[tuple[np.ndarray, np.ndarray]],
    titles: list[str],
    target: np.ndarray,
    classes: list[str] | None,
    colour_label: str,
    path: Path,
    title: str,
) -> Path:
    """One panel per layer: its rows' (n x 2) projection, whose components explain the shares
    given, coloured by class (`classes` names them) or by a value on a colour scale."""
    plt = pyplot()
    columns = min(COLUMNS, len(projections))
    rows = math.ceil(len(projections) / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(PANEL_INCHES * columns + 1.6, PANEL_INCHES * rows + 0.6),
        squeeze=False,
        layout="constrained",  # keeps the legend or colour bar clear of the panels
    )
    mappable: Any = None
    for ax, (points, share), panel in zip(axes.flat, projections, titles):
        if classes is not None:
            colours = class_colours(len(classes))
            for k, name in enumerate(classes):
                mine = target == k
                ax.scatter(
                    points[mine, 0], points[mine, 1], s=9, color=colours[k], label=literal(name)
                )
        else:
            mappable = ax.scatter(points[:, 0], points[:, 1], s=9, c=target, cmap=SURFACE_MAP)
        ax.set_title(literal(panel), fontsize=10)
        ax.set(xlabel=f"PC 1 ({share[0]:.0%} of variance)", ylabel=f"PC 2 ({share[1]:.0%})")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(projections) :]:
        ax.set_visible(False)
    fig.suptitle(literal(title))
    if classes is not None:
        handles, _ = axes[0][0].get_legend_handles_labels()
        legend_outside(fig, handles)
    elif mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), label=literal(colour_label))
    return save_figure(fig, path)

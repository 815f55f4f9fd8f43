"""The diagnostics' figures: gradients per layer, and dead and saturated units, against epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plots import literal, pyplot, save_figure
from ..training.diagnostics import panels

GRADIENT_PANELS = panels("gradients")
UNIT_PANELS = panels("units")


def _per_layer(history: list[dict[str, Any]], name: str) -> dict[int, tuple[list, list]]:
    """layer -> (epochs, values) of one statistic, in epoch order."""
    series: dict[int, tuple[list, list]] = {}
    for row in sorted(history, key=lambda r: (r["layer"], r["epoch"])):
        if row["name"] == name:
            epochs, values = series.setdefault(row["layer"], ([], []))
            epochs.append(row["epoch"])
            values.append(row["value"])
    return series


def _draw(
    history: list[dict[str, Any]],
    panels: dict[str, str],
    path: Path,
    title: str,
    mark: tuple[int, str] | None,
    log: bool,
) -> Path:
    """One panel per statistic, one line per layer, coloured from input (dark) to output
    (light) so that depth reads as a gradient of colour."""
    plt = pyplot()
    names = [n for n in panels if any(r["name"] == n for r in history)]
    layers = sorted({r["layer"] for r in history})
    colours = plt.get_cmap("viridis")
    width = 5.2 * len(names) + 1.4  # and a column for the legend
    fig, axes = plt.subplots(1, len(names), figsize=(width, 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for layer, (epochs, values) in _per_layer(history, name).items():
            shade = colours(0.9 * (layer - 1) / max(1, len(layers) - 1))
            shown = [v if not log or v > 0 else float("nan") for v in values]
            ax.plot(
                epochs,
                shown,
                color=shade,
                marker="." if len(epochs) < 40 else None,
                label=f"layer {layer}",
            )
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.03, 1.03)
        if mark is not None:
            ax.axvline(mark[0], color="grey", linestyle="--", linewidth=1, label=mark[1])
        ax.set(xlabel="epoch", title=panels[name])
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(labels) > 12:  # a deep network: the first and last layers and the marker
        keep = [0, len(layers) - 1, *range(len(layers), len(labels))]
        handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / width, 1))
    return save_figure(fig, path)


def gradient_curves(
    history: list[dict[str, Any]], path: Path, title: str, mark: tuple[int, str] | None = None
) -> Path:
    """Gradient RMS per hidden layer against epoch, log scale (plots/gradients.png); `mark`
    is an epoch to draw a dashed line at, and its label."""
    return _draw(history, GRADIENT_PANELS, path, f"gradients per layer · {title}", mark, True)


def unit_curves(
    history: list[dict[str, Any]], path: Path, title: str, mark: tuple[int, str] | None = None
) -> Path:
    """Dead and saturated fractions per hidden layer against epoch (plots/units.png)."""
    return _draw(history, UNIT_PANELS, path, f"dead and saturated units · {title}", mark, False)

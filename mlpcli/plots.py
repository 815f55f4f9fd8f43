"""Figures, drawn with matplotlib's file-only backend (imported only when a figure is made)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_curve(
    history: list[dict[str, float]], path: Path, metric: str, title: str, kept_epoch: int = 0
) -> Path:
    """Train and validation loss per epoch, and the headline validation metric beside them;
    a dashed line marks the epoch whose weights were kept."""
    plt = _pyplot()
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
    axes[0].legend()
    if has_metric:
        axes[1].plot(epochs, [r.get(f"val_{metric}") for r in history], color="tab:orange")
        axes[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in axes:
        ax.grid(alpha=0.3)
        if kept_epoch:
            ax.axvline(kept_epoch, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG under its final name only once it is complete."""
    from .atomic import atomic_write, make_folder

    try:
        make_folder(path.parent)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        _pyplot().close(fig)
    return path


def _series(points: list[dict[str, Any]], x_key: str) -> dict[str, list[dict[str, Any]]]:
    """Points grouped into lines: same depth and same other settings, sorted along x."""
    lines: dict[str, list[dict[str, Any]]] = {}
    several_depths = len({p.get("depth") for p in points}) > 1
    for p in points:
        others = [f"{k}={v}" for k, v in p["settings"].items() if k != "model.hidden"]
        label = " ".join(([f"depth {p['depth']}"] if several_depths else []) + others)
        lines.setdefault(label, []).append(p)
    return {k: sorted(v, key=lambda p: p[x_key]) for k, v in lines.items()}


def sweep_curves(
    points: list[dict[str, Any]], path: Path, metric: str, x_key: str, title: str
) -> Path:
    """Train (solid) and validation (dashed) loss and metric against width or parameter count,
    mean over seeds with a band of one standard deviation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, line) in enumerate(_series(points, x_key).items()):
        colour = colours[i % len(colours)]
        xs = [p[x_key] for p in line]
        for ax, name in zip(axes, ("loss", metric)):
            for split, style, word in (("train", "-", "train"), ("val", "--", "validation")):
                mean = [p.get(f"{split}_{name}_mean", float("nan")) for p in line]
                std = [p.get(f"{split}_{name}_std", 0.0) for p in line]
                ax.plot(xs, mean, style, marker="o", color=colour, label=f"{word} {label}".strip())
                ax.fill_between(
                    xs,
                    [m - s for m, s in zip(mean, std)],
                    [m + s for m, s in zip(mean, std)],
                    color=colour,
                    alpha=0.15,
                )
    xlabel = "hidden units per layer" if x_key == "width" else "parameters"
    widths = sorted({p[x_key] for p in points})
    for ax, name in zip(axes, ("loss", metric)):
        ax.set_xscale("log", base=2 if x_key == "width" else 10)
        if x_key == "width":
            ax.set_xticks(widths, [str(w) for w in widths])
            ax.minorticks_off()
        ax.set(xlabel=xlabel, ylabel=name, title=f"{name}: train (solid) and validation (dashed)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def sweep_points(points: list[dict[str, Any]], path: Path, metric: str, title: str) -> Path:
    """Train and validation metric per grid point, mean over seeds with one-std error bars."""
    plt = _pyplot()
    labels = [
        " ".join(f"{k.split('.')[-1]}={v}" for k, v in p["settings"].items()) or "base"
        for p in points
    ]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.6 * len(points) + 2), 4.5))
    xs = range(len(points))
    for split, marker in (("train", "o"), ("val", "s")):
        ax.errorbar(
            xs,
            [p.get(f"{split}_{metric}_mean", float("nan")) for p in points],
            yerr=[p.get(f"{split}_{metric}_std", 0.0) for p in points],
            fmt=marker,
            capsize=3,
            label=split,
        )
    ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=metric, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)

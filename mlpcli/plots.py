"""Figures, drawn with matplotlib's file-only backend (imported only when a figure is made)."""

from __future__ import annotations

from pathlib import Path


def loss_curve(
    history: list[dict[str, float]], path: Path, metric: str, title: str, best_epoch: int = 0
) -> Path:
    """Train and validation loss per epoch, and the headline validation metric beside them;
    a dashed line marks the best epoch (the weights that were kept)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    has_metric = any(f"val_{metric}" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(10 if has_metric else 5.5, 4))
    axes = axes if has_metric else [axes]
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    if any("val_loss" in r for r in history):
        axes[0].plot(epochs, [r.get("val_loss") for r in history], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    if all(r["train_loss"] > 0 for r in history):
        axes[0].set_yscale("log")
    axes[0].legend()
    if has_metric:
        axes[1].plot(epochs, [r.get(f"val_{metric}") for r in history], color="tab:orange")
        axes[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in axes:
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

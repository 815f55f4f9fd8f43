"""The consoles: results on stdout, progress and messages on stderr (so --json stays clean)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def format_record(record: dict[str, float], metric: str) -> str:
    """'train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9650' for one epoch."""
    keys = ["train_loss", "val_loss", f"val_{metric}"]
    return "  ".join(f"{k} {record[k]:.4f}" for k in keys if k in record)


def metrics_table(metrics: dict[str, dict[str, float]], title: str | None = None) -> Table:
    """Metric rows, one column per split."""
    splits = [s for s in metrics if metrics[s]]
    table = Table(title=title, show_edge=False, header_style="bold")
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    for name in names:
        table.add_row(
            name, *(f"{metrics[s][name]:.4f}" if name in metrics[s] else "" for s in splits)
        )
    return table

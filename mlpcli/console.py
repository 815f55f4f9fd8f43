"""The consoles: results on stdout, progress and messages on stderr (so --json stays clean)."""

from __future__ import annotations

from typing import Any

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
    # As wide as the title, so that a long path is not folded into the table's width.
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    for name in names:
        table.add_row(
            name, *(f"{metrics[s][name]:.4f}" if name in metrics[s] else "" for s in splits)
        )
    return table


def settings_text(settings: dict[str, Any]) -> str:
    """'hidden=[16] lr=0.01': the last part of each key, unless two keys would read the same."""
    short = [k.rsplit(".", 1)[-1] for k in settings]
    names = short if len(set(short)) == len(short) else list(settings)
    return " ".join(f"{n}={v}" for n, v in zip(names, settings.values())) or "(base)"


def sweep_table(summary: dict[str, Any]) -> Table:
    """One row per grid point: settings, seeds finished, train and val metric (mean ± std over
    seeds; the mean alone for one seed). The settings are what tells the rows apart, so they are
    never cut: they wrap (and fold a word longer than the column), and the numbers take two
    short lines to leave them room."""
    metric = summary["main_metric"]
    table = Table(title=f"sweep {summary['name']}", show_edge=False, header_style="bold")
    table.add_column("settings", overflow="fold")
    for column in ("seeds", "params", f"train\n{metric}", f"val\n{metric}", "val\nloss"):
        table.add_column(column, justify="right", overflow="fold")

    def cell(point: dict[str, Any], key: str) -> str:
        if f"{key}_mean" not in point:
            return "-"
        if point.get("completed", 0) < 2:
            return f"{point[f'{key}_mean']:.3f}"
        return f"{point[f'{key}_mean']:.3f}\n± {point[f'{key}_std']:.3f}"

    for point in summary["points"]:
        table.add_row(
            settings_text(point["settings"]),
            f"{point['completed']}/{point['trials']}",
            f"{point.get('params', '-'):,}" if "params" in point else "-",
            cell(point, f"train_{metric}"),
            cell(point, f"val_{metric}"),
            cell(point, "val_loss"),
        )
    return table


def summary_table(summary: dict[str, Any]) -> Table:
    """One row per layer: width, activation, parameters, multiply-adds per row; then totals."""
    name = summary.get("config") or summary.get("model") or ""
    title = f"{name}: {summary['inputs']} inputs, {summary['task']}"
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title))
    for column in ("layer", "width", "activation", "params", "multiply-adds / row"):
        table.add_column(column, justify="left" if column in ("layer", "activation") else "right")
    for row in summary["layers"]:
        table.add_row(
            row["layer"],
            f"{row['width']:,}",
            row["activation"],
            f"{row['params']:,}",
            f"{row['multiply_adds']:,}",
        )
    table.add_section()
    table.add_row("total", "", "", f"{summary['params']:,}", f"{summary['multiply_adds']:,}")
    return table

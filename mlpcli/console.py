"""The consoles: results on stdout, progress and messages on stderr (so --json stays clean)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# How the linear model of `--baseline` is named in tables, plots and messages.
BASELINE_LABEL = "linear baseline"


def printable(text: str) -> str:
    """Text from a user's file or folder name as one line a terminal shows as written: every
    non-printable character (newline, tab, escape bytes, bidi controls such as U+202E that would
    reorder what follows) written as its Python escape (\\n, \\x1b, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def number(value: float, places: int = 4) -> str:
    """A metric for a table or a progress line: `places` decimals, or three significant digits
    where the decimals would show fewer (a loss of 3.2e-06 is not 0.0000)."""
    if value != 0 and abs(value) < 10 ** (2 - places):
        return f"{value:.3g}"
    return f"{value:.{places}f}"


def kept_epoch(summary: dict[str, Any]) -> str:
    """Which epoch's weights the model holds, and where the best epoch was when they differ
    (summary.json's numbers; the terminal and the run's page say it alike)."""
    kept, best, monitor = summary["saved_epoch"], summary["best_epoch"], summary["monitor"]
    where = f"best {monitor}" if kept == best else f"last; best {monitor} at epoch {best}"
    return f"kept epoch {kept} of {summary['epochs_run']} ({where})"


def format_record(record: dict[str, float], metric: str) -> str:
    """'train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9650' for one epoch."""
    keys = ["train_loss", "val_loss", f"val_{metric}"]
    return "  ".join(f"{k} {number(record[k])}" for k in keys if k in record)


def metrics_table(
    metrics: dict[str, dict[str, float]],
    title: str | None = None,
    baseline: dict[str, Any] | None = None,
) -> Table:
    """Metric rows, one column per split. With a baseline (summary.json's `baseline` block), the
    MLP's rows come first and the linear baseline's follow under the same columns, each under a
    heading, so that the two read against each other for any task's metrics."""
    splits = [s for s in metrics if metrics[s]]
    # As wide as the title, so that a long path is not folded into the table's width.
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    if baseline is None:
        _metric_rows(table, metrics, splits)
        return table
    table.add_row(Text("MLP", style="bold"))
    _metric_rows(table, metrics, splits)
    table.add_section()
    heading = f"{BASELINE_LABEL} ({baseline.get('params', 0):,} parameters)"
    if "failed" in baseline:
        table.add_row(Text(f"{heading}: failed", style="bold yellow"))
    else:
        table.add_row(Text(heading, style="bold"))
        _metric_rows(table, baseline.get("metrics", {}), splits)
    return table


def baselines_table(
    baselines: dict[str, dict[str, Any]], labels: dict[str, str], title: str | None = None
) -> Table:
    """The MLP and its baselines side by side (summary.json's `baselines` block), each column
    headed by its label: a row per split and metric, then the numbers each model stores to
    predict and the milliseconds it takes per 1,000 rows. A metric a model does not report
    (the kernel's loss) or a failed model's cell reads '-'."""
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    table.add_column("metric")
    names = list(baselines)
    for name in names:
        table.add_column(labels.get(name, name), justify="right")
    models = [baselines[n] for n in names]
    splits = list(dict.fromkeys(s for m in models for s in m.get("metrics", {})))
    for split in splits:
        keys = list(dict.fromkeys(k for m in models for k in m.get("metrics", {}).get(split, {})))
        for key in keys:
            values = [m.get("metrics", {}).get(split, {}).get(key) for m in models]
            table.add_row(f"{split} {key}", *(_cell(v) for v in values))
    table.add_section()
    stored = [f"{m['stored_numbers']:,}" if "stored_numbers" in m else "-" for m in models]
    table.add_row("stored numbers", *stored)
    table.add_row("ms / 1k rows", *(_cell(m.get("predict_ms_per_1k_rows"), 3) for m in models))
    for name, model in zip(names, models):
        if "failed" in model:
            table.add_row(Text(f"{labels.get(name, name)}: failed", style="bold yellow"))
    return table


def _cell(value: float | None, places: int = 4) -> str:
    return "-" if value is None else number(value, places)


def _metric_rows(table: Table, metrics: dict[str, dict[str, float]], splits: list[str]) -> None:
    names = list(dict.fromkeys(k for s in splits for k in metrics.get(s, {})))
    for name in names:
        values = [metrics.get(s, {}) for s in splits]
        table.add_row(name, *(number(v[name]) if name in v else "" for v in values))


# A confusion matrix of more classes than this does not fit a terminal's table; the per-class
# scores still do (the matrix is in --json and --plot).
MAX_TABLE_CLASSES = 12


def per_class_table(labels: list[str], per_class: list[dict[str, Any]]) -> Table:
    """One row per class: precision, recall, F1 and support (its true rows); '-' for a score
    that is 0/0. Labels are drawn as plain text (never read as markup); the caller makes them
    safe for a terminal."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("class", overflow="fold")
    for column in ("precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")
    for label, scores in zip(labels, per_class):
        numbers = [_score(scores[k]) for k in ("precision", "recall", "f1")]
        table.add_row(Text(label), *numbers, f"{scores['support']:,}")
    return table


def confusion_table(labels: list[str], matrix: list[list[int]]) -> Table | None:
    """Rows: true class; columns: predicted class; cells: row counts, the diagonal in bold.
    None past MAX_TABLE_CLASSES classes."""
    if len(labels) > MAX_TABLE_CLASSES:
        return None
    title = "confusion matrix (rows: true class, columns: predicted)"
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title))
    table.add_column("true class", overflow="fold")
    for label in labels:
        table.add_column(Text(label), justify="right", overflow="fold")
    for i, (label, row) in enumerate(zip(labels, matrix)):
        cells = [Text(f"{c:,}", style="bold" if i == j else "") for j, c in enumerate(row)]
        table.add_row(Text(label), *cells)
    return table


def _score(value: float | None) -> str:
    return "-" if value is None else number(value)


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
            return number(point[f"{key}_mean"], 3)
        return f"{number(point[f'{key}_mean'], 3)}\n± {number(point[f'{key}_std'], 3)}"

    for point in summary["points"]:
        if point.get("baseline"):
            table.add_section()  # a reference, not one of the grid's points
        table.add_row(
            _baseline_row(point) if point.get("baseline") else settings_text(point["settings"]),
            f"{point['completed']}/{point['trials']}",
            f"{point.get('params', '-'):,}" if "params" in point else "-",
            cell(point, f"train_{metric}"),
            cell(point, f"val_{metric}"),
            cell(point, "val_loss"),
        )
    return table


MAX_SEARCH_ROWS = 25  # a search's table shows its best trials


def search_table(summary: dict[str, Any]) -> Table:
    """A search's trials, best first: settings, how each ended, the epochs it ran, its
    validation metric, and why it was pruned."""
    metric = summary["main_metric"]
    ranking = summary.get("ranking", [])
    shown_rows = ranking[:MAX_SEARCH_ROWS]
    more = len(ranking) - len(shown_rows)
    title = f"search {summary['name']}" + (
        f" (best {len(shown_rows)} of {len(ranking)})" if more else ""
    )
    table = Table(title=title, show_edge=False, header_style="bold")
    table.add_column("trial")
    table.add_column("settings", overflow="fold")
    table.add_column("status")
    table.add_column("epochs", justify="right")
    table.add_column(f"val\n{metric}", justify="right")
    table.add_column("reason", overflow="fold")  # pruned: why; failed: the error
    styles = {"completed": "green", "pruned": "bright_black", "failed": "red"}
    for row in shown_rows:
        value = row.get(f"val_{metric}")
        status = row["status"]
        table.add_row(
            row["trial"],
            settings_text({k: _short_number(v) for k, v in row["settings"].items()}),
            f"[{styles.get(status, '')}]{status}[/]",
            str(row.get("epochs") or "-"),
            number(value, 3) if isinstance(value, (int, float)) else "-",
            escape(row.get("reason") or ""),
        )
    return table


def _short_number(text: str) -> str:
    """A drawn float in four significant digits (the exact value is in results.csv)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{value:.4g}" if any(c in text for c in ".eE") else text


def _baseline_row(point: dict[str, Any]) -> str:
    """A sweep's baseline point, as the settings column names it."""
    if point.get("model") == "kernel":
        return "kernel baseline (RBF kernel ridge)"
    return f"{BASELINE_LABEL} (hidden=[])"


def summary_table(summary: dict[str, Any]) -> Table:
    """One row per layer: width, norm layer (a column only where the model has them),
    activation, parameters, multiply-adds per row; then totals."""
    name = summary.get("config") or summary.get("model") or ""
    title = f"{name}: {summary['inputs']} inputs, {summary['task']}"
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title))
    norms = _has_norm(summary["layers"])
    columns = ("layer", "width", *(["norm"] if norms else []), "activation", "params")
    for column in (*columns, "multiply-adds / row"):
        left = column in ("layer", "norm", "activation")
        table.add_column(column, justify="left" if left else "right")
    for row in summary["layers"]:
        table.add_row(
            row["layer"],
            f"{row['width']:,}",
            *([row.get("norm") or ""] if norms else []),
            row["activation"],
            f"{row['params']:,}",
            f"{row['multiply_adds']:,}",
        )
    table.add_section()
    blank = [""] * (len(columns) - 2)
    table.add_row("total", *blank, f"{summary['params']:,}", f"{summary['multiply_adds']:,}")
    return table


def _has_norm(layers: list[dict[str, Any]]) -> bool:
    return any(layer.get("norm") for layer in layers)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def inspect_table(layers: list[dict[str, Any]], title: str | None = None) -> Table:
    """One row per hidden layer: width, norm layer (a column only where the model has them),
    activation, params, gradient ratio to the last hidden layer, dead and saturated shares, and
    the flags raised."""
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    norms = _has_norm(layers)
    columns = ("layer", "width", *(["norm"] if norms else []), "activation", "params")
    for column in (*columns, "grad ratio", "dead", "saturated"):
        table.add_column(column, justify="left" if column in ("norm", "activation") else "right")
    table.add_column("flags")
    for row in layers:
        ratio = row["grad_ratio"]
        table.add_row(
            str(row["layer"]),
            f"{row['width']:,}",
            *([row.get("norm") or ""] if norms else []),
            row["activation"],
            f"{row['params']:,}",
            "-" if ratio is None else f"{ratio:.2g}",
            _fraction(row["dead"]),
            _fraction(row["saturated"]),
            ", ".join(row["flags"]),
            style="red" if row["flags"] else None,
        )
    return table


def probe_table(probes: list[dict[str, Any]], held_out: str, title: str | None = None) -> Table:
    """One row per layer (the input, then each hidden layer): its width and its linear probe's
    main-metric score on the training rows and on the held-out rows."""
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    metric = probes[0]["metric"] if probes else ""
    for column in ("layer", "name", "width", f"train {metric}", f"{held_out} {metric}"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for row in probes:
        table.add_row(
            str(row["layer"]),
            row["name"],
            f"{row['width']:,}",
            *("-" if row[split] is None else number(row[split]) for split in ("train", "val")),
        )
    return table


def columns_table(columns: list[dict[str, Any]], title: str | None = None) -> Table:
    """`mlp init`'s columns: name, kind, whether the config uses it, and why (names from a
    user's file as plain text, non-printable characters escaped)."""
    table = Table(title=title, show_edge=False, header_style="bold", min_width=len(title or ""))
    for heading in ("column", "kind", "used", "why"):
        table.add_column(heading)
    for col in columns:
        name = printable(str(col["name"]))
        used = Text("yes", style="green") if col["used"] else Text("no", style="yellow")
        table.add_row(Text(name), Text(col["kind"]), used, Text(col["reason"]))
    return table

"""Sweep results: one row per trial (results.csv) and per-point means over seeds (summary.json)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Any

from ..config.registry import MAXIMISED_METRICS
from ..runs.atomic import write_text_atomic
from .executors.local import TrialResult
from .grid import format_value

SPLITS = ("train", "val", "test")


def trial_row(result: TrialResult) -> dict[str, Any]:
    """Settings, seed, status, metrics per split, parameters, time and run folder of one trial."""
    summary = result.summary
    row: dict[str, Any] = {"trial": result.trial.name, "point": result.trial.point}
    if result.trial.baseline:  # which baseline the row is: linear, kernel
        row["baseline"] = result.trial.baseline
    for key, value in result.trial.settings.items():
        row[key] = format_value(value)
    hidden = result.trial.settings.get("model.hidden")
    if isinstance(hidden, list):
        row["width"], row["depth"] = (max(hidden) if hidden else 0), len(hidden)
    if result.trial.budget is not None:
        row["budget"] = result.trial.budget
    row.update(seed=result.trial.seed, status=result.status)
    extra = dict(result.extra)
    overrides = extra.pop("overrides", None)
    row.update(extra)  # a search's: epochs, pruned_at, reason
    row.update(
        error=result.error or "",
        params=summary.get("params"),
        best_epoch=summary.get("best_epoch"),
        seconds=round(result.seconds, 3),
        train_seconds=summary.get("train_seconds"),
    )
    # A pruned trial's metrics are its saved model's, scored as a completed run's are.
    metrics = summary.get("metrics", {}) if result.status in ("completed", "pruned") else {}
    for split in SPLITS:
        for name, value in metrics.get(split, {}).items():
            row[f"{split}_{name}"] = value
    if overrides is not None:
        row["overrides"] = overrides
    row["run_dir"] = str(result.run_dir)
    return row


def write_results_csv(path: Any, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["trial"]))
    write_text_atomic(path, buffer.getvalue())


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def point_stats(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Per grid point: its settings and the mean and std of every metric over finished seeds."""
    points: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        points.setdefault(row["point"], []).append(row)
    stats = []
    for point, members in sorted(points.items()):
        done = [r for r in members if r["status"] == "completed"]
        entry: dict[str, Any] = {
            "point": point,
            "settings": {k: members[0][k] for k in keys if k in members[0]},
            "trials": len(members),
            "completed": len(done),
        }
        for extra in ("width", "depth", "params", "budget"):
            value = next((r[extra] for r in members if r.get(extra) is not None), None)
            if value is not None:
                entry[extra] = value
        names = [k for k in (done[0] if done else {}) if k.split("_", 1)[0] in SPLITS]
        for name in names:
            values = [r[name] for r in done if isinstance(r.get(name), (int, float))]
            if values:
                entry[f"{name}_mean"], entry[f"{name}_std"] = _mean_std(values)
        stats.append(entry)
    return stats


def best_point(stats: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The point with the best mean validation metric (its direction follows the metric)."""
    key = f"val_{metric}_mean"
    scored = [p for p in stats if isinstance(p.get(key), float) and not math.isnan(p[key])]
    if not scored:
        return None
    pick = max if metric in MAXIMISED_METRICS else min
    return pick(scored, key=lambda p: p[key])

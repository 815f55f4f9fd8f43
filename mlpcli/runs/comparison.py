"""`mlp compare`: two or more run folders side by side, from their own files.

The settings that differ (each config.yaml flattened to dotted keys, a key one run lacks
included), the final metrics of every split and baseline, epochs, parameters and times, and
the loss curves from each metrics.csv for the figure the API draws. No torch, pandas or
matplotlib here.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ..errors import RunError
from .folder import CONFIG_FILE, SUMMARY_FILE, SWEEP_FILE, check_run_folder
from .reading import (
    ABSENT,
    CSV_CAP,
    METRICS_FILE,
    MISSING,
    TEXT_CAP,
    Reader,
    Scalar,
    as_count,
    as_dict,
    as_number,
    as_text,
    csv_dicts,
    differing,
    load_settings,
    main_metric_of,
    metric_series,
)


@dataclass
class RunSide:
    """One run of a comparison: what its summary.json and metrics.csv say."""

    name: str  # the folder's name; a path suffix when runs share one (a/trial-002, b/trial-002)
    path: str
    status: str | None
    started: str | None
    epochs: int | None  # epochs run
    kept_epoch: int | None  # the epoch whose weights the model holds
    best_epoch: int | None
    params: int | None
    seconds: float | None  # the whole run
    train_seconds: float | None
    main_metric: str
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # train, val loss

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("curves")
        return data


@dataclass
class Comparison:
    """What `mlp compare` shows. `settings`, `metrics` and `baselines` hold one value per run,
    in `runs`' order (None where a run has no such metric)."""

    runs: list[RunSide]
    settings: dict[str, list[Scalar]]  # the keys whose values differ; MISSING where absent
    metrics: dict[str, dict[str, list[float | None]]]  # split -> metric -> values
    baselines: dict[str, dict[str, dict[str, list[float | None]]]]  # name -> split -> metric
    figure: Path | None = None  # -o: the loss curves of every run
    # What a run lacks for the figure (its metrics.csv missing or damaged), naming the run.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [r.to_dict() for r in self.runs],
            "settings": {
                key: [ABSENT if v is MISSING else v for v in values]
                for key, values in self.settings.items()
            },
            "metrics": self.metrics,
            "baselines": self.baselines,
            "figure": None if self.figure is None else str(self.figure),
            "notes": self.notes,
        }


def compare_runs(runs: list[str | Path]) -> Comparison:
    """Two or more run folders compared. RunError (exit 2): fewer than two, a sweep folder (its
    trials are the runs), a folder that is not a run, or a damaged config.yaml or summary.json."""
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise RunError(
            f"mlp compare: give at least two run folders ({len(paths)} given), e.g. "
            f"mlp compare runs/A runs/B"
        )
    sides, flats, summaries, problems = [], [], [], []
    for path in paths:
        side, flat, summary, problem = _read(path)
        sides.append(side)
        flats.append(flat)
        summaries.append(summary)
        problems.append(problem)
    for side, label in zip(sides, labels(paths), strict=True):
        side.name = label
    return Comparison(
        runs=sides,
        settings=differing(flats),
        metrics=_side_by_side([as_dict(s.get("metrics")) for s in summaries]),
        baselines=_baselines(summaries),
        notes=[
            f"{side.name}: no loss curves ({problem})"
            for side, problem in zip(sides, problems, strict=True)
            if problem
        ],
    )


def labels(paths: list[Path]) -> list[str]:
    """Each run's name in headers and legends: its folder's name, or, where folders share a
    name (two sweeps' trials/trial-002), the shortest path suffix that tells them apart
    (sweep-a/trials/trial-002). The same folder given twice is numbered."""
    parts = [p.resolve().parts for p in paths]
    names = [p[-1] if p else str(path) for p, path in zip(parts, paths, strict=True)]
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) < 2:
            continue
        for number, i in enumerate(group, 1):
            for k in range(2, len(parts[i]) + 1):
                if sum(parts[j][-k:] == parts[i][-k:] for j in group) == 1:
                    names[i] = str(PurePath(*parts[i][-k:]))
                    break
            else:  # the same folder given again
                names[i] = f"{name} ({number})"
    return names


def _read(path: Path) -> tuple[RunSide, dict[str, Scalar], dict[str, Any], str | None]:
    if not path.is_dir():
        what = "no such folder" if not os.path.lexists(path) else "not a folder"
        raise RunError(f"{path}: {what}; give run folders")
    if (path / SWEEP_FILE).exists():
        raise RunError(
            f"{path}: a sweep folder; compare its trials, e.g. "
            f"mlp compare {path / 'trials' / 'trial-000'} {path / 'trials' / 'trial-001'}"
        )
    if not (path / CONFIG_FILE).exists():
        raise RunError(f"{path}: not a run folder (no {CONFIG_FILE})")
    check_run_folder(path)  # a link planted in the folder is refused by name
    reader = Reader(path)
    flat = _config(reader)
    before = len(reader.notes)
    summary = reader.json(SUMMARY_FILE, missing_note=False)
    if len(reader.notes) > before:
        raise RunError(f"{path / reader.notes[-1]}")
    summary = summary or {}
    rows, problem = _metrics_rows(reader)
    side = RunSide(
        name=path.resolve().name,
        path=str(path),
        status=as_text(summary.get("status")),
        started=as_text(summary.get("started")),
        epochs=as_count(summary.get("epochs_run")),
        kept_epoch=as_count(summary.get("saved_epoch")),
        best_epoch=as_count(summary.get("best_epoch")),
        params=as_count(summary.get("params")),
        seconds=as_number(summary.get("seconds")),
        train_seconds=as_number(summary.get("train_seconds")),
        main_metric=main_metric_of(summary, rows[0] if rows else ()),
        curves={s: metric_series(rows, f"{s}_loss") for s in ("train", "val")},
    )
    return side, flat, summary, problem


def _metrics_rows(reader: Reader) -> tuple[list[dict[str, str]], str | None]:
    """metrics.csv's rows, and what keeps its loss curves from the figure, in words, if
    anything does: the file missing, unreadable, not text, not CSV, or without loss values."""
    before = len(reader.notes)
    text = reader.text(METRICS_FILE, CSV_CAP)
    if text is None:
        return [], reader.notes[-1] if len(reader.notes) > before else None
    try:
        rows = csv_dicts(text)
    except csv.Error as exc:
        return [], f"{METRICS_FILE}: damaged ({exc})"
    if not any(metric_series(rows, f"{s}_loss") for s in ("train", "val")):
        return rows, f"{METRICS_FILE}: no train_loss or val_loss values"
    return rows, None


def _config(reader: Reader) -> dict[str, Scalar]:
    """config.yaml flattened, as `mlp runs` reads it."""
    text = reader.text(CONFIG_FILE, TEXT_CAP)
    where = reader.run_dir / CONFIG_FILE
    if text is None:
        raise RunError(f"{reader.run_dir / reader.notes[-1]}")
    try:
        return load_settings(text)
    except ValueError as exc:
        raise RunError(f"{where}: damaged ({exc})") from None


def _side_by_side(metrics: list[dict[str, Any]]) -> dict[str, dict[str, list[float | None]]]:
    splits = list(dict.fromkeys(s for m in metrics for s in m))
    table: dict[str, dict[str, list[float | None]]] = {}
    for split in splits:
        names = list(dict.fromkeys(k for m in metrics for k in as_dict(m.get(split))))
        table[split] = {
            name: [as_number(as_dict(m.get(split)).get(name)) for m in metrics] for name in names
        }
    return table


def _baselines(
    summaries: list[dict[str, Any]],
) -> dict[str, dict[str, dict[str, list[float | None]]]]:
    """summary.json's `baselines` (the MLP's own entry aside: it is `metrics`), per model."""
    blocks = [as_dict(s.get("baselines")) for s in summaries]
    names = [n for n in dict.fromkeys(n for b in blocks for n in b) if n != "mlp"]
    return {
        name: _side_by_side([as_dict(as_dict(b.get(name)).get("metrics")) for b in blocks])
        for name in names
    }

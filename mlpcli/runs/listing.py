"""`mlp runs`: one row per run or sweep folder under a folder, from the files each run writes.

Of a run, only summary.json, config.yaml and the lock's record are read; of a sweep, its
summary.json, results.csv, sweep.yaml's time, the lock's record and its best trial's
summary.json; each size-capped. No model, no metrics.csv, no torch or pandas, so a hundred runs
list in about the time `mlp --help` takes. Anything damaged is a row saying which file and
what, never an exception.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config.registry import MAXIMISED_METRICS, TASKS
from ..errors import RunError
from .atomic import pid_alive
from .folder import (
    CONFIG_FILE,
    LEASE_SECONDS,
    LOCK_FILE,
    RECORDLESS_GRACE,
    SUMMARY_FILE,
    SWEEP_FILE,
    _host_name,
)
from .reading import (
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
    rank_rows,
)

# A config.yaml mlp writes is 1-2 KB; a summary.json a few KB (a sweep's grows with its points).
CONFIG_CAP = 1 << 20
SUMMARY_CAP = 16 << 20
RESULTS_CAP = 16 << 20
LOCK_CAP = 4096
# summary.json's status -> the word listed. "stopped" is what a Ctrl-C, a kill or a lost peer
# process leaves (early stopping completes, with stopped_early): the run can be resumed.
STATUS_WORDS = {
    "completed": "completed",
    "failed": "failed",
    "stopped": "interrupted",
    "running": "running",  # unless no live process holds the lock: then interrupted
}
# Settings every run differs in without saying how its results differ.
UNTOLD_SETTINGS = frozenset({"name"})
SPLITS = ("train", "val", "test")
SPLIT_PREFIXES = tuple(f"{s}_" for s in SPLITS)


@dataclass
class RunRow:
    """One row of `mlp runs`: a run, a sweep, or a folder that is neither (`problem` says why)."""

    name: str  # the folder's name
    path: str
    kind: str  # run, sweep, or other (not a run folder, a link, unreadable)
    status: str  # completed, failed, interrupted, running; "-" for other
    started: str | None = None  # ISO time, from summary.json (a sweep: sweep.yaml's time)
    epochs: int | None = None  # epochs run
    main_metric: str | None = None
    val: float | None = None  # the main metric on val (a sweep: its best trial's)
    test: float | None = None
    params: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> name -> value
    settings: dict[str, Scalar] = field(default_factory=dict)  # the settings that differ
    trials: int | None = None  # a sweep's
    best_trial: str | None = None  # a sweep's, by its main metric on val
    problem: str | None = None  # what is missing or damaged, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_runs(folder: str | Path = "runs", sort: str | None = None) -> list[RunRow]:
    """Every entry of `folder` as a row: newest first (by summary.json's `started`), or, with
    `sort`, by a metric best first (`val_accuracy`, `test_loss`; a bare name is its val value),
    rows without it last. RunError (exit 2): no such folder, or a name that is no metric (see
    `sortable`: every task's metrics are, so `r2` among classification runs sorts them all
    last)."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "no such folder" if not os.path.lexists(folder) else "not a folder"
        raise RunError(f"{folder}: {what}; give the folder that holds the run folders")
    rows = [_row(entry) for entry in sorted(folder.iterdir(), key=lambda p: p.name)]
    _keep_differing(rows)
    if sort is None:
        # Newest first, as `ls -t`, `mlflow runs list` and `guild runs` list; rows without a
        # time (not runs) after them, by name.
        timed = sorted((r for r in rows if r.started), key=lambda r: r.started or "", reverse=True)
        return timed + [r for r in rows if not r.started]
    return sort_rows(rows, sort)


def sortable(rows: list[RunRow]) -> list[str]:
    """The metric names --sort accepts: SPLIT_METRIC of the task metrics (any the rows hold
    too), and each bare name (its val value)."""
    names = {"loss", *(m for task in TASKS.values() for m in task[2])}
    names |= {m for r in rows for split in r.metrics.values() for m in split}
    return sorted(names) + [f"{s}_{m}" for s in SPLITS for m in sorted(names)]


def sort_rows(rows: list[RunRow], metric: str) -> list[RunRow]:
    """Best first by `metric` (direction from MAXIMISED_METRICS), rows without it last."""
    accepted = sortable(rows)
    if metric not in accepted:
        raise RunError(
            f"--sort {metric}: not a metric; accepted: a metric name (its validation value: "
            f"{', '.join(n for n in accepted if not n.startswith(SPLIT_PREFIXES))}, ...) or "
            f"SPLIT_METRIC with SPLIT train, val or test (val_accuracy, test_loss)"
        )
    split, name = "val", metric
    for prefix in SPLITS:
        if metric.startswith(f"{prefix}_"):
            split, name = prefix, metric[len(prefix) + 1 :]
    sign = -1.0 if name in MAXIMISED_METRICS else 1.0

    def key(row: RunRow) -> tuple[int, float]:
        value = row.metrics.get(split, {}).get(name)
        return (1, 0.0) if value is None else (0, sign * value)

    return sorted(rows, key=key)


# ------------------------------------------------------------------ one entry


def _row(path: Path) -> RunRow:
    name = path.name
    if path.is_symlink():
        return _other(path, "a symbolic link; not followed (only real folders are listed)")
    if not path.is_dir():
        return _other(path, "a file, not a run folder")
    try:
        if (path / SWEEP_FILE).exists():
            return _sweep_row(path)
        if (path / CONFIG_FILE).exists() or (path / SUMMARY_FILE).exists():
            return _run_row(path)
    except OSError as exc:  # a folder that cannot be read
        return _other(path, f"cannot be read ({exc.strerror})")
    return RunRow(
        name,
        str(path),
        "other",
        "-",
        problem=f"not a run folder: no {CONFIG_FILE} or {SUMMARY_FILE}",
    )


def _other(path: Path, problem: str) -> RunRow:
    return RunRow(path.name, str(path), "other", "-", problem=problem)


def _summary(reader: Reader) -> dict[str, Any] | None:
    """summary.json; {} when missing (a run that has not written one yet), None when
    unreadable or damaged (a note names the file and what is wrong)."""
    before = len(reader.notes)
    data = reader.json(SUMMARY_FILE, missing_note=False, cap=SUMMARY_CAP)
    if data is None and len(reader.notes) > before:
        return None
    return data or {}


def _run_row(path: Path) -> RunRow:
    reader = Reader(path)
    summary = _summary(reader)
    row = RunRow(path.name, str(path), "run", "interrupted")
    settings = _settings(reader)
    if summary is None:
        row.status = "-"
    else:
        row.status = _status(path, summary)
        row.started = as_text(summary.get("started"))
        row.epochs = as_count(summary.get("epochs_run"))
        row.params = as_count(summary.get("params"))
        row.metrics = _metrics(summary.get("metrics"))
        row.main_metric = main_metric_of(summary) if summary.get("main_metric") else None
        if row.main_metric:
            row.val = row.metrics.get("val", {}).get(row.main_metric)
            row.test = row.metrics.get("test", {}).get(row.main_metric)
        if not summary and row.started is None:
            row.started = _mtime(path / CONFIG_FILE)
    row.settings = settings
    if reader.notes:
        row.problem = "; ".join(reader.notes)
    return row


def _settings(reader: Reader) -> dict[str, Scalar]:
    text = reader.text(CONFIG_FILE, CONFIG_CAP)
    if text is None:
        return {}
    try:
        return load_settings(text)
    except ValueError as exc:
        reader.notes.append(f"{CONFIG_FILE}: damaged ({exc})")
        return {}


def _sweep_row(path: Path) -> RunRow:
    """A sweep as one row: its trial count, and its best trial by the main metric on val."""
    reader = Reader(path)
    summary = _summary(reader) or {}
    results = _results(reader)
    metric = main_metric_of(summary, results[0] if results else ())
    # A sweep that has not written its summary yet is running while its lock is held.
    row = RunRow(path.name, str(path), "sweep", _status(path, summary))
    row.started = _mtime(path / SWEEP_FILE)
    row.main_metric = metric
    row.trials = as_count(summary.get("trials"))
    if row.trials is None:
        row.trials = len(results)
    ranked = [
        r for r in rank_rows(results, metric) if as_number(r.get(f"val_{metric}")) is not None
    ]
    if ranked:
        best = ranked[0]
        row.best_trial = best.get("trial") or None
        row.metrics = {
            split: {
                m: value
                for column, cell in best.items()
                if column.startswith(f"{split}_")
                and (m := column[len(split) + 1 :]) != "seconds"
                and (value := as_number(cell)) is not None
            }
            for split in SPLITS
        }
        row.val = row.metrics["val"].get(metric)
        row.test = row.metrics["test"].get(metric)
        row.params = as_count(best.get("params"))
        # A search's rows hold the epochs each trial ran (pruned ones fewer); a grid's only
        # best_epoch, so its trial's own summary says how many ran.
        row.epochs = as_count(best.get("epochs"))
        if row.epochs is None:
            row.epochs = _trial_epochs(path, row.best_trial)
    if reader.notes:
        row.problem = "; ".join(reader.notes)
    return row


def _trial_epochs(sweep: Path, trial: str | None) -> int | None:
    """The epochs a sweep's trial ran, from trials/TRIAL/summary.json; None when the name is
    not a plain folder name or the folder is a link (only the sweep's own folders are read)."""
    if not trial or trial in (".", "..") or Path(trial).name != trial:
        return None
    folder = sweep / "trials" / trial
    if any(p.is_symlink() or not p.is_dir() for p in (folder.parent, folder)):
        return None
    summary = Reader(folder).json(SUMMARY_FILE, missing_note=False, cap=SUMMARY_CAP)
    return as_count((summary or {}).get("epochs_run"))


def _results(reader: Reader) -> list[dict[str, str]]:
    import csv

    text = reader.text("results.csv", RESULTS_CAP, missing_note=False)
    if text is None:
        return []
    try:
        return csv_dicts(text)
    except csv.Error as exc:
        reader.notes.append(f"results.csv: damaged ({exc})")
        return []


# ------------------------------------------------------------------ status and the lock


def _status(path: Path, summary: dict[str, Any]) -> str:
    """The listed status: summary.json's, in STATUS_WORDS's words. A run that says it is
    running, or has no summary yet, is running only while a live process holds its lock."""
    recorded = summary.get("status")
    word = STATUS_WORDS.get(recorded, "interrupted") if isinstance(recorded, str) else None
    if word is None or word == "running":
        return "running" if lock_held(path) else "interrupted"
    return word


def lock_held(folder: Path) -> bool:
    """Whether a live process holds the folder's lock, judged from the record filelock's lease
    keeps in it (`pid=`, `host=` lines; its holder refreshes the file's time as a heartbeat).

    The record is only read, never the lock taken: taking it would block or, worse, take over
    the folder of a run being trained, and a reader's open does not disturb the holder (it
    replaces the file whole and deletes it on release). A record read half-written parses as
    none, and a recordless file younger than the grace the lock itself allows counts as held.
    """
    lock = folder / LOCK_FILE
    reader = Reader(folder)
    data = reader.bytes(LOCK_FILE, LOCK_CAP, missing_note=False)
    if data is None:
        return False
    fields = dict(line.partition("=")[::2] for line in data.decode("utf-8", "replace").splitlines())
    age = time.time() - (_stat_time(lock) or 0.0)
    if not data.startswith(b"filelock/") or "pid" not in fields:
        return age < RECORDLESS_GRACE
    try:
        pid = int(fields["pid"])
    except ValueError:
        return False
    if fields.get("host") != _host_name():
        return age < LEASE_SECONDS  # another host's holder refreshes its lease while it lives
    # A live pid alone is not enough: a stale record's pid may since name another process.
    # The holder's heartbeat keeps the file younger than its lease.
    return pid_alive(pid) and age < LEASE_SECONDS * 1.5


# ------------------------------------------------------------------ the settings that differ


def _keep_differing(rows: list[RunRow]) -> None:
    """Reduce each run's flattened config to the keys whose values differ between the runs
    (a key one run lacks differs too), leaving out UNTOLD_SETTINGS."""
    runs = [r for r in rows if r.kind == "run" and r.settings]
    differ = differing([r.settings for r in runs], leave_out=UNTOLD_SETTINGS)
    for row in rows:
        row.settings = {k: row.settings[k] for k in differ if k in row.settings}


# ------------------------------------------------------------------ values


def _metrics(value: object) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for split, values in as_dict(value).items():
        numbers = {str(k): n for k, v in as_dict(values).items() if (n := as_number(v)) is not None}
        if numbers:
            found[str(split)] = numbers
    return found


def _stat_time(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _mtime(path: Path) -> str | None:
    """A file's modification time as summary.json writes `started` (UTC, seconds)."""
    seconds = _stat_time(path)
    if seconds is None:
        return None
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return stamp.isoformat(timespec="seconds")

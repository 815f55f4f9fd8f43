"""Run folders: unique names, metrics.csv, summary.json."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..callbacks import Callback
from ..errors import RunError
from .atomic import WRITE_HINTS, append_line, check_own, open_own, write_text_atomic

if TYPE_CHECKING:
    from ..training.trainer import Trainer


LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.safetensors"
CONFUSION_FILE = "plots/confusion.png"  # mlp eval --plot
SWEEP_FILE = "sweep.yaml"  # the file that marks a sweep folder
CHECKPOINT = Path("checkpoints") / "last.pt"
TENSORBOARD_FOLDER = "tb"  # event files, with train.tensorboard (their names are TensorBoard's)
REPORT_FILE = "report.html"  # mlp report, train.report: the page of a run or a sweep
MLFLOW_FILE = "mlflow.json"  # train.mlflow: the MLflow run this folder logs to
# What mlp reads and writes in a run folder, parents before their contents.
RUN_LAYOUT = {
    CONFIG_FILE: "file",
    SUMMARY_FILE: "file",
    "metrics.csv": "file",
    LOCK_FILE: "file",
    MODEL_FILE: "file",
    str(CHECKPOINT.parent): "folder",
    str(CHECKPOINT): "file",
    "diagnostics.csv": "file",
    "inspect.json": "file",
    TENSORBOARD_FOLDER: "folder",
    "model.onnx": "file",
    "model.onnx.json": "file",
    "plots": "folder",
    "plots/loss.png": "file",
    "plots/lr_find.png": "file",  # optim.lr: auto
    "plots/gradients.png": "file",
    "plots/units.png": "file",
    "plots/boundary.png": "file",
    "plots/detectors.png": "file",
    CONFUSION_FILE: "file",
    REPORT_FILE: "file",
    MLFLOW_FILE: "file",
}
# A sweep folder: its own files, and one run folder per trial under trials/.
# A search's Optuna study (an append-only journal) and the lock file Optuna keeps beside it.
SEARCH_JOURNAL = "search.journal"
SWEEP_LAYOUT = {
    SWEEP_FILE: "file",
    "results.csv": "file",
    SUMMARY_FILE: "file",
    LOCK_FILE: "file",
    SEARCH_JOURNAL: "file",
    f"{SEARCH_JOURNAL}.lock": "file",
    "trials": "folder",
    "plots": "folder",
    REPORT_FILE: "file",
    MLFLOW_FILE: "file",
}
UNFINISHED = ("running", "stopped", "failed")


def check_layout(folder: Path, layout: dict[str, str]) -> None:
    """Every entry of `layout` that exists in `folder` is its own regular file or folder.

    Run before a folder someone else may have prepared (a shared or copied run) is read or
    written; the reads and writes themselves refuse a link at the final name as well.
    """
    for entry, kind in layout.items():
        check_own(Path(folder) / entry, kind)


def check_run_folder(run_dir: Path) -> None:
    check_layout(run_dir, RUN_LAYOUT)


def check_sweep_folder(sweep_dir: Path) -> None:
    """The sweep's own files, and each trial folder with its own files."""
    check_layout(sweep_dir, SWEEP_LAYOUT)
    trials = Path(sweep_dir) / "trials"
    for trial in sorted(trials.iterdir()) if trials.is_dir() else []:
        check_own(trial, "folder")
        check_run_folder(trial)


def completed_run(path: Path) -> bool:
    """A run folder whose training completed: its summary says so and its model is there."""
    path = Path(path)
    try:
        completed = read_json(path / SUMMARY_FILE).get("status") == "completed"
    except RunError:
        return False
    return completed and (path / MODEL_FILE).is_file()


def unfinished_run(path: Path) -> bool:
    """A run folder that `mlp train --resume` can continue: it has its config.yaml, and its
    summary says it did not complete (or it was stopped before writing a summary)."""
    path = Path(path)
    try:
        check_run_folder(path)
        if not (path / CONFIG_FILE).is_file():
            return False
        if not (path / SUMMARY_FILE).exists():
            return True
        return read_json(path / SUMMARY_FILE).get("status") in UNFINISHED
    except RunError:
        return False


def _taken(path: Path) -> RunError:
    advice = "choose another name"
    if unfinished_run(path):
        advice += f", or continue it with --resume {path}"
    return RunError(f"--name {path.name}: {path} already exists; {advice}")


def check_name_free(out: Path, name: str) -> None:
    """Refuse an explicit name early, before any data is loaded (create_run_dir checks again)."""
    from ..config.schema import check_run_name

    check_run_name(name, "--name")
    if (Path(out) / name).exists():
        raise _taken(Path(out) / name)


# A lock's lease: its holder's heartbeat refreshes it a few times per lease; a holder on another
# host whose lock goes unrefreshed this long has ended (or lost the shared filesystem).
LEASE_SECONDS = 30.0
RECORDLESS_GRACE = 10.0  # seconds


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold run_dir/.lock for as long as this process works in the folder.

    A second process (say, a second --resume of the same run) is refused while the first one
    lives, also from another host on a shared filesystem. The lock is filelock's lease: the
    file records the holder's host, pid and process start time, and a heartbeat thread
    refreshes it while the holder lives. On this host a holder that has ended, or whose pid now
    belongs to another process, is taken over at once. A holder on another host cannot be
    probed: its lock is taken over only once it has gone one lease unrefreshed, which this
    process waits for (at most LEASE_SECONDS and a half), so a live host's lock is never taken
    and a crashed host's never blocks for good.
    """
    import filelock

    path = Path(run_dir) / LOCK_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        check_own(path, "file")  # raises, naming what was planted there
    _clear_recordless(path)
    lock = filelock.SoftFileLease(str(path), lease_duration=LEASE_SECONDS)
    here = _host_name()
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            owner = lock.owner
            if owner is not None and owner.hostname == here:
                raise
            # Another host's holder, or a lock file it could not read: wait for a refresh.
            lock.acquire(timeout=LEASE_SECONDS * 1.5)
    except filelock.Timeout:
        owner = lock.owner
        holder = "(unknown)" if owner is None else str(owner.pid)
        if owner is not None and owner.hostname != here:
            holder += f" on host {owner.hostname} (it still refreshes its lease)"
        raise RunError(
            f"{run_dir}: in use by process {holder}; wait for it to finish or stop it"
        ) from None
    except OSError as exc:
        raise _unusable(Path(run_dir), path, exc) from None
    try:
        yield
    finally:
        lock.release()


def _host_name() -> str:
    """This host as filelock records it in a lock: the host name, with a mark of the PID
    namespace inside a container (whose pids another container cannot probe). filelock does
    not export the function; pyproject.toml pins the major version, and a test compares it with
    the record of a lock this process holds."""
    from filelock._identity._host import host_name

    return str(host_name())


def _clear_recordless(path: Path) -> None:
    """Remove a left-over lock file that holds no filelock record, which filelock cannot probe:
    one whose writer died before writing its record. One younger than RECORDLESS_GRACE may be a
    record being written now, and stays."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # none there; anything else, the lock's own open reports
    try:
        if os.pread(fd, 16, 0).startswith(b"filelock/"):
            return
        if time.time() - os.fstat(fd).st_mtime < RECORDLESS_GRACE:
            return
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _unusable(run_dir: Path, path: Path, exc: OSError) -> RunError:
    if exc.errno == errno.ELOOP:
        check_own(path, "file")  # raises, naming the link
    hint = WRITE_HINTS.get(exc.errno or 0, "check the folder")
    return RunError(
        f"{run_dir}: cannot work in this run folder: {path.name} cannot be written "
        f"({exc.strerror}); {hint}"
    )


def create_run_dir(out: Path, name: str, explicit: bool) -> Path:
    """Make a new run folder; an explicit name that exists is refused, others get a suffix.

    mkdir is atomic, so runs started at the same second into one folder never share a folder.
    """
    # Here rather than at the top: config.schema loads pydantic, which `mlp runs` (a reader
    # of run folders) would otherwise pay for at start-up.
    from ..config.schema import NAME_MAX, STAMP_BYTES, check_run_name

    if explicit:
        check_run_name(name, "--name")
    else:  # a config's name (with "-sweep" for a sweep), which the stamp below follows
        check_run_name(name, "name", limit=NAME_MAX - STAMP_BYTES)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if explicit:
        path = out / name
        try:
            path.mkdir()
        except FileExistsError:
            raise _taken(path) from None
        except OSError as exc:
            raise RunError(f"{path}: cannot create the run folder ({exc.strerror})") from None
        return path
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 10_000):
        path = out / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"{path}: cannot create the run folder ({exc.strerror})") from None
    raise RunError(f"{out}: too many runs named {name}-{stamp}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run or sweep folder's own file (never read through a link)."""
    try:
        with open_own(Path(path)) as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise RunError(f"{path}: damaged (not valid JSON)") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: damaged (not a JSON object)")
    return data


def read_rows(path: Path) -> list[dict[str, Any]]:
    """diagnostics.csv's rows with typed values; [] when there is no file."""
    try:
        with open_own(path) as handle:
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror})") from None
    return diagnostics_rows(text)


def diagnostics_rows(text: str) -> list[dict[str, Any]]:
    """diagnostics.csv's text as rows of epoch, layer, name and value, typed. Malformed rows (a
    file cut short by a kill) are skipped."""
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        try:
            rows.append(
                {
                    "epoch": int(row["epoch"]),
                    "layer": int(row["layer"]),
                    "name": str(row["name"]),
                    "value": float(row["value"]),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue
    return rows


class MetricsCsv(Callback):
    """metrics.csv, one row per epoch; on resume, rewritten from the checkpoint's history."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer: Trainer) -> None:
        # Rows after the checkpoint's epoch (written before an interrupt) are dropped.
        buffer = io.StringIO()
        if trainer.history:
            writer = csv.DictWriter(buffer, fieldnames=list(trainer.history[0]))
            writer.writeheader()
            writer.writerows(trainer.history)
        write_text_atomic(self.path, buffer.getvalue())

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(record))
        if self.path.stat().st_size == 0:
            writer.writeheader()
        writer.writerow(record)
        append_line(self.path, buffer.getvalue())

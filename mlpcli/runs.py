"""Run folders: unique names, metrics.csv, summary.json."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import append_line, write_text_atomic
from .callbacks import Callback
from .errors import RunError

if TYPE_CHECKING:
    from .trainer import Trainer


def _taken(path: Path) -> RunError:
    return RunError(
        f"--name {path.name}: {path} already exists; choose another name, or continue it with "
        f"--resume {path}"
    )


def check_name_free(out: Path, name: str) -> None:
    """Refuse an explicit name early, before any data is loaded (create_run_dir checks again)."""
    if (Path(out) / name).exists():
        raise _taken(Path(out) / name)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold run_dir/.lock for as long as this process works in the folder.

    A second process (say, a second --resume of the same run) is refused while the first one
    lives; a lock left by a process that died is taken over.
    """
    path = Path(run_dir) / ".lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None:
                raise RunError(
                    f"{run_dir}: in use by process {owner}; wait for it to finish or stop it"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
    else:
        raise RunError(f"{run_dir}: cannot take the folder's lock ({path})")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int | None:
    """The live process that holds a lock file, or None when it is gone."""
    try:
        pid = int(path.read_text() or "0")
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, FileNotFoundError):
        return None
    except PermissionError:
        return pid  # alive, but another user's
    return pid if pid != os.getpid() else None


def create_run_dir(out: Path, name: str, explicit: bool) -> Path:
    """Make a new run folder; an explicit name that exists is refused, others get a suffix.

    mkdir is atomic, so runs started at the same second into one folder never share a folder.
    """
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
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{path}: damaged (not valid JSON)") from None


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

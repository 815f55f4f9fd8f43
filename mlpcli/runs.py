"""Run folders: unique names, metrics.csv, summary.json."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .errors import RunError
from .trainer import Callback, Trainer


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
            raise RunError(
                f"--name {name}: {path} already exists; choose another name, or continue it "
                f"with --resume {path}"
            ) from None
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
        self.path.write_text("")
        for record in trainer.history:
            self._append(record)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self._append(record)

    def _append(self, record: dict[str, float]) -> None:
        new = self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(record))
            if new:
                writer.writeheader()
            writer.writerow(record)

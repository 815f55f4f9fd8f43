"""A run folder's files as a page needs them, read without torch or pandas.

Each file is read through `open_own` (never through a link) after the folder's layout is
checked, and only up to a size no real run reaches. What is missing, too large or damaged
becomes a note in words, never an exception: the page of an older run, a copied one or one
stopped half-way shows what is there and says what is not.
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config.bounded_yaml import safe_load
from ..errors import MlpError
from ..runs.atomic import open_own
from ..runs.folder import (
    CONFIG_FILE,
    MODEL_FILE,
    RUN_LAYOUT,
    SUMMARY_FILE,
    check_run_folder,
    diagnostics_rows,
)
from .markup import PNG_SIGNATURE

METRICS_FILE = "metrics.csv"
DIAGNOSTICS_FILE = "diagnostics.csv"
INSPECT_FILE = "inspect.json"
PLOTS = "plots"
# Bytes read at most per kind of file; a real run's are far smaller.
PNG_CAP = 20 << 20
CSV_CAP = 50 << 20
TEXT_CAP = 10 << 20  # JSON and YAML
# A model file's safetensors header (its metadata) is a few kilobytes, a few megabytes with
# thousands of categories; mlp eval refuses one above 16 MiB as well.
MODEL_HEADER_CAP = 16 << 20


@dataclass
class RunFiles:
    """What a run folder holds, as read; `notes` says what was missing or damaged."""

    path: Path  # the run folder
    name: str  # its folder name
    config_text: str | None  # config.yaml verbatim
    config: dict[str, Any] | None  # config.yaml parsed (plain YAML, not validated: older runs)
    summary: dict[str, Any]  # summary.json ({} when missing or damaged, with a note)
    metrics: list[dict[str, str]]  # metrics.csv rows as read
    diagnostics: list[dict[str, Any]]  # diagnostics.csv rows: epoch, layer, name, value (typed)
    inspect: dict[str, Any] | None  # inspect.json
    figures: dict[str, bytes]  # "plots/loss.png" -> PNG bytes, every PNG the run has
    notes: list[str]  # what was missing or damaged, in words
    # The model file's metadata (config, preprocessor: features, targets, labels), read from its
    # header alone; None without a model file.
    model: dict[str, Any] | None = None
    read: list[str] = field(default_factory=list)  # the files read, for the page's footer


def read_run(run_dir: Path) -> RunFiles:
    """Every file of a run folder a page shows. RunError (exit 2) only for a link planted in the
    folder or an entry of the wrong kind; anything else missing or damaged is a note."""
    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    reader = Reader(run_dir)
    config_text = reader.text(CONFIG_FILE, TEXT_CAP)
    config = None
    if config_text is not None:
        try:
            parsed = safe_load(config_text)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, dict):
            config = parsed
        else:
            reader.notes.append(f"{CONFIG_FILE}: damaged (not a YAML mapping)")
    summary = reader.json(SUMMARY_FILE) or {}
    metrics = _csv_rows(reader.text(METRICS_FILE, CSV_CAP))
    diagnostics_text = reader.text(DIAGNOSTICS_FILE, CSV_CAP, missing_note=False)
    diagnostics = diagnostics_rows(diagnostics_text) if diagnostics_text is not None else []
    inspect = reader.json(INSPECT_FILE, missing_note=False)
    return RunFiles(
        path=run_dir,
        name=run_dir.resolve().name,
        config_text=config_text,
        config=config,
        summary=summary,
        metrics=metrics,
        diagnostics=diagnostics,
        inspect=inspect,
        figures=reader.figures(RUN_LAYOUT),
        notes=reader.notes,
        model=_model_metadata(reader),
        read=reader.read,
    )


def metric_series(rows: list[dict[str, str]], column: str) -> list[tuple[float, float]]:
    """(epoch, value) pairs of one metrics.csv column; rows whose epoch or value is not a
    finite number are skipped."""
    series = []
    for row in rows:
        try:
            epoch, value = float(row["epoch"]), float(row[column])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(epoch) and math.isfinite(value):
            series.append((epoch, value))
    return series


def as_dict(value: object) -> dict[str, Any]:
    """A JSON value that should be an object, or {} for anything else."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """A JSON value that should be a list, or [] for anything else."""
    return value if isinstance(value, list) else []


def listed(value: object) -> str:
    """A list as comma-separated words; anything else as its text."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class Reader:
    """Reads a run's or a sweep's own files with a cap each, keeping notes (in words, each
    naming the file once, relative to the folder) and the names read."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.notes: list[str] = []
        self.read: list[str] = []

    def bytes(self, name: str, cap: int, missing_note: bool = True) -> bytes | None:
        path = self.run_dir / name
        try:
            with open_own(path) as handle:
                data = handle.read(cap + 1)
        except MlpError:  # a link, or not a regular file: open_own refuses it by name
            kind = "a symbolic link" if path.is_symlink() else "not a regular file"
            self.notes.append(f"{name}: {kind}; not read (only the folder's own files are)")
            return None
        except FileNotFoundError:
            if missing_note:
                self.notes.append(f"{name}: missing")
            return None
        except IsADirectoryError:
            self.notes.append(f"{name}: a folder, not a file")
            return None
        except OSError as exc:
            self.notes.append(f"{name}: cannot be read ({exc.strerror})")
            return None
        if len(data) > cap:
            self.notes.append(f"{name}: larger than {cap >> 20} MiB; not shown")
            return None
        self.read.append(name)
        return data

    def text(self, name: str, cap: int, missing_note: bool = True) -> str | None:
        data = self.bytes(name, cap, missing_note)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.notes.append(f"{name}: damaged (not UTF-8 text)")
            return None

    def json(self, name: str, missing_note: bool = True) -> dict[str, Any] | None:
        text = self.text(name, TEXT_CAP, missing_note)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            data = None
        if not isinstance(data, dict):
            self.notes.append(f"{name}: damaged (not a JSON object)")
            return None
        return data

    def figures(self, layout: Iterable[str] = ()) -> dict[str, builtins.bytes]:
        """Every PNG in plots/: the figures named in `layout` in its order, then any other
        (representations.png, curve.png, ...) by name."""
        plots = self.run_dir / PLOTS
        known = [n for n in layout if n.startswith(f"{PLOTS}/") and n.endswith(".png")]
        try:
            present = sorted(f"{PLOTS}/{p.name}" for p in plots.iterdir() if p.suffix == ".png")
        except OSError:  # no plots/ folder (it is checked to be a folder, not a link, if there)
            return {}
        figures = {}
        for name in [*[n for n in known if n in present], *[n for n in present if n not in known]]:
            data = self.bytes(name, PNG_CAP)
            if data is None:
                continue
            if not data.startswith(PNG_SIGNATURE):
                self.notes.append(f"{name}: damaged (not a PNG image)")
                continue
            figures[name] = data
        return figures


def _csv_rows(text: str | None) -> list[dict[str, str]]:
    if text is None:
        return []
    try:
        return [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]
    except csv.Error:
        return []


def _model_metadata(reader: Reader) -> dict[str, Any] | None:
    """The mlpcli metadata in model.safetensors's header (8 bytes of length, then JSON), read
    without loading a tensor: the features, targets and class labels the model was fitted on."""
    path = reader.run_dir / MODEL_FILE
    try:
        with open_own(path) as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = handle.read(size) if 0 < size <= MODEL_HEADER_CAP else b""
    except FileNotFoundError:
        return None
    except OSError as exc:
        reader.notes.append(f"{MODEL_FILE}: cannot be read ({exc.strerror})")
        return None
    try:
        metadata = json.loads(json.loads(header)["__metadata__"]["mlpcli"])
    except (ValueError, KeyError, TypeError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict):
        reader.notes.append(f"{MODEL_FILE}: its header is not one mlp train writes")
        return None
    reader.read.append(MODEL_FILE)
    return metadata

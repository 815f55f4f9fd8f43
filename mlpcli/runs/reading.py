"""A run folder's files as a page, a listing or a comparison needs them, read without torch or
pandas.

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

from ..config.registry import MAXIMISED_METRICS
from ..errors import MlpError
from .atomic import open_own
from .dumped_yaml import Scalar, flat_dumped
from .folder import (
    CONFIG_FILE,
    MODEL_FILE,
    RUN_LAYOUT,
    SUMMARY_FILE,
    check_run_folder,
    diagnostics_rows,
)

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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # the first eight bytes of every PNG file


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
    import yaml

    from ..config.bounded_yaml import safe_load

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
    metrics = csv_rows(reader.text(METRICS_FILE, CSV_CAP))
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

    def json(
        self, name: str, missing_note: bool = True, cap: int = TEXT_CAP
    ) -> dict[str, Any] | None:
        text = self.text(name, cap, missing_note)
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


def flat_settings(mapping: dict[str, Any]) -> dict[str, Scalar]:
    """A config as dotted keys (`model.hidden`) with scalar values: lists, empty mappings and
    nulls as their JSON text. TensorBoard's hparams, MLflow's params, `mlp runs` and `mlp
    compare` all flatten a config this way. At most MAX_NODES values and MAX_DEPTH levels: a
    file whose aliases expand past them raises ValueError rather than being walked."""
    from ..config.bounded_yaml import MAX_DEPTH, MAX_NODES

    flat: dict[str, Scalar] = {}
    budget = [MAX_NODES]

    def walk(prefix: str, value: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise ValueError(f"more than {MAX_NODES:,} values or {MAX_DEPTH} levels")
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner, depth + 1)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            # Every item a list holds counts too: aliases can make a short file's list expand
            # to billions of items, which its JSON text would otherwise spell out.
            count(value, depth)
            flat[prefix] = json.dumps(value, default=str)

    def count(value: Any, depth: int) -> None:
        inner = value.values() if isinstance(value, dict) else value
        for item in inner if isinstance(value, (dict, list)) else ():
            budget[0] -= 1
            if budget[0] < 0 or depth > MAX_DEPTH:
                raise ValueError(f"more than {MAX_NODES:,} values or {MAX_DEPTH} levels")
            count(item, depth + 1)

    walk("", mapping, 0)
    return flat


class _Absent:
    """A key one config lacks (an older version's run): equal to no value a config can hold,
    a literal "(absent)" string included; shown as ABSENT."""

    def __repr__(self) -> str:
        return ABSENT


ABSENT = "(absent)"  # how a missing key reads in a table
MISSING: Any = _Absent()


def differing(
    flats: list[dict[str, Scalar]], leave_out: Iterable[str] = ()
) -> dict[str, list[Scalar]]:
    """Exactly the keys whose values are not all equal, a key some configs lack included (it
    holds MISSING there), with each config's value, in the first config's key order. Values
    equal only when of one type and text (1, 1.0 and true differ), as YAML wrote them."""
    skipped = set(leave_out)
    keys = [k for k in dict.fromkeys(k for flat in flats for k in flat) if k not in skipped]
    found = {}
    for key in keys:
        values = [flat.get(key, MISSING) for flat in flats]
        if len({(type(v), repr(v)) for v in values}) > 1:
            found[key] = values
    return found


def load_settings(text: str) -> dict[str, Scalar]:
    """A run's config.yaml flattened, for a listing of many runs. The text as `Config.to_yaml()`
    writes it is read without a YAML library (dumped_yaml: PyYAML's import and nodes would
    double `mlp runs`' time); any other is parsed by libyaml, whose bounds still hold: the
    caller caps the text's size, libyaml parses without recursion, a nesting deeper than
    Python's stack is a RecursionError here, and aliases are shared objects until flat_settings
    walks them, counting every value it visits. A repeated key keeps its last value, as for a
    listing it may. ValueError names what is wrong."""
    flat = flat_dumped(text)
    if flat is not None:
        return flat
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        parsed = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError("not valid YAML") from exc
    if not isinstance(parsed, dict):
        raise ValueError("not a YAML mapping")
    try:
        return flat_settings(parsed)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def main_metric_of(summary: dict[str, Any], columns: Iterable[str] = ()) -> str:
    """The metric a run or sweep is judged by: summary.json's `main_metric`, or, for a folder
    without one, accuracy or r2 when its columns (results.csv's, metrics.csv's) have it."""
    main = summary.get("main_metric")
    if isinstance(main, str) and main:
        return main
    present = set(columns)
    for name in ("accuracy", "r2", "loss"):
        if f"val_{name}" in present:
            return name
    return "loss"


def as_number(value: object) -> float | None:
    """A finite number from JSON or CSV text (`"0.93"`), or None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_count(value: object) -> int | None:
    """A count from JSON (epochs, parameters): a whole number a run could hold, else None (a
    damaged summary's 1e300 would print as a hundred digits)."""
    number = as_number(value)
    if number is None or not number.is_integer() or not 0 <= number < 2**53:
        return None
    return int(number)


def as_text(value: object) -> str | None:
    """A JSON value that should be text, or None for anything else (or empty text)."""
    return value if isinstance(value, str) and value else None


def rank_rows(rows: list[dict[str, str]], metric: str) -> list[dict[str, str]]:
    """A sweep's results.csv rows, best first by val_METRIC (its direction from
    MAXIMISED_METRICS): completed and pruned trials in place by their value, those without one
    after them, failed trials last."""
    sign = -1.0 if metric in MAXIMISED_METRICS else 1.0
    column = f"val_{metric}"

    def key(indexed: tuple[int, dict[str, str]]) -> tuple[int, float, int]:
        index, row = indexed
        if row.get("status") == "failed":
            return 2, 0.0, index
        value = as_number(row.get(column))
        return (1, 0.0, index) if value is None else (0, sign * value, index)

    return [row for _, row in sorted(enumerate(rows), key=key)]


def csv_rows(text: str | None) -> list[dict[str, str]]:
    """A CSV file's rows, or [] when it is damaged."""
    if text is None:
        return []
    try:
        return csv_dicts(text)
    except csv.Error:
        return []


def csv_dicts(text: str) -> list[dict[str, str]]:
    """A CSV file's rows as text (a missing cell ""); csv.Error when damaged. Any field is read
    whatever its length (a failed trial's error message may pass csv's default limit of 128
    KiB): the caller has capped the whole text already."""
    limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        return [
            {str(k): v if isinstance(v, str) else "" for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text, newline=""))
        ]
    finally:
        csv.field_size_limit(limit)


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

"""What a run's data was: the sha256 of each file it read and of each split's rows.

Stored in the model file, these let eval refuse to score a split drawn again from a file that has
changed since training, or drawn differently by another numpy or scikit-learn, and they make a
path found in a shared model file something to compare against rather than to open.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import DataConfig
from ..errors import CheckpointError, DataError
from .columns import Columns, Table
from .files import check_regular
from .preprocess import is_numeric

FILE_KEYS = ("path", "val_path", "test_path")
CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """The sha256 of a regular file's bytes, read in chunks."""
    check_regular(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    return digest.hexdigest()


def rows_sha256(frame: Table) -> str:
    """The sha256 of a table's rows in order: column names, then each column's values.

    Numbers (and booleans) enter as little-endian float64 and everything else as text, so the
    same rows give the same hash whichever dtype a pandas version reads them as, and whether
    they are held as a DataFrame or as Columns.
    """
    digest = hashlib.sha256()
    for name in frame.columns:
        column = frame[name]
        digest.update(f"{name}\x1f{len(column)}\x1e".encode("utf-8", "backslashreplace"))
        if isinstance(frame, Columns):
            digest.update(column.astype("<f8").tobytes())
        elif is_numeric(frame[name]):
            values = frame[name].to_numpy(dtype="<f8", na_value=np.nan)
            digest.update(values.tobytes())
        else:
            text = "\x1f".join(map(str, column))
            digest.update(text.encode("utf-8", "backslashreplace"))
        digest.update(b"\x1d")
    return digest.hexdigest()


def file_hashes(data: DataConfig) -> dict[str, str]:
    """sha256 of each data file a config names, by its key in the data section."""
    return {key: file_sha256(path) for key in FILE_KEYS if (path := getattr(data, key))}


def data_fingerprint(files: dict[str, str], splits: dict[str, Table]) -> dict[str, Any]:
    """The "data" entry of a model file's metadata."""
    return {"files": dict(files), "splits": {n: rows_sha256(f) for n, f in splits.items()}}


def check_files(data: DataConfig, recorded: dict[str, Any]) -> None:
    """Refuse data files that differ from those a run recorded, before any is parsed."""
    files = recorded.get("files", {})
    for key in FILE_KEYS:
        path = getattr(data, key)
        if path is None and key not in files:
            continue
        if path is None or key not in files:
            raise DataError(f"data.{key}: the model's config and its recorded data disagree")
        if not Path(path).exists():
            raise DataError(f"{path}: no such data file (the run was trained on it)")
        if file_sha256(path) != files[key]:
            raise DataError(f"{path} changed since the run was trained (sha256 differs)")


def check_split(frame: Table, name: str, recorded: dict[str, Any], where: str) -> None:
    """Refuse a split drawn again that holds other rows than the run's."""
    expected = recorded.get("splits", {}).get(name)
    if expected is not None and rows_sha256(frame) != expected:
        raise DataError(
            f"{where}: the {name} split drawn again holds other rows than the run's "
            f"(sha256 differs; another numpy or scikit-learn version?)"
        )


def recorded_fingerprint(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The "data" entry of a model's metadata (None for models saved before it existed)."""
    recorded = metadata.get("data")
    if recorded is None:
        return None
    if not (
        isinstance(recorded, dict)
        and all(isinstance(recorded.get(k, {}), dict) for k in ("files", "splits"))
        and all(
            isinstance(v, str) for k in ("files", "splits") for v in recorded.get(k, {}).values()
        )
    ):
        raise CheckpointError("the model's recorded data (sha256 of files and splits) is damaged")
    return recorded

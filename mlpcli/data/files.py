"""Reading the user's tables: CSV, Parquet and NPZ files, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..errors import DataError

FORMATS_BY_SUFFIX = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}


def format_of(path: str | Path) -> str:
    """The file format named by a path's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS_BY_SUFFIX:
        raise DataError(
            f"{path}: unknown file type '{suffix or '(none)'}'; "
            f"accepted: {', '.join(FORMATS_BY_SUFFIX)}"
        )
    return FORMATS_BY_SUFFIX[suffix]


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or NPZ file into a DataFrame with string column names."""
    path = Path(path)
    fmt = fmt or format_of(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a data file")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_npz(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).strip()})") from None
    except Exception as exc:  # pyarrow and numpy raise many kinds for a damaged file
        raise DataError(
            f"{path}: not a readable {fmt} file ({exc.__class__.__name__}: {exc})"
        ) from None
    if frame.empty:
        raise DataError(f"{path}: the file holds no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_npz(path: Path) -> pd.DataFrame:
    """An .npz with arrays X (rows x features) and y (rows, or rows x outputs).

    Columns become x1..xN and y (or y1..yK); pickled object arrays are refused.
    """
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        if missing:
            raise DataError(
                f"{path}: an npz file needs arrays X and y; missing {', '.join(missing)} "
                f"(found: {', '.join(archive.files) or 'none'})"
            )
        x, y = archive["X"], archive["y"]
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim not in (1, 2) or len(x) != len(y):
        raise DataError(
            f"{path}: X must be rows x features and y rows or rows x outputs with as many rows; "
            f"got X {x.shape} and y {y.shape}"
        )
    frame = pd.DataFrame(x, columns=[f"x{i + 1}" for i in range(x.shape[1])])
    if y.ndim == 1:
        frame["y"] = y
    else:
        for i in range(y.shape[1]):
            frame[f"y{i + 1}"] = y[:, i]
    return frame


def check_output(path: str | Path) -> str:
    """The format to write a new table in; refuses an existing file or a missing folder."""
    path = Path(path)
    fmt = format_of(path)
    if fmt == "npz":
        raise DataError(f"{path}: predictions are written as .csv or .parquet")
    if path.exists():
        raise DataError(f"{path}: already exists; choose another output file")
    if not path.parent.is_dir():
        raise DataError(f"{path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise DataError(f"{path}: the folder {path.parent} is not writable; choose another")
    return fmt


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or Parquet by suffix, refusing to replace an existing file."""
    path = Path(path)
    fmt = check_output(path)
    if fmt == "csv":
        atomic_write(path, lambda f: write_csv(frame, f))
    else:
        atomic_write(path, lambda f: frame.to_parquet(f, index=False))


def write_csv(frame: pd.DataFrame, handle: IO[bytes]) -> None:
    """CSV through Arrow's writer: a million rows in a fraction of a second, where pandas'
    row-by-row formatting takes several seconds; numbers keep their shortest exact form.
    """
    import pyarrow as pa
    from pyarrow import csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None  # a column of mixed Python objects, which Arrow cannot type
    if table is None or any(pa.types.is_nested(field.type) for field in table.schema):
        frame.to_csv(handle, index=False)  # pandas writes what Arrow cannot (lists, structs)
        return
    csv.write_csv(table, handle)

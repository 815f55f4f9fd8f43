"""Reading the user's tables: CSV, Parquet and NPZ files, with errors that name the file."""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ..config.messages import cut, shown
from ..errors import DataError
from ..runs.atomic import atomic_write
from .limits import CSV_FACTOR, DECODED_FACTOR, check_fits, readable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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


GLOB_CHARS = "*?["  # what makes data.path a pattern of file names rather than one name


def check_regular(path: str | Path, fmt: str | None = None) -> int:
    """A regular file's size; anything else is refused before it is opened (a FIFO would block
    and /dev/zero never ends). A Parquet folder or glob (fmt: the format it is read as) is
    pointed to data.stream, which reads them; other formats have no such reader."""
    stream = fmt == "parquet"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        glob = stream and any(ch in str(path) for ch in GLOB_CHARS)
        hint = "; set data.stream: true to read a glob of Parquet files" if glob else ""
        raise DataError(f"{path}: no such data file{hint}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        hint = (
            "set data.stream: true to read a folder of Parquet files"
            if stream
            else "accepted: a CSV, Parquet or NPZ file"
        )
        raise DataError(f"{path}: a folder, not a data file; {hint}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file; accepted: a CSV, Parquet or NPZ file")
    return info.st_size


def read_table(path: str | Path, fmt: str | None = None, remedy: str = "") -> pd.DataFrame:
    """Read a CSV, Parquet or NPZ file into a DataFrame with string column names; remedy ends
    the refusal of a file too large to read (another way to use it)."""
    import pandas as pd

    path = Path(path)
    size = check_regular(path, fmt or FORMATS_BY_SUFFIX.get(path.suffix.lower()))
    fmt = fmt or format_of(path)
    with read_errors(path, fmt):
        if fmt == "csv":
            check_fits(path, size * CSV_FACTOR, f"{readable(size)} of CSV text", remedy)
            frame = pd.read_csv(path)
        elif fmt == "parquet":
            frame = _read_parquet(path, size, remedy)
        else:
            frame = _read_npz(path)
    if frame.empty:
        raise DataError(f"{path}: the file holds no rows")
    frame.columns = stripped_names(frame.columns, path)
    return frame


def stripped_names(columns: Iterable[Any], path: str | Path) -> list[str]:
    """Column names as text without surrounding spaces; two names that become one are refused,
    as a column picked by that name would be two columns."""
    names = [str(c).strip() for c in columns]
    seen: dict[str, str] = {}
    for raw, name in zip(map(str, columns), names):
        if name in seen:
            raise DataError(
                f"{path}: columns {shown(seen[name])} and {shown(raw)} are both {shown(name)} "
                f"once spaces are stripped; rename one"
            )
        seen[name] = raw
    return names


@contextmanager
def read_errors(path: str | Path, fmt: str) -> Iterator[None]:
    """What reading a file of format fmt raises, as a DataError naming the file: the whole
    file (read_table) and its chunks (data.stream.chunks) word them alike."""
    import pandas as pd

    try:
        yield
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: too large to read in the memory available") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({cut(str(exc).strip())})") from None
    except Exception as exc:  # pyarrow and numpy raise many kinds for a damaged file
        raise DataError(
            f"{path}: not a readable {fmt} file ({exc.__class__.__name__}: {cut(str(exc))})"
        ) from None


def _read_parquet(path: Path, size: int, remedy: str = "") -> pd.DataFrame:
    """A Parquet file; decimals become floats, and nested columns (list, struct, map) are noted
    in frame.attrs["nested"] with their types, for the checks of the columns in use."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    how = f"{readable(decoded)} of decoded columns"
    check_fits(path, max(decoded, size) * DECODED_FACTOR, how, remedy)
    frame = _read_parquet_numbers(path)
    if frame is not None:
        return frame
    table = pq.read_table(path)
    fields = [f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema]
    frame = table.cast(pa.schema(fields, table.schema.metadata)).to_pandas()
    nested = {str(f.name): str(f.type) for f in table.schema if pa.types.is_nested(f.type)}
    if nested:
        frame.attrs["nested"] = nested
    return frame


def _read_parquet_numbers(path: Path) -> pd.DataFrame | None:
    """A Parquet file of numbers and booleans without missing values, read a row group at a time
    into one preallocated numpy array per column: about one copy of the table at the peak, where
    read_table().to_pandas() holds the file's pages, Arrow's table and the frame at once. The
    same frame as that path gives (dtypes, values, a RangeIndex); None for any other file, which
    takes that path.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False) as parquet:
        schema = parquet.schema_arrow
        if not _plain_numbers(schema):
            return None
        rows = parquet.metadata.num_rows
        columns = {f.name: np.empty(rows, dtype=f.type.to_pandas_dtype()) for f in schema}
        at = 0
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group, use_threads=False)
            for name, values in columns.items():
                chunked = table.column(name)
                if chunked.null_count:
                    return None  # missing values: pandas' types for them (NaN, None) decide
                values[at : at + table.num_rows] = chunked.to_numpy()
            at += table.num_rows
            del table
    frame = pd.DataFrame(columns, copy=False)
    pa.default_memory_pool().release_unused()  # the row groups' buffers, back to the system
    return frame


def _plain_numbers(schema: pa.Schema) -> bool:
    """Every column a bool, an integer or a float32/64, named once, and no pandas metadata that
    would make to_pandas() give something else (an index, extension dtypes, other names)."""
    import pyarrow as pa

    def plain(kind: pa.DataType) -> bool:
        return (
            pa.types.is_boolean(kind)
            or pa.types.is_integer(kind)
            or pa.types.is_float32(kind)
            or pa.types.is_float64(kind)
        )

    names = schema.names
    if not names or len(set(names)) != len(names) or not all(plain(f.type) for f in schema):
        return False
    stored = (schema.metadata or {}).get(b"pandas")
    if stored is None:
        return True
    try:
        pandas = json.loads(stored)
        index, levels = pandas["index_columns"], pandas["column_indexes"]
        columns = pandas["columns"]
    except (ValueError, KeyError, TypeError):
        return False
    default_index = {"kind": "range", "start": 0, "step": 1, "name": None}
    if any(not isinstance(i, dict) or default_index.items() - i.items() for i in index):
        return False
    if len(levels) > 1 or (levels and levels[0].get("name") is not None):
        return False
    dtypes = {f.name: str(np.dtype(f.type.to_pandas_dtype())) for f in schema}
    kept = {
        c.get("field_name"): c.get("numpy_type")
        for c in columns
        if isinstance(c, dict) and str(c.get("name")) == c.get("field_name")
    }
    return kept == dtypes


# The kinds of array an npz may hold: numbers in X, numbers or text labels in y.
NPZ_KINDS = {"X": "biuf", "y": "biufUS"}


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype, read from its .npy header without reading the array."""
    from numpy.lib import format as npy

    headers = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".npy"):
                continue
            with archive.open(name) as member:
                version = npy.read_magic(member)
                if version not in ((1, 0), (2, 0)):
                    raise DataError(
                        f"{path}: array {cut(name[:-4])} is in .npy format {version}; "
                        f"accepted: 1.0 and 2.0"
                    )
                read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, _, dtype = read(member)
            headers[name[:-4]] = (shape, dtype)
    return headers


def _check_npz(path: Path) -> None:
    """Arrays X and y of plain numbers (or text labels in y), small enough to read."""
    headers = _npz_headers(path)
    missing = [k for k in NPZ_KINDS if k not in headers]
    if missing:
        raise DataError(
            f"{path}: an npz file needs arrays X and y; missing {', '.join(missing)} "
            f"(found: {cut(', '.join(headers)) or 'none'})"
        )
    for key, kinds in NPZ_KINDS.items():
        dtype = headers[key][1]
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            raise DataError(
                f"{path}: array {key} has dtype {cut(str(dtype))}; accepted: booleans, integers "
                f"or floats{' (or text labels)' if key == 'y' else ''}"
            )
    total = sum(math.prod(headers[k][0]) * headers[k][1].itemsize for k in NPZ_KINDS)
    check_fits(path, total * DECODED_FACTOR, f"arrays X and y of {readable(total)}")


def _read_npz(path: Path) -> pd.DataFrame:
    """An .npz with arrays X (rows x features) and y (rows, or rows x outputs).

    Columns become x1..xN and y (or y1..yK); pickled object arrays are refused.
    """
    _check_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        x, y = archive["X"], archive["y"]
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim not in (1, 2) or len(x) != len(y):
        raise DataError(
            f"{path}: X must be rows x features and y rows or rows x outputs with as many rows; "
            f"got X {x.shape} and y {y.shape}"
        )
    import pandas as pd

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
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt not in ("csv", "parquet"):
        raise DataError(
            f"{path}: cannot write a '{path.suffix or '(none)'}' file; "
            f"predictions are written as .csv or .parquet (.pq)"
        )
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


def write_csv(frame: pd.DataFrame, handle: IO[bytes], header: bool = True) -> None:
    """CSV through Arrow's writer: a million rows in a fraction of a second, where pandas'
    row-by-row formatting takes several seconds; numbers keep their shortest exact form.
    header=False writes the rows alone (the chunks after the first of one file).
    """
    import pyarrow as pa
    from pyarrow import csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None  # a column of mixed Python objects, which Arrow cannot type
    if table is None or any(pa.types.is_nested(field.type) for field in table.schema):
        # pandas writes what Arrow cannot (lists, structs)
        frame.to_csv(handle, index=False, header=header)
        return
    csv.write_csv(table, handle, write_options=csv.WriteOptions(include_header=header))

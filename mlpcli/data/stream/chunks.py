"""Tables read and written a chunk of rows at a time, for eval and predict of files larger than
memory: Parquet files, folders and globs by row group, CSV by blocks, each chunk parsed as
data.files.read_table parses the whole file; predictions appended to one CSV or Parquet output
that appears, complete, only at the end."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ...config.messages import cut
from ...errors import DataError
from ...runs.atomic import atomic_write
from .. import limits
from ..files import (
    GLOB_CHARS,
    check_regular,
    format_of,
    read_errors,
    read_table,
    stripped_names,
    write_csv,
)
from ..limits import CSV_FACTOR, DECODED_FACTOR
from .footer import discover
from .rows import CHUNK_ROWS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def chunk_format(path: str | Path) -> str:
    """The format of a path to read in chunks: a folder or a glob is Parquet files."""
    text = str(path)
    if Path(text).is_dir() or (any(ch in text for ch in GLOB_CHARS) and not Path(text).exists()):
        return "parquet"
    check_regular(path)  # a FIFO or a device is refused before its name is judged
    return format_of(path)


def fits_whole(path: str | Path) -> bool:
    """Whether read_table would read this file whole within the memory left (the estimate
    limits.check_fits judges it by): eval and predict then read it whole, as they always have,
    and in chunks only a file that does not fit, or a folder or glob of Parquet files."""
    path = Path(path)
    if not path.is_file():  # a folder, a glob, or what the readers refuse by name
        return False
    fmt, size = format_of(path), path.stat().st_size
    if fmt == "npz":
        return True  # its arrays are loaded at once either way
    if fmt == "csv":
        estimate = size * CSV_FACTOR
    else:
        import pyarrow.parquet as pq

        with read_errors(path, fmt):
            meta = pq.read_metadata(path)
        decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        estimate = max(decoded, size) * DECODED_FACTOR
    available = limits.available_memory()
    return available is None or estimate <= int(available[0] * limits.MARGIN)


def read_chunks(
    path: str | Path, kind: str | None = None, rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """A table's rows as DataFrames of at most `rows` rows, in file order, memory bounded by a
    chunk: a Parquet file, folder or glob (kind "parquet"), a CSV file ("csv"), or an NPZ file
    (read whole: its arrays are loaded at once). Each chunk holds what read_table would give for
    those rows; a file without rows is refused as read_table refuses it. `rows` defaults to
    CHUNK_ROWS."""
    kind = kind or chunk_format(path)
    rows = rows or CHUNK_ROWS
    if kind == "parquet":
        found = _parquet_chunks(path, rows)
    elif kind == "csv":
        found = _csv_chunks(Path(path), rows)
    else:
        frame = read_table(path, kind)
        found = (frame.iloc[i : i + rows] for i in range(0, len(frame), rows))
    empty = True
    for chunk in found:
        if len(chunk):
            empty = False
            yield chunk
    if empty:
        raise DataError(f"{path}: the file holds no rows")


def _csv_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """pandas' read_csv with read_table's options, by blocks of rows; errors worded as there."""
    import pandas as pd

    check_regular(path)
    with read_errors(path, "csv"), pd.read_csv(path, chunksize=rows) as reader:
        for chunk in reader:
            chunk.columns = stripped_names(chunk.columns, path)
            yield chunk.reset_index(drop=True)


def _parquet_chunks(path: str | Path, rows: int) -> Iterator[pd.DataFrame]:
    """Every Parquet file a path names, in sorted order, a batch of rows at a time."""
    files, names = discover(path)
    for file, name in zip(files, names):
        name = str(file) if file == Path(path) else name  # a file given itself: its path
        with read_errors(name, "parquet"):
            yield from _parquet_file_chunks(file, rows)


def _parquet_file_chunks(file: Path, rows: int) -> Iterator[pd.DataFrame]:
    """One file's batches as data.files reads the whole file: decimals as floats, nested
    columns noted in attrs["nested"], pandas' stored metadata applied, and integer or boolean
    columns that hold a null anywhere in the file as floats or objects in every chunk (the whole
    file's types, whatever nulls a chunk happens to hold)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(file, pre_buffer=False) as parquet:
        schema = parquet.schema_arrow
        fields = [f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in schema]
        target = pa.schema(fields, schema.metadata)
        nested = {str(f.name): str(f.type) for f in schema if pa.types.is_nested(f.type)}
        nulls = _columns_with_nulls(parquet)
        for batch in parquet.iter_batches(batch_size=rows, use_threads=False):
            table = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
            frame = table.cast(target).to_pandas()
            for name in nulls:
                if name in frame and frame[name].dtype.kind in "iu":
                    frame[name] = frame[name].astype("float64")
                elif name in frame and frame[name].dtype.kind == "b":
                    frame[name] = frame[name].astype(object)
            if nested:
                frame.attrs["nested"] = nested
            frame.columns = stripped_names(frame.columns, file)
            yield frame
    pa.default_memory_pool().release_unused()


def _columns_with_nulls(parquet: Any) -> set[str]:
    """Top-level columns with a null in some row group: by the footer's statistics, and for a
    column chunk written without them, by reading that column."""
    meta = parquet.metadata
    names = set(parquet.schema_arrow.names)
    found, unknown = set(), set()
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            path = column.path_in_schema
            name = path if path in names else path.split(".")[0]
            stats = column.statistics
            if stats is None or not stats.has_null_count:
                unknown.add(name)
            elif stats.null_count > 0:
                found.add(name)
    unknown -= found
    for g in range(meta.num_row_groups) if unknown else ():
        table = parquet.read_row_group(g, columns=sorted(unknown), use_threads=False)
        found |= {n for n in unknown if table.column(n).null_count}
    return found


def write_chunks(chunks: Iterable[pd.DataFrame], path: str | Path, fmt: str) -> int:
    """Append every chunk to one CSV or Parquet file (fmt), written to a temporary file and
    renamed at the end (atomic_write), so that a failure part-way leaves no file; the rows
    written. The bytes equal those write_table writes for all the rows at once, for a CSV, and
    for a Parquet file of at most one chunk (more are one row group each)."""
    written = [0]

    def write(handle: IO[bytes]) -> None:
        writer = CsvChunks(handle) if fmt == "csv" else ParquetChunks(handle)
        with writer:
            for chunk in chunks:
                writer.write(chunk)
                written[0] += len(chunk)

    atomic_write(Path(path), write)
    return written[0]


class CsvChunks:
    """CSV chunk by chunk, as data.files.write_csv writes a whole table: the header once."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.header = True

    def __enter__(self) -> CsvChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, frame: pd.DataFrame) -> None:
        write_csv(frame, self.handle, header=self.header)
        self.header = False


class ParquetChunks:
    """A Parquet file chunk by chunk, one row group each, with the schema and metadata
    DataFrame.to_parquet(index=False) writes, taken from the first chunk."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.writer: Any = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def __enter__(self) -> ParquetChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            # A CSV is typed block by block: a later block may hold what the first one's
            # types cannot (text in a column of numbers).
            raise DataError(
                f"the rows after the first {self.rows} do not fit the Parquet columns their "
                f"first rows set ({cut(str(exc))}); write a .csv file instead"
            ) from None
        self.rows += len(frame)
        if frame.attrs:  # as pandas' to_parquet stores them
            metadata = {**(table.schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(frame.attrs)}
            table = table.replace_schema_metadata(metadata)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.handle, table.schema, compression="snappy")
        self.writer.write_table(table)

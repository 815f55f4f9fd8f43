"""A streamed Parquet source: its files, their row groups and schema, read from the footers only.

Rows are read one row group at a time (`StreamSource.read`); nothing here holds a whole table.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...config.messages import cut
from ...errors import DataError
from ..columns import Columns, Table
from ..files import GLOB_CHARS, check_regular, stripped_names
from ..preprocess import check_columns as check_named
from ..preprocess import check_scalars

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = (".parquet", ".pq")
NUMPY_TYPES = {
    **{f"int{b}": f"int{b}" for b in (8, 16, 32, 64)},
    **{f"uint{b}": f"uint{b}" for b in (8, 16, 32, 64)},
    "halffloat": "float16",
    "float": "float32",
    "double": "float64",
}


@dataclass(frozen=True)
class RowGroup:
    file: int  # index into StreamSource.files
    index: int  # row-group index within that file
    first: int  # 0-based row number of its first row within the file
    rows: int
    bytes: int  # decoded size from the footer (total_byte_size)


def file_key(name: str) -> int:
    """A file's hash key: the first 8 bytes of blake2b of its relative path, as an uint64."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8")).digest()[:8], "little")


def _glob_root(pattern: str) -> Path:
    """The folder a glob's matches are named relative to: its parts before the first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(ch in part for ch in GLOB_CHARS):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def discover(path: str | Path) -> tuple[list[Path], list[str]]:
    """The Parquet files a path names, sorted by relative POSIX path, and those relative paths.

    A folder means every *.parquet / *.pq file below it, a glob its matches, a file itself.
    Links and non-regular files found below a folder or by a glob are refused: the data is what
    the folder holds, not what a link planted in it points to.
    """
    text = str(path)
    if any(ch in text for ch in GLOB_CHARS) and not Path(text).exists():
        root = _glob_root(text)
        found = [Path(p) for p in glob.glob(text, recursive=True)]
        found = [p for p in found if not p.is_dir()]
    elif Path(text).is_dir():
        root = Path(text)
        found = [p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES]
    else:
        check_regular(text)
        return [Path(text)], [Path(text).name]
    named = sorted((p.relative_to(root).as_posix(), p) for p in found)
    if not named:
        raise DataError(f"{text}: no Parquet files (*.parquet, *.pq) found")
    for name, file in named:
        info = os.lstat(file)
        if stat.S_ISLNK(info.st_mode):
            raise DataError(f"{text}: {name} is a link; accepted: regular Parquet files only")
        check_regular(file)
    return [p for _, p in named], [n for n, _ in named]


def _footer(file: Path, name: str) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(file)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise DataError(
            f"{name}: not a readable parquet file ({exc.__class__.__name__}: {cut(str(exc))})"
        ) from None


@dataclass
class StreamSource:
    path: str  # as given (data.path, resolved)
    files: list[Path]  # sorted
    names: list[str]  # relative POSIX paths (what messages and the fingerprint show)
    keys: list[int]  # per file: file_key(name)
    groups: list[RowGroup]  # every row group of every file, in file then group order
    columns: list[str]  # column names of the first file
    rows: int
    _footers: list[Any] = field(default_factory=list, repr=False)
    _fingerprint: dict[str, Any] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> StreamSource:
        """Find the files and read their footers (no column data)."""
        files, names = discover(path)
        footers = [_footer(f, n) for f, n in zip(files, names)]
        groups = []
        for i, meta in enumerate(footers):
            first = 0
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                groups.append(RowGroup(i, g, first, group.num_rows, group.total_byte_size))
                first += group.num_rows
        rows = sum(meta.num_rows for meta in footers)
        if rows == 0:
            raise DataError(f"{path}: the Parquet files hold no rows")
        columns = stripped_names(_schema(footers[0]).names, path)
        keys = [file_key(n) for n in names]
        return cls(str(path), files, names, keys, groups, columns, rows, footers)

    def schema(self, file: int) -> pa.Schema:
        """A file's Arrow schema, with column names stripped as the in-memory reader does."""
        import pyarrow as pa

        schema = _schema(self._footers[file])
        return pa.schema([f.with_name(str(f.name).strip()) for f in schema])

    def check_columns(self, used: list[str]) -> None:
        """Every file holds the used columns, with the first file's types, none of them nested."""
        import pyarrow as pa

        first = self.schema(0)
        check_named(
            Columns({c: np.empty(0) for c in first.names}), used, self.names[0], "feature or target"
        )
        nested = {
            c: str(first.field(c).type) for c in used if pa.types.is_nested(first.field(c).type)
        }
        if nested:
            import pandas as pd

            frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in used})
            frame.attrs["nested"] = nested
            check_scalars(frame, used, self.names[0])
        for i in range(1, len(self.files)):
            schema = self.schema(i)
            check_named(
                Columns({c: np.empty(0) for c in schema.names}),
                used,
                self.names[i],
                "feature or target",
            )
            for col in used:
                here, there = schema.field(col).type, first.field(col).type
                if here != there:
                    raise DataError(
                        f"{self.names[i]}: column '{col}' is {here} here but {there} "
                        f"in {self.names[0]}"
                    )

    def read(self, group: RowGroup, used: list[str]) -> Table:
        """A row group's used columns: Columns when all are numbers or booleans without nulls,
        else a DataFrame as data.files reads Parquet (decimals as floats, nested types noted)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        file = self.files[group.file]
        schema = self.schema(group.file)
        raw = _schema(self._footers[group.file]).names
        original = [raw[schema.get_field_index(c)] for c in used]
        try:
            # Arrow's pool (mimalloc) keeps freed pages: handed back before each read, a pass
            # stays at the size of one row group rather than of the largest few seen.
            pa.default_memory_pool().release_unused()
            parquet = pq.ParquetFile(file, metadata=self._footers[group.file], pre_buffer=False)
            table = parquet.read_row_group(group.index, columns=original, use_threads=False)
        except Exception as exc:
            raise DataError(
                f"{self.names[group.file]}: row group {group.index} cannot be read "
                f"({exc.__class__.__name__}: {cut(str(exc))})"
            ) from None
        table = table.rename_columns(used)
        plain = all(
            (
                pa.types.is_integer(f.type)
                or pa.types.is_floating(f.type)
                or pa.types.is_boolean(f.type)
            )
            and table.column(f.name).null_count == 0
            for f in table.schema
        )
        if plain:
            return Columns({c: _numbers(table.column(c)) for c in used})
        fields = [
            f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema
        ]
        frame = table.cast(pa.schema(fields)).to_pandas()
        nested = {str(f.name): str(f.type) for f in table.schema if pa.types.is_nested(f.type)}
        if nested:
            frame.attrs["nested"] = nested
        return frame

    def fingerprint(self) -> dict[str, Any]:
        """What a run records of its data: each file's footer (sha256 of its bytes and the
        file's size) and the row count; hashing every byte of a large folder at each start
        would cost a read of it all. Computed once per source (a run records it twice)."""
        if self._fingerprint is None:
            files = {name: _footer_sha256(file) for file, name in zip(self.files, self.names)}
            self._fingerprint = {"files": files, "rows": self.rows}
        return self._fingerprint


def _numbers(column: Any) -> np.ndarray:
    """A column of numbers or booleans without nulls as a numpy array over its Arrow buffer (no
    copy; read-only): pyarrow's own to_numpy() imports pandas, which a numeric stream never
    needs."""
    import pyarrow as pa

    array = column.combine_chunks()
    n, offset = len(array), array.offset
    if pa.types.is_boolean(array.type):
        dtype = np.dtype(bool)
    else:
        dtype = np.dtype(NUMPY_TYPES[str(array.type)])
    data = array.buffers()[1]
    if n == 0 or data is None:
        return np.empty(0, dtype=dtype)
    if dtype.kind == "b":
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset : offset + n].astype(bool)
    return np.frombuffer(data, dtype=dtype)[offset : offset + n]  # read-only, Arrow's memory


def _schema(meta: Any) -> pa.Schema:
    return meta.schema.to_arrow_schema()


def _footer_sha256(file: Path) -> str:
    """sha256 of a Parquet file's footer (its last 8 + footer-length bytes) and its size."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little") if len(tail) == 8 else 0
        handle.seek(max(size - 8 - length, 0))
        footer = handle.read(length + 8)
    digest = hashlib.sha256(footer)
    digest.update(str(size).encode())
    return digest.hexdigest()

"""A split's rows of a streamed source, read one row group at a time: raw tables for the
statistics pass and the samples, model inputs and targets for evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..columns import Columns, Table
from .footer import RowGroup, StreamSource
from .hashsplit import SPLITS, SplitRule

# Rows read, transformed, scored or written at a time: bounds the float64 scratch of a large
# row group and the memory of a chunk, whatever the row count.
CHUNK_ROWS = 65536

if TYPE_CHECKING:
    from ..preprocess import Preprocessor


def take(table: Table, rows: np.ndarray) -> Table:
    """The given rows of a table, numbered from 0 again (a DataFrame's index too)."""
    if isinstance(table, Columns):
        return table.take(rows)
    return table.take(rows).reset_index(drop=True)


def where(source: StreamSource, group: RowGroup) -> str:
    """How messages name a row group's rows: its file's relative path."""
    return source.names[group.file]


def shard(source: StreamSource, rank: int, size: int) -> list[RowGroup]:
    """This rank's row groups for a pass over all the data: every size-th, from rank."""
    return source.groups[rank::size]


def codes_of(source: StreamSource, rule: SplitRule, group: RowGroup) -> np.ndarray:
    """Each row's split code in a row group."""
    return rule.codes(source.keys[group.file], group.first, group.rows)


def split_tables(
    source: StreamSource,
    rule: SplitRule,
    split: str,
    used: list[str],
    groups: list[RowGroup] | None = None,
) -> Iterator[tuple[RowGroup, Table]]:
    """(row group, its rows in the split) of the given row groups (all by default), in order;
    row groups with none of the split's rows are not read."""
    code = SPLITS.index(split)
    for group in source.groups if groups is None else groups:
        keep = np.flatnonzero(codes_of(source, rule, group) == code)
        if len(keep):
            yield group, take(source.read(group, used), keep)


def split_chunks(
    source: StreamSource,
    prep: Preprocessor,
    rule: SplitRule,
    split: str,
    rank: int = 0,
    size: int = 1,
    rows: int = CHUNK_ROWS,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x float32, y as encode_targets gives) of a split's rows in this rank's row groups, in
    file order, in chunks of at most `rows` rows (a row group is cut, never joined)."""
    used = prep.features + prep.targets
    for group, table in split_tables(source, rule, split, used, shard(source, rank, size)):
        yield from encoded(prep, table, f"{where(source, group)} ({split} split)", rows)


def encoded(
    prep: Preprocessor, table: Table, where: str, rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x float32, y as encode_targets gives) of a table's rows, in pieces of at most `rows` rows:
    bounds the float64 scratch of transforming a large row group."""
    for start in range(0, len(table), rows):
        part = table
        if len(table) > rows:
            part = take(table, np.arange(start, min(start + rows, len(table))))
        yield prep.transform(part, where), prep.encode_targets(part, where)


def coded_chunks(
    source: StreamSource,
    prep: Preprocessor,
    rule: SplitRule,
    rank: int = 0,
    size: int = 1,
    rows: int = CHUNK_ROWS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(split codes, x float32, y) of every row of this rank's row groups, in file order, in
    chunks of at most `rows` rows: the three splits in one read, each row's code (TRAIN, VAL,
    TEST) telling its split."""
    used = prep.features + prep.targets
    for group in shard(source, rank, size):
        codes = codes_of(source, rule, group)
        table = source.read(group, used)
        pieces = encoded(prep, table, where(source, group), rows)
        for start, (x, y) in zip(range(0, len(table), rows), pieces):
            yield codes[start : start + rows], x, y

"""A seeded uniform sample of a split's rows in one pass and bounded memory (Algorithm R).

Each incoming row t (counted from 0) past the first k takes a slot j drawn uniformly from 0..t
when j < k; the draws are made a row group at a time, and where several rows of one row group
draw the same slot the last of them keeps it, as the row-by-row algorithm would. The sample is
the same for the same files, seed and row groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..columns import Columns, Table
from .footer import StreamSource
from .hashsplit import SplitRule
from .rows import split_tables

if TYPE_CHECKING:
    import pandas as pd

    from ..preprocess import Preprocessor

SAMPLE_ROWS = 100_000
STREAM_TAG = 0x5253  # keeps these draws apart from any other stream seeded from the same seed


class Reservoir:
    """Up to k rows of the named columns, a uniform sample of all rows added so far."""

    def __init__(self, columns: list[str], k: int, seed: int, rank: int = 0) -> None:
        self.columns = list(columns)
        self.k = k
        self.seen = 0
        self.slots: dict[str, np.ndarray] = {}
        self.rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, STREAM_TAG, rank]))
        )

    def add(self, table: Table) -> None:
        n = len(table)
        if n == 0 or self.k == 0:
            self.seen += n
            return
        values = {c: _values(table, c) for c in self.columns}
        if not self.slots:
            self.slots = {c: np.empty(self.k, dtype=v.dtype) for c, v in values.items()}
        t = self.seen + np.arange(n)
        fill = np.flatnonzero(t < self.k)
        rows = fill.copy()
        slots = t[fill]
        late = np.flatnonzero(t >= self.k)
        if len(late):
            drawn = self.rng.integers(0, t[late] + 1)
            hit = drawn < self.k
            # A slot drawn twice keeps the later row: unique over the reversed draws.
            chosen, first = np.unique(drawn[hit][::-1], return_index=True)
            rows = np.concatenate([rows, late[hit][::-1][first]])
            slots = np.concatenate([slots, chosen])
        for c, v in values.items():
            if self.slots[c].dtype != v.dtype:  # e.g. ints in one file, another type later
                self.slots[c] = self.slots[c].astype(np.result_type(self.slots[c], v))
            self.slots[c][slots] = v[rows]
        self.seen += n

    def held(self) -> int:
        return min(self.seen, self.k)

    def rows(self, keep: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The sampled rows (those at the given slot numbers only, when given)."""
        index = np.arange(self.held()) if keep is None else keep
        return {c: self.slots[c][index] if self.slots else np.empty(0) for c in self.columns}


def _values(table: Table, column: str) -> np.ndarray:
    if isinstance(table, Columns):
        return table[column]
    return table[column].to_numpy()


def as_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(v) for c, v in columns.items()})


def to_json(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Sampled rows as plain lists, with each column's dtype to restore."""
    return {c: [str(v.dtype), v.tolist()] for c, v in columns.items()}


def from_json(state: dict[str, Any]) -> dict[str, np.ndarray]:
    return {c: np.asarray(values, dtype=np.dtype(dtype)) for c, (dtype, values) in state.items()}


def sample_split(
    source: StreamSource,
    prep: Preprocessor,
    rule: SplitRule,
    split: str,
    k: int = SAMPLE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """A uniform sample of at most k of a split's rows, raw (features and targets as read), in
    one pass over the source holding one row group at a time."""
    used = prep.features + prep.targets
    reservoir = Reservoir(used, k, seed)
    for _, table in split_tables(source, rule, split, used):
        reservoir.add(table)
    return as_frame(reservoir.rows())

"""What the statistics pass counts in each row group, and how the counts of several ranks merge.

A Tally holds, for its rank's row groups: missing and infinite values per file and column, the
text columns' numeric share and first non-number (load_dataset's checks, on all rows), the numeric
columns' moments and the text features' value counts on train rows (Preprocessor.fit's), the
targets' distinct values on all rows (infer_task's) and on train rows (the labels), the val and
test rows' text and target values (refused up front when training never saw them), and rows per
split per row group. It travels between ranks as JSON; merging in rank order gives every rank the
same result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..columns import Columns, Table
from ..preprocess import MAX_CATEGORIES, _missing_and_infinite, _python
from .footer import RowGroup
from .hashsplit import SPLITS, TRAIN
from .moments import Moments
from .rows import CHUNK_ROWS, take

# Distinct values kept per numeric target when the task may not need them all (past this it is a
# regression whatever infer_task's limits are; messages list the first few only).
VALUE_CAP = 1000
HELD_OUT = ("val", "test")
# A held-out split's distinct text values of a feature: the first VALUE_CAP of them sorted, and
# whether there were more.
Held = tuple[list[str], bool]


def _counts(table: Table, column: str) -> Counter[Any]:
    """A column's values (as Python values) and how often each occurs."""
    if isinstance(table, Columns):
        values, counts = np.unique(table[column], return_counts=True)
    else:
        found = table[column].value_counts(dropna=True)
        found = found[found > 0]  # a categorical column lists its unused categories too
        values, counts = found.index.to_numpy(), found.to_numpy()
    return Counter(dict(zip(_python(values), (int(c) for c in counts))))


def _floats(table: Table, columns: list[str]) -> np.ndarray:
    if isinstance(table, Columns):
        return table.numbers(columns)
    return table[columns].to_numpy(dtype=np.float64, na_value=np.nan)


def _slice(table: Table, start: int, stop: int) -> Table:
    """Rows start..stop-1 of a table, as views where numpy can."""
    if isinstance(table, Columns):
        return Columns({c: v[start:stop] for c, v in table.data.items()})
    return table.iloc[start:stop]


def _smallest(held: Held, new: Any, cap: int = VALUE_CAP) -> Held:
    """Distinct text values, sorted, the first `cap` of them, and whether any were left out: a
    bounded record that still names the first values a training vocabulary lacks."""
    values = sorted(set(held[0]).union(new))
    return values[:cap], held[1] or len(values) > cap


def _pairs(counter: Counter[Any] | None) -> list[list[Any]] | None:
    return None if counter is None else [[v, n] for v, n in counter.items()]


def _counter(pairs: list[list[Any]] | None) -> Counter[Any] | None:
    return None if pairs is None else Counter({v: n for v, n in pairs})


class Tally:
    def __init__(
        self,
        features: list[str],
        targets: list[str],
        numeric: list[str],
        capped: list[str],
        groups: int,
    ) -> None:
        self.used = features + targets
        self.numeric = [c for c in self.used if c in numeric]  # moments on train rows
        self.text = [c for c in self.used if c not in numeric]
        self.vocab_columns = [c for c in features if c not in numeric]
        self.targets = targets
        self.capped = capped  # targets whose distinct values are kept up to VALUE_CAP
        self.missing: dict[int, Counter[str]] = {}
        self.infinite: dict[int, Counter[str]] = {}
        # text column -> [rows parsed as numbers, rows, first non-number (file, row, value)]
        self.parsed: dict[str, list[Any]] = {c: [0, 0, None] for c in self.text}
        self.moments = Moments.empty(len(self.numeric))
        self.vocab: dict[str, Counter[Any] | None] = {c: Counter() for c in self.vocab_columns}
        self.values: dict[str, Counter[Any] | None] = {t: Counter() for t in targets}
        self.labels: dict[str, Counter[Any] | None] = {t: Counter() for t in targets}
        self.integral = {t: True for t in targets if t in numeric}
        # The val and test rows' text values and target values, checked against what training
        # learns (categories, classes) before the first epoch, as the in-memory path checks them.
        self.held_text: dict[str, dict[str, Held]] = {
            s: {c: ([], False) for c in self.vocab_columns} for s in HELD_OUT
        }
        self.held_labels: dict[str, dict[str, Counter[Any] | None]] = {
            s: {t: Counter() for t in targets} for s in HELD_OUT
        }
        self.group_counts = np.zeros((groups, 3), dtype=np.int64)

    def add(self, position: int, group: RowGroup, table: Table, codes: np.ndarray) -> Table:
        """One row group: all its rows, and each row's split code; returns its train rows."""
        missing, infinite = _missing_and_infinite(table, self.used)
        self.missing.setdefault(group.file, Counter()).update(missing)
        self.infinite.setdefault(group.file, Counter()).update(infinite)
        for col in self.text:
            self._parse(col, group, table)
        for t in self.targets:
            if self.values[t] is not None:  # None: past VALUE_CAP; counting is then waste
                self.values[t] = self._capped(t, self.values[t], _counts(table, t))
            if t in self.integral and self.integral[t]:
                with np.errstate(invalid="ignore"):
                    self.integral[t] = bool(np.all(np.mod(_floats(table, [t]), 1) == 0))
        self.group_counts[position] = np.bincount(codes, minlength=3)[:3]
        train = take(table, np.flatnonzero(codes == TRAIN))
        for start in range(0, len(train), CHUNK_ROWS):
            part = _slice(train, start, start + CHUNK_ROWS)
            self.moments = self.moments.merge(Moments.of(_floats(part, self.numeric)))
        for col in self.vocab_columns:
            self.vocab[col] = _within(self.vocab[col], Counter(train[col].astype(str)))
        for t in self.targets:
            if self.labels[t] is not None:
                self.labels[t] = self._capped(t, self.labels[t], _counts(train, t))
        held_columns = self.vocab_columns + self.targets
        if isinstance(table, Columns):
            table = Columns({c: table[c] for c in held_columns})
        else:
            table = table[held_columns]  # only the columns checked: a take of the rest is waste
        for name in HELD_OUT:
            rows = np.flatnonzero(codes == SPLITS.index(name))
            if len(rows):
                self._add_held_out(name, take(table, rows))
        return train

    def _add_held_out(self, name: str, rows: Table) -> None:
        """A row group's rows of the val or test split: their text values and target values."""
        for col in self.vocab_columns:
            assert not isinstance(rows, Columns)  # text columns come as DataFrames
            held = self.held_text[name]
            held[col] = _smallest(held[col], rows[col].astype(str).unique())
        labels = self.held_labels[name]
        for t in self.targets:
            if labels[t] is not None:  # None: past VALUE_CAP, a regression target
                labels[t] = self._capped(t, labels[t], _counts(rows, t))

    def _parse(self, col: str, group: RowGroup, table: Table) -> None:
        """_check_text_column's counts: rows that parse as numbers, and the first that does not."""
        import pandas as pd

        assert not isinstance(table, Columns)
        series = table[col]
        parsed = pd.to_numeric(series, errors="coerce")
        tally = self.parsed[col]
        tally[0] += int(parsed.notna().sum())
        tally[1] += len(series)
        bad = (parsed.isna() & series.notna()).to_numpy().nonzero()[0]
        if len(bad) and tally[2] is None:
            tally[2] = [group.file, group.first + int(bad[0]), _python([series.iloc[bad[0]]])[0]]

    def _capped(self, t: str, held: Counter[Any] | None, new: Counter[Any]) -> Counter[Any] | None:
        if held is None:
            return None
        held.update(new)
        return None if t in self.capped and len(held) > VALUE_CAP else held

    def to_json(self) -> dict[str, Any]:
        return {
            "missing": {str(f): dict(c) for f, c in self.missing.items() if c},
            "infinite": {str(f): dict(c) for f, c in self.infinite.items() if c},
            "parsed": self.parsed,
            "moments": self.moments.to_json(),
            "vocab": {c: _pairs(v) for c, v in self.vocab.items()},
            "values": {t: _pairs(v) for t, v in self.values.items()},
            "labels": {t: _pairs(v) for t, v in self.labels.items()},
            "integral": self.integral,
            "held_text": self.held_text,
            "held_labels": {
                s: {t: _pairs(v) for t, v in held.items()} for s, held in self.held_labels.items()
            },
            "groups": self.group_counts.tolist(),
        }

    def merge(self, state: dict[str, Any]) -> None:
        """Add another rank's tally (its to_json()); ranks are merged in rank order."""
        for key in ("missing", "infinite"):
            mine = getattr(self, key)
            for f, counts in state[key].items():
                mine.setdefault(int(f), Counter()).update(counts)
        for col, (parsed, rows, first) in state["parsed"].items():
            tally = self.parsed[col]
            tally[0] += parsed
            tally[1] += rows
            if first is not None and (tally[2] is None or first[:2] < tally[2][:2]):
                tally[2] = first
        self.moments = self.moments.merge(Moments.from_json(state["moments"]))
        for col, pairs in state["vocab"].items():
            self.vocab[col] = _within(self.vocab[col], _counter(pairs))
        for key in ("values", "labels"):
            mine = getattr(self, key)
            for t, pairs in state[key].items():
                other = _counter(pairs)
                mine[t] = None if other is None else self._capped(t, mine[t], other)
        for t, flag in state["integral"].items():
            self.integral[t] = self.integral[t] and flag
        for name in HELD_OUT:
            for col, (values, more) in state["held_text"][name].items():
                held = _smallest(self.held_text[name][col], values)
                self.held_text[name][col] = held[0], held[1] or more
            labels = self.held_labels[name]
            for t, pairs in state["held_labels"][name].items():
                other = _counter(pairs)
                labels[t] = None if other is None else self._capped(t, labels[t], other)
        self.group_counts += np.asarray(state["groups"], dtype=np.int64)


def _within(held: Counter[Any] | None, new: Counter[Any] | None) -> Counter[Any] | None:
    """A text feature's value counts, dropped (None) once past MAX_CATEGORIES: it is refused."""
    if held is None or new is None:
        return None
    held.update(new)
    return None if len(held) > MAX_CATEGORIES else held

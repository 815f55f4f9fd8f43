"""Tables of numbers held as numpy columns: how a synthetic data set travels, without pandas.

Importing pandas costs about a sixth of importing torch, and a synthetic set needs none of what
it offers: its columns are numbers with no missing values, no text and no file to parse. So a
synthetic set goes from its generator to the model's tensors, and to the sha256 of its splits,
as Columns; the functions on that path (splitting, fitting and applying the preprocessing,
fingerprints) take either a DataFrame or Columns and give the same results for the same rows.
Anything else (task inference, plots, the rows a user gets back) converts with as_frame().
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Columns:
    """Named 1-D numeric arrays of one length, in order."""

    data: dict[str, np.ndarray]

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def take(self, rows: np.ndarray | Sequence[int]) -> Columns:
        """The given rows, in the given order (DataFrame.take's meaning)."""
        index = np.asarray(rows, dtype=np.intp)
        return Columns({name: values[index] for name, values in self.data.items()})

    def numbers(self, names: list[str]) -> np.ndarray:
        """The named columns side by side as float64 (rows x len(names)), column by column in
        memory as a DataFrame's to_numpy() lays them out: tensors made from them, and so the
        order in which a loss adds them up, are the same either way."""
        if not names:
            return np.zeros((len(self), 0))
        return np.stack([self.data[n].astype(np.float64) for n in names]).T


# What the data layer passes around: a DataFrame (files, bundled sets) or Columns (synthetic).
Table = Union["pd.DataFrame", Columns]


def as_frame(table: Table) -> pd.DataFrame:
    """A DataFrame of the same rows (pandas is imported here, when first needed)."""
    if not isinstance(table, Columns):
        return table
    import pandas as pd

    return pd.DataFrame(table.data)


def columns_of(x: np.ndarray, y: np.ndarray, target: str | list[str] = "y") -> Columns:
    """Features x1, x2, ... from the columns of x, then the target column(s) from y."""
    data = {f"x{i + 1}": x[:, i] for i in range(x.shape[1])}
    if isinstance(target, list):
        data.update({name: y[:, i] for i, name in enumerate(target)})
    else:
        data[target] = y
    return Columns(data)

"""Train / val / test from a hash of each row's position (file, row within the file) and the seed.

A row's split depends on nothing else: not on row-group boundaries, the other files, or which
process reads it, so every rank and every epoch agree without holding or exchanging rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ...config.schema import Config

TRAIN, VAL, TEST = 0, 1, 2
SPLITS = ("train", "val", "test")  # by code

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(z: np.ndarray | np.uint64) -> np.ndarray:
    """SplitMix64's finaliser over uint64 values (multiplication wraps, as in C)."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class SplitRule:
    """The split of every row: test and val are fractions of all rows (data.test_split and
    data.val_split), drawn independently per row, so the counts are binomial, not exact."""

    seed: int
    test: float
    val: float

    @classmethod
    def from_config(cls, config: Config) -> SplitRule:
        from ..sources import data_seed

        return cls(data_seed(config), config.data.test_split, config.data.val_split)

    def codes(self, key: int, first: int, n: int) -> np.ndarray:
        """int8 codes (TRAIN, VAL, TEST) of rows first .. first + n - 1 of the file keyed key."""
        rows = np.arange(first, first + n, dtype=np.uint64)
        file = splitmix64(np.uint64(key) ^ np.uint64(self.seed % 2**64))
        u = (splitmix64(rows ^ file) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        codes = np.full(n, TRAIN, dtype=np.int8)
        codes[u < self.test + self.val] = VAL
        codes[u < self.test] = TEST
        return codes

"""Mean and standard deviation of numeric columns in one pass over chunks, merged exactly.

Means are kept in the columns' own units, each with a carry (what the float64 mean rounded
away, so that chunk means near 1e6 differ by more than their last digits); sums of squared deviations in units of the largest
magnitude seen (preprocess.mean_std's guard: squares of values near 1e308 overflow, those near
1e-300 vanish). Deviations are taken in the columns' own units before scaling, so that a column
far from zero (1e6 + noise) keeps its digits; where that overflows (values near 1e308 of both
signs) they are taken in scaled units instead. Two partial results merge by Chan, Golub and
LeVeque's pairwise update, all in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FIELDS = ("n", "scale", "mean", "carry", "m2", "low", "high")


@dataclass
class Moments:
    """Per column: rows, scale (largest |value|), mean and its carry, sum of squared deviations
    in units of the scale, smallest and largest value."""

    n: np.ndarray  # int64
    scale: np.ndarray
    mean: np.ndarray
    carry: np.ndarray  # the mean is mean + carry
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, width: int) -> Moments:
        zeros = np.zeros(width)
        return cls(
            np.zeros(width, dtype=np.int64),
            zeros.copy(),
            zeros.copy(),
            zeros.copy(),
            zeros.copy(),
            np.full(width, np.inf),
            np.full(width, -np.inf),
        )

    @classmethod
    def of(cls, block: np.ndarray) -> Moments:
        """The moments of a float64 block (rows x columns)."""
        rows, width = block.shape
        if rows == 0:
            return cls.empty(width)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            scale = np.abs(block).max(axis=0)
            safe = np.where(scale > 0, scale, 1.0)
            unit = block / safe
            mean_unit = unit.mean(axis=0)
            mean = mean_unit * safe
            deviation = (block - mean) / safe
            carry_unit = deviation.mean(axis=0)
            far = ~np.isfinite(deviation).all(axis=0) & np.isfinite(scale)
            carry_unit[far] = 0.0
            deviation[:, far] = unit[:, far] - mean_unit[far]
            m2 = ((deviation - carry_unit) ** 2).sum(axis=0)
        low, high = block.min(axis=0), block.max(axis=0)
        n = np.full(width, rows, dtype=np.int64)
        return cls(n, scale, mean, carry_unit * safe, m2, low, high)

    def merge(self, other: Moments) -> Moments:
        """Both chunks' moments as one (Chan et al.), at the larger of the two scales."""
        n = self.n + other.n
        scale = np.maximum(self.scale, other.scale)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
            safe = np.where(scale > 0, scale, 1.0)
            ra, rb = self.scale / safe, other.scale / safe
            share = other.n / np.where(n > 0, n, 1).astype(np.float64)
            delta = other.mean - self.mean
            carried = other.carry - self.carry
            step = delta * share
            mean = self.mean + step
            back = mean - self.mean  # Knuth's TwoSum: what mean = self.mean + step rounded off
            rounded = (self.mean - (mean - back)) + (step - back)
            carry = self.carry + carried * share + rounded
            unit_delta = (delta + carried) / safe
            far = ~np.isfinite(delta) & np.isfinite(scale)
            unit_delta[far] = other.mean[far] / safe[far] - self.mean[far] / safe[far]
            mean[far] = (self.mean[far] / safe[far] + unit_delta[far] * share[far]) * safe[far]
            carry[far] = 0.0
            m2 = self.m2 * ra * ra + other.m2 * rb * rb + unit_delta**2 * (self.n * share)
        low, high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        return Moments(n, scale, mean, carry, m2, low, high)

    def mean_std(self) -> list[tuple[float, float]]:
        """(mean, std) per column as preprocess.mean_std gives them: ddof 0, (0, 1) for no rows
        or all zeros, std 1 for a constant column."""
        out = []
        for n, scale, mean, carry, m2 in zip(self.n, self.scale, self.mean, self.carry, self.m2):
            if n == 0 or scale == 0.0:
                out.append((0.0, 1.0))
                continue
            std = float(np.sqrt(m2 / n)) * float(scale)
            out.append((float(mean + carry), std if std > 0 else 1.0))
        return out

    def constant(self) -> list[bool]:
        """Whether each column holds one value (or none)."""
        return [bool(n == 0 or lo == hi) for n, lo, hi in zip(self.n, self.low, self.high)]

    def to_json(self) -> dict[str, Any]:
        """Plain lists (floats survive json exactly: it writes their shortest round-trip form)."""
        return {k: getattr(self, k).tolist() for k in FIELDS}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Moments:
        return cls(
            np.asarray(state["n"], dtype=np.int64),
            *(np.asarray(state[k], dtype=np.float64) for k in FIELDS[1:]),
        )

"""Train / validation / test splits: seeded fractions, stratified for classes where possible."""

from __future__ import annotations

import math

import pandas as pd


def part_size(n: int, fraction: float) -> int:
    """How many of n rows split_frame splits off: rounded up, as scikit-learn does."""
    return math.ceil(fraction * n) if fraction > 0 else 0


def split_frame(
    frame: pd.DataFrame, fraction: float, seed: int, stratify: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off `fraction` of the rows; returns (rest, part)."""
    if fraction <= 0:
        return frame, frame.iloc[:0]
    from sklearn.model_selection import train_test_split

    try:
        rest, part = train_test_split(
            frame, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError:
        # Too few rows of some class to stratify: fall back to a plain shuffle.
        rest, part = train_test_split(frame, test_size=fraction, random_state=seed)
    return rest, part

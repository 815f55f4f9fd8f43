"""Train / validation / test splits: seeded fractions, stratified for classes where possible.

The rows each split gets are the ones scikit-learn's train_test_split gives for the same seed and
fraction (StratifiedShuffleSplit, or ShuffleSplit when the classes are too small to stratify),
written out here in numpy so that splitting a table never imports scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np

from .columns import Table


def part_size(n: int, fraction: float) -> int:
    """How many of n rows split_frame splits off: rounded up, as scikit-learn does."""
    return math.ceil(fraction * n) if fraction > 0 else 0


def batch_part(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Process `rank`'s contiguous [start, stop) of a batch of `rows` rows split between `size`
    processes; as torch.tensor_split, the first rows % size processes take one row more. The
    trainer cuts every batch so, and a streamed epoch's plan counts rows by the same parts."""
    each, extra = divmod(rows, size)
    start = rank * each + min(rank, extra)
    return start, start + each + (rank < extra)


def split_frame(
    frame: Table, fraction: float, seed: int, stratify: np.ndarray | None
) -> tuple[Table, Table]:
    """Split off `fraction` of the rows (a DataFrame keeps its rows' labels); returns
    (rest, part)."""
    if fraction <= 0:
        return frame, frame.take(np.arange(0))
    rest, part = split_indices(len(frame), fraction, seed, stratify)
    return frame.take(rest), frame.take(part)


def split_indices(
    n: int, fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (rest, part) with part_size(n, fraction) rows in part, in shuffled order.

    With strata (one label per row), each label keeps its share of the rows in both parts; a
    label held by one row only, or more labels than either part has rows, falls back to a plain
    shuffle. Callers check the sizes first: a fraction outside (0, 1), or one that leaves no row
    in rest, is a ValueError.
    """
    n_part = part_size(n, fraction)
    n_rest = n - n_part
    if not 0 < fraction < 1 or n_rest < 1:
        raise ValueError(f"cannot split {fraction:g} of {n} rows and keep a row in the rest")
    if strata is not None:
        drawn = _stratified(strata, n_rest, n_part, seed)
        if drawn is not None:
            return drawn
    order = np.random.RandomState(seed).permutation(n)
    return order[n_part:n], order[:n_part]


def _stratified(
    strata: np.ndarray, n_rest: int, n_part: int, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """StratifiedShuffleSplit's first split; None where it would refuse to stratify."""
    _, labels, counts = np.unique(strata, return_inverse=True, return_counts=True)
    if counts.min() < 2 or n_rest < len(counts) or n_part < len(counts):
        return None
    # The rows of each label in order, label by label (np.unique has sorted the labels).
    by_label = np.split(np.argsort(labels, kind="stable"), np.cumsum(counts)[:-1])
    state = np.random.RandomState(seed)
    rest_counts = approximate_mode(counts, n_rest, state)
    part_counts = approximate_mode(counts - rest_counts, n_part, state)
    rest: list[np.ndarray] = []
    part: list[np.ndarray] = []
    for rows, count, r, p in zip(by_label, counts, rest_counts, part_counts):
        shuffled = rows.take(state.permutation(count), mode="clip")
        rest.append(shuffled[:r])
        part.append(shuffled[r : r + p])
    # Arrays, not lists of numpy integers (tens of bytes a row); the same values in the same
    # order, so the permutations draw the same rows.
    return state.permutation(np.concatenate(rest)), state.permutation(np.concatenate(part))


def approximate_mode(
    class_counts: np.ndarray, n_draws: int, state: np.random.RandomState
) -> np.ndarray:
    """How many of n_draws rows each class gets: its share rounded down, then one more for the
    classes with the largest remainders, ties broken at random (scikit-learn's
    _approximate_mode: the approximate mode of the multivariate hypergeometric)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[state.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)

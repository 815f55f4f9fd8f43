"""An epoch's plan: the row groups in an order drawn from (seed, epoch), each rank's share of them,
and the batches every rank takes. Counts only: nothing here reads a row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..splits import batch_part

# Constants mixed into the seeds, so that the group order and the window draws of one (seed,
# epoch) are independent streams.
ORDER_STREAM = 0x5354
WINDOW_STREAM = 0x4255


def group_order(seed: int, epoch: int, groups: int) -> np.ndarray:
    """The epoch's permutation of row-group indices, the same on every rank."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, ORDER_STREAM])))
    return rng.permutation(groups)


def assign(order: np.ndarray, train_rows: np.ndarray, size: int) -> list[list[int]]:
    """Each rank's row groups, in the epoch's order: each group goes to the rank holding the fewest
    train rows so far (ties to the lowest rank). Groups without train rows go to none."""
    shares: list[list[int]] = [[] for _ in range(size)]
    held = [0] * size
    for group in order.tolist():
        rows = int(train_rows[group])
        if rows == 0:
            continue
        rank = held.index(min(held))
        shares[rank].append(group)
        held[rank] += rows
    return shares


@dataclass(frozen=True)
class EpochPlan:
    groups: list[int]  # this rank's row groups, in the order they are read
    rows: int  # this rank's train rows in them
    sizes: list[int]  # rows of each of this rank's batches; as many batches on every rank


def plan_epoch(
    train_rows: np.ndarray, seed: int, epoch: int, batch_size: int, rank: int = 0, size: int = 1
) -> EpochPlan:
    """Rank's groups and batch sizes for the epoch.

    One process takes every train row once: batches of batch_size, and a trailing batch of one row
    joins the one before it (a batch of one row breaks batch norm and adds only noise). Several
    take min over ranks of floor(rank's rows / rank's share) steps of their share each, so that
    their all-reduces pair up; the few rows a rank holds beyond that wait for another epoch.
    """
    shares = assign(group_order(seed, epoch, len(train_rows)), train_rows, size)
    held = [int(sum(int(train_rows[g]) for g in share)) for share in shares]
    if size == 1:
        n = held[0]
        steps = n // batch_size if n % batch_size == 1 and n > 1 else -(-n // batch_size)
        sizes = [batch_size] * steps
        if steps:
            sizes[-1] = n - (steps - 1) * batch_size
    else:
        if batch_size < size:
            raise ValueError(f"a batch of {batch_size} rows cannot be shared by {size} ranks")
        bounds = [batch_part(batch_size, r, size) for r in range(size)]
        parts = [stop - start for start, stop in bounds]
        steps = min(h // p for h, p in zip(held, parts))
        sizes = [parts[rank]] * steps
    return EpochPlan(groups=shares[rank], rows=held[rank], sizes=sizes)

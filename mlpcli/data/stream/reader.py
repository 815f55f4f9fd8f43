"""Training batches from a stream: a rank's row groups read one ahead on a thread, their train rows
transformed there, mixed in the shuffle window and cut into batches on the consumer's side."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from .buffer import Batch, Piece, shuffled, spent
from .hashsplit import TRAIN
from .order import WINDOW_STREAM, EpochPlan, plan_epoch
from .rows import CHUNK_ROWS, encoded, split_tables

if TYPE_CHECKING:
    from .stats import StreamFit

# A path prefix: when set, each rank appends "epoch<TAB>file<TAB>row group" of every row group it
# reads to PREFIX.RANK, so that a test of several processes sees which process read what.
TRACE = "MLPCLI_STREAM_TRACE"


class GroupReader:
    """The train rows of row groups, in the order given, as (x, y) pieces of at most CHUNK_ROWS
    rows; the next group is read and transformed on one thread while the current one is used.
    Groups marked blank are not read: their train rows come as a count.

    The thread only reads and transforms (no random draws), and the groups come back in the order
    given, so the thread changes when work happens, never what comes out. An exception raised there is raised again,
    itself, where the group it belongs to would have been used.
    """

    def __init__(
        self,
        fit: StreamFit,
        groups: list[int],
        opened: Callable[[int, int], None],
        blank: list[bool] | None = None,
    ) -> None:
        self.fit = fit
        self.groups = groups
        self.blank = blank or [False] * len(groups)
        self.opened = opened  # told (file, row group) of every group read
        self._pool: ThreadPoolExecutor | None = None
        self._next: Future[list[Batch]] | None = None

    def _load(self, index: int) -> list[Batch]:
        fit = self.fit
        source = fit.source
        group = source.groups[index]
        self.opened(group.file, group.index)
        where = f"{source.names[group.file]}, row group {group.index}"
        used = fit.features + fit.targets
        return [
            piece
            for _, table in split_tables(source, fit.rule, "train", used, [group])
            for piece in encoded(fit.prep, table, where, CHUNK_ROWS)
        ]

    def __iter__(self) -> Iterator[Piece]:
        pool = self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlpcli-read")
        read = [g for g, blank in zip(self.groups, self.blank) if not blank]
        try:
            for group, blank in zip(self.groups, self.blank):
                if self._pool is None:
                    raise RuntimeError("the stream was closed in the middle of an epoch")
                if blank:
                    yield int(self.fit.group_counts[group, TRAIN])
                    continue
                current = self._next or pool.submit(self._load, read[0])
                read.pop(0)
                self._next = pool.submit(self._load, read[0]) if read else None
                yield from current.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stops reading ahead and waits for the thread to end."""
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class TrainStream:
    """One rank's training batches of a streamed data set, epoch by epoch.

    Row groups come in an order drawn from (seed, epoch); with several ranks each reads only its
    own groups (a greedy balance of train rows that every rank computes alike) and takes its share
    of each batch, for the same number of steps on every rank. Rows are mixed in a window of
    buffer_rows rows by a generator of its own (numpy's PCG64), never torch's.
    """

    def __init__(
        self,
        fit: StreamFit,
        seed: int,
        batch_size: int,
        buffer_rows: int,
        rank: int = 0,
        size: int = 1,
    ) -> None:
        self.fit = fit
        self.seed = seed
        self.batch_size = batch_size
        self.buffer_rows = buffer_rows
        self.rank = rank
        self._digest: str | None = None
        self.size = size
        self.rows = int(fit.group_counts[:, TRAIN].sum())
        # (file, row group) of each group the latest batches() call read: one epoch's at most
        self.reads: list[tuple[int, int]] = []
        self._readers: list[GroupReader] = []
        trace = os.environ.get(TRACE)
        self._trace = f"{trace}.{rank}" if trace else None

    def plan(self, epoch: int) -> EpochPlan:
        return plan_epoch(
            self.fit.group_counts[:, TRAIN],
            self.seed,
            epoch,
            self.batch_size,
            self.rank,
            self.size,
        )

    def steps(self, epoch: int) -> int:
        return len(self.plan(epoch).sizes)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This rank's batches start .. steps(epoch)-1 of the epoch, as (x float32, y).

        A start past 0 replays the epoch's draws from its beginning on row counts, reads only the
        row groups with rows in batches from `start` on, and leaves out the batches before it
        uncopied, so it yields exactly what the whole epoch yields from there.
        """
        plan = self.plan(epoch)
        self.reads = []
        if start >= len(plan.sizes):
            return
        blank = None
        if start:
            counts = [int(self.fit.group_counts[g, TRAIN]) for g in plan.groups]
            blank = spent(counts, plan.sizes, self.buffer_rows, self._draws(epoch), start)
        reader = GroupReader(self.fit, plan.groups, lambda f, g: self._opened(epoch, f, g), blank)
        self._readers.append(reader)
        try:
            yield from shuffled(reader, plan.sizes, self.buffer_rows, self._draws(epoch), start)
        finally:
            reader.close()
            self._readers.remove(reader)

    def _opened(self, epoch: int, file: int, group: int) -> None:
        self.reads.append((file, group))
        if self._trace:
            with open(self._trace, "a", encoding="utf-8") as handle:
                handle.write(f"{epoch}\t{file}\t{group}\n")

    def _draws(self, epoch: int) -> np.random.Generator:
        """The window's random stream for an epoch: this rank's own, from its start."""
        seeds = np.random.SeedSequence([self.seed, epoch, self.rank, WINDOW_STREAM])
        return np.random.Generator(np.random.PCG64(seeds))

    def plan_digest(self) -> str:
        """What the epochs' order depends on besides the seed: a checkpoint's batches are these
        batches only while this digest is the same. Computed once: checkpoints ask for it."""
        if self._digest is not None:
            return self._digest
        source = self.fit.source
        facts: dict[str, Any] = {
            "files": [[name, str(key)] for name, key in zip(source.names, source.keys)],
            "groups": [[g.file, g.index, g.rows] for g in source.groups],
            "train": self.fit.group_counts[:, TRAIN].tolist(),
            "buffer": self.buffer_rows,
            "batch": self.batch_size,
            "size": self.size,
        }
        self._digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
        return self._digest

    def close(self) -> None:
        """Stops every epoch's read-ahead and waits for its thread."""
        for reader in list(self._readers):
            reader.close()

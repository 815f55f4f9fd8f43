"""A stream's epochs: the row-group order, each rank's share, the shuffle window, the read-ahead
thread, and replaying an epoch from a step."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlpcli.config.schema import Config
from mlpcli.data.columns import Columns
from mlpcli.data.preprocess import Preprocessor
from mlpcli.data.splits import batch_part
from mlpcli.data.stream.buffer import shuffled
from mlpcli.data.stream.hashsplit import TRAIN
from mlpcli.data.stream.order import plan_epoch
from mlpcli.data.stream.reader import TrainStream
from mlpcli.data.stream.stats import StreamFit, fit_stream, open_stream
from mlpcli.errors import DataError


def fitted(folder: Path, task: str = "regression") -> StreamFit:
    data = {"source": "parquet", "path": str(folder), "stream": True, "target": "y"}
    config = Config.model_validate({"data": data, "task": task})
    return fit_stream(config, open_stream(config))


def group_rows(fit: StreamFit) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each row group's train rows, transformed, read without the stream: the oracle."""
    rows = []
    source = fit.source
    for group in source.groups:
        table = source.read(group, fit.features + fit.targets)
        codes = fit.rule.codes(source.keys[group.file], group.first, group.rows)
        train = table.take(np.flatnonzero(codes == TRAIN))
        rows.append((fit.prep.transform(train), fit.prep.encode_targets(train)))
    return rows


def train_rows(fit: StreamFit) -> tuple[np.ndarray, np.ndarray]:
    groups = group_rows(fit)
    return np.concatenate([x for x, _ in groups]), np.concatenate([y for _, y in groups])


def width(rows: int, rank: int, size: int) -> int:
    start, stop = batch_part(rows, rank, size)
    return stop - start


def joined(batches: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of x and y side by side, sorted, so that two multisets of rows compare as arrays."""
    rows = np.concatenate([np.c_[x, y.reshape(len(y), -1)] for x, y in batches])
    return rows[np.lexsort(rows.T[::-1])]


def same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b)
    )


def read_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mlpcli-read")]


@pytest.fixture
def fit(parquet_folder: Any) -> StreamFit:
    return fitted(parquet_folder(files=3, groups=5, rows=200))


def test_the_order_comes_from_seed_and_epoch(fit: StreamFit) -> None:
    stream = TrainStream(fit, seed=7, batch_size=32, buffer_rows=128)
    assert stream.plan(0).groups == stream.plan(0).groups
    assert stream.plan(0).groups != stream.plan(1).groups
    assert stream.plan(0).groups != TrainStream(fit, 8, 32, 128).plan(0).groups
    assert sorted(stream.plan(1).groups) == list(range(len(fit.source.groups)))
    assert same(list(stream.batches(1)), list(TrainStream(fit, 7, 32, 128).batches(1)))
    assert not same(list(stream.batches(0)), list(stream.batches(1)))


@pytest.mark.parametrize("buffer_rows", [64, 450, 100_000])
def test_one_process_takes_every_train_row_once(fit: StreamFit, buffer_rows: int) -> None:
    # 64 rows hold less than one row group's train rows (about 120), which then enter in parts.
    stream = TrainStream(fit, seed=0, batch_size=32, buffer_rows=buffer_rows)
    batches = list(stream.batches(2))
    x, y = train_rows(fit)
    assert stream.rows == len(x) == fit.counts["train"]
    assert len(batches) == stream.steps(2) == -(-len(x) // 32)
    assert [len(b) for b, _ in batches[:-1]] == [32] * (len(batches) - 1)
    assert all(b.dtype == np.float32 and len(b) == len(c) for b, c in batches)
    assert np.array_equal(joined(batches), joined([(x, y)]))
    order = np.concatenate([b for b, _ in batches])
    assert not np.array_equal(order, x)  # mixed, not in file order
    if buffer_rows > 200:  # a window of several row groups mixes them within a batch
        home = {row.tobytes(): i for i, (gx, _) in enumerate(group_rows(fit)) for row in gx}
        assert len({home[row.tobytes()] for row in batches[0][0]}) > 1


def test_a_trailing_row_joins_the_batch_before() -> None:
    plan = plan_epoch(np.array([50, 0, 51]), seed=0, epoch=0, batch_size=10)
    assert plan.sizes == [10] * 9 + [11] and plan.rows == 101
    assert sorted(plan.groups) == [0, 2]  # a group without train rows is not read
    assert plan_epoch(np.array([1]), 0, 0, 10).sizes == [1]
    assert plan_epoch(np.array([0]), 0, 0, 10).sizes == []


def test_ranks_read_their_own_groups_and_take_equal_steps(fit: StreamFit) -> None:
    size, batch = 3, 32
    streams = [TrainStream(fit, 5, batch, 96, rank, size) for rank in range(size)]
    for epoch in (0, 1):
        plans = [s.plan(epoch) for s in streams]
        groups = [g for p in plans for g in p.groups]
        assert sorted(groups) == list(range(len(fit.source.groups)))  # disjoint and covering
        counts = fit.group_counts[:, TRAIN]
        held = [p.rows for p in plans]
        assert max(held) - min(held) <= counts.max()  # balanced to within one group
        runs = [list(s.batches(epoch)) for s in streams]
        steps = {len(r) for r in runs} | {s.steps(epoch) for s in streams}
        assert steps == {min(h // width(batch, r, size) for r, h in enumerate(held))}
        for rank, run in enumerate(runs):
            assert {len(x) for x, _ in run} == {width(batch, rank, size)}
        rows = joined([b for run in runs for b in run])
        assert len(np.unique(rows, axis=0)) == len(rows) == batch * steps.pop()
    for stream in streams:
        # What a stream keeps of its reads is the latest epoch's: it does not grow epoch by epoch.
        mine = [fit.source.groups[i] for i in stream.plan(1).groups]
        assert stream.reads == [(g.file, g.index) for g in mine]


@pytest.mark.parametrize(("size", "buffer_rows"), [(1, 100), (2, 100), (1, 40), (3, 1000)])
def test_a_replay_from_a_step_yields_the_same_batches(
    fit: StreamFit, size: int, buffer_rows: int
) -> None:
    stream = TrainStream(fit, 3, batch_size=24, buffer_rows=buffer_rows, rank=size - 1, size=size)
    whole = list(stream.batches(4))
    groups = len(stream.reads)
    assert len(whole) > 10
    opened = []
    for start in (0, 1, 5, len(whole) // 2, len(whole) - 1, len(whole)):
        assert same(list(stream.batches(4, start)), whole[start:])
        opened.append(len(stream.reads))
    # Row groups whose rows all went to the batches left out are not read again.
    assert opened[:2] == [groups, groups] and opened == sorted(opened, reverse=True)
    assert opened[-1] == 0
    assert opened[-2] < groups or buffer_rows >= stream.plan(4).rows  # one draw holds all


def test_window_draws_depend_on_counts_not_on_pieces() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3)).astype(np.float32)
    y = np.arange(500)
    sizes = [40] * 12 + [20]
    one = list(shuffled([(x, y)], sizes, 128, np.random.default_rng(9)))
    cuts = [0, 7, 130, 131, 300, 500]
    parts = [(x[a:b], y[a:b]) for a, b in zip(cuts, cuts[1:])]
    assert same(one, list(shuffled(parts, sizes, 128, np.random.default_rng(9))))
    assert sorted(np.concatenate([b for _, b in one]).tolist()) == list(range(500))


class Broken(Exception):
    pass


def test_an_error_on_the_read_ahead_thread_is_raised_as_itself(
    fit: StreamFit, monkeypatch: Any
) -> None:
    error = Broken("row group 3")
    read = fit.source.read
    seen: list[int] = []

    def failing(group: Any, used: list[str]) -> Any:
        seen.append(group.index)
        if len(seen) == 3:
            raise error
        return read(group, used)

    monkeypatch.setattr(fit.source, "read", failing)
    stream = TrainStream(fit, seed=0, batch_size=16, buffer_rows=1000)
    with pytest.raises(Broken) as raised:
        list(stream.batches(0))
    assert raised.value is error
    assert not read_threads()


def test_closing_ends_the_read_ahead_thread(fit: StreamFit) -> None:
    stream = TrainStream(fit, seed=0, batch_size=16, buffer_rows=64)
    epoch = stream.batches(0)
    next(epoch)
    assert read_threads()
    stream.close()
    assert not read_threads()
    epoch = stream.batches(1)
    next(epoch)
    epoch.close()  # also what the garbage collector does to a generator left unfinished
    assert not read_threads()


def test_the_plan_digest_names_what_the_order_depends_on(fit: StreamFit) -> None:
    digest = TrainStream(fit, 0, 32, 128).plan_digest()
    assert digest == TrainStream(fit, 1, 32, 128).plan_digest()  # the seed is kept beside it
    others = {
        TrainStream(fit, 0, 16, 128).plan_digest(),
        TrainStream(fit, 0, 32, 256).plan_digest(),
        TrainStream(fit, 0, 32, 128, 0, 2).plan_digest(),
    }
    assert digest not in others and len(others) == 3


@pytest.mark.parametrize(
    ("labels", "values"),
    [
        ([0, 1], np.array([1, 0, 0, 1], dtype=np.int64)),
        ([False, True], np.array([True, False, True])),
        ([False, True], np.array([1, 0, 1], dtype=np.int8)),
        ([0, 1], np.array([1.0, 0.0, -0.0])),
        ([-1.5, 2, 0.25], np.array([2.0, 0.25, -1.5, 2.0])),
        ([3, 10, 7], np.array([10, 3, 7, 7], dtype=np.uint8)),
    ],
)
def test_class_codes_of_numbers_skip_the_row_by_row_lookup(
    labels: list, values: Any, monkeypatch: Any
) -> None:
    # A stream encodes millions of rows a second: numbers take a sorted search, not a Python loop
    # over each row, and give the codes that loop gives (the oracle: object values take it).
    import pandas as pd

    from mlpcli.data import preprocess

    task = "binary" if len(labels) == 2 else "classification"
    prep = Preprocessor(features=[], targets=["y"], task=task, labels=labels)
    expected = prep.encode_targets(pd.DataFrame({"y": values.astype(object)}), "here")

    def row_by_row(values: Any) -> list:
        raise AssertionError("the row-by-row lookup was taken")

    with monkeypatch.context() as patch:
        patch.setattr(preprocess, "_python", row_by_row)
        for table in (Columns({"y": values}), pd.DataFrame({"y": values})):
            codes = prep.encode_targets(table, "here")
            assert codes.dtype == expected.dtype and np.array_equal(codes, expected)
    if values.dtype == bool:
        return
    unseen = np.append(values, 99).astype(values.dtype)
    with pytest.raises(DataError, match="99") as raised:
        prep.encode_targets(Columns({"y": unseen}), "here")
    with pytest.raises(DataError) as oracle:
        prep.encode_targets(pd.DataFrame({"y": unseen.astype(object)}), "here")
    assert str(raised.value) == str(oracle.value)


@pytest.mark.parametrize("text", [False, True])
def test_classification_streams_class_codes(parquet_folder: Any, text: bool) -> None:
    # With a text column a row group is read as a DataFrame, and one-hot encoded.
    folder = parquet_folder(files=2, groups=3, rows=100, task="classification", text=text)
    fit = fitted(folder, task="classification")
    batches = list(TrainStream(fit, seed=0, batch_size=20, buffer_rows=50).batches(0))
    x, y = train_rows(fit)
    assert batches[0][1].dtype == np.int64 and x.shape[1] == 4 + 3 * text
    assert np.array_equal(joined(batches), joined([(x, y)]))


def test_the_epoch_modules_import_no_torch() -> None:
    code = "import sys, mlpcli.data.stream.reader; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_trace_names_each_row_group_a_rank_reads(
    fit: StreamFit, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MLPCLI_STREAM_TRACE", str(tmp_path / "trace"))
    stream = TrainStream(fit, seed=0, batch_size=16, buffer_rows=64, rank=1, size=2)
    list(stream.batches(3))
    lines = (tmp_path / "trace.1").read_text().splitlines()
    assert lines == [f"3\t{f}\t{g}" for f, g in stream.reads]

"""The statistics pass of a stream against the in-memory Preprocessor on the same train rows:
scaling, categories, labels, modes, task; several ranks merged; every row checked."""

from __future__ import annotations

import re
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpcli.config.schema import Config
from mlpcli.data.columns import as_frame
from mlpcli.data.preprocess import Preprocessor, infer_task
from mlpcli.data.stream import (
    TRAIN,
    VAL,
    SplitRule,
    fit_stream,
    open_stream,
    sample_split,
    split_chunks,
)
from mlpcli.data.stream.hashsplit import SPLITS
from mlpcli.data.stream.reservoir import Reservoir
from mlpcli.data.stream.rows import split_tables
from mlpcli.errors import ConfigError, DataError


def config(path, task="auto", seed=0, **data):
    return Config.model_validate(
        {
            "seed": seed,
            "task": task,
            "data": {"source": "parquet", "path": str(path), "stream": True, **data},
        }
    )


def train_rows(fit):
    """The train rows of the stream, read whole (the oracle's input)."""
    used = fit.features + fit.targets
    parts = [as_frame(t) for _, t in split_tables(fit.source, fit.rule, "train", used)]
    return pd.concat(parts, ignore_index=True)


def assert_close(got, want, tol=1e-9):
    """[mean, std] pairs equal to tol relative to the larger of |mean| and std."""
    assert set(got) == set(want)
    for col, (mean, std) in want.items():
        scale = max(abs(mean), abs(std))
        assert abs(got[col][0] - mean) <= tol * scale, (col, got[col], want[col])
        assert abs(got[col][1] - std) <= tol * max(abs(std), 1e-300), (col, got[col], want[col])


def write_folder(tmp_path, files, rows=600, group=150, seed=0, name="data"):
    """files: {column: function(rng, n) -> values}, the same for every file."""
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(3):
        table = pa.table({c: make(rng, rows) for c, make in files.items()})
        pq.write_table(table, folder / f"f{i}.parquet", row_group_size=group)
    return folder


EXTREME = {
    "huge": lambda rng, n: rng.standard_normal(n) * 1e300,
    "tiny": lambda rng, n: rng.standard_normal(n) * 1e-300,
    "offset": lambda rng, n: 1e6 + rng.standard_normal(n),
    "const": lambda rng, n: np.full(n, 0.1),
    "small_int": lambda rng, n: rng.integers(-3, 4, n).astype(np.int32),
    "flag": lambda rng, n: rng.random(n) < 0.3,
    "f32": lambda rng, n: rng.standard_normal(n).astype(np.float32) * 3,
    "color": lambda rng, n: rng.choice(["red", "green", "blue", "b"], n, p=[0.4, 0.1, 0.4, 0.1]),
    "y": lambda rng, n: rng.standard_normal(n) * 1e200 + 5e199,
}


@pytest.mark.parametrize("standardize", [True, False])
def test_regression_equals_preprocessor_fit_on_the_same_train_rows(tmp_path, standardize):
    folder = write_folder(tmp_path, EXTREME)
    cfg = config(folder, target="y", standardize=standardize)
    fit = fit_stream(cfg, open_stream(cfg))
    rows = train_rows(fit)
    want = Preprocessor.fit(rows, fit.features, fit.targets, "regression", standardize)
    assert fit.task == "regression" == infer_task(rows, ["y"])
    got = fit.prep
    assert list(got.numeric) == list(want.numeric)  # in the features' order
    assert_close(got.numeric, want.numeric)
    assert_close(got.stats, {c: v for c, v in want.stats.items()})
    assert got.stats["const"] == [0.1, 0.0] and want.stats["const"] == [0.1, 0.0]
    assert got.categorical == want.categorical == {"color": ["b", "blue", "green", "red"]}
    assert got.modes == want.modes
    assert_close({"y": got.target_scale[0]}, {"y": want.target_scale[0]})
    assert (got.features, got.targets, got.labels) == (want.features, want.targets, want.labels)
    assert fit.counts["train"] == len(rows)
    assert sum(fit.counts.values()) == 3 * 600
    assert fit.group_counts.shape == (3 * 4, 3)
    assert fit.group_counts.sum(axis=0).tolist() == [
        fit.counts[s] for s in ("train", "val", "test")
    ]


def test_a_tie_for_the_mode_goes_to_the_first_sorted_value(tmp_path):
    folder = tmp_path / "tie"
    folder.mkdir()
    colors = ["b", "a", "c", "a", "b"] * 40
    table = pa.table({"x": np.arange(200.0), "color": colors, "y": np.arange(200.0)})
    pq.write_table(table, folder / "a.parquet", row_group_size=50)
    cfg = config(folder, val_split=0.0, test_split=0.0)
    fit = fit_stream(cfg, open_stream(cfg))
    assert fit.counts["train"] == 200
    assert fit.prep.modes == {"color": "a"}
    assert (
        fit.prep.modes
        == Preprocessor.fit(train_rows(fit), ["x", "color"], ["y"], "regression").modes
    )


TASKS = {
    "classification": {
        "x": lambda rng, n: rng.standard_normal(n),
        "y": lambda rng, n: rng.integers(0, 4, n),
    },
    "binary": {
        "x": lambda rng, n: rng.standard_normal(n),
        "y": lambda rng, n: rng.integers(3, 5, n) * 1.0,
    },
    "text": {
        "x": lambda rng, n: rng.standard_normal(n),
        "y": lambda rng, n: rng.choice(["cat", "dog", "eel"], n),
    },
    "bools": {"x": lambda rng, n: rng.standard_normal(n), "y": lambda rng, n: rng.random(n) < 0.5},
    "regression": {
        "x": lambda rng, n: rng.standard_normal(n),
        "y": lambda rng, n: rng.integers(0, 40, n),
    },
}


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_task_and_labels_equal_the_in_memory_ones(tmp_path, kind):
    folder = write_folder(tmp_path, TASKS[kind], rows=200, group=64)
    cfg = config(folder, target="y")
    fit = fit_stream(cfg, open_stream(cfg))
    whole = pd.concat([pq.read_table(f).to_pandas() for f in fit.source.files], ignore_index=True)
    assert fit.task == infer_task(whole, ["y"])
    want = Preprocessor.fit(train_rows(fit), ["x"], ["y"], fit.task)
    assert fit.prep.labels == want.labels
    assert [type(v) for v in fit.prep.labels] == [type(v) for v in want.labels]
    assert_close(fit.prep.numeric, want.numeric)


def test_multilabel_targets(tmp_path):
    columns = {
        "x": lambda rng, n: rng.standard_normal(n),
        "a": lambda rng, n: rng.integers(0, 2, n),
        "b": lambda rng, n: rng.random(n) < 0.5,
    }
    folder = write_folder(tmp_path, columns, rows=100, group=40)
    cfg = config(folder, target=["a", "b"])
    fit = fit_stream(cfg, open_stream(cfg))
    assert fit.task == "multilabel" and fit.prep.labels == ["a", "b"]
    bad = config(folder, target=["a", "x"], task="multilabel")
    with pytest.raises(DataError, match=r"multilabel target 'x' holds"):
        fit_stream(bad, open_stream(bad))


def _ranks(cfg, source, size):
    """fit_stream on `size` ranks at once, threads standing in for processes; gather hands every
    rank every rank's text in rank order, as World.gather_text does. A rank that stops without
    a gather the others are in makes theirs fail (a process group would time out)."""
    ready = threading.Condition()
    texts: dict[tuple[int, int], str] = {}
    ended: set[int] = set()
    fits = [None] * size
    errors: list[BaseException] = []

    def rank(r):
        calls = iter(range(100))

        def gather(text):
            call = next(calls)
            with ready:
                texts[call, r] = text
                ready.notify_all()
                ready.wait_for(lambda: all((call, q) in texts or q in ended for q in range(size)))
                if any((call, q) not in texts for q in range(size)):
                    raise RuntimeError("another rank stopped outside this gather")
                return [texts[call, q] for q in range(size)]

        try:
            fits[r] = fit_stream(cfg, source, r, size, gather)
        except Exception as exc:
            errors.append(exc)
        finally:
            with ready:
                ended.add(r)
                ready.notify_all()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:  # every rank refuses alike, after the same gathers
        assert len(errors) == size and len({str(e) for e in errors}) == 1, errors
        assert len({type(e) for e in errors}) == 1
        raise errors[0]
    return fits


def test_three_ranks_merge_to_one_pass(tmp_path):
    folder = write_folder(tmp_path, EXTREME, rows=400, group=50)
    cfg = config(folder, target="y")
    source = open_stream(cfg)
    one = fit_stream(cfg, source)
    fits = _ranks(cfg, source, 3)
    for fit in fits:
        assert fit.prep.to_dict().keys() == one.prep.to_dict().keys()
        assert_close(fit.prep.numeric, one.prep.numeric, tol=1e-12)
        assert_close(fit.prep.stats, one.prep.stats, tol=1e-12)
        assert_close({"y": fit.prep.target_scale[0]}, {"y": one.prep.target_scale[0]}, tol=1e-12)
        assert (fit.prep.categorical, fit.prep.modes) == (one.prep.categorical, one.prep.modes)
        assert fit.counts == one.counts and np.array_equal(fit.group_counts, one.group_counts)
        assert fit.prep.to_dict() == fits[0].prep.to_dict()  # every rank alike, bitwise
        pd.testing.assert_frame_equal(fit.sample, fits[0].sample)
    assert len(fits[0].sample) == one.counts["train"]  # fewer train rows than SAMPLE_ROWS


def test_missing_values_are_counted_per_column_in_the_file(parquet_folder):
    folder = parquet_folder(files=3, groups=5, rows=200)
    table = pq.read_table(folder / "part-001.parquet").to_pandas()
    table.loc[[5, 250, 251, 700, 999] + list(range(400, 407)), "x2"] = np.nan
    table.loc[[3, 4, 900], "x4"] = np.nan
    table.loc[[10], "x1"] = np.inf
    pq.write_table(pa.Table.from_pandas(table), folder / "part-001.parquet", row_group_size=200)
    cfg = config(folder)
    with pytest.raises(DataError) as error:
        fit_stream(cfg, open_stream(cfg))
    assert str(error.value) == (
        "part-001.parquet: missing values in 'x2' (12 rows), 'x4' (3 rows); "
        "infinite values in 'x1' (1 row); fill or drop those rows before training"
    )
    assert error.value.exit_code == 2
    # Across ranks the counts are summed before the same message is given.
    with pytest.raises(DataError, match=r"'x2' \(12 rows\), 'x4' \(3 rows\)"):
        _ranks(cfg, open_stream(cfg), 2)


def test_text_in_a_numeric_text_column_names_the_row_in_its_file(tmp_path):
    folder = tmp_path / "typo"
    folder.mkdir()
    for i in range(2):
        values = [str(v) for v in range(100)]
        if i == 1:
            values[67] = "1O"
        pq.write_table(
            pa.table({"x": values, "y": np.arange(100.0)}),
            folder / f"{i}.parquet",
            row_group_size=30,
        )
    cfg = config(folder)
    with pytest.raises(DataError) as error:
        fit_stream(cfg, open_stream(cfg))
    assert (
        str(error.value)
        == "1.parquet: column 'x' is numeric but row 68 holds '1O'; accepted: numbers only"
    )


def test_too_many_categories_and_columns_refused(tmp_path, parquet_folder):
    folder = tmp_path / "ids"
    folder.mkdir()
    ids = [f"id{i}" for i in range(600)]
    pq.write_table(
        pa.table({"id": ids, "y": np.arange(600.0)}), folder / "a.parquet", row_group_size=100
    )
    cfg = config(folder)
    with pytest.raises(DataError, match=r"column 'id' has more than 200 distinct text values"):
        fit_stream(cfg, open_stream(cfg))
    events = parquet_folder()
    with pytest.raises(DataError, match=r"no target column 'label'"):
        open_stream(config(events, target="label"))
    with pytest.raises(ConfigError, match=r"data.features: 'y' is also a target column"):
        open_stream(config(events, features=["x1", "y"]))


def test_an_empty_split_is_refused(tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [0.5, 1.5]}), folder / "a.parquet")
    cfg = config(folder, val_split=0.1, test_split=0.1)
    with pytest.raises(DataError, match=r"none of its 2 rows fell in the (val|test) split"):
        fit_stream(cfg, open_stream(cfg))


def test_sample_is_deterministic_train_rows(parquet_folder, monkeypatch):
    import mlpcli.data.stream.stats as stats

    monkeypatch.setattr(stats, "SAMPLE_ROWS", 500)
    cfg = config(parquet_folder(text=True), seed=3)
    source = open_stream(cfg)
    fit = fit_stream(cfg, source)
    again = fit_stream(cfg, source)
    pd.testing.assert_frame_equal(fit.sample, again.sample)
    assert list(fit.sample.columns) == fit.features + fit.targets and len(fit.sample) == 500
    train = train_rows(fit)
    assert set(fit.sample["x1"]) <= set(train["x1"])  # raw values of train rows
    assert fit.sample["x1"].is_unique
    other = fit_stream(config(cfg.data.path, seed=4), source).sample
    assert not set(other["x1"]) == set(fit.sample["x1"])
    fits = _ranks(cfg, source, 3)
    assert len(fits[0].sample) == 500 and set(fits[0].sample["x1"]) <= set(train["x1"])


def test_the_reservoir_is_uniform():
    """Each of 10 000 rows, added in uneven chunks, is kept with chance k / n: the kept rows'
    mean index and the share from each tenth are within 4 standard deviations."""
    n, k = 10_000, 2_000
    reservoir = Reservoir(["i"], k, seed=0)
    start = 0
    for size in [1, 999, 1000, 3, 4000, 3997]:
        reservoir.add(pd.DataFrame({"i": np.arange(start, start + size)}))
        start += size
    kept = reservoir.rows()["i"]
    assert len(kept) == k and len(np.unique(kept)) == k
    sd = np.sqrt((n**2 / 12) / k * (1 - k / n))
    assert abs(kept.mean() - (n - 1) / 2) < 4 * sd
    per_tenth = np.bincount(kept // 1000, minlength=10)
    p = 0.1
    assert np.all(np.abs(per_tenth - k * p) < 4 * np.sqrt(k * p * (1 - p))), per_tenth


def test_split_chunks_and_sample_split(parquet_folder):
    cfg = config(parquet_folder(text=True, task="classification"))
    source = open_stream(cfg)
    fit = fit_stream(cfg, source)
    rows = train_rows(fit)
    x = np.concatenate([x for x, _ in split_chunks(source, fit.prep, fit.rule, "train", rows=128)])
    assert np.array_equal(x, fit.prep.transform(rows))
    y = np.concatenate([y for _, y in split_chunks(source, fit.prep, fit.rule, "train")])
    assert np.array_equal(y, fit.prep.encode_targets(rows))
    shares = [
        sum(len(x) for x, _ in split_chunks(source, fit.prep, fit.rule, "val", r, 2))
        for r in range(2)
    ]
    assert sum(shares) == fit.counts["val"] and min(shares) > 0
    val = sample_split(source, fit.prep, fit.rule, "val", k=50, seed=1)
    val_rows = pd.concat(
        [as_frame(t) for _, t in split_tables(source, fit.rule, "val", fit.features + fit.targets)]
    )
    assert len(val) == 50 and set(val["x1"]) <= set(val_rows["x1"])
    assert TRAIN == 0 and VAL == 1


def test_moments_keep_the_digits_of_a_column_far_from_zero():
    """Against exact rational arithmetic: 1e9 plus noise of 1e-3, merged from uneven chunks,
    keeps the mean rounded right and the std to 1e-12 (the scaled one-shot formula of
    preprocess.mean_std loses about 3e-7 of it)."""
    from fractions import Fraction

    from mlpcli.data.stream.moments import Moments

    values = 1e9 + 1e-3 * np.random.default_rng(0).standard_normal(2000)
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    std = float(sum((v - mean) ** 2 for v in exact) / len(exact)) ** 0.5
    moments = Moments.empty(1)
    for start, stop in [(0, 1), (1, 700), (700, 701), (701, 2000)]:
        moments = moments.merge(Moments.of(values[start:stop, None]))
    ((got_mean, got_std),) = moments.mean_std()
    assert abs(Fraction(got_mean) - mean) <= Fraction(np.spacing(got_mean)) / 2  # rounded right
    assert abs(got_std - std) <= 1e-12 * std


def _damage(path, group):
    """Overwrite the first page header of a row group's first column: that group cannot be read,
    the footer and the other groups still can."""
    chunk = pq.ParquetFile(path).metadata.row_group(group).column(0)
    with open(path, "r+b") as handle:
        handle.seek(chunk.data_page_offset)
        handle.write(b"\xff" * 16)


def test_an_error_in_one_ranks_row_groups_stops_every_rank_with_it(tmp_path):
    folder = write_folder(tmp_path, {"x": lambda rng, n: rng.standard_normal(n), "y": EXTREME["y"]})
    _damage(folder / "f1.parquet", 1)  # position 5 of 12: rank 1's of 2, rank 2's of 3
    cfg = config(folder, target="y")
    with pytest.raises(DataError) as alone:
        fit_stream(cfg, open_stream(cfg))
    assert str(alone.value).startswith("f1.parquet: row group 1 cannot be read")
    for size in (2, 3):
        with pytest.raises(DataError) as error:
            _ranks(cfg, open_stream(cfg), size)  # every rank raises the same, or this fails
        assert str(error.value) == str(alone.value) and error.value.exit_code == 2


def _with_value(cfg, split, column, value, dtype=object):
    """Set `column` to `value` in the first row of `split` in every file of cfg's folder."""
    source = open_stream(cfg)
    rule = SplitRule.from_config(cfg)
    for file, path in enumerate(source.files):
        frame = pq.read_table(path).to_pandas()
        codes = rule.codes(source.keys[file], 0, len(frame))
        frame[column] = frame[column].astype(dtype)
        frame.loc[int(np.flatnonzero(codes == SPLITS.index(split))[0]), column] = value
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=200)


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_category_seen_only_in_held_out_rows_is_refused_before_training(parquet_folder, split):
    folder = parquet_folder(text=True)
    cfg = config(folder, val_split=0.2, test_split=0.2)
    _with_value(cfg, split, "color", "teal")
    expected = (
        f"{folder} ({split} split): column 'color' holds 'teal', a category not seen in "
        f"training; accepted: blue, green, red"
    )
    for fit in (
        lambda: fit_stream(cfg, open_stream(cfg)),
        lambda: _ranks(cfg, open_stream(cfg), 2),
    ):
        with pytest.raises(DataError) as error:
            fit()
        assert str(error.value) == expected
    # The in-memory path gives the same message.
    prep = Preprocessor(
        ["color"], [], "regression", categorical={"color": ["blue", "green", "red"]}
    )
    with pytest.raises(DataError, match=re.escape(expected.split(": ", 1)[1])):
        prep.transform(pd.DataFrame({"color": ["teal"]}), f"{folder} ({split} split)")


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_class_seen_only_in_held_out_rows_is_refused_before_training(parquet_folder, split):
    folder = parquet_folder(task="classification")
    cfg = config(folder, task="classification", val_split=0.2, test_split=0.2)
    _with_value(cfg, split, "y", 7, dtype=np.int64)
    expected = (
        f"{folder} ({split} split): target 'y' holds '7', a class not seen in training; "
        f"accepted: 0, 1, 2"
    )
    for fit in (
        lambda: fit_stream(cfg, open_stream(cfg)),
        lambda: _ranks(cfg, open_stream(cfg), 3),
    ):
        with pytest.raises(DataError) as error:
            fit()
        assert str(error.value) == expected


def test_many_unseen_categories_name_the_first_ones(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    n = 3000
    frame = pd.DataFrame({"c": ["a"] * n, "y": np.arange(float(n))})
    pq.write_table(pa.Table.from_pandas(frame), folder / "a.parquet", row_group_size=500)
    cfg = config(folder, val_split=0.5)
    source = open_stream(cfg)
    codes = SplitRule.from_config(cfg).codes(source.keys[0], 0, n)
    val = np.flatnonzero(codes == VAL)
    frame.loc[val, "c"] = [f"v{i:04d}" for i in range(len(val))]
    pq.write_table(pa.Table.from_pandas(frame), folder / "a.parquet", row_group_size=500)
    assert len(val) > 1100
    with pytest.raises(DataError) as error:
        _ranks(cfg, open_stream(cfg), 2)
    assert str(error.value) == (
        f"{folder} (val split): column 'c' holds 'v0000', 'v0001', 'v0002', 'v0003', 'v0004' "
        f"and over 995 more, categories not seen in training; accepted: a"
    )


def test_a_dictionary_column_counts_only_the_values_it_holds(tmp_path):
    folder = tmp_path / "dict"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = pd.Categorical(rng.choice(["a", "b", "c"], 600), categories=["a", "b", "c", "zz"])
    colors = pd.Categorical(rng.choice(["red", "blue"], 600), categories=["red", "blue", "teal"])
    frame = pd.DataFrame({"x": rng.standard_normal(600), "color": colors, "y": labels})
    pq.write_table(pa.Table.from_pandas(frame), folder / "a.parquet", row_group_size=200)
    assert pq.read_schema(folder / "a.parquet").field("y").type.value_type == pa.string()
    cfg = config(folder)
    fit = fit_stream(cfg, open_stream(cfg))
    assert fit.task == "classification" and fit.prep.labels == ["a", "b", "c"]
    assert fit.prep.categorical == {"color": ["blue", "red"]}

"""Eval and predict in chunks: the same bytes and numbers as reading the whole input at once,
Parquet folders as input, and no output left behind by a failure part-way."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_exit_2, mlp

import mlpcli
from mlpcli.data import limits
from mlpcli.data.files import read_table, write_table
from mlpcli.data.stream import chunks
from mlpcli.data.stream.chunks import read_chunks, write_chunks
from mlpcli.errors import DataError
from mlpcli.serving import evaluate
from mlpcli.serving.evaluate import predict_file, score_run
from mlpcli.serving.predict import predict_to

ROWS = 700


def table(n: int = ROWS, seed: int = 1) -> pd.DataFrame:
    """Two numeric features, a text one, an integer id, and a class label as text."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + (colour == "red") > 0.3, "yes", np.where(x2 > 0, "maybe", "no"))
    return pd.DataFrame({"id": np.arange(n), "x1": x1, "x2": x2, "colour": colour, "y": label})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    table(400, seed=0).to_csv(folder / "train.csv", index=False)
    config = folder / "c.yaml"
    config.write_text(
        "data: {source: csv, path: train.csv, target: y, features: [x1, x2, colour]}\n"
        "model: {hidden: [16]}\ntrain: {epochs: 5, batch_size: 32}\n"
    )
    return mlpcli.train(config, out=folder / "runs", quiet=True).run_dir


@pytest.fixture
def rows_csv(tmp_path):
    path = tmp_path / "rows.csv"
    table().drop(columns="y").to_csv(path, index=False)
    return path


def today(run, input_path, output, proba=False) -> bytes:
    """What mlp predict wrote before it read in chunks: the whole table, then one write."""
    write_table(predict_file(run, input_path, proba=proba), output)
    return output.read_bytes()


@pytest.mark.parametrize("proba", [False, True])
def test_chunked_csv_is_byte_for_byte_the_whole_table_written_once(run, rows_csv, tmp_path, proba):
    want = today(run, rows_csv, tmp_path / "whole.csv", proba)
    assert predict_to(run, rows_csv, tmp_path / "chunked.csv", proba=proba, rows=128) == ROWS
    assert (tmp_path / "chunked.csv").read_bytes() == want
    header = want.split(b"\n")[0]
    assert (b'"proba_yes"' in header) == proba


def test_parquet_output_of_one_chunk_is_byte_for_byte_and_of_many_the_same_table(
    run, rows_csv, tmp_path
):
    want = today(run, rows_csv, tmp_path / "whole.parquet", proba=True)
    predict_to(run, rows_csv, tmp_path / "one.parquet", proba=True)
    assert (tmp_path / "one.parquet").read_bytes() == want
    predict_to(run, rows_csv, tmp_path / "many.parquet", proba=True, rows=100)
    many = pq.ParquetFile(tmp_path / "many.parquet")
    assert many.metadata.num_row_groups == 7  # one per chunk: memory bounded by a chunk
    assert many.schema_arrow == pq.read_schema(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "many.parquet"), pd.read_parquet(tmp_path / "whole.parquet")
    )


def test_cli_predict_writes_and_prints_what_it_wrote_before(run, rows_csv, tmp_path):
    want = today(run, rows_csv, tmp_path / "whole.csv")
    result = mlp("predict", run, rows_csv, "-o", tmp_path / "cli.csv")
    assert result.exit_code == 0, result.output
    assert f"wrote {ROWS:,} rows" in result.stderr
    assert (tmp_path / "cli.csv").read_bytes() == want
    printed = mlp("predict", run, rows_csv)
    assert printed.exit_code == 0, printed.output
    assert printed.stdout_bytes == want


def test_a_folder_of_parquet_files_is_predicted_in_file_order(run, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    whole = table().drop(columns="y")
    # Written out of name order, with row groups smaller than a chunk.
    for i, (a, b) in reversed(list(enumerate([(0, 250), (250, 251), (251, ROWS)]))):
        pq.write_table(
            pa.Table.from_pandas(whole.iloc[a:b], preserve_index=False),
            folder / f"part-{i}.parquet",
            row_group_size=60,
        )
    whole.to_csv(tmp_path / "whole.csv", index=False)
    want = today(run, tmp_path / "whole.csv", tmp_path / "want.csv")
    assert predict_to(run, folder, tmp_path / "got.csv", rows=100) == ROWS
    assert (tmp_path / "got.csv").read_bytes() == want
    assert mlpcli.predict_to(run, f"{folder}/*.parquet", tmp_path / "glob.csv") == ROWS
    assert (tmp_path / "glob.csv").read_bytes() == want


def test_a_failure_part_way_leaves_no_file_and_names_the_rows(run, tmp_path):
    frame = table().drop(columns="y")
    frame.loc[650, "x2"] = math.nan
    frame.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(
        DataError, match=r"rows\.csv, rows 601-700: missing values in 'x2' \(1 row\)"
    ):
        predict_to(run, tmp_path / "rows.csv", tmp_path / "out.parquet", rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]  # no temporary either
    result = mlp("predict", run, tmp_path / "rows.csv", "-o", tmp_path / "out.csv")
    assert_exit_2(result, "rows.csv: missing values in 'x2'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_chunks_of_a_csv_equal_the_whole_file_read_at_once(tmp_path):
    frame = table()
    frame["count"] = np.arange(ROWS) % 7
    frame.loc[500, "count"] = np.nan  # only one chunk holds it: still a float column in all
    frame.to_csv(tmp_path / "t.csv", index=False)
    whole = read_table(tmp_path / "t.csv")
    got = list(read_chunks(tmp_path / "t.csv", rows=128))
    assert [len(c) for c in got] == [128] * 5 + [60]
    joined = pd.concat(got, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole, check_dtype=False)
    out = write_chunks(iter(got), tmp_path / "again.csv", "csv")
    assert out == ROWS
    write_table(whole, tmp_path / "whole.csv")
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_chunks_of_a_parquet_file_keep_the_whole_files_types(tmp_path):
    ints = pa.array([None if i == 650 else i for i in range(ROWS)], pa.int64())
    flags = pa.array([None if i == 650 else i % 2 == 0 for i in range(ROWS)], pa.bool_())
    source = pa.Table.from_pandas(table(), preserve_index=False)
    source = source.append_column("n", ints).append_column("flag", flags)
    pq.write_table(source, tmp_path / "t.parquet", row_group_size=300)
    whole = read_table(tmp_path / "t.parquet")
    got = list(read_chunks(tmp_path / "t.parquet", rows=128))
    assert all(len(c) <= 128 for c in got)
    assert all((c.dtypes == whole.dtypes).all() for c in got)
    pd.testing.assert_frame_equal(pd.concat(got, ignore_index=True), whole)


def test_no_rows_and_unreadable_files_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="empty.csv: the file holds no rows"):
        list(read_chunks(tmp_path / "empty.csv"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: not a readable parquet file"):
        list(read_chunks(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match="no Parquet files"):
        list(read_chunks(tmp_path / "nothing-*.parquet"))


def test_eval_of_a_file_that_does_not_fit_equals_scoring_it_whole(run, tmp_path, monkeypatch):
    table().to_csv(tmp_path / "labelled.csv", index=False)
    want = score_run(run, tmp_path / "labelled.csv")
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 100)
    no_room(monkeypatch)
    got = score_run(run, tmp_path / "labelled.csv")
    assert got.confusion == want.confusion
    assert got.per_class == want.per_class
    assert got.metrics.keys() == want.metrics.keys()
    for key, value in want.metrics.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-6 if key == "loss" else 1e-12)


# ---------------------------------------------------------------- runs trained on a stream


def stream_run(folder, task: str, tmp_path):
    config = tmp_path / f"{task}.yaml"
    config.write_text(
        f"data: {{source: parquet, path: {folder}, target: y, stream: true, "
        "shuffle_buffer: 256}\nmodel: {hidden: [8]}\ntrain: {epochs: 2, batch_size: 32}\n"
    )
    return mlpcli.train(config, out=tmp_path / "runs", quiet=True)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_eval_of_a_streamed_run_equals_its_summary(parquet_folder, tmp_path, task):
    trained = stream_run(parquet_folder(task=task), task, tmp_path)
    for split in ("test", "val", "train"):
        result = score_run(trained.run_dir, split=split)
        want = trained.summary["metrics"][split]
        assert result.metrics.keys() == want.keys()
        for key, value in want.items():
            assert result.metrics[key] == pytest.approx(value, rel=1e-9), (split, key)
        if task == "classification":
            assert result.confusion is not None
            assert sum(map(sum, result.confusion)) == trained.summary["rows"][split]


def test_a_streamed_runs_split_is_a_bounded_sample_that_says_so(
    parquet_folder, tmp_path, monkeypatch
):
    folder = parquet_folder(task="binary")
    trained = stream_run(folder, "binary", tmp_path)
    predictor = mlpcli.load(trained.run_dir)
    test = predictor.split("test")
    assert len(test) == test.attrs["sample_of"] == trained.summary["rows"]["test"]
    assert list(test.columns) == ["x1", "x2", "x3", "x4", "y"]
    import mlpcli.data.stream.reservoir as reservoir

    monkeypatch.setattr(reservoir, "SAMPLE_ROWS", 50)
    small = mlpcli.load(trained.run_dir).split("train")  # a new Predictor: its own samples
    assert len(small) == 50 and small.attrs["sample_of"] == trained.summary["rows"]["train"]
    from mlpcli.serving.stream_eval import rows_text

    assert rows_text(small) == f"a sample of 50 of the {small.attrs['sample_of']:,} rows"
    notes = mlpcli.plot(trained.run_dir, boundary=True).notes
    total = trained.summary["rows"]["test"]
    assert f"the test points are a sample of 50 of the {total:,} rows of the test split" in notes


def test_eval_of_a_streamed_run_refuses_files_changed_since(parquet_folder, tmp_path):
    folder = parquet_folder(task="regression")
    trained = stream_run(folder, "regression", tmp_path)
    pq.write_table(
        pq.read_table(folder / "part-001.parquet").slice(0, 500), folder / "part-001.parquet"
    )
    result = mlp("eval", trained.run_dir)
    assert_exit_2(result, "part-001.parquet differs from the files the run was trained on")
    alone = mlp("eval", trained.run_dir / "model.safetensors")
    assert_exit_2(alone, "a model file alone does not say which files to read")


def test_predict_and_eval_of_a_parquet_folder_with_a_streamed_run(parquet_folder, tmp_path):
    folder = parquet_folder(task="classification", groups=2, rows=150)
    trained = stream_run(folder, "classification", tmp_path)
    out = tmp_path / "predicted.parquet"
    result = mlp("predict", trained.run_dir, folder, "-o", out, "--proba")
    assert result.exit_code == 0, result.output
    assert "wrote 900 rows" in result.stderr
    written = pd.read_parquet(out)
    whole = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])
    assert written["x1"].tolist() == whole["x1"].tolist()
    assert {"predicted_y", "proba_0", "proba_2"} <= set(written.columns)
    scored = score_run(trained.run_dir, folder)
    hits = (written["predicted_y"].to_numpy() == whole["y"].to_numpy()).mean()
    assert scored.metrics["accuracy"] == pytest.approx(hits, rel=1e-12)


# ------------------------------------------- whole when the input fits, in chunks when not


def no_room(monkeypatch) -> None:
    """The memory check as on a machine with 64 KiB left: no input file fits."""
    monkeypatch.setattr(limits, "available_memory", lambda: (65536, "a test's limit"))


def scored_in_chunks(monkeypatch) -> list[str]:
    """The inputs eval scores frame by frame from now on (score_frames called), in order."""
    seen: list[str] = []
    real = evaluate.score_frames

    def spy(*args, **kwargs):
        seen.append(args[-1])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "score_frames", spy)
    return seen


def test_eval_of_a_file_that_fits_is_scored_whole_whatever_its_chunks(run, tmp_path, monkeypatch):
    path = tmp_path / "labelled.csv"
    table().to_csv(path, index=False)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 100)  # 7 chunks, were it read in chunks
    seen = scored_in_chunks(monkeypatch)
    want = mlpcli.load(run).score(read_table(path), where=str(path))
    got = score_run(run, path)
    assert seen == []
    assert got.metrics == want.metrics  # bitwise: the numbers eval always gave
    assert got.confusion == want.confusion
    no_room(monkeypatch)
    assert score_run(run, path).confusion == want.confusion
    assert seen == [str(path)]


def test_predict_of_a_csv_that_fits_writes_parquet_as_before(run, tmp_path, monkeypatch):
    """A pass-through column empty in the first chunk and text later: typed by the whole file,
    as before; only an input that does not fit is typed chunk by chunk, and refused then."""
    frame = table().drop(columns="y")
    frame["note"] = [None] * 650 + ["late"] * (ROWS - 650)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    want = today(run, tmp_path / "rows.csv", tmp_path / "whole.parquet")
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 100)
    result = mlp("predict", run, tmp_path / "rows.csv", "-o", tmp_path / "got.parquet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "got.parquet").read_bytes() == want
    no_room(monkeypatch)
    refused = mlp("predict", run, tmp_path / "rows.csv", "-o", tmp_path / "chunked.parquet")
    assert_exit_2(refused, "do not fit the Parquet columns their first rows set")
    assert not (tmp_path / "chunked.parquet").exists()
    chunked = mlp("predict", run, tmp_path / "rows.csv", "-o", tmp_path / "chunked.csv")
    assert chunked.exit_code == 0, chunked.output
    assert pd.read_csv(tmp_path / "chunked.csv")["note"].tolist()[-1] == "late"


def test_predict_to_stdout_prints_nothing_before_an_error_when_the_input_fits(
    run, tmp_path, monkeypatch
):
    frame = table().drop(columns="y")
    frame.loc[650, "x2"] = math.nan
    frame.to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 100)
    whole = mlp("predict", run, tmp_path / "rows.csv")
    assert_exit_2(whole, "rows.csv: missing values in 'x2'")
    assert whole.stdout_bytes == b""
    no_room(monkeypatch)  # in chunks: the rows before the chunk at fault are already out
    streamed = mlp("predict", run, tmp_path / "rows.csv")
    assert_exit_2(streamed, "rows.csv, rows 601-700: missing values in 'x2'")
    assert streamed.stdout_bytes.count(b"\n") == 601  # the header and 600 rows


def test_chunks_and_whole_files_word_read_errors_alike(tmp_path):
    (tmp_path / "latin.csv").write_bytes("a,b\n1,\xe9t\xe9\n".encode("latin-1"))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    for name in ("latin.csv", "bad.parquet"):
        with pytest.raises(DataError) as whole:
            read_table(tmp_path / name)
        with pytest.raises(DataError) as chunked:
            list(read_chunks(tmp_path / name))
        assert str(chunked.value) == str(whole.value)


def counted_reads(monkeypatch) -> list[tuple[int, int]]:
    """(file, row-group index) of every row group a StreamSource reads from now on."""
    from mlpcli.data.stream.footer import StreamSource

    reads: list[tuple[int, int]] = []
    real = StreamSource.read

    def read(self, group, used):
        reads.append((group.file, group.index))
        return real(self, group, used)

    monkeypatch.setattr(StreamSource, "read", read)
    return reads


def test_a_streamed_runs_samples_come_from_one_pass(parquet_folder, tmp_path, monkeypatch):
    from mlpcli.data.stream import SplitRule, open_stream, sample_split

    trained = stream_run(parquet_folder(task="binary"), "binary", tmp_path)
    predictor = mlpcli.load(trained.run_dir)
    config, prep = predictor.config, predictor.preprocessor
    source = open_stream(config)
    reads = counted_reads(monkeypatch)
    frames = {name: predictor.split(name) for name in ("train", "test", "val")}
    assert sorted(reads) == sorted({(g.file, g.index) for g in source.groups})  # each once
    rule = SplitRule.from_config(config)
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, sample_split(source, prep, rule, name))


def test_export_checks_the_first_rows_of_a_streamed_split_reading_no_further(
    parquet_folder, tmp_path, monkeypatch
):
    from mlpcli.data.stream import SplitRule, open_stream
    from mlpcli.data.stream.rows import split_tables
    from mlpcli.serving import export

    trained = stream_run(parquet_folder(task="regression"), "regression", tmp_path)
    predictor = mlpcli.load(trained.run_dir)
    monkeypatch.setattr(export, "CHECK_ROWS", 30)  # fewer than one row group's test rows
    reads = counted_reads(monkeypatch)
    inputs, _, checked = export.check_rows(predictor, trained.run_dir)
    assert len(reads) == 1 and len(inputs) == 30
    total = trained.summary["rows"]["test"]
    assert checked == f"the test split (the first 30 of the {total:,} rows)"
    config = predictor.config
    source = open_stream(config)
    _, first = next(split_tables(source, SplitRule.from_config(config), "test", ["x1"]))
    head = predictor.head("test", 30)
    assert head["x1"].tolist() == list(first["x1"][:30])

"""A streamed Parquet source: which files a folder or glob names, their footers, and what is
refused before a row is read."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpcli.data.columns import Columns
from mlpcli.data.stream import StreamSource
from mlpcli.errors import DataError


def write(path, rows=10, row_group_size=None, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = columns or {"x1": np.arange(rows, dtype=np.float64), "y": np.arange(rows) % 2}
    pq.write_table(pa.table(data), path, row_group_size=row_group_size)
    return path


def test_folder_lists_parquet_files_below_it_sorted_by_relative_path(tmp_path):
    for name in ["b.parquet", "a/z.pq", "a.parquet", "notes.txt", "a/b/c.parquet"]:
        if name.endswith("txt"):
            (tmp_path / name).write_text("not data")
        else:
            write(tmp_path / name, rows=7, row_group_size=3)
    source = StreamSource.open(tmp_path)
    assert source.names == ["a.parquet", "a/b/c.parquet", "a/z.pq", "b.parquet"]
    assert source.rows == 4 * 7
    assert [(g.file, g.index, g.first, g.rows) for g in source.groups[:4]] == [
        (0, 0, 0, 3),
        (0, 1, 3, 3),
        (0, 2, 6, 1),
        (1, 0, 0, 3),
    ]
    assert len(set(source.keys)) == 4
    assert source.columns == ["x1", "y"]


def test_glob_and_single_file(parquet_folder):
    folder = parquet_folder()
    by_glob = StreamSource.open(f"{folder}/part-00[02].parquet")
    assert by_glob.names == ["part-000.parquet", "part-002.parquet"]
    assert by_glob.rows == 2 * 1000
    one = StreamSource.open(folder / "part-001.parquet")
    assert one.names == ["part-001.parquet"] and len(one.groups) == 5
    # A file's key is its relative name's: the same file named alike has the same key.
    assert one.keys == [StreamSource.open(folder).keys[1]]


def test_a_row_group_reads_as_numpy_columns_or_a_frame_with_text(parquet_folder):
    source = StreamSource.open(parquet_folder(text=True))
    group = source.groups[6]
    numbers = source.read(group, ["x1", "y"])
    assert isinstance(numbers, Columns) and len(numbers) == 200
    whole = pq.read_table(source.files[1]).to_pandas()
    assert np.array_equal(numbers["x1"], whole["x1"].to_numpy()[200:400])
    frame = source.read(group, ["color", "x2"])
    assert list(frame.columns) == ["color", "x2"]
    assert frame["color"].tolist() == whole["color"].tolist()[200:400]


def test_numeric_stream_imports_neither_torch_nor_pandas(parquet_folder):
    folder = parquet_folder()
    code = (
        "import sys; from mlpcli.data.stream import StreamSource; "
        f"s = StreamSource.open({str(folder)!r}); s.check_columns(['x1', 'y']); "
        "[s.read(g, ['x1', 'y']) for g in s.groups]; "
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_column_typed_otherwise_in_one_file_is_named_with_the_file(parquet_folder):
    folder = parquet_folder(files=2)
    table = pq.read_table(folder / "part-001.parquet")
    table = table.set_column(2, "x3", table.column("x3").cast(pa.float32()))
    pq.write_table(table, folder / "part-001.parquet")
    source = StreamSource.open(folder)
    source.check_columns(["x1", "x2"])  # the columns not used may differ
    with pytest.raises(DataError) as error:
        source.check_columns(["x1", "x3", "y"])
    assert str(error.value) == (
        "part-001.parquet: column 'x3' is float here but double in part-000.parquet"
    )
    assert error.value.exit_code == 2


def test_a_column_missing_from_one_file_is_named_with_the_file(parquet_folder):
    folder = parquet_folder(files=2)
    write(folder / "part-002.parquet", x1=[1.0], y=[0])
    with pytest.raises(DataError, match=r"^part-002.parquet: no feature or target column 'x2'"):
        StreamSource.open(folder).check_columns(["x1", "x2", "y"])


def test_nested_columns_are_refused_as_the_table_reader_words_it(tmp_path):
    write(tmp_path / "a.parquet", x1=[1.0, 2.0], tags=[[1, 2], [3]], y=[0, 1])
    source = StreamSource.open(tmp_path)
    source.check_columns(["x1", "y"])
    with pytest.raises(DataError, match=r"a.parquet: column 'tags' holds values of type list"):
        source.check_columns(["x1", "tags", "y"])


def test_nothing_to_read_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no Parquet files \(\*.parquet, \*.pq\) found"):
        StreamSource.open(tmp_path / "empty")
    with pytest.raises(DataError, match=r"no Parquet files"):
        StreamSource.open(f"{tmp_path}/empty/*.parquet")
    with pytest.raises(DataError, match=r"no such data file"):
        StreamSource.open(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"^bad.parquet: not a readable parquet file"):
        StreamSource.open(tmp_path / "bad.parquet")
    write(tmp_path / "none" / "a.parquet", x1=np.zeros(0), y=np.zeros(0))
    with pytest.raises(DataError, match=r"hold no rows"):
        StreamSource.open(tmp_path / "none")


def test_a_link_planted_in_the_folder_is_refused(tmp_path, parquet_folder):
    folder = parquet_folder(files=1)
    outside = write(tmp_path / "outside" / "secret.parquet")
    os.symlink(outside, folder / "part-009.parquet")
    with pytest.raises(DataError, match=r"part-009.parquet is a link; accepted: regular"):
        StreamSource.open(folder)
    with pytest.raises(DataError, match=r"is a link"):
        StreamSource.open(f"{folder}/*.parquet")
    os.unlink(folder / "part-009.parquet")
    os.mkfifo(folder / "part-010.parquet")
    with pytest.raises(DataError, match=r"not a regular file"):
        StreamSource.open(folder)


def test_fingerprint_follows_the_footers(parquet_folder):
    folder = parquet_folder(files=2)
    before = StreamSource.open(folder).fingerprint()
    assert before["rows"] == 2000 and list(before["files"]) == [
        "part-000.parquet",
        "part-001.parquet",
    ]
    assert StreamSource.open(folder).fingerprint() == before
    table = pq.read_table(folder / "part-001.parquet")
    pq.write_table(table.slice(0, 999), folder / "part-001.parquet", row_group_size=200)
    after = StreamSource.open(folder).fingerprint()
    assert after["files"]["part-000.parquet"] == before["files"]["part-000.parquet"]
    assert after["files"]["part-001.parquet"] != before["files"]["part-001.parquet"]


def test_mlp_train_refuses_a_mismatch_or_a_link_with_exit_2(tmp_path, parquet_folder):
    from conftest import assert_exit_2, mlp

    folder = parquet_folder(files=2)
    config = tmp_path / "events.yaml"
    config.write_text(f"data: {{source: parquet, path: {folder}, stream: true}}\n")
    table = pq.read_table(folder / "part-001.parquet")
    pq.write_table(
        table.set_column(4, "y", table.column("y").cast(pa.float32())), folder / "part-001.parquet"
    )
    assert_exit_2(
        mlp("train", config), "part-001.parquet: column 'y' is float here but double in part-000"
    )
    (folder / "part-001.parquet").unlink()
    os.symlink(folder / "part-000.parquet", folder / "part-001.parquet")
    assert_exit_2(mlp("train", config), "part-001.parquet is a link")

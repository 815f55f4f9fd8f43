"""Data: every source, splits, files and their errors, the Preprocessor and task inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpcli.config.registry import BUNDLED_SOURCES, SYNTHETIC_SOURCES, source_task
from mlpcli.config.schema import build_config
from mlpcli.data import Dataset, Preprocessor, load_dataset
from mlpcli.data.columns import Columns, as_frame
from mlpcli.data.files import format_of, read_table, write_table
from mlpcli.data.preprocess import infer_task
from mlpcli.data.sources import read_source
from mlpcli.data.splits import split_frame
from mlpcli.data.synthetic import bundled
from mlpcli.errors import ConfigError, DataError


def dataset(tmp_path: Path, **data) -> Dataset:
    return load_dataset(build_config({"data": data}, tmp_path))


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(3.0, 2.0, n),
            "b": rng.integers(0, 10, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "label": rng.choice(["cat", "dog"], n),
        }
    )


def assert_split_ok(ds, total: int) -> None:
    assert len(ds.train) + len(ds.val) + len(ds.test) == total
    splits = (ds.train, ds.val, ds.test)
    if isinstance(ds.train, Columns):  # no row labels: a generated row's values are its own
        ids = [set(map(tuple, split.numbers(ds.features))) for split in splits]
        assert sum(map(len, ids)) == total
    else:
        ids = [set(split.index) for split in splits]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


# ---------------------------------------------------------------- generated and bundled sources


def source_config(name: str, seed: int = 0):
    data = {"source": name}
    if name in SYNTHETIC_SOURCES:
        data["n_samples"] = 300
    return build_config({"seed": seed, "data": data})


@pytest.mark.parametrize("name", [*SYNTHETIC_SOURCES, *BUNDLED_SOURCES])
def test_every_source_loads_with_its_task_and_sizes(name):
    config = source_config(name)
    ds = load_dataset(config)
    total = 300 if name in SYNTHETIC_SOURCES else len(bundled(name))
    assert ds.task == source_task(name)
    # The registry's task agrees with what the rows themselves say.
    splits = [as_frame(ds.split(n)) for n in ("train", "val", "test")]
    assert infer_task(pd.concat(splits), ds.targets) == ds.task
    assert_split_ok(ds, total)
    assert abs(len(ds.test) - 0.2 * total) <= 1
    assert abs(len(ds.val) - 0.2 * total) <= 1
    assert ds.features and ds.targets and not set(ds.features) & set(ds.targets)
    for frame in splits:
        assert list(frame.columns) == list(ds.train.columns)
        assert not frame[ds.features + ds.targets].isna().any().any()
    assert all(pd.api.types.is_numeric_dtype(splits[0][c]) for c in ds.features)
    prep = Preprocessor.fit(ds.train, ds.features, ds.targets, ds.task)
    assert prep.transform(ds.test).shape == (len(ds.test), prep.in_dim)


@pytest.mark.parametrize("name", [*SYNTHETIC_SOURCES, *BUNDLED_SOURCES])
def test_same_seed_same_rows_other_seed_other_rows(name):
    first = load_dataset(source_config(name, seed=3))
    again = load_dataset(source_config(name, seed=3))
    other = load_dataset(source_config(name, seed=4))
    for split in ("train", "val", "test"):
        pd.testing.assert_frame_equal(as_frame(first.split(split)), as_frame(again.split(split)))
    assert not as_frame(first.train).equals(as_frame(other.train))
    if name in SYNTHETIC_SOURCES:  # the generated values themselves change with the seed
        a = as_frame(read_source(source_config(name, 3).data, 3))
        b = as_frame(read_source(source_config(name, 4).data, 4))
        assert not np.allclose(a[first.features].to_numpy(), b[first.features].to_numpy())


def test_synthetic_noise_and_size_are_used():
    quiet = read_source(
        build_config({"data": {"source": "sine", "n_samples": 50, "noise": 0.0}}).data, 0
    )
    noisy = read_source(
        build_config({"data": {"source": "sine", "n_samples": 50, "noise": 0.5}}).data, 0
    )
    assert len(quiet) == 50
    np.testing.assert_allclose(quiet["y"], np.sin(2 * np.pi * quiet["x1"]), atol=1e-12)
    assert np.abs(noisy["y"] - np.sin(2 * np.pi * noisy["x1"])).max() > 0.1


def test_xor_labels_follow_the_quadrants():
    frame = read_source(build_config({"data": {"source": "xor", "noise": 0.0}}).data, 0)
    expected = ((frame["x1"] > 0) ^ (frame["x2"] > 0)).astype(int)
    assert (frame["y"] == expected).all()


# ---------------------------------------------------------------- splits


def test_stratified_split_keeps_class_proportions(tmp_path):
    frame = pd.DataFrame({"x": np.arange(120.0), "y": ["a"] * 90 + ["b"] * 30})
    frame.to_csv(tmp_path / "d.csv", index=False)
    for seed in range(4):
        ds = load_dataset(
            build_config({"seed": seed, "data": {"source": "csv", "path": "d.csv"}}, tmp_path)
        )
        counts = [(s["y"] == "b").sum() for s in (ds.train, ds.val, ds.test)]
        assert counts == [18, 6, 6], (seed, counts)


@pytest.mark.parametrize("seed", range(5))
def test_split_frame_stratifies_exactly(seed):
    frame = pd.DataFrame({"x": np.arange(100), "y": [0] * 80 + [1] * 20})
    rest, part = split_frame(frame, 0.25, seed, frame["y"])
    assert len(part) == 25 and len(rest) == 75
    assert (part["y"] == 1).sum() == 5
    assert set(rest.index) | set(part.index) == set(frame.index)


def test_split_frame_falls_back_when_a_class_is_too_rare():
    frame = pd.DataFrame({"x": np.arange(20), "y": [0] * 19 + [1]})
    rest, part = split_frame(frame, 0.2, 0, frame["y"])
    assert len(rest) == 16 and len(part) == 4


def test_split_frame_with_zero_fraction_keeps_every_row():
    frame = pd.DataFrame({"x": np.arange(10)})
    rest, part = split_frame(frame, 0.0, 0, None)
    assert len(rest) == 10 and len(part) == 0


def test_zero_val_split_gives_an_empty_validation_set(tmp_path):
    table(50).to_csv(tmp_path / "d.csv", index=False)
    ds = dataset(tmp_path, source="csv", path="d.csv", target="label", val_split=0.0)
    assert len(ds.val) == 0 and len(ds.test) == 10 and len(ds.train) == 40


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_files_load(tmp_path, suffix):
    frame = table(50)
    path = tmp_path / f"d.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    ds = dataset(tmp_path, source=suffix, path=path.name, target="label")
    assert ds.task == "binary"
    assert ds.features == ["a", "b", "colour"] and ds.targets == ["label"]
    assert_split_ok(ds, 50)
    pd.testing.assert_frame_equal(
        pd.concat([ds.train, ds.val, ds.test]).sort_index(), frame, check_dtype=False
    )


def test_features_can_be_chosen(tmp_path):
    table(30).to_csv(tmp_path / "d.csv", index=False)
    ds = dataset(tmp_path, source="csv", path="d.csv", target="label", features=["colour", "a"])
    assert ds.features == ["colour", "a"]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"target": "lable"}, "did you mean 'label'"),
        ({"target": "label", "features": ["a", "c"]}, "no feature column 'c'"),
        ({"target": "label", "features": ["a", "label"]}, "also a target"),
        ({}, "data.target"),
    ],
)
def test_bad_columns_are_named(tmp_path, data, fragment):
    table(30).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises((DataError, ConfigError), match=fragment):
        dataset(tmp_path, source="csv", path="d.csv", **data)


def test_npz_loads_x_and_y(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    ds = dataset(tmp_path, source="npz", path="d.npz")
    assert ds.features == ["x1", "x2", "x3"] and ds.targets == ["y"]
    assert ds.task == "regression"
    assert_split_ok(ds, 40)
    np.testing.assert_array_equal(ds.train[ds.features].to_numpy(), x[ds.train.index])
    np.testing.assert_array_equal(ds.train["y"].to_numpy(), y[ds.train.index])


def test_npz_with_two_dimensional_y_gives_one_column_per_output(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=40), y=rng.integers(0, 2, (40, 3)))
    ds = dataset(tmp_path, source="npz", path="d.npz")
    assert ds.features == ["x1"] and ds.targets == ["y1", "y2", "y3"]
    assert ds.task == "multilabel"


def test_explicit_val_and_test_files_are_used_whole(tmp_path):
    table(40, seed=0).to_csv(tmp_path / "train.csv", index=False)
    table(7, seed=1).to_csv(tmp_path / "val.csv", index=False)
    table(9, seed=2).to_csv(tmp_path / "test.csv", index=False)
    ds = dataset(
        tmp_path,
        source="csv",
        path="train.csv",
        val_path="val.csv",
        test_path="test.csv",
        target="label",
    )
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 7, 9)
    pd.testing.assert_frame_equal(ds.val, pd.read_csv(tmp_path / "val.csv"))
    pd.testing.assert_frame_equal(ds.test, pd.read_csv(tmp_path / "test.csv"))


def test_explicit_test_file_leaves_val_split_of_the_main_file(tmp_path):
    table(50).to_parquet(tmp_path / "train.parquet")
    table(9, seed=2).to_parquet(tmp_path / "test.parquet")
    ds = dataset(
        tmp_path,
        source="parquet",
        path="train.parquet",
        test_path="test.parquet",
        target="label",
        val_split=0.2,
    )
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 9)


def test_explicit_split_file_must_have_the_columns(tmp_path):
    table(40).to_csv(tmp_path / "train.csv", index=False)
    table(9).drop(columns="colour").to_csv(tmp_path / "val.csv", index=False)
    with pytest.raises(DataError, match=r"val\.csv.*'colour'"):
        dataset(tmp_path, source="csv", path="train.csv", val_path="val.csv", target="label")


def write_bad(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "absent.csv"
    if kind == "empty":
        path = tmp_path / "empty.csv"
        path.write_text("")
    elif kind == "header only":
        path = tmp_path / "header.csv"
        path.write_text("a,b,label\n")
    elif kind == "npz without X":
        path = tmp_path / "noX.npz"
        np.savez(path, y=np.arange(5))
    elif kind == "npz rows differ":
        path = tmp_path / "rows.npz"
        np.savez(path, X=np.zeros((5, 2)), y=np.zeros(4))
    elif kind == "damaged parquet":
        path = tmp_path / "bad.parquet"
        path.write_bytes(b"PAR1 not really parquet")
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "no such data file"),
        ("empty", "empty"),
        ("header only", "no rows"),
        ("npz without X", "missing X"),
        ("npz rows differ", "as many rows"),
        ("damaged parquet", "not a readable parquet file"),
    ],
)
def test_unreadable_files_give_a_data_error_naming_the_file(tmp_path, kind, fragment):
    path = write_bad(tmp_path, kind)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    # the same error reaches a user through load_dataset
    source = format_of(path)
    with pytest.raises(DataError, match=path.name):
        dataset(tmp_path, source=source, path=path.name, target="label")


@pytest.mark.parametrize("name", ["data.txt", "data", "data.xlsx"])
def test_unknown_suffix_names_the_file_and_the_accepted_ones(tmp_path, name):
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(path) in str(info.value)
    assert ".csv" in str(info.value) and ".parquet" in str(info.value) and ".npz" in str(info.value)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
    with pytest.raises(DataError, match=path.name):
        read_table(path)


# ---------------------------------------------------------------- bad values


def test_missing_values_name_the_column_and_count(tmp_path):
    frame = table(60)
    frame.loc[[3, 17, 41], "a"] = np.nan
    frame.loc[[8], "label"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError) as info:
        dataset(tmp_path, source="csv", path="d.csv", target="label")
    message = str(info.value)
    assert "d.csv" in message and "'a' (3 rows)" in message and "'label' (1 row)" in message


def test_preprocessor_refuses_missing_values():
    frame = table(20)
    frame.loc[[1, 2], "b"] = np.nan
    with pytest.raises(DataError, match=r"train: missing values in 'b' \(2 rows\)"):
        Preprocessor.fit(frame, ["a", "b"], ["label"], "binary", where="train")


@pytest.mark.parametrize("seed", range(4))
def test_stray_text_in_a_numeric_column_names_column_and_file_row(tmp_path, seed):
    frame = table(60).astype({"a": object})
    frame.loc[5, "a"] = "oops"
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError) as info:
        load_dataset(
            build_config(
                {"seed": seed, "data": {"source": "csv", "path": "d.csv", "target": "label"}},
                tmp_path,
            )
        )
    message = str(info.value)
    assert "column 'a'" in message and "row 6" in message and "'oops'" in message


def test_text_column_of_words_is_categorical_not_a_typo():
    frame = table(30)
    prep = Preprocessor.fit(frame, ["a", "colour"], ["label"], "binary")
    assert prep.categorical == {"colour": ["blue", "green", "red"]}
    assert list(prep.numeric) == ["a"]


# ---------------------------------------------------------------- the Preprocessor


def test_preprocessor_is_fitted_on_the_training_rows_only(tmp_path):
    frame = table(200)
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = dataset(tmp_path, source="csv", path="d.csv", target="label")
    prep = Preprocessor.fit(ds.train, ds.features, ds.targets, ds.task)
    mean, std = prep.numeric["a"]
    assert mean == pytest.approx(ds.train["a"].mean())
    assert std == pytest.approx(ds.train["a"].std(ddof=0))
    assert mean != pytest.approx(frame["a"].mean(), abs=1e-9)
    x = prep.transform(ds.train)
    np.testing.assert_allclose(x[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, :2].std(axis=0), 1, atol=1e-5)


def test_standardize_false_leaves_values_alone():
    frame = table(30)
    prep = Preprocessor.fit(frame, ["a", "b"], ["label"], "binary", standardize=False)
    np.testing.assert_allclose(prep.transform(frame), frame[["a", "b"]].to_numpy(), rtol=1e-6)


def test_constant_column_does_not_divide_by_zero():
    frame = pd.DataFrame({"a": [2.0] * 10, "y": np.arange(10.0)})
    prep = Preprocessor.fit(frame, ["a"], ["y"], "regression")
    assert np.isfinite(prep.transform(frame)).all()


@pytest.mark.parametrize("task", ["binary", "classification", "regression"])
def test_json_round_trip_gives_identical_outputs(task):
    frame = table(80)
    if task == "classification":
        frame["label"] = np.resize(["cat", "dog", "emu"], 80)
    target = "b" if task == "regression" else "label"
    features = ["a", "colour"] if task == "regression" else ["a", "b", "colour"]
    prep = Preprocessor.fit(frame, features, [target], task)
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep
    np.testing.assert_array_equal(again.transform(frame), prep.transform(frame))
    np.testing.assert_array_equal(again.encode_targets(frame), prep.encode_targets(frame))
    out = np.random.default_rng(0).random((len(frame), prep.out_dim)).astype(np.float32)
    pd.testing.assert_frame_equal(again.decode(out), prep.decode(out))


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], ["no", "yes"], [3, 7, 11]])
def test_labels_are_encoded_and_decoded_back_to_the_originals(labels):
    values = list(np.resize(labels, 30))
    frame = pd.DataFrame({"x": np.arange(30.0), "y": values})
    task = "binary" if len(labels) == 2 else "classification"
    prep = Preprocessor.fit(frame, ["x"], ["y"], task)
    assert prep.labels == sorted(labels)
    codes = prep.encode_targets(frame)
    if task == "binary":
        assert codes.shape == (30, 1) and set(codes[:, 0]) == {0.0, 1.0}
        outputs = codes
    else:
        assert codes.dtype == np.int64
        outputs = np.eye(len(labels))[codes]
    decoded = prep.decode(outputs)
    assert list(decoded.columns) == ["y"]
    assert decoded["y"].tolist() == values
    assert list(prep.probabilities(outputs).columns) == [f"proba_{v}" for v in sorted(labels)]


def test_bool_labels_survive_json():
    frame = pd.DataFrame({"x": np.arange(20.0), "y": [True, False] * 10})
    prep = Preprocessor.fit(frame, ["x"], ["y"], "binary")
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again.decode(again.encode_targets(frame))["y"].tolist() == frame["y"].tolist()


def test_unseen_class_at_encode_is_named():
    frame = pd.DataFrame({"x": np.arange(10.0), "y": ["cat", "dog"] * 5})
    prep = Preprocessor.fit(frame, ["x"], ["y"], "binary")
    with pytest.raises(DataError, match="'emu', a class not seen"):
        prep.encode_targets(pd.DataFrame({"x": [1.0], "y": ["emu"]}))


def test_binary_needs_two_classes():
    frame = pd.DataFrame({"x": np.arange(9.0), "y": ["a", "b", "c"] * 3})
    with pytest.raises(DataError, match="exactly 2 classes"):
        Preprocessor.fit(frame, ["x"], ["y"], "binary")


def test_regression_targets_are_scaled_and_unscaled_per_output():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=50), "y1": rng.normal(100, 10, 50), "y2": rng.normal(-3, 0.1, 50)}
    )
    prep = Preprocessor.fit(frame, ["x"], ["y1", "y2"], "regression")
    assert prep.out_dim == 2
    encoded = prep.encode_targets(frame)
    np.testing.assert_allclose(encoded.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(encoded.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(prep.decode(encoded).to_numpy(), frame[["y1", "y2"]], rtol=1e-5)


def test_one_hot_matches_columns_by_name_in_any_order():
    frame = table(40)
    prep = Preprocessor.fit(frame, ["colour", "a", "b"], ["label"], "binary")
    assert prep.in_dim == 2 + 3
    x = prep.transform(frame)
    shuffled = frame[["label", "b", "a", "colour"]]
    np.testing.assert_array_equal(prep.transform(shuffled), x)
    one_hot = x[:, :3]
    expected = np.stack([(frame["colour"] == c).to_numpy() for c in ("blue", "green", "red")], 1)
    np.testing.assert_array_equal(one_hot, expected.astype(np.float32))


def test_unseen_category_at_transform_is_named():
    prep = Preprocessor.fit(table(40), ["a", "colour"], ["label"], "binary")
    new = pd.DataFrame({"a": [1.0, 2.0], "colour": ["red", "mauve"]})
    with pytest.raises(DataError) as info:
        prep.transform(new, where="input.csv")
    message = str(info.value)
    assert "input.csv" in message and "'colour'" in message and "'mauve'" in message
    assert "blue, green, red" in message


def test_missing_feature_column_at_transform_is_named():
    prep = Preprocessor.fit(table(40), ["a", "b", "colour"], ["label"], "binary")
    with pytest.raises(DataError, match=r"no feature column 'b'"):
        prep.transform(table(5).drop(columns="b"))


def test_text_where_training_had_numbers_is_refused():
    prep = Preprocessor.fit(table(40), ["a"], ["label"], "binary")
    with pytest.raises(DataError, match="'a'"):
        prep.transform(pd.DataFrame({"a": ["x", "y"]}))


# ---------------------------------------------------------------- task inference

N = 200
RNG = np.random.default_rng(0)
TASK_CASES = {
    "float": (RNG.normal(size=N), "regression"),
    "many integers": (RNG.integers(0, 1000, N), "regression"),
    "0/1": (RNG.integers(0, 2, N), "binary"),
    "yes/no strings": (RNG.choice(["yes", "no"], N), "binary"),
    "bools": (RNG.integers(0, 2, N).astype(bool), "binary"),
    "-1/1 floats": (RNG.choice([-1.0, 1.0], N), "binary"),
    "five integers": (RNG.integers(0, 5, N), "classification"),
    "three strings": (RNG.choice(["a", "b", "c"], N), "classification"),
}


@pytest.mark.parametrize("case", TASK_CASES)
def test_infer_task_single_target(case):
    values, expected = TASK_CASES[case]
    assert infer_task(pd.DataFrame({"y": values}), ["y"]) == expected


@pytest.mark.parametrize(
    "columns, expected",
    [
        ({"p": RNG.integers(0, 2, N), "q": RNG.integers(0, 2, N)}, "multilabel"),
        ({"p": RNG.integers(0, 2, N).astype(bool), "q": RNG.integers(0, 2, N)}, "multilabel"),
        ({"p": RNG.normal(size=N), "q": RNG.normal(size=N)}, "regression"),
        ({"p": RNG.integers(0, 2, N), "q": RNG.normal(size=N)}, "regression"),
    ],
)
def test_infer_task_several_targets(columns, expected):
    assert infer_task(pd.DataFrame(columns), list(columns)) == expected


def test_tables_written_as_csv_read_back_unchanged(tmp_path):
    frame = pd.DataFrame(
        {
            "x": [0.1, 1 / 3, -2.5e-8],
            "label": ["a", "b,c", 'say "hi"'],
            "n": [1, 2, 3],
            "flag": [True, False, True],
        }
    )
    write_table(frame, tmp_path / "arrow.csv")
    pd.testing.assert_frame_equal(read_table(tmp_path / "arrow.csv"), frame)
    # Columns Arrow cannot write (lists) or type (mixed objects) go through pandas instead.
    odd = frame.assign(tags=[[1, 2], [], [3]], mixed=[1, "x", 2.5])
    write_table(odd, tmp_path / "odd.csv")
    back = read_table(tmp_path / "odd.csv")
    assert list(back.columns) == list(odd.columns) and back["tags"][0] == "[1, 2]"
    with pytest.raises(DataError, match="already exists"):
        write_table(frame, tmp_path / "odd.csv")

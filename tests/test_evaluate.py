"""Eval and predict on saved runs: the same numbers as training, labels back in their own values."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import mlpcli
from mlpcli.config import build_config
from mlpcli.errors import CheckpointError, DataError
from mlpcli.evaluate import evaluate_run, predict_file


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A classifier with string labels ('setosa', ...) trained on the bundled iris set."""
    config = build_config(
        {
            "name": "iris",
            "data": {"source": "iris"},
            "model": {"hidden": [16]},
            "optim": {"lr": 0.02},
            "train": {"epochs": 60, "batch_size": 16},
        }
    )
    return mlpcli.train(config, out=tmp_path_factory.mktemp("runs"), quiet=True)


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """Regression from a CSV with a categorical column, a numeric one, and two targets."""
    folder = tmp_path_factory.mktemp("tabular")
    rng = np.random.default_rng(0)
    n = 600
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.uniform(0, 10, size=n)
    offset = pd.Series(colour).map({"red": 0.0, "green": 50.0, "blue": 100.0}).to_numpy()
    frame = pd.DataFrame(
        {
            "colour": colour,
            "size": size,
            "price": 1000 + 20 * size + offset + rng.normal(0, 1, n),
            "weight": 3 * size + rng.normal(0, 0.1, n),
        }
    )
    frame.iloc[:450].to_csv(folder / "train.csv", index=False)
    frame.iloc[450:].to_csv(folder / "test.csv", index=False)
    config = folder / "prices.yaml"
    config.write_text(
        "data: {source: csv, path: train.csv, target: [price, weight], test_split: 0}\n"
        "model: {hidden: [32]}\noptim: {lr: 0.01}\ntrain: {epochs: 80, batch_size: 32}\n"
    )
    result = mlpcli.train(config, out=folder / "runs", quiet=True)
    return result, folder


def test_eval_of_a_run_reproduces_its_test_metrics(iris_run):
    metrics = evaluate_run(iris_run.run_dir)
    assert metrics == pytest.approx(iris_run.summary["metrics"]["test"], rel=1e-6)
    assert metrics["accuracy"] >= 0.85
    val = evaluate_run(iris_run.run_dir, split="val")
    assert val == pytest.approx(iris_run.summary["metrics"]["val"], rel=1e-6)


def test_eval_of_the_model_file_alone(iris_run):
    metrics = evaluate_run(iris_run.run_dir / "model.safetensors")
    assert metrics == pytest.approx(iris_run.summary["metrics"]["test"], rel=1e-6)


def test_predict_restores_string_labels_and_matches_columns_by_name(iris_run, tmp_path):
    model = mlpcli.load(iris_run.run_dir)
    test = model.split("test")
    shuffled = test[list(reversed(test.columns))].drop(columns="y")
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out = predict_file(iris_run.run_dir, tmp_path / "new.csv", proba=True)
    assert list(out.columns[: len(shuffled.columns)]) == list(shuffled.columns)
    assert set(out["y"]) <= {"setosa", "versicolor", "virginica"}
    assert (out["y"].to_numpy() == test["y"].to_numpy()).mean() >= 0.85
    probs = out[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (
        probs.argmax(axis=1)
        == pd.Series(out["y"]).map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    ).all()


def test_predict_keeps_a_target_column_that_is_already_there(iris_run):
    model = mlpcli.load(iris_run.run_dir)
    out = model.predict(model.split("test"))
    assert "y" in out and "predicted_y" in out
    assert (out["y"] == out["predicted_y"]).mean() >= 0.85


def test_csv_regression_with_categories_and_two_targets(tabular_run):
    result, folder = tabular_run
    metrics = evaluate_run(result.run_dir, data=folder / "test.csv")
    assert metrics["r2"] >= 0.95
    assert "test" not in result.summary["metrics"]
    new = pd.read_csv(folder / "test.csv").drop(columns=["price", "weight"])
    out = mlpcli.load(result.run_dir).predict(new)
    truth = pd.read_csv(folder / "test.csv")
    # Predictions come back in the targets' own units (prices around 1000-1300).
    assert np.abs(out["price"] - truth["price"]).mean() < 15
    assert np.abs(out["weight"] - truth["weight"]).mean() < 1.5


def test_predict_errors_name_the_column(tabular_run, tmp_path):
    result, _ = tabular_run
    model = mlpcli.load(result.run_dir)
    with pytest.raises(DataError, match="'size'"):
        model.predict(pd.DataFrame({"colour": ["red"]}))
    with pytest.raises(DataError, match="'purple'.*accepted: blue, green, red"):
        model.predict(pd.DataFrame({"colour": ["purple"], "size": [1.0]}))
    with pytest.raises(DataError, match="size"):
        model.predict(pd.DataFrame({"colour": ["red"], "size": [np.nan]}))
    with pytest.raises(DataError, match="--proba"):
        model.predict(pd.DataFrame({"colour": ["red"], "size": [1.0]}), proba=True)


class Marker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["model.safetensors", "run/model.safetensors", "model.pt"])
def test_a_crafted_pickle_is_refused_and_never_run(tmp_path, name):
    marker = tmp_path / "marker"
    target = tmp_path / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(CheckpointError, match="not a model file"):
        mlpcli.load(target.parent if name.startswith("run/") else target)
    assert not marker.exists()


def test_random_bytes_and_missing_paths_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        mlpcli.load(junk)
    with pytest.raises(CheckpointError, match="no such run folder"):
        mlpcli.load(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        mlpcli.load(tmp_path)

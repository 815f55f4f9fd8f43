"""`mlp plot`: decision regions scored exactly as `mlp predict` scores rows, hidden units and
detectors against the weights themselves, the sweep's panels, and every refusal with exit 2."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from typer.testing import CliRunner

import mlpcli
from mlpcli.boundary import boundary_grid, hidden_activations, neuron_maps
from mlpcli.cli import app
from mlpcli.config import build_config
from mlpcli.detectors import detector_weights
from mlpcli.evaluate import load
from mlpcli.sweep import run_sweep
from mlpcli.sweep.executor import InlineExecutor

runner = CliRunner()
QUICK = {"optim": {"lr": 0.02}, "train": {"epochs": 3, "batch_size": 64}}


def mlp(*args):
    return runner.invoke(app, [str(a) for a in args])


def train(out, name, data, hidden=(8,), **extra):
    config = build_config({"name": name, "data": data, "model": {"hidden": list(hidden)}, **QUICK})
    return mlpcli.train(config, [*extra.get("overrides", [])], out=out, name=name, quiet=True)


def assert_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small runs shared by the tests: moons, a CSV with a held numeric and a categorical
    feature (three classes), its regression twin, a linear model and digits."""
    root = tmp_path_factory.mktemp("plot")
    rng = np.random.default_rng(0)
    n = 240
    table = pd.DataFrame(
        {
            "a": rng.uniform(-2, 2, n),
            "b": rng.uniform(0, 10, n),
            "extra": rng.normal(5.0, 2.0, n),
            "colour": rng.choice(["red", "blue", "blue"], n),
        }
    )
    table["y"] = np.digitize(table["a"] + table["b"] / 5, [0.5, 1.5])
    table["z"] = table["a"] * table["b"] + (table["colour"] == "red")
    table.drop(columns="z").to_csv(root / "classes.csv", index=False)
    table.drop(columns="y").to_csv(root / "surface.csv", index=False)
    moons = {"source": "moons", "n_samples": 200, "noise": 0.2}
    names = {
        "moons": train(root, "moons", moons),
        "classes": train(root, "classes", {"source": "csv", "path": str(root / "classes.csv")}),
        "surface": train(
            root, "surface", {"source": "csv", "path": str(root / "surface.csv"), "target": "z"}
        ),
        "linear": train(root, "linear", moons, hidden=()),
        "digits": train(root, "digits", {"source": "digits"}, hidden=(12,)),
    }
    return {k: v.run_dir for k, v in names.items()}


# ------------------------------------------------------------ the grid is what predict gives


@pytest.mark.parametrize("name", ["moons", "classes"])
def test_grid_probabilities_equal_mlp_predict_proba(runs, tmp_path, name):
    grid = boundary_grid(runs[name], resolution=9)
    grid.frame.to_csv(tmp_path / "grid.csv", index=False)
    result = mlp("predict", runs[name], tmp_path / "grid.csv", "--proba", "-o", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "p.csv")
    expected = grid.probabilities()
    assert list(expected.columns) == [c for c in predicted.columns if c.startswith("proba_")]
    np.testing.assert_allclose(predicted[expected.columns], expected, rtol=0, atol=1e-6)


def test_regression_surface_equals_mlp_predict(runs, tmp_path):
    grid = boundary_grid(runs["surface"], resolution=9)
    grid.frame.to_csv(tmp_path / "grid.csv", index=False)
    result = mlp("predict", runs["surface"], tmp_path / "grid.csv", "-o", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "p.csv")["z"].to_numpy()
    np.testing.assert_allclose(predicted, grid.values()[:, 0], rtol=1e-6, atol=1e-5)


def test_other_features_are_held_at_training_mean_and_most_frequent_value(runs):
    grid = boundary_grid(runs["classes"], resolution=5)
    train = load(runs["classes"]).split("train")
    assert grid.features == ("a", "b")  # the first two numeric inputs
    assert grid.held["extra"] == pytest.approx(train["extra"].mean())
    assert grid.held["colour"] == train["colour"].value_counts().idxmax() == "blue"
    assert (grid.frame["extra"] == grid.held["extra"]).all()
    assert (grid.frame["colour"] == "blue").all()
    other = boundary_grid(runs["classes"], ["extra", "a"], resolution=5)
    assert other.features == ("extra", "a") and other.held["b"] == pytest.approx(train["b"].mean())


def test_grid_spans_the_points_plus_a_margin(runs):
    grid = boundary_grid(runs["moons"], resolution=7)
    x = pd.concat([grid.train, grid.test])["x1"]
    span = x.max() - x.min()
    assert grid.xs[0] == pytest.approx(x.min() - 0.1 * span)
    assert grid.xs[-1] == pytest.approx(x.max() + 0.1 * span)
    assert len(grid.frame) == 49 and grid.frame["x1"].iloc[1] == grid.xs[1]
    assert grid.frame["x2"].iloc[7] == grid.ys[1]  # row i is (xs[i % n], ys[i // n])


# ------------------------------------------------------------ hidden units and detectors


def test_neuron_maps_are_the_first_layer_activations_most_active_first(runs):
    grid = boundary_grid(runs["moons"], resolution=6)
    maps = neuron_maps(grid, limit=5)
    model = load(runs["moons"]).model
    x = torch.from_numpy(grid.predictor.preprocessor.transform(grid.frame))
    oracle = torch.relu(x @ model[0].weight.T + model[0].bias).detach().numpy()
    assert maps.total == 8 and len(maps.units) == 5 and maps.activation == "relu"
    activity = np.abs(oracle).mean(axis=0)
    assert list(maps.units) == list(np.argsort(-activity, kind="stable")[:5])
    for unit, values in zip(maps.units, maps.maps):
        np.testing.assert_allclose(values.ravel(), oracle[:, unit], atol=1e-6)


def test_detectors_are_first_layer_weights_as_images(runs):
    found = detector_weights(runs["digits"], limit=5)
    predictor = load(runs["digits"])
    weights = predictor.model[0].weight.detach().numpy()
    train = predictor.split("train")
    activity = np.abs(hidden_activations(predictor, train, "train")).mean(axis=0)
    assert found.total == 12 and found.units == list(np.argsort(-activity, kind="stable")[:5])
    constant = (train[predictor.preprocessor.features].nunique() <= 1).to_numpy().reshape(8, 8)
    assert constant.any()  # digits has blank border pixels
    for unit, image in zip(found.units, found.images):
        assert np.isnan(image[constant]).all()
        np.testing.assert_array_equal(image[~constant], weights[unit].reshape(8, 8)[~constant])


# ------------------------------------------------------------ the command


def test_plot_writes_the_figures_and_names_them(runs):
    result = mlp("plot", runs["classes"], "--boundary", "--neurons")
    assert result.exit_code == 0, result.output
    path = runs["classes"] / "plots" / "boundary.png"
    assert f"wrote {path}" in result.stderr and "held at their training mean" in result.stderr
    assert imread(path).shape[2] in (3, 4)
    result = mlp("plot", runs["digits"], "--detectors")
    assert result.exit_code == 0, result.output
    assert imread(runs["digits"] / "plots" / "detectors.png").ndim == 3


def test_a_model_file_alone_is_drawn_without_points(runs, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(runs["classes"] / "model.safetensors", alone / "model.safetensors")
    result = mlp("plot", alone / "model.safetensors", "--boundary")
    assert result.exit_code == 0, result.output
    assert "drawn without the data's points" in result.stderr
    assert (alone / "plots" / "boundary.png").is_file()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--features", "a,nope"], ["'nope'", "accepted: a, b, extra"]),
        (["--features", "a,a"], ["'a' is named twice", "accepted: a, b, extra"]),
        (["--features", "a,colour"], ["'colour' is a categorical column", "a, b, extra"]),
        (["--features", "a"], ["expected two names"]),
    ],
)
def test_bad_features_are_refused(runs, args, needles):
    assert_exit_2(mlp("plot", runs["classes"], "--boundary", *args), "--features", *needles)


def test_refusals(runs, tmp_path):
    assert_exit_2(mlp("plot", runs["moons"]), "--boundary / --detectors")
    assert_exit_2(mlp("plot", runs["moons"], "--neurons"), "--neurons")
    assert_exit_2(mlp("plot", runs["linear"], "--boundary", "--neurons"), "linear model")
    assert_exit_2(mlp("plot", runs["linear"], "--detectors", "--boundary"), "data.image_shape")
    assert not (runs["linear"] / "plots" / "boundary.png").exists()  # checked before drawing
    assert_exit_2(mlp("plot", runs["moons"], "--detectors"), "data.image_shape", "digits 8x8")
    sine = train(tmp_path, "sine", {"source": "sine", "n_samples": 100}).run_dir
    assert_exit_2(mlp("plot", sine, "--boundary"), "two numeric input features", "has 1 (x1)")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("name: x\n")
    assert_exit_2(mlp("plot", unfinished, "--boundary"), "no model.safetensors", "--resume")


def test_detectors_check_the_image_shape(tmp_path):
    data = {"source": "moons", "n_samples": 100, "image_shape": [3, 3]}
    run = train(tmp_path, "shaped", data).run_dir
    assert_exit_2(mlp("plot", run, "--detectors"), "data.image_shape", "9 pixels", "2 inputs")
    flat = train(tmp_path, "flat", {"source": "digits"}, hidden=()).run_dir
    assert_exit_2(mlp("plot", flat, "--detectors"), "linear model")


# ------------------------------------------------------------ sweeps


def test_a_two_feature_sweep_draws_one_panel_per_point(tmp_path):
    config = build_config(
        {
            "name": "w",
            "data": {"source": "moons", "n_samples": 150},
            "model": {"hidden": [4]},
            **QUICK,
        }
    )
    result = run_sweep(config, hidden=[2, 5], out=tmp_path, quiet=True, executor=InlineExecutor())
    path = result.sweep_dir / "plots" / "boundaries.png"
    assert imread(path).ndim == 3
    path.unlink()
    redrawn = mlp("plot", result.sweep_dir, "--boundary")
    assert redrawn.exit_code == 0 and path.is_file(), redrawn.output
    assert_exit_2(mlp("plot", result.sweep_dir, "--detectors"), "sweep folder", "trial-000")


def test_a_sweep_on_more_features_draws_no_panels(runs, tmp_path):
    data = {"source": "csv", "path": str(runs["classes"].parent / "classes.csv")}
    config = build_config({"name": "c", "data": data, "model": {"hidden": [4]}, **QUICK})
    result = run_sweep(config, hidden=[2], out=tmp_path, quiet=True, executor=InlineExecutor())
    assert not (result.sweep_dir / "plots" / "boundaries.png").exists()
    assert_exit_2(mlp("plot", result.sweep_dir, "--boundary"), "exactly two", "4 input features")

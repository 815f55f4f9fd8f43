"""`mlp plot`: decision regions scored exactly as `mlp predict` scores rows, hidden units and
detectors against the weights themselves, the sweep's panels, and every refusal with exit 2."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import assert_exit_2, drawn_text, mlp, saved_figures
from matplotlib.image import imread
from matplotlib.text import Text

import mlpcli
from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError
from mlpcli.insight.boundary import boundary_grid, neuron_maps, parse_features
from mlpcli.insight.detectors import detector_weights
from mlpcli.insight.figures import plot_run
from mlpcli.insight.first_layer import first_hidden_layer, hidden_activations
from mlpcli.serving.evaluate import load
from mlpcli.sweeps import run_sweep
from mlpcli.sweeps.executors.local import InlineExecutor

QUICK = {"optim": {"lr": 0.02}, "train": {"epochs": 3, "batch_size": 64}}


def train(out, name, data, hidden=(8,), **extra):
    config = build_config({"name": name, "data": data, "model": {"hidden": list(hidden)}, **QUICK})
    return mlpcli.train(config, [*extra.get("overrides", [])], out=out, name=name, quiet=True)


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


def test_the_two_most_varying_features_are_drawn_and_the_others_held_as_recorded(runs):
    grid = boundary_grid(runs["classes"], resolution=5)
    train = load(runs["classes"]).split("train")
    spread = train[["a", "b", "extra"]].std(ddof=0)  # raw units: a 1.2, b 2.9, extra 2.0
    assert set(spread.nlargest(2).index) == {"b", "extra"}
    assert grid.features == ("b", "extra")  # in the model's column order
    assert grid.held["a"] == pytest.approx(train["a"].mean())
    assert grid.held["colour"] == train["colour"].value_counts().idxmax() == "blue"
    assert (grid.frame["a"] == grid.held["a"]).all()
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


# ------------------------------------------------------------ names, sizes and colour scales


def legend_texts(fig):
    """Every legend entry's text in a figure and its subfigures."""
    from matplotlib.legend import Legend

    return [t.get_text() for legend in fig.findobj(Legend) for t in legend.get_texts()]


def keep_figures(monkeypatch):
    """The figures insight_plots would write, kept in a list instead."""
    import mlpcli.insight.boundary_plots as insight_plots

    figures = []
    monkeypatch.setattr(insight_plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    return figures


def write_config(path, name, data, hidden=(4,)):
    config = {"name": name, "data": data, "model": {"hidden": list(hidden)}, **QUICK}
    path.write_text(yaml.safe_dump(config))
    return path


def test_names_with_dollar_signs_are_drawn_as_written(tmp_path):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"$\\bad$": rng.normal(size=120), "x": rng.normal(size=120)})
    table["y"] = (table["$\\bad$"] + table["x"] > 0).astype(int)
    table.to_csv(tmp_path / "d.csv", index=False)
    data = {"source": "csv", "path": str(tmp_path / "d.csv"), "target": "y"}
    config = write_config(tmp_path / "d.yaml", "a$_$b", data)
    trained = mlp("train", config, "--out", tmp_path, "--name", "a$_$b", "-q")
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "a$_$b"
    result = mlp("plot", run, "--boundary", "--neurons")
    assert result.exit_code == 0, result.output
    assert imread(run / "plots" / "boundary.png").ndim == 3
    out = tmp_path / "sweeps"
    swept = mlp(
        "sweep", config, "--hidden", "2,3", "--out", out, "--name", "s$_$", "-q", "--workers", "1"
    )
    assert swept.exit_code == 0, swept.output
    assert "note:" not in swept.stderr
    assert imread(out / "s$_$" / "plots" / "boundaries.png").ndim == 3


def test_a_boundaries_figure_that_fails_is_a_note_not_a_failed_sweep(tmp_path, monkeypatch):
    import mlpcli.sweeps.boundaries as boundaries

    def broken(sweep_dir, trials):
        raise ValueError("no room\nsecond line of a long message")

    monkeypatch.setattr(boundaries, "sweep_boundaries", broken)
    config = write_config(tmp_path / "m.yaml", "m", {"source": "moons", "n_samples": 120})
    result = mlp(
        "sweep", config, "--hidden", "2", "--out", tmp_path, "--name", "s", "-q", "--workers", "1"
    )
    assert result.exit_code == 0, result.output
    drawn = tmp_path / "s" / "plots" / "boundaries.png"
    assert f"note: {drawn} was not drawn: ValueError: no room" in result.stderr
    assert "second line" not in result.stderr and "Traceback" not in result.output
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["status"] == "completed"


def test_an_error_in_the_trials_is_not_hidden_by_the_boundaries_figure(tmp_path, monkeypatch):
    import mlpcli.sweeps.boundaries as boundaries

    calls = []
    monkeypatch.setattr(boundaries, "sweep_boundaries", lambda *args: calls.append(args))

    class LostAfterOne:
        def run(self, tasks, progress=None, window=None):
            yield from InlineExecutor().run(tasks[:1], progress)
            raise RuntimeError("executor lost")

    config = build_config({"name": "e", "data": {"source": "moons", "n_samples": 120}, **QUICK})
    with pytest.raises(RuntimeError, match="executor lost"):
        run_sweep(
            config, hidden=[2, 3], out=tmp_path, name="e", quiet=True, executor=LostAfterOne()
        )
    assert calls == []  # drawn only once the sweep is over
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["completed"] == 1


def sweep_panels(sweep_dir, monkeypatch):
    """The grids sweep_boundaries draws, and the splits it draws again to get them."""
    import mlpcli.insight.boundary_plots as insight_plots
    from mlpcli.config.schema import load_config
    from mlpcli.runs.folder import SWEEP_FILE
    from mlpcli.serving.evaluate import Predictor
    from mlpcli.sweeps.boundaries import sweep_boundaries
    from mlpcli.sweeps.plan import plan_trials

    grids, splits = [], []
    monkeypatch.setattr(
        insight_plots, "sweep_boundaries_figure", lambda g, path, title: grids.extend(g) or path
    )
    split = Predictor.split
    monkeypatch.setattr(
        Predictor, "split", lambda self, name: splits.append(name) or split(self, name)
    )
    sweep_boundaries(sweep_dir, plan_trials(load_config(sweep_dir / SWEEP_FILE))[0])
    return [grid for _, grid in grids], splits


@pytest.mark.parametrize(
    "varied, shared", [("optim.lr=0.01,0.03", True), ("data.noise=0.1,0.3", False)]
)
def test_sweep_panels_draw_the_points_once_when_the_rows_are_the_same(
    tmp_path, monkeypatch, varied, shared
):
    config = build_config({"name": "p", "data": {"source": "moons", "n_samples": 150}, **QUICK})
    result = run_sweep(config, grid=[varied], out=tmp_path, quiet=True, executor=InlineExecutor())
    grids, splits = sweep_panels(result.sweep_dir, monkeypatch)
    assert len(grids) == 2 and all(len(g.xs) == len(g.ys) == 60 for g in grids)
    assert (grids[0].points is grids[1].points) == shared
    assert splits == ["train", "test"] * (1 if shared else 2)
    for grid in grids:  # the points drawn are each trial's own rows
        own = grid.predictor.split("train")
        pd.testing.assert_frame_equal(grid.train, own)


def test_features_may_name_columns_that_hold_commas(tmp_path):
    rng = np.random.default_rng(2)
    table = pd.DataFrame({c: rng.normal(size=100) for c in ("a b", "x,2", "c")})
    table["y"] = (table["a b"] > table["x,2"]).astype(int)
    table.to_csv(tmp_path / "commas.csv", index=False)
    run = train(tmp_path, "commas", {"source": "csv", "path": str(tmp_path / "commas.csv")}).run_dir
    assert parse_features(" x,2 , a b", load(run)) == ["x,2", "a b"]
    result = mlp("plot", run, "--boundary", "--features", "c,x,2")
    assert result.exit_code == 0, result.output
    refused = mlp("plot", run, "--boundary", "--features", "a b")
    assert_exit_2(refused, "expected two names, e.g. --features 'a b,x,2'")
    example = shlex.split(refused.stderr.split("e.g. ")[1])
    again = mlp("plot", run, "--boundary", *example)  # the example given is accepted
    assert again.exit_code == 0, again.output
    assert_exit_2(mlp("plot", run, "--boundary", "--features", "a b,x,3"), "'x,3'", "x,2")


def test_features_that_read_two_ways_are_refused():
    from types import SimpleNamespace

    model = SimpleNamespace(preprocessor=SimpleNamespace(features=["a", "b,c", "a,b", "c"]))
    with pytest.raises(ConfigError, match="'a' and 'b,c' or as 'a,b' and 'c'"):
        parse_features("a,b,c", model)
    assert parse_features("a,nope", model) == ["a", "nope"]  # left for choose_features to refuse


def test_the_sweep_refusals_suggest_commands_that_work(tmp_path):
    config = build_config({"name": "r", "data": {"source": "moons", "n_samples": 120}, **QUICK})
    result = run_sweep(config, hidden=[3], out=tmp_path, quiet=True, executor=InlineExecutor())
    for flags in (["--neurons"], ["--detectors"], ["--features", "x2,x1"]):
        refused = mlp("plot", result.sweep_dir, "--boundary", *flags)
        assert_exit_2(refused, flags[0], "sweep folder", "trial-000")
        if flags != ["--detectors"]:  # moons has no image shape: that refusal is its own
            command = shlex.split(refused.stderr.split("instead: ")[1])
            assert command[:2] == ["mlp", "plot"]
            followed = mlp(*command[1:])
            assert followed.exit_code == 0, followed.output


def test_large_splits_are_drawn_as_a_seeded_sample(runs, monkeypatch):
    from matplotlib.collections import PathCollection

    import mlpcli.insight.boundary as boundary

    monkeypatch.setattr(boundary, "MAX_POINTS", 50)
    figures = keep_figures(monkeypatch)
    result = plot_run(runs["moons"], boundary=True)
    grid = boundary_grid(runs["moons"], resolution=5)
    assert len(grid.train) == 120 and len(grid.test) == 40
    scattered = [c for c in figures[0].axes[0].collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in scattered) == [40, 50]
    shown = grid.shown("train")
    assert shown.index.isin(grid.train.index).all() and shown.equals(grid.shown("train"))
    assert "train (50 of 120, a sample)" in legend_texts(figures[0])
    assert "test (40)" in legend_texts(figures[0])
    assert "50 of the 120 train rows are drawn (a sample)" in result.notes


def test_a_wide_model_is_scored_piece_by_piece(tmp_path, monkeypatch):
    import tracemalloc

    import mlpcli.insight.boundary as boundary

    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.normal(size=(60, 200)), columns=[f"f{i}" for i in range(200)])
    table["y"] = (table["f0"] > 0).astype(int)
    table.to_csv(tmp_path / "wide.csv", index=False)
    run = train(tmp_path, "wide", {"source": "csv", "path": str(tmp_path / "wide.csv")}).run_dir
    predictor = load(run)
    monkeypatch.setattr(boundary, "CHUNK_CELLS", 1 << 16)  # 327 grid rows at a time
    tracemalloc.start()
    grid = boundary_grid(run, ["f0", "f1"], resolution=60, predictor=predictor)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5e6  # the whole grid as one frame: 3,600 rows x 200 features x 8 bytes = 5.8 MB
    some = grid.rows(1790, 1810)  # row i is (xs[i % n], ys[i // n]), the others held
    index = np.arange(1790, 1810)
    np.testing.assert_array_equal(some["f0"], grid.xs[index % 60])
    np.testing.assert_array_equal(some["f1"], grid.ys[index // 60])
    assert (some["f7"] == grid.held["f7"]).all()
    np.testing.assert_allclose(grid.outputs[1790:1810], predictor.outputs(some), atol=1e-6)
    assert list(some.columns) == predictor.preprocessor.features


def test_without_rows_or_recorded_means_the_grid_spans_a_default_range(runs, tmp_path, monkeypatch):
    from mlpcli.data.preprocess import Preprocessor

    fit = Preprocessor.fit

    def as_before(*args, **kwargs):  # a model saved before the training statistics were
        prep = fit(*args, **kwargs)
        prep.stats, prep.modes = {}, {}
        return prep

    monkeypatch.setattr(Preprocessor, "fit", as_before)
    data = {
        "source": "csv",
        "path": str(runs["classes"].parent / "classes.csv"),
        "standardize": False,
    }
    run = train(tmp_path, "raw", data).run_dir
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model.safetensors", alone / "model.safetensors")
    grid = boundary_grid(alone / "model.safetensors", resolution=5)
    assert (grid.xs[0], grid.xs[-1], grid.ys[0], grid.ys[-1]) == (-3, 3, -3, 3)
    assert grid.held["extra"] == 0.0
    result = mlp("plot", alone / "model.safetensors", "--boundary")
    assert result.exit_code == 0, result.output
    assert "the axes span -3 to 3, a default range" in result.stderr
    assert "held at 0, a default" in result.stderr and "data.standardize: false" in result.stderr
    assert "scaler" not in result.stderr


def test_the_regression_colour_bar_spans_the_surface_and_the_targets(runs, monkeypatch):
    figures = keep_figures(monkeypatch)
    plot_run(runs["surface"], boundary=True)
    bars = [ax for ax in figures[0].axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    grid = boundary_grid(runs["surface"])
    surface = grid.values()[:, 0]
    values = np.concatenate([surface, grid.train["z"], grid.test["z"]])
    assert values.min() < surface.min() or values.max() > surface.max()  # the points reach out
    low, high = sorted(bars[0].get_ylim())
    assert (low, high) == pytest.approx((values.min(), values.max()))


def test_the_first_layer_keeps_its_norm_and_leaves_out_dropout(tmp_path):
    overrides = ["model.norm=batch", "model.dropout=0.3"]
    run = train(tmp_path, "normed", {"source": "moons", "n_samples": 120}, overrides=overrides)
    predictor = load(run.run_dir)
    layer = first_hidden_layer(predictor)
    assert [type(m) for m in layer] == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU]
    rows = predictor.split("train")
    model = predictor.model
    x = torch.from_numpy(predictor.preprocessor.transform(rows))
    with torch.no_grad():
        oracle = torch.relu(model[1](model[0](x))).numpy()
    np.testing.assert_allclose(hidden_activations(predictor, rows, "train"), oracle, atol=1e-6)


# ------------------------------------------------------------ one input, images, categories


def test_a_one_input_regression_is_drawn_as_its_fitted_curve(tmp_path, monkeypatch):
    from matplotlib.collections import PathCollection

    run = train(tmp_path, "sine", {"source": "sine", "n_samples": 200}, hidden=(16,)).run_dir
    figures = saved_figures(monkeypatch)
    result = mlp("plot", run, "--boundary", "--neurons")
    assert result.exit_code == 0, result.output
    path = run / "plots" / "curve.png"
    assert f"wrote {path}" in result.stderr.replace("\n", "")  # however the console wraps
    assert path.is_file() and not (run / "plots" / "boundary.png").exists()
    lines = [line for ax in figures["curve.png"].axes for line in ax.get_lines()]
    (curve,) = [line for line in lines if line.get_label() == "the model"]
    ax = curve.axes
    xs, ys = curve.get_data()
    pd.DataFrame({"x1": xs}).to_csv(tmp_path / "line.csv", index=False)
    predicted = mlp("predict", run, tmp_path / "line.csv", "-o", tmp_path / "p.csv")
    assert predicted.exit_code == 0, predicted.output
    np.testing.assert_allclose(ys, pd.read_csv(tmp_path / "p.csv")["y"], rtol=1e-6, atol=1e-6)
    predictor = load(run)
    train_rows, val_rows = predictor.split("train"), predictor.split("val")
    scattered = [c for c in ax.collections if isinstance(c, PathCollection)]
    offsets = sorted((c.get_offsets() for c in scattered), key=len, reverse=True)
    np.testing.assert_allclose(offsets[0], train_rows[["x1", "y"]].to_numpy())  # target's units
    np.testing.assert_allclose(offsets[1], val_rows[["x1", "y"]].to_numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "y")
    assert {"train (120)", "val (40)"} <= set(legend_texts(figures["curve.png"]))
    assert imread(path).ndim == 3


def test_a_two_input_regression_keeps_its_surface(runs, monkeypatch):
    figures = saved_figures(monkeypatch)
    result = plot_run(runs["surface"], boundary=True)
    assert [p.name for p in result.paths] == ["boundary.png"]
    assert any(ax.get_label() == "<colorbar>" for ax in figures["boundary.png"].axes)


def held_and_points(run):
    grid = boundary_grid(run, resolution=5)
    return grid.held, grid.train is not None


def test_held_values_do_not_depend_on_whether_the_data_can_be_read(tmp_path):
    rng = np.random.default_rng(4)
    table = pd.DataFrame({c: rng.normal(3.0, 2.0, 150) for c in ("a", "b", "c")})
    table["colour"] = rng.choice(["blue", "red", "red"], 150)  # most frequent: not the first
    table["y"] = (table["a"] > table["b"]).astype(int)
    table.to_csv(tmp_path / "own.csv", index=False)
    run = train(tmp_path, "own", {"source": "csv", "path": str(tmp_path / "own.csv")}).run_dir
    rows = load(run).split("train")
    held, drawn = held_and_points(run)
    assert drawn and held["colour"] == rows["colour"].mode()[0] == "red"
    numeric = [c for c in held if c != "colour"]
    assert len(numeric) == 1  # the third numeric feature, whichever two vary most
    assert held[numeric[0]] == pytest.approx(rows[numeric[0]].mean(), rel=1e-12)
    (tmp_path / "own.csv").unlink()
    again, drawn = held_and_points(run)
    assert not drawn and again == held  # exactly: both read what training recorded


def test_only_the_rows_at_the_held_category_are_drawn(runs, monkeypatch):
    from matplotlib.collections import PathCollection

    figures = saved_figures(monkeypatch)
    result = plot_run(runs["classes"], boundary=True)
    predictor = load(runs["classes"])
    train_rows, test_rows = predictor.split("train"), predictor.split("test")
    blue = [(f["colour"] == "blue").sum() for f in (train_rows, test_rows)]
    assert 0 < blue[0] < len(train_rows)
    fig = figures["boundary.png"]
    scattered = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in scattered) == sorted(blue)
    label = f"train ({blue[0]} of {len(train_rows)} at the held colour = blue)"
    assert label in legend_texts(fig)
    note = "only the rows with colour = blue are drawn, as the figure holds them"
    assert any(n.startswith(note) for n in result.notes), result.notes


def test_image_inputs_draw_the_most_varying_pixels_and_every_held_value(runs, monkeypatch):
    figures = saved_figures(monkeypatch)
    result = plot_run(runs["digits"], boundary=True)
    predictor = load(runs["digits"])
    pixels = predictor.preprocessor.features
    spread = predictor.split("train")[pixels].std(ddof=0)
    grid = boundary_grid(runs["digits"], resolution=3)
    assert set(grid.features) == set(spread.nlargest(2).index)
    assert spread[list(grid.features)].min() > spread.median()  # never a blank border pixel
    assert any("vary most" in n for n in result.notes)
    fig = figures["boundary.png"]
    fig.canvas.draw()
    box = fig.bbox
    (held,) = [t for t in fig.findobj(Text) if "held at" in t.get_text()]
    assert drawn_text(held) is not None
    for name, value in grid.held.items():  # all 62, each whole on one line
        assert f"{name}\u00a0=\u00a0{value:.3g}" in held.get_text()
    from matplotlib.legend import Legend

    ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    shown = [t for t in fig.findobj(Text) if t.get_text() and id(t) not in ticks]
    assert held in shown and len(fig.findobj(Legend)) == 1
    for text in shown:  # titles, names, legend and held values: none past the figure's edges
        if text.get_visible():
            extent = text.get_window_extent()
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()[:40]
            assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()[:40]


def test_a_model_file_alone_holds_and_spans_its_recorded_statistics(runs, tmp_path):
    data = {
        "source": "csv",
        "path": str(runs["classes"].parent / "classes.csv"),
        "standardize": False,
    }
    run = train(tmp_path, "raw", data).run_dir
    rows = load(run).split("train")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model.safetensors", alone / "model.safetensors")
    grid = boundary_grid(alone / "model.safetensors", ["a", "b"], resolution=5)
    assert grid.held["extra"] == pytest.approx(rows["extra"].mean())
    mean, std = rows["a"].mean(), rows["a"].std(ddof=0)
    span = 6 * std
    assert grid.xs[0] == pytest.approx(mean - 3 * std - 0.1 * span)
    assert grid.xs[-1] == pytest.approx(mean + 3 * std + 0.1 * span)


@pytest.mark.parametrize("shape", [(8, 8), (4, 16), (16, 4)])
def test_detector_pixels_are_square(tmp_path, monkeypatch, shape):
    data = {"source": "digits", "image_shape": list(shape)}
    run = train(tmp_path, "shaped", data, hidden=(5,)).run_dir
    figures = saved_figures(monkeypatch)
    plot_run(run, detectors=True)
    fig = figures["detectors.png"]
    fig.canvas.draw()
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 5
    for ax in images:
        box = ax.get_window_extent()
        assert box.width / shape[1] == pytest.approx(box.height / shape[0], rel=0.02)


# ------------------------------------------------------------ --data, when the training file is gone


def two_feature_run(tmp_path):
    """A run trained on a two-feature CSV, its own train split saved elsewhere as copy.csv,
    then the file it trained on deleted."""
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"u": rng.normal(size=200), "v": rng.normal(size=200)})
    rows["y"] = (rows["u"] + rows["v"] > 0).astype(int)
    rows.to_csv(tmp_path / "train.csv", index=False)
    run = train(tmp_path, "gone", {"source": "csv", "path": str(tmp_path / "train.csv")})
    load(run.run_dir).split("train").to_csv(tmp_path / "copy.csv", index=False)
    (tmp_path / "train.csv").unlink()
    return run.run_dir, tmp_path / "copy.csv"


def test_data_gives_the_points_when_the_training_file_is_gone(tmp_path, monkeypatch):
    run, copy = two_feature_run(tmp_path)
    without = mlp("plot", run, "--boundary")
    assert without.exit_code == 0, without.output
    assert "drawn without the data's points" in without.stderr
    assert "train.csv" in without.stderr and "--data" in without.stderr
    result = mlp("plot", run, "--boundary", "--data", copy)
    assert result.exit_code == 0, result.output
    assert "without the data's points" not in result.stderr
    assert f"rows of {copy} (--data)" in result.stderr
    assert imread(run / "plots" / "boundary.png").ndim == 3
    figures = saved_figures(monkeypatch)
    plot_run(run, boundary=True, data=copy)
    texts = legend_texts(figures["boundary.png"])
    rows = len(pd.read_csv(copy))
    assert any(text.startswith(f"train ({rows}") for text in texts), texts


def test_data_ranks_the_detectors_as_the_training_rows_do(runs, tmp_path):
    rows = load(runs["digits"]).split("train")
    rows.to_parquet(tmp_path / "digits.parquet")
    given = detector_weights(runs["digits"], rows=pd.read_parquet(tmp_path / "digits.parquet"))
    own = detector_weights(runs["digits"])
    assert given.units == own.units and given.notes == own.notes == []
    result = mlp("plot", runs["digits"], "--detectors", "--data", tmp_path / "digits.parquet")
    assert result.exit_code == 0, result.output


def test_data_is_refused_where_it_cannot_be_used(runs, tmp_path):
    rows = load(runs["moons"]).split("train")
    rows.drop(columns=rows.columns[-1]).to_csv(tmp_path / "unlabelled.csv", index=False)
    assert_exit_2(
        mlp("plot", runs["moons"], "--boundary", "--data", tmp_path / "unlabelled.csv"),
        "unlabelled.csv",
        "no feature or target column",
    )
    assert_exit_2(
        mlp("plot", runs["moons"], "--boundary", "--data", tmp_path / "missing.csv"),
        "missing.csv",
    )
    config = build_config({"name": "w", "data": {"source": "moons", "n_samples": 120}, **QUICK})
    sweep = run_sweep(config, hidden=[2], out=tmp_path, quiet=True, executor=InlineExecutor())
    rows.to_csv(tmp_path / "rows.csv", index=False)
    refused = mlp("plot", sweep.sweep_dir, "--boundary", "--data", tmp_path / "rows.csv")
    assert_exit_2(refused, "--data", "sweep folder", "trial-000", "--boundary --data")

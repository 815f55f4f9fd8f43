"""The figures every command draws, checked on the figure objects: log axes whose tick labels
are numbers, names from the data drawn as written, sweep legends clear of the data, and swept
numbers on a numeric axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TICK_POWER, drawn_text, log_tick_labels, mlp, saved_figures
from matplotlib.legend import Legend
from matplotlib.text import Text

import mlpcli
from mlpcli.config.schema import build_config
from mlpcli.sweeps import run_sweep
from mlpcli.sweeps.executors.local import InlineExecutor

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"optim": {"lr": 0.02}, "train": {"epochs": 3, "batch_size": 64}}
MOONS = {"source": "moons", "n_samples": 150}


def sweep(tmp_path, name, baseline=False, **grid):
    train = {**QUICK["train"], "baseline": baseline}
    raw = {"name": name, "data": MOONS, "model": {"hidden": [4]}, **QUICK, "train": train}
    config = build_config(raw)
    return run_sweep(
        config, out=tmp_path, name=name, quiet=True, executor=InlineExecutor(), **grid
    ).sweep_dir


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The figures of three small sweeps (width and depth with the linear baseline, a
    learning rate over two decades, activations), by sweep and file name."""
    root = tmp_path_factory.mktemp("sweeps")
    monkeypatch = pytest.MonkeyPatch()
    figures = {}
    try:
        for name, grid in {
            "params": {"hidden": [2, 8], "depth": [1, 2], "baseline": True},
            "lr": {"grid": ["optim.lr=0.001,0.01,0.1"]},
            "activation": {"grid": ["model.activation=relu,tanh"]},
        }.items():
            saved = saved_figures(monkeypatch)
            sweep(root, name, **grid)
            figures[name] = {k: v for k, v in saved.items() if k != "loss.png"}  # not trials
    finally:
        monkeypatch.undo()
    return figures


def test_log_axes_show_numbers_in_every_command(tmp_path, monkeypatch, sweeps):
    figures = saved_figures(monkeypatch)
    config = {
        "name": "fit",
        "data": {"source": "moons", "n_samples": 400, "noise": 0.05},
        "model": {"hidden": [32, 32]},
        "optim": {"lr": 0.02},
        "train": {"epochs": 20, "batch_size": 32, "diagnostics": {"every": 1}},
    }
    run = mlpcli.train(build_config(config), out=tmp_path, name="fit", quiet=True).run_dir
    assert figures["loss.png"].axes[0].get_yscale() == "log"  # the loss fell more than 20x
    inspected = mlp("inspect", run)
    assert inspected.exit_code == 0, inspected.output
    mlpcli.lr_find(build_config(config), out=tmp_path)
    drawn = {
        "mlp train: loss.png": figures["loss.png"],
        "mlp lr-find: fit-lr_find.png": figures["fit-lr_find.png"],
        "mlp inspect: gradients.png": figures["gradients.png"],
        "mlp sweep: vs_params.png": sweeps["params"]["vs_params.png"],
        "mlp sweep: vs_width.png": sweeps["params"]["vs_width.png"],
        "mlp sweep: vs_optim.lr.png": sweeps["lr"]["vs_optim.lr.png"],
    }
    powers = 0
    for name, fig in drawn.items():
        ticks = log_tick_labels(fig)  # each label a number, or matplotlib's mathtext power
        assert ticks, name
        for place, value in ticks:
            assert value == pytest.approx(place, rel=1e-6), name
        powers += sum(
            bool(TICK_POWER.match(t.get_text())) for t in fig.findobj(Text) if t.get_visible()
        )
    assert powers  # matplotlib's own 10^-2 labels are among them, drawn as mathtext


def write_config(path, name, data):
    config = {"name": name, "data": data, "model": {"hidden": [4]}, **QUICK}
    config["train"] = {**config["train"], "diagnostics": {"every": 1}}
    path.write_text(yaml.safe_dump(config))
    return path


def test_names_from_the_data_are_drawn_as_written(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"$\\bad$": rng.normal(size=120), "x": rng.normal(size=120)})
    table["y$"] = (table["$\\bad$"] + table["x"] > 0).astype(int)
    table.to_csv(tmp_path / "d.csv", index=False)
    data = {"source": "csv", "path": str(tmp_path / "d.csv"), "target": "y$"}
    config = write_config(tmp_path / "d.yaml", "a$_$b", data)
    figures = saved_figures(monkeypatch)
    for args in (
        ["train", config, "--out", tmp_path, "--name", "a$_$b", "-q"],
        ["plot", tmp_path / "a$_$b", "--boundary", "--neurons"],
        ["inspect", tmp_path / "a$_$b"],
        ["lr-find", config, "--out", tmp_path],
        ["sweep", config, "--hidden", "2,3", "--out", tmp_path, "--name", "s$_$", "-q"],
    ):
        result = mlp(*args)
        assert result.exit_code == 0, result.output
    assert {
        "loss.png",
        "boundary.png",
        "gradients.png",
        "a$_$b-lr_find.png",
        "vs_width.png",
        "boundaries.png",
    } <= set(figures)
    texts = []
    for fig in figures.values():
        fig.canvas.draw()
        for text in fig.findobj(Text):
            shown = drawn_text(text)
            # Only matplotlib's own tick labels are mathtext; every name is drawn as written.
            assert shown is not None or TICK_POWER.match(text.get_text()), text.get_text()
            texts.append(shown or "")
    for name in ("$\\bad$", "a$_$b", "s$_$", "P(y$ = 1)"):
        assert any(name in t for t in texts), name


def overlap(a, b) -> float:
    """The area two boxes share."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0) * max(height, 0)


def test_sweep_legends_cover_no_data(sweeps):
    drawn = [(s, n, fig) for s, figs in sweeps.items() for n, fig in figs.items()]
    assert {n for _, n, _ in drawn} >= {"vs_width.png", "vs_params.png", "by_point.png"}
    for sweep_name, name, fig in drawn:
        fig.canvas.draw()
        legends = fig.findobj(Legend)
        assert legends, (sweep_name, name)
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                assert overlap(box, ax.get_window_extent()) == 0, (sweep_name, name)


def test_a_swept_number_is_drawn_on_a_numeric_axis_beside_the_loss(sweeps, tmp_path, monkeypatch):
    assert "by_point.png" not in sweeps["lr"]
    fig = sweeps["lr"]["vs_optim.lr.png"]
    loss, metric = fig.axes[:2]
    assert loss.get_title().startswith("loss") and metric.get_title().startswith("accuracy")
    for ax in (loss, metric):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "optim.lr"  # two decades
        for line in ax.get_lines():
            if len(line.get_xdata()) == 3:
                np.testing.assert_allclose(line.get_xdata(), [0.001, 0.01, 0.1])
    saved = saved_figures(monkeypatch)
    narrow = sweep(tmp_path, "narrow", grid=["optim.lr=0.01,0.02,0.04"])
    assert (narrow / "plots" / "vs_optim.lr.png").is_file()
    assert saved["vs_optim.lr.png"].axes[0].get_xscale() == "linear"  # within a decade
    by_point = sweeps["activation"]["by_point.png"]  # names stay categories
    titles = [ax.get_title() for ax in by_point.axes]
    assert titles[:2] == ["loss: train and validation", "accuracy: train and validation"]


def spreads(run, name):
    """Per epoch, the largest of a statistic over the layers divided by the smallest."""
    table = pd.read_csv(run / "diagnostics.csv")
    per_layer = table[table["name"] == name].pivot(index="epoch", columns="layer", values="value")
    return per_layer.max(axis=1) / per_layer.min(axis=1), per_layer


def test_the_docs_say_what_their_vanishing_figures_draw(tmp_path):
    """The numbers docs/insight.md (and the README) give beside
    docs/images/vanishing*-gradients.png, measured on runs of their own commands."""
    insight = (ROOT / "docs" / "insight.md").read_text()
    readme = (ROOT / "README.md").read_text()
    config = ROOT / "configs" / "vanishing.yaml"
    sigmoid = mlpcli.train(config, out=tmp_path, name="vanishing", quiet=True).run_dir
    _, layers = spreads(sigmoid, "grad_rms")
    steps = layers[list(layers.columns)[1:]].to_numpy() / layers[list(layers.columns)[:-1]]
    assert round(float(np.median(steps.to_numpy()))) == 7
    assert "the dL/dz lines stand a factor of about 7 apart" in " ".join(insight.split())
    assert "they stand a factor of about 7 apart" in " ".join(readme.split())
    fix = ["model.activation=relu", "model.init=kaiming_normal"]
    relu = mlpcli.train(config, fix, out=tmp_path, name="vanishing-fixed", quiet=True).run_dir
    dz, dz_layers = spreads(relu, "grad_rms")
    dw, _ = spreads(relu, "weight_grad_rms")
    assert (dz_layers.idxmax(axis=1) == 1).mean() > 0.8  # the first layer's on top
    shown = (
        f"start within a factor of {dz[0]:.1f} of each other, then fan out as the network "
        f"learns, the first layer's on top: the highest dL/dz line is {dz[10]:.0f} times the "
        f"lowest at epoch 10, {dz[20]:.0f} times at epoch 20 and {dz[40]:.0f} times at epoch 40 "
        f"(dL/dW: {dw[10]:.1f}, {dw[20]:.0f} and {dw[40]:.0f} times)"
    )
    assert shown in " ".join(insight.split()), shown

"""`mlp inspect`: vanishing gradients flagged where the chain rule shrinks them, not where init
and activation keep them level; dead units; the weights at init, best and last; the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.config import load_config
from mlpcli.diagnostics import read_rows
from mlpcli.inspection import diagnose, inspect_run
from mlpcli.model import build_mlp
from mlpcli.tasks import make_loss

VANISHING = Path(__file__).parent.parent / "configs" / "vanishing.yaml"
QUICK = ["train.epochs=2", "data.n_samples=400"]
runner = CliRunner()


def mlp(*args):
    return runner.invoke(app, [str(a) for a in args])


def trained(tmp_path, *overrides, name=None):
    return mlpcli.train(VANISHING, [*QUICK, *overrides], out=tmp_path, name=name, quiet=True)


def test_ten_sigmoid_layers_with_default_init_are_flagged_vanishing(tmp_path):
    report, _ = inspect_run(trained(tmp_path).run_dir, "init")
    assert len(report.layers) == 10
    assert report.layers[0]["grad_ratio"] < 1e-3
    assert report.layers[-1]["grad_ratio"] == 1.0
    assert "vanishing" in report.layers[0]["flags"] and report.flags[0] == "vanishing"
    assert any("kaiming_normal" in line for line in report.advice)
    assert report.verdict.startswith("problems: vanishing")


@pytest.mark.parametrize(
    "fix",
    [
        ["model.activation=tanh", "model.init=xavier_normal"],
        ["model.activation=relu", "model.init=kaiming_normal"],
    ],
    ids=["tanh-xavier", "relu-kaiming"],
)
def test_the_fixes_keep_every_layers_gradient_within_a_factor_of_ten(tmp_path, fix):
    report, _ = inspect_run(trained(tmp_path, *fix).run_dir, "init")
    ratios = [layer["grad_ratio"] for layer in report.layers]
    assert len(ratios) == 10 and all(0.1 < r < 10 for r in ratios), ratios
    assert "vanishing" not in report.flags and "exploding" not in report.flags
    assert report.verdict.startswith("healthy")


def test_a_first_layer_biased_to_minus_100_is_reported_all_dead():
    config = load_config(VANISHING, ["model.activation=relu", "model.hidden=[16,16]"])
    torch.manual_seed(0)
    model = build_mlp(config.model, 2, 1)
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    x, y = torch.randn(200, 2), torch.randint(0, 2, (200, 1)).float()
    layers, flags = diagnose(model, config, make_loss(config, "binary"), x, y)
    assert layers[0]["dead"] == 1.0 and "dead" in layers[0]["flags"]
    assert layers[0]["grad_ratio"] == 0.0  # a dead unit passes no gradient
    assert "dead" in flags


def test_init_is_rebuilt_from_the_seed_as_training_built_it(tmp_path):
    run = trained(tmp_path, "train.diagnostics={every: 1}").run_dir
    report, _ = inspect_run(run, "init")
    at_zero = {
        r["layer"]: r["value"]
        for r in read_rows(run / "diagnostics.csv")
        if r["epoch"] == 0 and r["name"] == "grad_rms"
    }
    for layer in report.layers:
        assert layer["grad_rms"] == pytest.approx(at_zero[layer["layer"]], rel=1e-5)


def test_best_and_last_come_from_the_checkpoint(tmp_path):
    result = mlpcli.train(
        VANISHING,
        [
            "train.epochs=4",
            "data.n_samples=400",
            "model.activation=relu",
            "train.restore_best=false",
        ],
        out=tmp_path,
        quiet=True,
    )
    summary = result.summary
    best, _ = inspect_run(result.run_dir, "best")
    last, _ = inspect_run(result.run_dir, "last")
    assert best.epoch == summary["best_epoch"] and last.epoch == summary["epochs_run"] == 4
    if best.epoch != last.epoch:
        assert best.layers[0]["grad_rms"] != last.layers[0]["grad_rms"]


def test_the_command_prints_the_table_and_writes_its_files(tmp_path):
    run = trained(tmp_path).run_dir
    result = mlp("inspect", run, "--at", "init")
    assert result.exit_code == 0, result.output
    assert "vanishing" in result.stdout and "kaiming_normal" in result.stdout
    for name in ("inspect.json", "plots/gradients.png", "plots/units.png"):
        assert (run / name).read_bytes()[:4] in (b"\x89PNG", b"{\n  ")
    saved = json.loads((run / "inspect.json").read_text())
    assert saved["at"] == "init" and saved["flags"] == ["vanishing"]


def test_json_has_the_promised_shape_with_fractions(tmp_path):
    run = trained(tmp_path, "model.activation=relu").run_dir
    result = mlp("inspect", run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"at", "layers", "flags", "advice"} <= set(report) and report["at"] == "best"
    keys = {"layer", "width", "activation", "params", "grad_ratio", "dead", "saturated", "flags"}
    for layer in report["layers"]:
        assert keys <= set(layer)
        assert 0.0 <= layer["dead"] <= 1.0 and layer["saturated"] is None
    assert report["layers"][0]["params"] == 2 * 32 + 32


def test_a_linear_model_has_nothing_to_diagnose(tmp_path):
    run = trained(tmp_path, "model.hidden=[]").run_dir
    report, written = inspect_run(run, "best")
    assert report.layers == [] and report.flags == [] and "linear model" in report.verdict
    assert written == [run / "inspect.json"]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--at", "first"], ["--at", "init, best, last"]),
    ],
)
def test_bad_usage_exits_2(tmp_path, args, needles):
    run = trained(tmp_path).run_dir
    result = mlp("inspect", run, *args)
    assert result.exit_code == 2
    for needle in needles:
        assert needle in result.output


def test_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = mlp("inspect", tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model.safetensors" in result.stderr
    result = mlp("inspect", tmp_path / "nothing")
    assert result.exit_code == 2 and "not a run folder" in result.stderr


def test_last_without_a_checkpoint_names_the_file(tmp_path):
    run = trained(tmp_path).run_dir
    (run / "checkpoints" / "last.pt").unlink()
    result = mlp("inspect", run, "--at", "last")
    assert result.exit_code == 2 and "last.pt" in result.stderr and "--at best" in result.stderr
    assert mlp("inspect", run, "--at", "best").exit_code == 0

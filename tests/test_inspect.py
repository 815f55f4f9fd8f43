"""`mlp inspect`: vanishing gradients flagged where the chain rule shrinks them, not where init
and activation keep them level; dead units; the weights at init, best and last; the files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import InterruptAt, mlp

import mlpcli
from mlpcli.config.schema import load_config
from mlpcli.insight.inspection import advice_for, diagnose, inspect_run
from mlpcli.model.factory import build_mlp
from mlpcli.model.tasks import make_loss
from mlpcli.training.diagnostics import read_rows

VANISHING = Path(__file__).parent.parent / "configs" / "vanishing.yaml"
QUICK = ["train.epochs=2", "data.n_samples=400"]


def trained(tmp_path, *overrides, name=None):
    return mlpcli.train(VANISHING, [*QUICK, *overrides], out=tmp_path, name=name, quiet=True)


@pytest.fixture(scope="module")
def sigmoid_run(tmp_path_factory):
    """configs/vanishing.yaml as shipped (ten sigmoid layers), trained briefly; read-only."""
    return trained(tmp_path_factory.mktemp("runs")).run_dir


def test_ten_sigmoid_layers_with_default_init_are_flagged_vanishing(sigmoid_run):
    report, _ = inspect_run(sigmoid_run, "init")
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


def grad_rms_at(run, epoch):
    rows = read_rows(run / "diagnostics.csv")
    return {r["layer"]: r["value"] for r in rows if r["epoch"] == epoch and r["name"] == "grad_rms"}


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.hidden=[8,8]", "model.norm=batch", "model.dropout=0.2", "model.activation=relu"],
        ["model.hidden=[8]", "model.activation={name: swish, learnable: true}"],
        ["data.source=multilabel", "model.hidden=[8,8]", "model.activation=tanh"],
    ],
    ids=["sigmoid", "batchnorm-dropout", "learnable-swish", "multilabel"],
)
def test_init_is_rebuilt_from_the_seed_as_training_built_it(tmp_path, overrides):
    """The probe of the rebuilt weights equals diagnostics.csv's record of epoch 0, which
    training made on the weights it really started from."""
    run = trained(tmp_path, *overrides, "train.diagnostics={every: 1}").run_dir
    report, _ = inspect_run(run, "init")
    at_zero = grad_rms_at(run, 0)
    assert len(at_zero) == len(report.layers) > 0
    for layer in report.layers:
        assert layer["grad_rms"] == pytest.approx(at_zero[layer["layer"]], rel=1e-5)


def test_best_and_last_are_the_weights_of_those_epochs(tmp_path):
    result = mlpcli.train(
        VANISHING,
        [*QUICK, "train.epochs=6", "model.activation=relu", "optim.lr=0.05"],
        out=tmp_path,
        quiet=True,
    )
    run, summary = result.run_dir, result.summary
    best, _ = inspect_run(run, "best")
    last, _ = inspect_run(run, "last")
    assert best.epoch == summary["best_epoch"] and last.epoch == summary["epochs_run"] == 6
    for report in (best, last):
        recorded = grad_rms_at(run, report.epoch)
        for layer in report.layers:
            assert layer["grad_rms"] == pytest.approx(recorded[layer["layer"]], rel=1e-5)


def test_params_per_layer_are_counted_as_mlp_summary_counts_them(tmp_path):
    run = trained(tmp_path, "model.hidden=[16,16]", "model.norm=batch").run_dir
    report, _ = inspect_run(run, "init")
    summary = json.loads(mlp("summary", run, "--json").stdout)
    assert (
        [layer["params"] for layer in report.layers]
        == [row["params"] for row in summary["layers"][:-1]]
        == [2 * 16 + 16 + 32, 16 * 16 + 16 + 32]
    )


def test_a_stopped_run_without_a_model_file_is_inspected_from_its_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(
            VANISHING,
            [*QUICK, "train.checkpoint_seconds=0"],
            out=tmp_path,
            name="s",
            quiet=True,
            callbacks=[InterruptAt(1)],
        )
    run = tmp_path / "s"
    assert not (run / "model.safetensors").exists()
    report, _ = inspect_run(run, "last")
    assert report.epoch == 1 and "vanishing" in report.flags and report.notes == []
    assert mlp("inspect", run, "--at", "init").exit_code == 0


def test_the_advice_names_each_fix_once():
    layers = [
        {"layer": 1, "activation": "relu", "grad_ratio": 1e-4, "flags": ["vanishing"]},
        {"layer": 2, "activation": "relu", "grad_ratio": 1.0, "flags": []},
    ]
    line = advice_for("vanishing", layers, load_config(VANISHING, ["model.activation=relu"]))
    assert line.count("kaiming_normal") == 1 and "0.0001 of layer 2's" in line
    sigmoid = [{**layer, "activation": "sigmoid"} for layer in layers]
    assert "model.activation relu" in advice_for("vanishing", sigmoid, load_config(VANISHING))


FLAGGED = {  # per flag: two hidden layers, the first one raising it
    "vanishing": {"grad_ratio": 1e-4},
    "exploding": {"grad_ratio": 1e4},
    "dead": {"dead": 0.9},
    "saturated": {"saturated": 0.9},
}
SETTINGS = re.compile(r"\b((?:model|data|train|optim)\.\w+) (\w+)")


@pytest.mark.parametrize("flag", list(FLAGGED))
@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.norm=batch"],
        ["model.norm=batch", "model.init=kaiming_normal", "model.activation=relu"],
        ["model.norm=batch", "model.init=xavier_normal", "model.activation=tanh"],
        ["model.init=xavier_normal", "data.standardize=false", "train.grad_clip=1.0"],
        ["model.activation=leaky_relu", "model.init=kaiming_normal"],
        ["model.activation=elu"],
    ],
)
def test_the_advice_never_names_a_setting_the_config_already_has(flag, overrides):
    config = load_config(VANISHING, ["model.hidden=[8,8]", *overrides])
    name = config.model.activations()[0]["name"]
    base = {"activation": name, "grad_ratio": 1.0, "dead": 0.0, "saturated": 0.0, "flags": []}
    layers = [
        {**base, "layer": 1, **FLAGGED[flag], "flags": [flag]},
        {**base, "layer": 2},
    ]
    line = advice_for(flag, layers, config)
    named = SETTINGS.findall(line)
    assert line.split("; use ")[-1].split(": the layers below learn slowly; use ")[-1], line
    for key, value in named:
        section, field = key.split(".")
        if key == "model.activation":
            current = {spec["name"] for spec in config.model.activations()}
            assert current != {value}, line
        elif key != "train.grad_clip":
            current = getattr(getattr(config, section), field)
            assert str(current).lower() != value, line
    if config.train.grad_clip is not None and flag == "exploding":
        assert "a train.grad_clip below 1" in line


def test_batch_norm_is_probed_as_training_runs(sigmoid_run, tmp_path):
    """Ten sigmoid layers: with batch norm, normalised by the probed rows' own statistics,
    the first layer's gradient is no longer a vanishing fraction of the last one's, and the
    advice does not name the batch norm the run already has."""
    plain = json.loads(mlp("inspect", sigmoid_run, "--at", "init", "--json").stdout)
    run = trained(tmp_path, "model.norm=batch").run_dir
    result = mlp("inspect", run, "--at", "init", "--json")
    assert result.exit_code == 0, result.output
    normed = json.loads(result.stdout)
    assert plain["layers"][0]["grad_ratio"] < 1e-3
    assert normed["layers"][0]["grad_ratio"] >= 10 * plain["layers"][0]["grad_ratio"]
    assert normed["layers"][0]["grad_ratio"] > 0.1
    assert "vanishing" not in normed["flags"]
    assert not any("model.norm batch" in line for line in normed["advice"])
    assert [layer["norm"] for layer in normed["layers"]] == ["batch"] * 10
    assert any("batch norm" in note and "probed rows" in note for note in normed["notes"])
    assert plain["notes"] == [] and {layer["norm"] for layer in plain["layers"]} == {None}


def test_batch_norm_still_named_where_the_run_has_none(sigmoid_run):
    report, _ = inspect_run(sigmoid_run, "init")
    assert any("model.norm batch" in line for line in report.advice)


def test_the_report_lists_the_norm_layers(tmp_path):
    import io

    from rich.console import Console

    from mlpcli.console import inspect_table

    run = trained(tmp_path, "model.hidden=[8,8]", "model.norm=layer", "model.dropout=0.2").run_dir
    result = mlp("inspect", run)
    assert result.exit_code == 0, result.output
    assert "dropout (model.dropout 0.2) is off" in result.stderr
    report = json.loads(mlp("inspect", run, "--json").stdout)
    assert [layer["norm"] for layer in report["layers"]] == ["layer", "layer"]
    console = Console(file=io.StringIO(), width=200)
    console.print(inspect_table(report["layers"]))
    lines = console.file.getvalue().splitlines()
    assert lines[0].split() == [
        "layer", "┃", "width", "┃", "norm", "┃", "activation", "┃", "params", "┃", "grad",
        "ratio", "┃", "dead", "┃", "saturated", "┃", "flags",
    ]  # fmt: skip
    assert [line.split()[4] for line in lines[2:]] == ["layer", "layer"]


def delete_training_file(tmp_path):
    """A run trained on a CSV file (ten sigmoid layers with batch norm and dropout), its
    training split's rows saved elsewhere, the file it trained on deleted; and the report
    `mlp inspect --at init` gave before."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
    rows["label"] = (rows["x1"] * rows["x2"] > 0).astype(int)
    rows.to_csv(tmp_path / "train.csv", index=False)
    data = f"data={{source: csv, path: {tmp_path / 'train.csv'}, target: label}}"
    run = trained(tmp_path, data, "model.norm=batch", "model.dropout=0.1").run_dir
    mlpcli.load(run).split("train").to_csv(tmp_path / "copy.csv", index=False)
    before, _ = inspect_run(run, "init")
    (tmp_path / "train.csv").unlink()
    return run, tmp_path / "copy.csv", before


def test_data_stands_in_for_a_training_file_that_is_gone(tmp_path):
    run, copy, before = delete_training_file(tmp_path)
    for at in ("init", "best", "last"):
        refused = mlp("inspect", run, "--at", at)
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        assert "train.csv" in refused.stderr and "--data" in refused.stderr
        result = mlp("inspect", run, "--at", at, "--data", copy, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert len(report["layers"]) == 10
        assert any("copy.csv (--data)" in note for note in report["notes"])
    # The training split's rows, given as a file: the same sample, the same numbers.
    report, _ = inspect_run(run, "init", data=copy)
    for given, own in zip(report.layers, before.layers, strict=True):
        assert given["grad_rms"] == pytest.approx(own["grad_rms"], rel=1e-6)


def test_data_is_checked_as_eval_checks_it(tmp_path):
    run, copy, _ = delete_training_file(tmp_path)
    import pandas as pd

    pd.read_csv(copy).drop(columns="label").to_csv(tmp_path / "unlabelled.csv", index=False)
    result = mlp("inspect", run, "--data", tmp_path / "unlabelled.csv")
    assert result.exit_code == 2 and "'label'" in result.stderr, result.output
    pd.read_csv(copy).head(1).to_csv(tmp_path / "one.csv", index=False)
    result = mlp("inspect", run, "--data", tmp_path / "one.csv")
    assert result.exit_code == 2 and "at least 2" in result.stderr, result.output
    result = mlp("inspect", run, "--data", tmp_path / "nothing.csv")
    assert result.exit_code == 2 and "nothing.csv" in result.stderr, result.output


def test_the_command_prints_the_table_and_writes_its_files(sigmoid_run):
    run = sigmoid_run
    result = mlp("inspect", run, "--at", "init")
    assert result.exit_code == 0, result.output
    assert "vanishing" in result.stdout and "kaiming_normal" in result.stdout
    for name in ("plots/gradients.png", "plots/units.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "inspect.json").read_text())
    assert saved["at"] == "init" and saved["flags"] == ["vanishing"]
    assert saved == json.loads(mlp("inspect", run, "--at", "init", "--json").stdout)


@pytest.mark.parametrize(
    "text",
    [
        "epoch,layer,name,value\n0,1,weight_rms,0.5\n",  # rows, but none a figure draws
        "not,a,csv\n\x00\x01garbage",
        "epoch,layer,name,value\n0,1,grad_rms,nan\n1,1,grad_rms,inf\nx,y,z,w\n",
    ],
    ids=["no-drawable-rows", "garbage", "odd-values"],
)
def test_an_odd_diagnostics_file_never_breaks_inspect(sigmoid_run, tmp_path, text):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(sigmoid_run, run)
    (run / "plots" / "gradients.png").unlink()
    (run / "diagnostics.csv").write_text(text)
    result = mlp("inspect", run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


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
def test_bad_usage_exits_2(sigmoid_run, args, needles):
    result = mlp("inspect", sigmoid_run, *args)
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

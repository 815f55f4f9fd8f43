"""`mlp summary`: the layer table of a config or a run, counted without building the network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn
from typer.testing import CliRunner

import mlpcli
import mlpcli.cli
from mlpcli.config.schema import build_config
from mlpcli.model.factory import build_mlp, count_parameters
from mlpcli.model.layers import layer_rows

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize(
    "model",
    [
        {"hidden": [32, 32]},
        {"hidden": []},
        {"hidden": [7, 5, 3], "bias": False, "activation": ["tanh", "relu", "sigmoid"]},
        {"hidden": [8, 8], "norm": "layer", "dropout": 0.2},
        {"hidden": [6], "norm": "batch", "activation": {"name": "swish", "learnable": True}},
        {"hidden": [4, 4], "activation": {"name": "leaky_relu", "negative_slope": 0.1}},
    ],
)
def test_counts_equal_the_network_build_mlp_makes(model):
    config = build_config({"model": model})
    rows = layer_rows(config.model, 5, 3, "classification")
    built = build_mlp(config.model, 5, 3)
    linears = [m for m in built if isinstance(m, nn.Linear)]
    assert sum(r.params for r in rows) == count_parameters(built)
    assert [r.multiply_adds for r in rows] == [m.in_features * m.out_features for m in linears]
    assert [r.width for r in rows] == [m.out_features for m in linears]
    assert rows[-1].layer == "output" and "softmax" in rows[-1].activation


def summary_json(*args) -> dict:
    result = runner.invoke(mlpcli.cli.app, ["summary", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_config_is_summarised_from_its_data_and_model_section():
    summary = summary_json(ROOT / "configs" / "digits.yaml", "model.hidden=[16,8]")
    assert (summary["inputs"], summary["outputs"], summary["task"]) == (64, 10, "classification")
    assert [layer["width"] for layer in summary["layers"]] == [16, 8, 10]
    assert summary["params"] == 64 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    assert summary["multiply_adds"] == 64 * 16 + 16 * 8 + 8 * 10
    assert summary["params_per_train_row"] == pytest.approx(
        summary["params"] / summary["train_rows"], abs=1e-3
    )


def test_a_run_and_its_model_file_are_summarised_as_trained(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "data: {source: moons, n_samples: 300}\nmodel: {hidden: [12]}\ntrain: {epochs: 2}\n"
    )
    result = mlpcli.train(config, out=tmp_path, name="r", quiet=True)
    for target in (result.run_dir, result.run_dir / "model.safetensors"):
        summary = summary_json(target)
        assert summary["params"] == result.summary["params"]
        assert summary["train_rows"] == result.summary["rows"]["train"]
    table = runner.invoke(mlpcli.cli.app, ["summary", str(result.run_dir)])
    assert table.exit_code == 0 and "(sigmoid at prediction)" in table.stdout


def test_overrides_of_a_trained_model_are_refused(tmp_path):
    result = runner.invoke(mlpcli.cli.app, ["summary", str(tmp_path), "model.hidden=[4]"])
    assert result.exit_code == 2 and "overrides apply to a config file" in result.stderr


def test_summarising_a_config_imports_no_torch():
    code = (
        "import sys\nfrom mlpcli.cli import app\n"
        "try:\n    app(['summary', 'configs/moons.yaml'], prog_name='mlp')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_the_norm_layers_are_listed(tmp_path, norm):
    """Each hidden layer names its norm layer (whose scale and shift its params count); a
    model without norm layers shows no norm column."""
    import io

    from rich.console import Console

    from mlpcli.console import summary_table

    moons = ROOT / "configs" / "moons.yaml"
    summary = summary_json(moons, "model.hidden=[6,4]", f"model.norm={norm}")
    assert [layer["norm"] for layer in summary["layers"]] == [norm, norm, None]
    assert [layer["params"] for layer in summary["layers"]] == [2 * 6 + 6 + 12, 6 * 4 + 4 + 8, 5]
    overrides = [f"model.norm={norm}", "model.hidden=[6,4]", "train.epochs=1"]
    result = mlpcli.train(moons, overrides, out=tmp_path, name="r", quiet=True)
    assert summary_json(result.run_dir)["layers"] == summary["layers"]

    def rendered(summary: dict) -> list[list[str]]:
        console = Console(file=io.StringIO(), width=200)
        console.print(summary_table(summary))
        return [line.split() for line in console.file.getvalue().splitlines()[1:]]

    lines = rendered(summary)
    assert lines[0][:6] == ["layer", "┃", "width", "┃", "norm", "┃"]
    assert [line[4] for line in lines[2:4]] == [norm, norm] and lines[4][4] == "│"  # output
    plain = rendered(summary_json(moons, "model.hidden=[6,4]"))
    assert "norm" not in plain[0] and plain[0][4] == "activation"

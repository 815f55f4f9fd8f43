"""The linear baseline: `mlp train --baseline` and `mlp sweep --baseline`."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import yaml
from conftest import InterruptAt, mlp
from rich.console import Console

import mlpcli
from mlpcli import plots
from mlpcli.config.schema import build_config
from mlpcli.console import BASELINE_LABEL, metrics_table, sweep_table
from mlpcli.sweeps.plan import plan_trials
from mlpcli.training import trainer

# XOR: no straight line separates the classes, while 16 hidden units learn it in seconds.
XOR = {
    "name": "xor",
    "seed": 0,
    "data": {"source": "xor", "n_samples": 600, "noise": 0.05},
    "model": {"hidden": [16]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 40},
}


def write_config(tmp_path, **changes):
    raw = {**XOR, **changes}
    path = tmp_path / "xor.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def train_json(config, out, *args):
    result = mlp("train", config, "--out", out, "--json", "-q", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result


# ------------------------------------------------------------ mlp train --baseline


def test_xor_baseline_is_at_chance_while_the_mlp_learns_it(tmp_path):
    config = write_config(tmp_path)
    summary, _ = train_json(config, tmp_path / "runs", "--baseline")
    assert summary["metrics"]["test"]["accuracy"] >= 0.9
    baseline = summary["baseline"]
    assert baseline["metrics"]["test"]["accuracy"] <= 0.6
    assert set(baseline["metrics"]) == {"train", "val", "test"}
    # A linear model of 2 inputs and 1 output: (inputs + 1) * outputs parameters.
    assert baseline["params"] == (2 + 1) * 1
    run_dir = tmp_path / "runs" / summary["name"]
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["baseline"] == baseline  # --json prints what summary.json holds
    assert saved["status"] == "completed"
    # --baseline is the override train.baseline=true, so the run's config records it.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["baseline"] is True
    with open(run_dir / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == summary["epochs_run"]  # the MLP's alone


def test_the_baseline_leaves_the_mlp_bitwise_unchanged(tmp_path):
    config = write_config(tmp_path)
    plain, _ = train_json(config, tmp_path / "a")
    with_baseline, _ = train_json(config, tmp_path / "b", "train.baseline=true")
    assert "baseline" not in plain
    assert with_baseline["metrics"] == plain["metrics"]  # exact floats
    for key in ("best_epoch", "saved_epoch", "epochs_run", "params"):
        assert with_baseline[key] == plain[key]


def test_the_table_shows_the_baseline_beside_the_mlp(tmp_path):
    result = mlp("train", write_config(tmp_path), "--out", tmp_path, "--baseline")
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "MLP" in table and BASELINE_LABEL in table and "kernel" not in table
    assert table.count("accuracy") == 3 and table.index("MLP") < table.index(BASELINE_LABEL)
    assert re.search(r"stored numbers\s+│\s+65\s+│\s+3\s", table), table
    assert f"training the {BASELINE_LABEL}" in result.stderr  # one line, no second bar
    assert result.stderr.count("epoch 1/40") == 1


def test_a_regression_baseline_reads_in_the_same_columns():
    metrics = {"train": {"loss": 0.1, "r2": 0.9}, "test": {"loss": 0.2, "r2": 0.8}}
    baseline = {
        "params": 11,
        "metrics": {"train": {"loss": 0.5, "r2": 0.5}, "val": {}, "test": {"loss": 0.6, "r2": 0.4}},
    }
    console = Console(file=io.StringIO(), width=100)
    console.print(metrics_table(metrics, title="run r", baseline=baseline))
    text = console.file.getvalue()
    rows = [[c.strip() for c in line.split("│")] for line in text.splitlines()]
    r2 = [row for row in rows if row[0] == "r2"]
    assert r2 == [["r2", "0.9000", "0.8000"], ["r2", "0.5000", "0.4000"]]  # MLP, then baseline
    assert f"{BASELINE_LABEL} (11 parameters)" in text


def fail_linear_models(monkeypatch):
    """A NaN loss for every model without a hidden layer (a one-layer nn.Sequential)."""
    original = trainer.train_epoch

    def train_epoch(engine, *args, **kwargs):
        if len(engine.model) == 1:
            raise trainer.NonFiniteLoss(1, 5, float("nan"))
        return original(engine, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", train_epoch)


def test_a_failed_baseline_is_recorded_and_the_run_completes(tmp_path, monkeypatch):
    fail_linear_models(monkeypatch)
    config = write_config(tmp_path)
    summary, result = train_json(config, tmp_path, "--baseline")
    assert summary["status"] == "completed" and summary["metrics"]["test"]["accuracy"] >= 0.9
    baseline = summary["baseline"]
    assert baseline["params"] == 3 and "metrics" not in baseline
    assert "the training loss became nan at epoch 1" in baseline["failed"]
    assert "the linear baseline failed: the training loss became nan" in result.stderr
    table = mlp("train", config, "--out", tmp_path, "--baseline", "-q")
    assert table.exit_code == 0 and f"{BASELINE_LABEL}: failed" in table.stdout


def test_an_interrupted_baseline_keeps_the_completed_run(tmp_path, monkeypatch):
    def interrupt(session, config):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr("mlpcli.training.baselines.fit._fit_and_score", interrupt)
    result = mlp("train", write_config(tmp_path), "--out", tmp_path, "--name", "r", "--baseline")
    assert result.exit_code == 130
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and (tmp_path / "r" / "model.safetensors").is_file()
    assert summary["baseline"] == {"params": 3, "failed": "interrupted by SIGTERM"}


def test_a_resumed_run_gets_its_baseline_when_the_mlp_completes(tmp_path):
    config = build_config({**XOR, "train": {"epochs": 6, "baseline": True}})
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config, out=tmp_path, name="r", quiet=True, callbacks=[InterruptAt(3)])
    stopped = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert stopped["status"] == "stopped" and "baseline" not in stopped
    resumed = mlpcli.train(config, resume=tmp_path / "r", quiet=True)
    assert resumed.summary["baseline"]["epochs_run"] == 6
    whole = mlpcli.train(config, out=tmp_path, name="whole", quiet=True)
    assert resumed.summary["baseline"]["metrics"] == whole.summary["baseline"]["metrics"]


# ------------------------------------------------------------ mlp sweep --baseline


def test_a_sweep_plans_one_baseline_point_with_the_sweep_seeds():
    sweep = {"grid": {"optim.lr": [0.1, 0.01]}, "seeds": 2}
    config = build_config({**XOR, "train": {"baseline": True}, "sweep": sweep})
    trials, configs = plan_trials(config)
    assert len(trials) == 2 * 2 + 2
    extra = [t for t in trials if t.baseline]
    assert [t.seed for t in extra] == [0, 1] and {t.point for t in extra} == {2}
    assert all(c["model"]["hidden"] == [] for c, t in zip(configs, trials) if t.baseline)
    assert all(c["optim"]["lr"] == 0.02 for c, t in zip(configs, trials) if t.baseline)
    # No trial trains a baseline of its own.
    assert not any(c["train"]["baseline"] for c in configs)


def test_a_swept_baseline_key_is_refused(tmp_path):
    result = mlp("sweep", write_config(tmp_path), "--grid", "train.baseline=true,false")
    assert result.exit_code == 2, result.output
    assert "train.baseline cannot be swept" in result.stderr and "--baseline" in result.stderr


@pytest.mark.slow
def test_sweep_baseline_adds_a_point_a_row_and_a_line(tmp_path):
    config = write_config(tmp_path, train={"epochs": 10})
    args = ("--hidden", "4,16", "--depth", "1,2", "--workers", "1", "--out", tmp_path, "-q")
    result = mlp("sweep", config, *args, "--name", "s", "--baseline", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    sweep_dir = tmp_path / "s"
    assert summary == {
        "sweep_dir": str(sweep_dir),
        **json.loads((sweep_dir / "summary.json").read_text()),
    }
    assert summary["trials"] == 5
    baseline = [p for p in summary["points"] if p.get("baseline")]
    assert len(baseline) == 1 and baseline[0]["params"] == 3 and baseline[0]["width"] == 0
    assert not summary["best"].get("baseline")
    with open(sweep_dir / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    linear = [r for r in rows if r["model.hidden"] == "[]"]
    assert len(linear) == 1 and linear[0]["width"] == "0" and linear[0]["status"] == "completed"
    assert float(linear[0]["test_accuracy"]) <= 0.6
    assert (sweep_dir / "plots" / "vs_width.png").stat().st_size > 0
    assert (sweep_dir / "plots" / "vs_params.png").stat().st_size > 0
    trial = yaml.safe_load((sweep_dir / "trials" / "trial-004" / "config.yaml").read_text())
    assert trial["model"]["hidden"] == [] and trial["train"]["baseline"] is False
    table = io.StringIO()
    Console(file=table, width=120).print(sweep_table(summary))
    assert f"{BASELINE_LABEL} (hidden=[])" in table.getvalue()


def test_sweep_curves_draw_the_baseline_as_a_labelled_horizontal_line(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    points = [
        {
            "settings": {},
            "width": w,
            "depth": 1,
            "completed": 1,
            "train_loss_mean": 0.5 / w,
            "val_loss_mean": 0.6 / w,
            "train_accuracy_mean": 0.9,
            "val_accuracy_mean": 0.85,
        }
        for w in (2, 8)
    ]
    baseline = {
        "settings": {},
        "width": 0,
        "completed": 2,
        "baseline": True,
        "train_loss_mean": 0.69,
        "train_loss_std": 0.01,
        "val_loss_mean": 0.7,
        "train_accuracy_mean": 0.52,
        "val_accuracy_mean": 0.5,
    }
    plots.sweep_curves(points, tmp_path / "p.png", "accuracy", "width", "t", baseline)
    loss, accuracy = drawn["fig"].axes
    flat = {(tuple(line.get_ydata()), line.get_linestyle()) for line in loss.get_lines()}
    assert ((0.69, 0.69), "-") in flat and ((0.7, 0.7), "--") in flat
    assert any(tuple(line.get_ydata()) == (0.5, 0.5) for line in accuracy.get_lines())
    legend = [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
    assert BASELINE_LABEL in legend
    assert BASELINE_LABEL in [t.get_text().replace("\n", " ") for t in loss.texts]

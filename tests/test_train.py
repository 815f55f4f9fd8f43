"""End-to-end training through the Python API: scores, run folders, determinism, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import InterruptAt
from safetensors.torch import load_file

import mlpcli
from mlpcli.callbacks import Callback
from mlpcli.config.registry import OPTIMIZERS, SCHEDULES
from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError, TrainingError
from mlpcli.runs.checkpoint import load_checkpoint, load_model_file
from mlpcli.training import trainer


def make_config(**sections):
    raw = {
        "name": "t",
        "data": {"source": "moons", "n_samples": 600, "noise": 0.1},
        "model": {"hidden": [16, 16]},
        "optim": {"lr": 1e-2},
        "train": {"epochs": 20, "batch_size": 64},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return build_config(raw)


def run(tmp_path, quiet=True, **sections):
    return mlpcli.train(make_config(**sections), out=tmp_path, quiet=quiet)


@pytest.mark.parametrize(
    "sections, metric, threshold",
    [
        ({}, "accuracy", 0.95),  # binary
        (
            {
                "data": {"source": "spirals", "n_samples": 900, "noise": 0.1},
                "model": {"hidden": [64, 64], "activation": "tanh"},
                "train": {"epochs": 60},
            },
            "accuracy",
            0.9,
        ),
        ({"data": {"source": "blobs"}}, "accuracy", 0.9),
        (
            {
                "data": {"source": "multilabel", "n_samples": 1500, "noise": 0.0},
                "model": {"hidden": [64, 64]},
                "train": {"epochs": 40},
            },
            "f1_micro",
            0.9,
        ),
        (
            {
                "data": {"source": "sine"},
                "model": {"hidden": [32], "activation": "tanh"},
                "train": {"epochs": 100},
            },
            "r2",
            0.9,
        ),
        ({"data": {"source": "iris"}, "train": {"epochs": 60, "batch_size": 16}}, "accuracy", 0.85),
    ],
    ids=[
        "binary-moons",
        "multiclass-spirals",
        "multiclass-blobs",
        "multilabel",
        "regression-sine",
        "iris",
    ],
)
def test_each_task_learns(tmp_path, sections, metric, threshold):
    result = run(tmp_path, **sections)
    assert result.summary["status"] == "completed"
    assert result.summary["metrics"]["test"][metric] >= threshold


def test_multi_output_regression_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(800, 3))
    y = np.c_[x[:, 0] * x[:, 1] * 50 + 100, np.sin(2 * x[:, 2]) * 0.01]
    np.savez(tmp_path / "data.npz", X=x, y=y)
    result = run(
        tmp_path,
        data={"source": "npz", "path": str(tmp_path / "data.npz")},
        model={"hidden": [64, 64]},
        train={"epochs": 80},
    )
    assert result.summary["task"] == "regression"
    assert result.summary["metrics"]["test"]["r2"] >= 0.9
    # Metrics are in the targets' own units, not the standardised ones.
    assert result.summary["metrics"]["test"]["mae"] < 10


def test_linear_model_cannot_learn_xor_but_one_hidden_layer_can(tmp_path):
    data = {"source": "xor", "n_samples": 1000, "noise": 0.0}
    linear = run(tmp_path, data=data, model={"hidden": []}, train={"epochs": 30})
    hidden = run(tmp_path, data=data, model={"hidden": [16]}, train={"epochs": 60})
    assert linear.summary["params"] == 3
    assert linear.summary["metrics"]["test"]["accuracy"] < 0.7
    assert hidden.summary["metrics"]["test"]["accuracy"] > 0.9


def test_run_folder_holds_every_promised_file(tmp_path):
    result = run(tmp_path, train={"epochs": 5})
    folder = result.run_dir
    assert folder.parent == tmp_path and folder.name.startswith("t-")
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert build_config(saved) == make_config(train={"epochs": 5})
    with open(folder / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr", "seconds"} <= set(
        rows[0]
    )
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == result.summary
    for key in (
        "status",
        "task",
        "best_epoch",
        "params",
        "device",
        "seconds",
        "train_seconds",
        "samples_per_second",
        "metrics",
    ):
        assert key in summary
    assert set(summary["metrics"]) == {"train", "val", "test"}
    tensors, meta = load_model_file(folder / "model.safetensors")
    assert meta["task"] == "binary" and meta["preprocessor"]["labels"] == [0, 1]
    assert set(tensors) == set(load_file(folder / "model.safetensors"))
    state = load_checkpoint(folder / "checkpoints" / "last.pt")
    assert state["epoch"] == 5
    assert (folder / "plots" / "loss.png").stat().st_size > 1000


def test_two_runs_in_one_second_get_separate_folders(tmp_path):
    first = run(tmp_path, train={"epochs": 1})
    second = run(tmp_path, train={"epochs": 1})
    assert first.run_dir != second.run_dir
    assert (first.run_dir / "model.safetensors").exists()


def weights(result):
    return load_file(result.run_dir / "model.safetensors")


def test_same_seed_gives_bitwise_identical_weights(tmp_path):
    sections = {"model": {"dropout": 0.2}, "train": {"epochs": 4}}
    a, b = weights(run(tmp_path, **sections)), weights(run(tmp_path, **sections))
    c = weights(run(tmp_path, seed=1, **sections))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_the_seed_flag_moves_the_weights_and_keeps_the_split(tmp_path):
    from typer.testing import CliRunner

    from mlpcli.cli import app

    config = tmp_path / "c.yaml"
    config.write_text("data: {source: moons, n_samples: 300}\nmodel: {hidden: [8]}\n")

    def train(name, *args):
        argv = ["train", str(config), "--out", str(tmp_path), "--name", name, "-q", *args]
        result = CliRunner().invoke(app, [*argv, "train.epochs=2", "train.plots=false"])
        assert result.exit_code == 0, result.output
        model = mlpcli.load(tmp_path / name)
        return model.split("test"), load_file(tmp_path / name / "model.safetensors"), model

    rows_1, weights_1, model_1 = train("s1", "--seed", "1")
    rows_2, weights_2, _ = train("s2", "--seed", "2")
    rows_moved, _, _ = train("moved", "seed=2")
    assert rows_1.equals(rows_2)  # the same rows to score
    assert not all(torch.equal(weights_1[k], weights_2[k]) for k in weights_1)
    assert not rows_1.equals(rows_moved)  # seed=N moves the data too
    assert (model_1.config.seed, model_1.config.data.seed) == (1, 0)


@pytest.mark.parametrize("stop_at", [1, 3, 6])
def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path, stop_at):
    # Dropout, a plateau schedule and early stopping all carry state across epochs.
    sections = {
        "model": {"dropout": 0.1, "norm": "batch"},
        "schedule": {"name": "plateau", "patience": 1, "factor": 0.5},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        "train": {"epochs": 8, "early_stopping": {"patience": 5}},
    }
    config = make_config(**sections)
    whole = mlpcli.train(config, out=tmp_path / "whole", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(
            config, out=tmp_path / "cut", name="cut", quiet=True, callbacks=[InterruptAt(stop_at)]
        )
    cut = tmp_path / "cut" / "cut"
    assert json.loads((cut / "summary.json").read_text())["status"] == "stopped"
    assert load_checkpoint(cut / "checkpoints" / "last.pt")["epoch"] == stop_at
    resumed = mlpcli.train(config, resume=cut, quiet=True)
    assert resumed.run_dir == cut
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["best_epoch"] == whole.summary["best_epoch"]
    with open(cut / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == whole.summary["epochs_run"]


def test_resume_refuses_a_different_config(tmp_path):
    config = make_config(train={"epochs": 4})
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config, out=tmp_path, name="r", quiet=True, callbacks=[InterruptAt(2)])
    with pytest.raises(mlpcli.errors.ConfigError, match="optim.lr"):
        mlpcli.train(
            make_config(train={"epochs": 4}, optim={"lr": 0.5}), resume=tmp_path / "r", quiet=True
        )


# ------------------------------------------------------------ more epochs on a finished run

# Dropout, batch norm and momentum carry state (RNG, statistics, velocity) across epochs.
MORE = {
    "model": {"dropout": 0.1, "norm": "batch"},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "train": {"epochs": 5, "plots": False},
}


def more_config(epochs, **schedule):
    return make_config(**{**MORE, "train": {**MORE["train"], "epochs": epochs}}, **schedule)


def metric_rows(run_dir):
    """metrics.csv's rows without the seconds each epoch took, and its raw lines."""
    text = (run_dir / "metrics.csv").read_text()
    rows = [
        {k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(text.splitlines())
    ]
    return rows, text.splitlines()


@pytest.mark.parametrize(
    "schedule",
    [{}, {"name": "step", "step_size": 2, "gamma": 0.5}, {"name": "plateau", "patience": 1}],
    ids=["constant", "step", "plateau"],
)
def test_more_epochs_continue_a_completed_run_as_a_longer_run(tmp_path, schedule):
    sections = {"schedule": schedule} if schedule else {}
    five = mlpcli.train(more_config(5, **sections), out=tmp_path, name="r", quiet=True)
    _, lines_before = metric_rows(five.run_dir)
    more = mlpcli.train(more_config(8, **sections), resume=five.run_dir, quiet=True)
    assert more.run_dir == five.run_dir
    rows, lines = metric_rows(more.run_dir)
    assert len(rows) == 8 and lines[:6] == lines_before  # the header and 5 rows as they were
    summary = json.loads((more.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 8
    assert summary["continued"] == [
        {"after_epoch": 5, "epochs_from": 5, "epochs_to": 8, "stopped_early": False}
    ]
    saved = yaml.safe_load((more.run_dir / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 8
    _, metadata = load_model_file(more.run_dir / "model.safetensors")
    assert metadata["config"]["train"]["epochs"] == 8
    # These schedules do not depend on the run's length: 5 + 3 epochs are bitwise 8 epochs.
    eight = mlpcli.train(more_config(8, **sections), out=tmp_path / "eight", quiet=True)
    a, b = weights(eight), weights(more)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metric_rows(eight.run_dir)[0] == rows
    assert summary["metrics"] == eight.summary["metrics"]


def test_more_epochs_stretch_a_cosine_schedule(tmp_path):
    cosine = {"schedule": {"name": "cosine", "min_lr": 1e-3}}
    five = mlpcli.train(more_config(5, **cosine), out=tmp_path, name="r", quiet=True)
    lr_before = [float(r["lr"]) for r in metric_rows(five.run_dir)[0]]
    more = mlpcli.train(more_config(8, **cosine), resume=five.run_dir, quiet=True)
    eight = mlpcli.train(more_config(8, **cosine), out=tmp_path / "eight", quiet=True)
    lr = [float(r["lr"]) for r in metric_rows(more.run_dir)[0]]
    straight = [float(r["lr"]) for r in metric_rows(eight.run_dir)[0]]
    # Epochs 1-5 kept the 5-epoch cosine; from epoch 6 on, the lr is the 8-epoch cosine's (to
    # the last bits: that one was reached step by step from epoch 1).
    assert lr[:5] == lr_before
    assert lr[4] == pytest.approx(1e-3 + (0.05 - 1e-3) * (1 + np.cos(np.pi * 4 / 5)) / 2)
    assert lr[5:] == pytest.approx(straight[5:], rel=1e-12)
    assert lr[5] > lr[4]  # it rises again from where the short cosine had brought it
    a, b = weights(eight), weights(more)
    assert not all(torch.equal(a[k], b[k]) for k in a)  # epochs 1-5 had other rates


def test_more_epochs_after_early_stopping_restart_its_patience(tmp_path):
    stop = {"early_stopping": {"patience": 2}}
    config = make_config(
        optim={"lr": 0.3},
        model={"hidden": [64]},
        data={"n_samples": 100},
        train={"epochs": 100, **stop},
    )
    first = mlpcli.train(config, out=tmp_path, name="r", quiet=True)
    assert first.summary["stopped_early"]
    run_before = first.summary["epochs_run"]
    lines_before = metric_rows(first.run_dir)[1]
    more = mlpcli.train(
        make_config(
            optim={"lr": 0.3},
            model={"hidden": [64]},
            data={"n_samples": 100},
            train={"epochs": 200, **stop},
        ),
        resume=first.run_dir,
        quiet=True,
    )
    summary = more.summary
    assert summary["continued"][0]["stopped_early"] and summary["epochs_run"] > run_before
    # The counter restarted at the continuation: it stops again once 2 epochs in a row after
    # both the continuation and the best epoch miss the best so far.
    last = max(summary["best_epoch"], run_before) + 2
    assert summary["epochs_run"] in (last, 200)
    rows, lines = metric_rows(more.run_dir)
    assert len(rows) == summary["epochs_run"] and lines[: run_before + 1] == lines_before


def test_more_epochs_are_refused_unless_they_add_epochs(tmp_path):
    done = mlpcli.train(more_config(4), out=tmp_path, name="r", quiet=True)
    before = {f: (done.run_dir / f).read_bytes() for f in ("config.yaml", "summary.json")}
    with pytest.raises(mlpcli.errors.RunError, match=r"already completed.*train\.epochs=N.*4"):
        mlpcli.train(more_config(4), resume=done.run_dir, quiet=True)
    with pytest.raises(ConfigError, match=r"train\.epochs=3: .* already run 4 epochs"):
        mlpcli.train(more_config(3), resume=done.run_dir, quiet=True)
    other = make_config(**{**MORE, "train": {**MORE["train"], "epochs": 8, "batch_size": 32}})
    with pytest.raises(ConfigError, match=r"at train\.batch_size;") as refused:
        mlpcli.train(other, resume=done.run_dir, quiet=True)
    assert "at train.epochs" not in str(refused.value)
    assert {f: (done.run_dir / f).read_bytes() for f in before} == before  # nothing changed


def test_an_interrupted_continuation_resumes_to_the_new_epochs(tmp_path):
    five = mlpcli.train(more_config(5), out=tmp_path, name="r", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(more_config(8), resume=five.run_dir, quiet=True, callbacks=[InterruptAt(6)])
    summary = json.loads((five.run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["continued"][0]["epochs_to"] == 8
    resumed = mlpcli.train(more_config(8), resume=five.run_dir, quiet=True)  # as config.yaml
    assert resumed.summary["epochs_run"] == 8 and len(resumed.summary["continued"]) == 1
    eight = mlpcli.train(more_config(8), out=tmp_path / "eight", quiet=True)
    a, b = weights(eight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mlp_train_resume_takes_more_epochs_without_the_config(tmp_path):
    from typer.testing import CliRunner

    from mlpcli.cli import app

    config = tmp_path / "c.yaml"
    config.write_text(more_config(3).to_yaml())
    runner = CliRunner()
    argv = ["train", str(config), "--out", str(tmp_path), "--name", "r", "-q"]
    assert runner.invoke(app, argv).exit_code == 0
    run_dir = tmp_path / "r"
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "train.epochs=5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epochs_run"] == 5
    again = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert again.exit_code == 2 and "train.epochs=N with N above 5" in again.stderr
    missing = runner.invoke(app, ["train"])
    assert missing.exit_code == 2 and "CONFIG" in missing.stderr


def test_early_stopping_restores_the_best_weights(tmp_path):
    result = run(
        tmp_path,
        optim={"lr": 0.05},
        model={"hidden": [128, 128]},
        data={"n_samples": 200, "noise": 0.4},
        train={"epochs": 200, "early_stopping": {"patience": 5, "monitor": "val_loss"}},
    )
    summary = result.summary
    assert summary["stopped_early"] and summary["epochs_run"] == summary["best_epoch"] + 5
    with open(result.run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    best = min(float(r["val_loss"]) for r in rows)
    assert summary["metrics"]["val"]["loss"] == pytest.approx(best, rel=1e-5)


class Poison(Callback):
    """Sets every weight to NaN after an epoch, so the next epoch's loss is NaN."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 3:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))


def test_a_nan_loss_fails_the_run_and_keeps_the_best_model(tmp_path):
    config = make_config(train={"epochs": 10})
    with pytest.raises(TrainingError, match="epoch 4"):
        mlpcli.train(config, out=tmp_path, name="nan", quiet=True, callbacks=[Poison()])
    folder = tmp_path / "nan"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and 1 <= summary["best_epoch"] <= 3
    tensors, _ = load_model_file(folder / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert summary["metrics"]["test"]["accuracy"] > 0.7


class NanAtStep(Callback):
    """One global step's loss and gradients are NaN (as a real divergence makes them); counts
    the training steps taken and keeps each epoch's weights.
    """

    def __init__(self, step):
        self.step, self.steps, self.weights = step, 0, {}

    def on_train_start(self, trainer):
        engine = trainer.engine
        loss, update = engine.loss, engine.update

        def poisoned_loss(x, y):
            self.steps += 1
            value = loss(x, y)
            return value * float("nan") if self.steps == self.step else value

        def poisoned_update(optimizer, grad_clip, share=1.0):
            if self.steps != self.step:
                return update(optimizer, grad_clip, share)
            for p in engine.parameters:
                p.grad = torch.full_like(p, float("nan"))
            optimizer.step()  # the weights become NaN, unless the run stopped before this

        engine.loss, engine.update = poisoned_loss, poisoned_update

    def on_epoch_end(self, trainer, record):
        self.weights[record["epoch"]] = {
            k: v.detach().clone() for k, v in trainer.model.state_dict().items()
        }


@pytest.mark.parametrize("each_step", [True, False], ids=["cpu-reads", "device-buffer"])
def test_a_nan_loss_stops_at_its_step_and_names_it(tmp_path, monkeypatch, each_step):
    # On an accelerator the losses are read at the epoch's end; the step named is the same.
    monkeypatch.setattr(trainer, "reads_each_step", lambda device: each_step)
    # 360 training rows in batches of 64: 6 steps an epoch, so step 15 is epoch 3, step 3.
    config = make_config(train={"epochs": 10}, optim={"lr": 0.02})
    nan = NanAtStep(15)
    with pytest.raises(TrainingError) as caught:
        mlpcli.train(config, out=tmp_path, name="nan", quiet=True, callbacks=[nan])
    message = str(caught.value)
    assert "became nan at epoch 3, step 3 of 6 (optim.lr 0.02)" in message
    assert "the model from epoch 2 is kept" in message and "optim.lr" in message
    assert nan.steps == (15 if each_step else 18)  # on the CPU, not one step after it
    assert caught.value.exit_code == 1
    folder = tmp_path / "nan"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["best_epoch"] == summary["saved_epoch"] == 2
    with open(folder / "metrics.csv") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2]
    tensors, metadata = load_model_file(folder / "model.safetensors")
    assert metadata["epoch"] == 2
    assert all(torch.equal(tensors[k], v) for k, v in nan.weights[2].items())


def test_a_diverging_run_fails_with_exit_1_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from mlpcli.cli import app

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(make_config(optim={"name": "sgd", "lr": 1e30}).to_dict()))
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1, result.output
    assert "at epoch 1, step" in result.stderr and "optim.lr 1e+30" in result.stderr
    assert "Traceback" not in result.output


def diverging_config(tmp_path, **train):
    """A linear model on sine under SGD with a step above 2 / curvature: every epoch's loss is
    finite and about 200 times the last one's.
    """
    config = make_config(
        data={"source": "sine"},
        model={"hidden": []},
        optim={"name": "sgd", "lr": 1.3},
        train={"epochs": 10, **train},
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


def test_a_diverging_finite_loss_fails_the_run_like_a_nan(tmp_path):
    from typer.testing import CliRunner

    from mlpcli.cli import app

    args = ["train", str(diverging_config(tmp_path)), "--out", str(tmp_path), "--name", "d", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert "at epoch 3" in message and "times the untrained model's" in message
    assert "train.diverge_factor 10000" in message and "(optim.lr 1.3)" in message
    assert "try a smaller optim.lr, train.grad_clip, or model.norm" in message
    assert "the model from epoch 1 is kept" in message
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] == 2
    assert summary["saved_epoch"] == 1 and (tmp_path / "d" / "model.safetensors").is_file()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_a_loss_that_explodes_in_the_first_epoch_fails_the_run(tmp_path, activation):
    """optim.lr=1e12 with a saturating activation: the loss jumps to about 1e10 within the first
    epoch and stays there, finite; measured against the untrained model's loss it diverged."""
    config = make_config(
        data={"source": "moons", "n_samples": 400},
        model={"hidden": [32, 32], "activation": activation},
        optim={"lr": 1e12},
        train={"epochs": 5, "batch_size": 64},
    )
    with pytest.raises(TrainingError, match="at epoch 1 .*the untrained model's"):
        mlpcli.train(config, out=tmp_path, name="boom", quiet=True)
    summary = json.loads((tmp_path / "boom" / "summary.json").read_text())
    assert summary["status"] == "failed"


def test_diverge_factor_null_never_stops_a_run(tmp_path):
    config = build_config(
        yaml.safe_load(diverging_config(tmp_path, diverge_factor=None).read_text())
    )
    result = mlpcli.train(config, out=tmp_path, quiet=True)
    assert result.summary["status"] == "completed" and result.summary["epochs_run"] == 10


@pytest.mark.parametrize("factor", [1, 0.5, -3])
def test_diverge_factor_must_exceed_one(factor):
    with pytest.raises(ConfigError, match="train.diverge_factor"):
        make_config(train={"diverge_factor": factor})


@pytest.mark.parametrize("optim", list(OPTIMIZERS))
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_optimizer_and_schedule_trains(tmp_path, optim, schedule):
    momentum = {"momentum": 0.9} if optim in ("sgd", "rmsprop") else {}
    result = run(
        tmp_path,
        optim={"name": optim, "lr": 0.02, "weight_decay": 1e-4, **momentum},
        schedule={"name": schedule, "step_size": 2, "gamma": 0.5, "patience": 0},
        train={"epochs": 6, "grad_clip": 1.0},
    )
    with open(result.run_dir / "metrics.csv") as handle:
        lrs = [float(r["lr"]) for r in csv.DictReader(handle)]
    assert lrs[0] == pytest.approx(0.02)
    if schedule == "step":
        assert lrs == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005, 0.005])
    elif schedule == "cosine":
        assert all(a > b for a, b in zip(lrs, lrs[1:]))
    elif schedule == "none":
        assert len(set(lrs)) == 1
    assert result.summary["metrics"]["test"]["accuracy"] > 0.75


def test_resume_of_a_run_stopped_in_its_first_epoch_starts_it_afresh(tmp_path):
    config = make_config(train={"epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config, out=tmp_path, name="early", quiet=True, callbacks=[InterruptAt(1)])
    (tmp_path / "early" / "checkpoints" / "last.pt").unlink()
    resumed = mlpcli.train(config, resume=tmp_path / "early", quiet=True)
    whole = mlpcli.train(config, out=tmp_path, quiet=True)
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_mixed_precision_trains_on_the_cpu(tmp_path):
    result = run(tmp_path, train={"epochs": 10, "precision": "bf16"})
    assert result.summary["engine"] == "autograd"
    assert result.summary["metrics"]["test"]["accuracy"] > 0.9


class ThreadCount(Callback):
    def on_epoch_end(self, trainer, record):
        self.during = torch.get_num_threads()


def test_small_models_train_on_one_thread_and_the_count_is_restored(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        for threads, expected in ((None, 1), (2, 2)):
            seen = ThreadCount()
            config = make_config(train={"epochs": 2, "threads": threads})
            result = mlpcli.train(config, out=tmp_path, quiet=True, callbacks=[seen])
            assert seen.during == expected == result.summary["threads"]
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_threads_follow_the_rows_a_batch_really_holds(tmp_path):
    # A batch size far above the 360 training rows still makes batches of 360: a small step.
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        seen = ThreadCount()
        config = make_config(train={"epochs": 1, "batch_size": 100_000})
        result = mlpcli.train(config, out=tmp_path, quiet=True, callbacks=[seen])
        assert seen.during == 1 == result.summary["threads"]
    finally:
        torch.set_num_threads(before)


# Few rows, a wide model and a large step: validation loss is best long before epoch 40.
OVERFITTING = {
    "data": {"n_samples": 120, "noise": 0.3},
    "model": {"hidden": [64, 64]},
    "optim": {"lr": 0.05},
}


@pytest.mark.parametrize("restore_best", [True, False])
def test_the_summary_line_says_which_epoch_was_kept_and_where_the_best_was(tmp_path, restore_best):
    from typer.testing import CliRunner

    from mlpcli.cli import app

    config = make_config(**OVERFITTING, train={"epochs": 40, "restore_best": restore_best})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    args = ["train", str(path), "--out", str(tmp_path), "--name", "r", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    best = summary["best_epoch"]
    assert 1 <= best < 40
    line = " ".join(result.stdout.split())
    if restore_best:
        assert summary["saved_epoch"] == best
        assert f"kept epoch {best} of 40 (best val_loss)" in line
    else:
        assert summary["saved_epoch"] == 40
        assert f"kept epoch 40 of 40 (last; best val_loss at epoch {best})" in line
    assert "best epoch" not in line
    _, metadata = load_model_file(tmp_path / "r" / "model.safetensors")
    assert metadata["epoch"] == summary["saved_epoch"]


class PoisonAfter(Callback):
    """Sets every weight to NaN after the given epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))


def test_a_failed_run_keeps_the_best_epoch_even_without_restore_best(tmp_path):
    config = make_config(**OVERFITTING, train={"epochs": 40, "restore_best": False})
    with pytest.raises(TrainingError):
        mlpcli.train(config, out=tmp_path, name="nan", quiet=True, callbacks=[PoisonAfter(30)])
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["saved_epoch"] == summary["best_epoch"] < 30
    _, metadata = load_model_file(tmp_path / "nan" / "model.safetensors")
    assert metadata["epoch"] == summary["best_epoch"]


def legend_of(monkeypatch, **kept):
    from mlpcli import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e + (e - 3) ** 2 / 50, "val_acc": 0.5}
        for e in range(1, 9)
    ]
    plots.loss_curve(history, Path("unused.png"), "acc", "t", **kept)
    (axes, *_) = figures[0].axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    return {label: (line.get_xdata()[0], line.get_linestyle()) for label, line in lines.items()}


def test_the_loss_plot_labels_the_kept_epoch_and_marks_a_different_best(monkeypatch):
    lines = legend_of(monkeypatch, kept_epoch=8, best_epoch=3, monitor="val_loss")
    assert lines["kept: epoch 8"] == (8, "--")
    assert lines["best val_loss: epoch 3"] == (3, ":")
    lines = legend_of(monkeypatch, kept_epoch=3, best_epoch=3, monitor="val_loss")
    assert lines["kept: epoch 3 (best val_loss)"] == (3, "--")
    assert not any(label.startswith("best") for label in lines)


def test_both_engines_reach_the_same_model(tmp_path):
    sections = {"model": {"dropout": 0.2}, "train": {"epochs": 5}}
    fast = weights(run(tmp_path, **sections))
    slow = weights(run(tmp_path, **{**sections, "train": {"epochs": 5, "engine": "autograd"}}))
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-4, atol=1e-5)

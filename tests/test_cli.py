"""The `mlp` command through typer's CliRunner: help, happy paths, exit codes, clean errors."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from conftest import mlp

TINY = """\
name: tiny
data: {source: moons, n_samples: 400}
model: {hidden: [16]}
optim: {lr: 0.02}
train: {epochs: 15}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def trained(config, tmp_path):
    result = mlp("train", config, "--out", tmp_path / "runs", "--name", "r", "--json", "-q")
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "r"


def assert_clean_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_help_lists_every_command():
    result = mlp("--help")
    assert result.exit_code == 0
    for command in ("train", "eval", "predict", "config"):
        assert command in result.stdout


def test_train_json_prints_only_the_summary_on_stdout(config, tmp_path):
    result = mlp("train", config, "model.hidden=[8,8]", "--out", tmp_path, "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["metrics"]["test"]["accuracy"] > 0.8
    assert summary["params"] == 2 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    saved = (tmp_path / summary["name"] / "config.yaml").read_text()
    assert "seed: 3" in saved and "- 8" in saved


def test_train_prints_a_metrics_table(config, tmp_path):
    result = mlp("train", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "test" in result.stdout
    assert "epoch 1/15" in result.stderr  # plain progress lines when not a terminal
    quiet = mlp("train", config, "--out", tmp_path, "--quiet")
    assert "epoch" not in quiet.stderr


def test_eval_json_is_a_flat_metrics_object(trained):
    result = mlp("eval", trained, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    # The flat metrics; a classifier's confusion matrix and per-class scores beside them.
    assert set(metrics) == {"loss", "accuracy", "f1_macro", "confusion", "per_class"}
    summary = json.loads((trained / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["metrics"]["test"]["accuracy"])
    table = mlp("eval", trained, "--split", "val")
    assert table.exit_code == 0 and "accuracy" in table.stdout


def test_eval_on_a_labelled_file(trained, tmp_path):
    rows = pd.DataFrame(
        {"x1": [-1.0, 0.0, 1.0, 2.0], "x2": [0.0, 1.0, 0.0, 0.5], "y": [0, 0, 0, 1]}
    )
    rows.to_parquet(tmp_path / "rows.parquet")
    result = mlp("eval", trained, "--data", tmp_path / "rows.parquet", "--json")
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.stdout)["accuracy"] <= 1


def test_predict_to_stdout_and_to_a_file(trained, tmp_path):
    pd.DataFrame({"x2": [0.9, -0.4], "x1": [0.0, 1.0]}).to_csv(tmp_path / "new.csv", index=False)
    result = mlp("predict", trained, tmp_path / "new.csv", "--proba")
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout))
    assert list(out.columns) == ["x2", "x1", "y", "proba_0", "proba_1"]
    assert list(out["y"]) == [0, 1]  # the top of the upper moon, the bottom of the lower one
    target = tmp_path / "pred.parquet"
    assert mlp("predict", trained, tmp_path / "new.csv", "-o", target).exit_code == 0
    assert pd.read_parquet(target)["y"].tolist() == [0, 1]
    again = mlp("predict", trained, tmp_path / "new.csv", "-o", target)
    assert_clean_error(again, "already exists")


def test_config_show_prints_the_resolved_config(config):
    result = mlp("config", "show", config, "optim.lr=3e-4", "model.activation=tanh")
    assert result.exit_code == 0, result.output
    assert "lr: 0.0003" in result.stdout and "activation: tanh" in result.stdout
    assert "weight_decay: 0.0" in result.stdout  # defaults filled


@pytest.mark.parametrize(
    "text, overrides, needles",
    [
        ("model: {hiden: [8]}\n", [], ["model.hiden", "did you mean 'hidden'"]),
        ("model: {activation: rleu}\n", [], ["rleu", "did you mean 'relu'"]),
        ("optim: {lr: fast}\n", [], ["optim.lr", "fast"]),
        ("model:\n  hidden: [8]\n  activation: relu: x\n", [], ["line 3", "invalid YAML"]),
        ("loss: cross_entropy\n", [], ["loss", "binary", "bce"]),
        ("data: {source: csv, path: nowhere.csv}\n", [], ["nowhere.csv", "no such data file"]),
        ("train: {device: cuda}\n", ["train.device=tpu"], ["train.device", "tpu", "accepted"]),
        ("{}\n", ["model.hidden"], ["model.hidden", "KEY=VALUE"]),
        ("train: {early_stopping: {monitor: val_r2}}\n", [], ["val_r2", "val_accuracy"]),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_run_folder(tmp_path, text, overrides, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = mlp("train", path, *overrides, "--out", tmp_path / "runs")
    assert_clean_error(result, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_missing_cuda_is_a_clean_error(config, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = mlp("train", config, "--device", "cuda", "--out", tmp_path / "runs")
    assert_clean_error(result, "train.device", "cuda", "available: auto, cpu")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_an_existing_run_is_never_overwritten(config, trained):
    before = (trained / "model.safetensors").read_bytes()
    result = mlp("train", config, "--out", trained.parent, "--name", "r")
    assert_clean_error(result, "already exists")
    assert "--resume" not in result.stderr  # a completed run has nothing left to continue
    assert (trained / "model.safetensors").read_bytes() == before


def test_eval_and_predict_of_a_non_model_exit_2(tmp_path, config):
    assert_clean_error(mlp("eval", config), "a config file, not a trained model", "mlp train")
    (tmp_path / "notes.txt").write_text("x1,x2\n" * 3)
    assert_clean_error(mlp("eval", tmp_path / "notes.txt"), "not a model file")
    assert_clean_error(mlp("eval", tmp_path / "missing"), "no such run folder")
    assert_clean_error(mlp("predict", tmp_path, config), "no model.safetensors")


def test_eval_with_a_missing_column(trained, tmp_path):
    pd.DataFrame({"x1": [0.0], "y": [1]}).to_csv(tmp_path / "rows.csv", index=False)
    result = mlp("eval", trained, "--data", tmp_path / "rows.csv")
    assert_clean_error(result, "rows.csv", "'x2'")


def test_interrupt_exits_130_and_resume_finishes_the_run(config, tmp_path, monkeypatch):
    from mlpcli.training import trainer

    original = trainer.train_epoch
    calls = {"n": 0}

    def interrupt_on_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", interrupt_on_fourth)
    result = mlp("train", config, "--out", tmp_path, "--name", "cut")
    assert result.exit_code == 130
    assert "--resume" in result.stderr
    run = tmp_path / "cut"
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    resumed = mlp("train", config, "--resume", run, "--json", "-q")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed" and summary["epochs_run"] == 15
    assert_clean_error(mlp("train", config, "--resume", run), "already completed")


def test_a_table_without_a_named_target_is_refused(tmp_path):
    pd.DataFrame(
        {
            "x1": [0, 1, 2, 3],
            "y1": [1, 2, 3, 4],
            "y2": [2, 3, 4, 5],
            "target": ["a", "b", "a", "b"],
            "y": [0, 1, 0, 1],
        }
    ).to_csv(tmp_path / "boxes.csv", index=False)
    path = tmp_path / "boxes.yaml"
    path.write_text("data: {source: csv, path: boxes.csv}\n")
    assert_clean_error(mlp("train", path, "--out", tmp_path / "runs"), "data.target", "columns")


def test_several_text_targets_and_classes_with_several_targets_are_refused(tmp_path):
    pd.DataFrame({"x": range(20), "p": ["a", "b"] * 10, "q": ["c", "d"] * 10}).to_csv(
        tmp_path / "t.csv", index=False
    )
    path = tmp_path / "t.yaml"
    path.write_text("data: {source: csv, path: t.csv, target: [p, q]}\n")
    assert_clean_error(mlp("train", path, "--out", tmp_path / "runs"), "'p' holds text")
    explicit = mlp("train", path, "task=classification", "--out", tmp_path / "runs")
    assert_clean_error(explicit, "task: classification takes one target")


def test_predict_checks_its_output_before_working(trained, tmp_path):
    pd.DataFrame({"x1": [0.0], "x2": [1.0]}).to_csv(tmp_path / "new.csv", index=False)
    missing = mlp("predict", trained, tmp_path / "new.csv", "-o", tmp_path / "no" / "out.csv")
    assert_clean_error(missing, "does not exist")
    assert_clean_error(
        mlp("predict", trained, tmp_path / "new.csv", "-o", tmp_path / "o.txt"),
        "cannot write a '.txt' file",
        ".csv",
    )


def test_eval_names_the_split_it_scored(trained):
    result = mlp("eval", trained, "--split", "val")
    assert result.exit_code == 0 and "r on its val split" in result.stdout
    header = result.stdout.splitlines()[1]
    assert "val" in header and "test" not in header


def test_a_run_in_use_cannot_be_resumed_twice(config, trained):
    import os

    from mlpcli.runs.folder import _host_name, run_lock

    with run_lock(trained):  # a live process holds the run
        assert_clean_error(mlp("train", config, "--resume", trained), "in use by process")
        record = (trained / ".lock").read_text()
        assert f"pid={os.getpid()}\n" in record and f"host={_host_name()}\n" in record
    assert not (trained / ".lock").exists()
    # Left by a process of this host that is gone: taken over at once.
    (trained / ".lock").write_text(record.replace(f"pid={os.getpid()}\n", "pid=999999999\n"))
    with run_lock(trained):
        assert f"pid={os.getpid()}\n" in (trained / ".lock").read_text()
    assert not (trained / ".lock").exists()


def test_nproc_starts_each_process_with_the_command_line_it_was_given(monkeypatch, tmp_path):
    """Every option of mlp train travels to the processes of --nproc, but --nproc itself."""
    import mlpcli.cli as cli

    started = []
    monkeypatch.setattr(cli, "_launch", lambda config, args, n: started.append((args, n)) or 0)
    argv = ["train", "configs/moons.yaml", "model.hidden=[8]", "--nproc", "2", "--seed", "3"]
    argv += ["-q", "--name", "x", "--baseline", "--out", str(tmp_path), "--tensorboard"]
    result = mlp(*argv)
    assert result.exit_code == 0, result.output
    ((args, n),) = started
    assert n == 2 and "--nproc" not in args
    assert args[:2] == ["configs/moons.yaml", "model.hidden=[8]"]
    options = args[2:]
    pairs = {
        options[i]: options[i + 1]
        for i, a in enumerate(options[:-1])
        if a in ("--name", "--seed", "--out")
    }
    assert pairs == {"--name": "x", "--seed": "3", "--out": str(tmp_path)}
    assert {"--quiet", "--baseline", "--tensorboard"} <= set(options)

"""TensorBoard logs: read back with tensorboard's own event reader, they are metrics.csv, the
resolved config as hparams in the run's own folder, and diagnostics.csv."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import InterruptAt, assert_exit_2
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.training.diagnostics import read_rows

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

runner = CliRunner()
CONFIG = """\
data: {source: spirals, n_samples: 300}
model: {hidden: [8, 8], activation: tanh}
train: {epochs: 6, batch_size: 32, diagnostics: {every: 1}, plots: false}
schedule: {name: cosine}
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "tb.yaml"
    path.write_text(CONFIG)
    return path


def events(run: Path) -> EventAccumulator:
    logs = run / "tb"
    assert logs.is_dir() and not [
        p for p in logs.iterdir() if p.is_dir()
    ]  # one folder, no sub-runs
    reader = EventAccumulator(str(logs), size_guidance={"scalars": 0, "tensors": 0})
    reader.Reload()
    return reader


def metrics_csv(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_scalars_are_metrics_csv(run: Path) -> None:
    reader = events(run)
    rows = metrics_csv(run)
    columns = [c for c in rows[0] if c != "epoch"]
    assert set(columns) <= set(reader.Tags()["scalars"])
    for column in columns:
        logged = {e.step: e.value for e in reader.Scalars(column)}
        expected = {int(r["epoch"]): np.float32(float(r[column])) for r in rows}
        assert logged == expected, column  # every epoch, as float32 (TensorBoard's scalars)


def test_scalars_hparams_and_diagnostics_read_back_as_the_run_files(tmp_path):
    result = mlp("train", write(tmp_path), "--tensorboard", "--out", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert_scalars_are_metrics_csv(run)

    reader = events(run)
    hparams = reader.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"model.activation" in hparams["_hparams_/session_start_info"]
    assert b"tanh" in hparams["_hparams_/session_start_info"]

    rows = read_rows(run / "diagnostics.csv")
    assert rows
    for row in rows:
        tag = f"diagnostics/layer{row['layer']}/{row['name']}"
        logged = {e.step: e.value for e in reader.Scalars(tag)}
        # diagnostics.csv keeps six significant digits
        assert logged[row["epoch"]] == pytest.approx(row["value"], rel=1e-5, abs=1e-12), tag


def test_a_resumed_run_logs_what_an_uninterrupted_one_does(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    config, overrides = write(tmp_path), ["train.tensorboard=true"]
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(
            config, overrides, out=tmp_path, name="r", quiet=True, callbacks=[InterruptAt(3)]
        )
    run = tmp_path / "r"
    # What a killed process logged after its last checkpoint (epoch 3).
    with SummaryWriter(str(run / "tb")) as stale:
        stale.add_scalar("train_loss", 123.0, 5)
    mlpcli.train(config, overrides, out=tmp_path, resume=run, quiet=True)
    assert_scalars_are_metrics_csv(run)
    assert len(metrics_csv(run)) == 6


def test_each_trial_of_a_sweep_logs_into_its_own_folder(tmp_path):
    result = mlp(
        "sweep",
        write(tmp_path),
        "train.tensorboard=true",
        "train.epochs=2",
        "--hidden",
        "4,8",
        "--workers",
        "1",
        "--out",
        tmp_path,
        "--name",
        "s",
        "-q",
    )
    assert result.exit_code == 0, result.output
    trials = sorted((tmp_path / "s" / "trials").iterdir())
    assert len(trials) == 2
    for trial in trials:
        assert_scalars_are_metrics_csv(trial)


def test_without_tensorboard_the_error_names_the_extra_before_any_folder(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    result = mlp("train", write(tmp_path), "--tensorboard", "--out", tmp_path / "runs")
    assert_exit_2(
        result,
        'train.tensorboard: needs the tensorboard package; install it: pip install "mlpcli[tensorboard]"',
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def mlp(*args):
    return runner.invoke(app, [str(a) for a in args])

"""Training on a stream (data.stream: true): the config's refusals, a run folder like an in-memory
run's, validation and final scores streamed, the statistics of the in-memory preprocessor, an
interrupted epoch resumed at its step bitwise, and two processes each reading their own row groups.

Folders are a few hundred rows per file (conftest's parquet_folder), so that each test takes
seconds; the two-process test launches `mlp train --nproc 2` (gloo on the loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import NETNS, assert_exit_2, mlp, netns_works

import mlpcli
from mlpcli.callbacks import Callback
from mlpcli.config.schema import STREAM_BUFFER, build_config, load_config
from mlpcli.data.stream.stats import fit_stream, open_stream
from mlpcli.errors import CheckpointError, ConfigError, Interrupted
from mlpcli.resources import memory
from mlpcli.runs.checkpoint import load_checkpoint, load_model_file
from mlpcli.training import trainer as trainer_module
from mlpcli.training.distributed import SOLO

ROOT = Path(__file__).resolve().parents[1]


def stream_config(folder: Path, name: str = "stream", **extra: Any) -> Path:
    """A config training a small MLP on a streamed folder (its path relative to the config)."""
    train = {"epochs": 3, "batch_size": 32, "plots": False, **extra.pop("train", {})}
    data = {"source": "parquet", "path": folder.name, "target": "y", "stream": True}
    data.update(extra.pop("data", {}))
    config = {
        "name": name,
        "seed": 3,
        "data": data,
        "model": {"hidden": [16]},
        "optim": {"name": "adam", "lr": 0.01},
        "train": train,
        **extra,
    }
    path = folder.parent / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_model_file(run / "model.safetensors")[0]


def assert_bitwise(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------ the config


def refusal(**data: Any) -> str:
    raw = {"data": {"source": "parquet", "path": "events", "stream": True, **data}}
    for key in ("train", "optim"):
        if key in data:
            raw[key] = raw["data"].pop(key)
    with pytest.raises(ConfigError) as caught:
        build_config(raw)
    return str(caught.value)


def test_each_stream_refusal_names_its_key():
    assert "data.stream: only Parquet" in refusal(source="csv")
    assert "data.val_path: a stream splits data.path by row hash" in refusal(val_path="v.pq")
    assert "data.test_path: a stream splits" in refusal(test_path="t.pq")
    assert "train.baseline: the baselines fit on the whole table" in refusal(
        train={"baseline": "linear"}
    )
    assert "optim.lr: auto runs the range test" in refusal(optim={"lr": "auto"})
    text = refusal(shuffle_buffer=16, train={"batch_size": 64})
    assert "data.shuffle_buffer: 16 rows hold less than one batch (train.batch_size: 64)" in text
    # All at once, one line each.
    text = refusal(source="csv", val_path="v.csv", optim={"lr": "auto"})
    assert "2 problems" in text and "data.val_path" in text
    with pytest.raises(ConfigError, match="data.shuffle_buffer: only a stream reads it"):
        build_config({"data": {"source": "parquet", "path": "x.pq", "shuffle_buffer": 100}})


def test_the_buffer_defaults_when_streaming_and_a_folder_needs_the_stream(parquet_folder):
    folder = parquet_folder(files=1, groups=1, rows=50)
    config = load_config(stream_config(folder))
    assert config.data.shuffle_buffer is None and config.data.stream is True
    assert STREAM_BUFFER == 262_144
    result = mlp("train", stream_config(folder), "data.stream=false", "--out", folder.parent / "r")
    assert_exit_2(result, "a folder, not a data file; set data.stream: true")
    glob = ["data.stream=false", "data.path=events/*.parquet"]
    result = mlp("train", stream_config(folder), *glob, "--out", folder.parent / "r")
    assert_exit_2(result, "no such data file; set data.stream: true to read a glob of Parquet")
    # A CSV source cannot stream: its folder is refused without pointing there.
    csv = ["data.stream=false", "data.source=csv"]
    result = mlp("train", stream_config(folder), *csv, "--out", folder.parent / "r")
    assert_exit_2(result, "a folder, not a data file; accepted: a CSV, Parquet or NPZ file")


def test_a_stream_s_memory_estimate_does_not_grow_with_its_rows():
    config = build_config({"data": {"source": "parquet", "path": "e", "stream": True}})
    small, large = (
        memory.stream_estimate(config, 32, 1, 33, 8 << 20, rows, 100_000, 65536)
        for rows in (2_000_000, 16_000_000)
    )
    assert small.total == large.total and large.rows == 16_000_000
    # The window and its kept half with each draw's order of its rows, two decoded row groups,
    # a scoring chunk and the sample.
    row = 33 * 4
    window = STREAM_BUFFER * 3 // 2 * row + STREAM_BUFFER * 8
    assert small.tensor_bytes == window + (65536 + 100_000) * row
    assert small.table_bytes == 2 * (8 << 20) + 100_000 * 33 * 8
    tight = (small.total - 1, "a test's limit")
    with pytest.raises(ConfigError, match="data.shuffle_buffer 262144 rows 1.5 times"):
        memory.check(small, config, available=tight)


# ------------------------------------------------------------ one process


def test_a_streamed_run_writes_a_run_folder_scored_on_every_split(parquet_folder, tmp_path):
    folder = parquet_folder(files=3, groups=2, rows=150, task="binary")
    result = mlp("train", stream_config(folder), "--out", tmp_path / "runs", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["task"] == "binary"
    rows = summary["rows"]
    assert set(rows) == {"train", "val", "test"} and sum(rows.values()) == 900
    assert 0.5 < rows["train"] / 900 < 0.7  # 60 % by the row hash
    assert set(summary["metrics"]) == {"train", "val", "test"}
    assert summary["metrics"]["val"]["accuracy"] > 0.9
    assert summary["samples_per_second"] > 0
    run = Path(summary["run_dir"])
    curve = (run / "metrics.csv").read_text().splitlines()
    assert len(curve) == 4 and "val_accuracy" in curve[0]
    _, metadata = load_model_file(run / "model.safetensors")
    assert metadata["data"]["counts"] == rows
    assert sorted(metadata["data"]["stream"]["files"]) == [f"part-00{i}.parquet" for i in range(3)]
    assert (run / "diagnostics.csv").exists()  # from the stream's training sample
    # The text table on stdout names the splits.
    shown = mlp("train", stream_config(folder), "--out", tmp_path / "runs")
    assert shown.exit_code == 0 and "val" in shown.stdout and "accuracy" in shown.stdout


def test_mlp_summary_of_a_stream_config_counts_its_training_rows(parquet_folder):
    folder = parquet_folder(files=2, groups=2, rows=150, task="classification", text=True)
    result = mlp("summary", stream_config(folder), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    # The same sizes the statistics pass gives training: one-hot text columns and 3 classes.
    config = load_config(stream_config(folder))
    fit = fit_stream(config, open_stream(config))
    assert summary["inputs"] == fit.prep.in_dim and summary["outputs"] == fit.prep.out_dim == 3
    assert summary["train_rows"] == fit.counts["train"]


def test_streaming_scores_within_0_01_of_training_in_memory(parquet_folder, tmp_path):
    folder = parquet_folder(files=1, groups=4, rows=1000, task="binary")
    extra = {"train": {"epochs": 20, "batch_size": 64, "diagnostics": False}}
    streamed = mlpcli.train(stream_config(folder, **extra), out=tmp_path / "s", quiet=True)
    table = stream_config(
        folder,
        name="table",
        data={"path": f"{folder.name}/part-000.parquet", "stream": False},
        **extra,
    )
    in_memory = mlpcli.train(table, out=tmp_path / "m", quiet=True)
    a = streamed.summary["metrics"]["val"]["accuracy"]
    b = in_memory.summary["metrics"]["val"]["accuracy"]
    assert a > 0.95 and abs(a - b) <= 0.01, (a, b)


def test_the_streamed_standardiser_is_the_in_memory_one_on_the_same_rows(parquet_folder):
    import pandas as pd

    from mlpcli.data.preprocess import Preprocessor
    from mlpcli.data.stream import TRAIN
    from mlpcli.training.plan import check_stream, plan_run
    from mlpcli.training.run import prepare

    folder = parquet_folder(files=2, groups=3, rows=100, task="regression", text=True)
    config = load_config(stream_config(folder))
    fit = prepare(config, plan=plan_run(config)).dataset
    source = fit.source
    frames = []
    for i, file in enumerate(source.files):
        frame = pd.read_parquet(file)
        groups = [g for g in source.groups if g.file == i]
        codes = np.concatenate([fit.rule.codes(source.keys[i], g.first, g.rows) for g in groups])
        frames.append(frame[codes == TRAIN])
    train = pd.concat(frames, ignore_index=True)
    oracle = Preprocessor.fit(train, fit.features, fit.targets, fit.task)
    assert fit.prep.categorical == oracle.categorical
    for col, (mean, std) in oracle.numeric.items():
        assert fit.prep.numeric[col] == pytest.approx([mean, std], rel=1e-9)
    assert np.allclose(fit.prep.target_scale, oracle.target_scale, rtol=1e-9, atol=0)
    assert check_stream(config, fit).rows == 600


class StopAtStep(Callback):
    """Stops training as Ctrl-C does, within an epoch, once the given step is done."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_step(self, trainer: Any, epoch: int, step: int) -> None:
        if (epoch, step) == (self.epoch, self.step):
            raise KeyboardInterrupt


@pytest.fixture
def every_few_steps(monkeypatch):
    monkeypatch.setattr(trainer_module, "STEP_HOOK_EVERY", 3)


def test_a_run_stopped_mid_epoch_resumes_at_its_step_bitwise(
    parquet_folder, tmp_path, every_few_steps
):
    folder = parquet_folder(files=3, groups=2, rows=150, task="classification")
    extra = {"train": {"checkpoint_seconds": 0}, "model": {"hidden": [16], "dropout": 0.1}}
    config = stream_config(folder, **extra)
    whole = mlpcli.train(config, out=tmp_path / "whole", quiet=True)
    with pytest.raises(Interrupted):
        mlpcli.train(config, out=tmp_path / "cut", quiet=True, callbacks=[StopAtStep(2, 6)])
    (run,) = (tmp_path / "cut").iterdir()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["stream"]["epoch"] == 2
    assert state["stream"]["step"] == 6 and state["stream"]["rows"] == 6 * 32
    resumed = mlpcli.train(config, resume=run, quiet=True)
    assert resumed.summary["status"] == "completed"
    assert_bitwise(tensors(whole.run_dir), tensors(run))
    assert resumed.summary["metrics"] == whole.summary["metrics"]
    lines = [line.split(",")[:-1] for line in (run / "metrics.csv").read_text().splitlines()]
    assert lines == [
        line.split(",")[:-1] for line in (whole.run_dir / "metrics.csv").read_text().splitlines()
    ]


def test_an_accelerator_s_losses_read_every_few_steps_train_as_the_cpu_s(
    parquet_folder, tmp_path, every_few_steps, monkeypatch
):
    """On a GPU the losses stay on the device and are read at each step hook; here the same
    path runs on the CPU, and must train and record what reading each step does."""
    folder = parquet_folder(files=2, groups=2, rows=150, task="regression")
    config = stream_config(folder, train={"diagnostics": False})
    each = mlpcli.train(config, out=tmp_path / "each", quiet=True)
    monkeypatch.setattr(trainer_module, "reads_each_step", lambda device: False)
    pending = mlpcli.train(config, out=tmp_path / "pending", quiet=True)
    assert_bitwise(tensors(each.run_dir), tensors(pending.run_dir))
    curves = [
        [row.split(",")[:-1] for row in (run / "metrics.csv").read_text().splitlines()]
        for run in (each.run_dir, pending.run_dir)
    ]
    assert curves[0] == curves[1]


def test_a_resume_on_changed_files_names_what_changed(parquet_folder, tmp_path, every_few_steps):
    folder = parquet_folder(files=2, groups=2, rows=150, task="binary")
    config = stream_config(folder, train={"checkpoint_seconds": 0})
    with pytest.raises(Interrupted):
        mlpcli.train(config, out=tmp_path / "cut", quiet=True, callbacks=[StopAtStep(1, 3)])
    (run,) = (tmp_path / "cut").iterdir()
    parquet_folder(files=3, groups=2, rows=150, task="binary", seed=1)  # one more file
    with pytest.raises(CheckpointError, match=r"files 2 then, 3 now"):
        mlpcli.train(config, resume=run, quiet=True)
    (folder / "part-002.parquet").unlink()  # the same files and rows, other values
    with pytest.raises(CheckpointError) as caught:
        mlpcli.train(config, resume=run, quiet=True)
    assert "footers (sha256)" in str(caught.value) and "files 2" not in str(caught.value)


def test_a_kill_9_mid_epoch_and_a_resume_end_as_an_uninterrupted_run(parquet_folder, tmp_path):
    """A real process killed once its checkpoint is one within an epoch (written every 64
    steps here), then resumed in another."""
    import procs

    folder = parquet_folder(files=2, groups=4, rows=500, task="regression")
    config = stream_config(
        folder, train={"epochs": 4, "batch_size": 8, "checkpoint_seconds": 0, "diagnostics": False}
    )
    log = tmp_path / "log.txt"

    def run(*argv: Any) -> int | None:
        process = procs.start(["train", config, "-q", *argv], log)
        process.join()
        return process.exitcode

    assert run("--out", tmp_path, "--name", "whole") == 0, log.read_text()
    cut = tmp_path / "cut"
    process = procs.start(["train", config, "-q", "--out", tmp_path, "--name", "cut"], log)
    checkpoint = cut / "checkpoints" / "last.pt"

    def mid_epoch() -> bool:
        try:
            return checkpoint.exists() and load_checkpoint(checkpoint)["stream"]["step"] > 0
        except CheckpointError:  # replaced while being read
            return False

    while process.is_alive() and not mid_epoch():
        process.join(0.001)
    process.kill()
    process.join()
    assert process.exitcode == -9, "the run ended before a checkpoint within an epoch"
    assert run("--resume", cut) == 0, log.read_text()
    assert_bitwise(tensors(tmp_path / "whole"), tensors(cut))


def test_the_world_of_one_process_gathers_and_sums_its_own():
    assert SOLO.gather_text("a") == ["a"]
    vector = np.array([1.0, 2.0])
    assert SOLO.sum(vector) is vector and SOLO.max(vector) is vector


# ------------------------------------------------------------ two processes


LOOPBACK_ONLY = list(NETNS) if netns_works() else None


@pytest.mark.skipif(LOOPBACK_ONLY is None, reason="needs unshare and ip (a loopback namespace)")
def test_two_processes_read_their_own_row_groups_and_fit_what_one_fits(parquet_folder, tmp_path):
    folder = parquet_folder(files=2, groups=3, rows=100, task="regression")
    config = stream_config(folder, train={"epochs": 2, "diagnostics": False})
    trace = tmp_path / "trace"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env["MLPCLI_STREAM_TRACE"] = str(trace)
    command = [sys.executable, "-m", "mlpcli", "train", str(config), "--nproc", "2"]
    assert LOOPBACK_ONLY is not None
    done = subprocess.run(
        [*LOOPBACK_ONLY, *command, "--out", str(tmp_path / "two"), "--json", "-q"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    (two,) = (tmp_path / "two").iterdir()  # one run folder, process 0's
    assert json.loads(done.stdout)["processes"] == 2
    reads = {
        rank: [line.split("\t") for line in Path(f"{trace}.{rank}").read_text().splitlines()]
        for rank in (0, 1)
    }
    for epoch in ("1", "2"):
        mine = [{(f, g) for e, f, g in reads[rank] if e == epoch} for rank in (0, 1)]
        assert mine[0] and mine[1] and not mine[0] & mine[1]  # each its own row groups
        assert len(mine[0] | mine[1]) == 6  # and every one of them read
    one = mlpcli.train(config, out=tmp_path / "one", quiet=True)
    prep2 = load_model_file(two / "model.safetensors")[1]["preprocessor"]
    prep1 = load_model_file(one.run_dir / "model.safetensors")[1]["preprocessor"]
    assert prep1.keys() == prep2.keys()
    for col, pair in prep1["numeric"].items():
        assert prep2["numeric"][col] == pytest.approx(pair, rel=1e-12)
    assert np.allclose(prep2["target_scale"], prep1["target_scale"], rtol=1e-12, atol=0)

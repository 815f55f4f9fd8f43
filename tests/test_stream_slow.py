"""Streaming at scale, in whole `mlp` processes: a peak memory that does not grow with the rows,
a kill -9 within an epoch resumed bitwise, and `mlp predict` of a large folder in bounded memory,
every row in order. Every test here starts real processes on Parquet folders written for it,
and waits for what it can observe (a checkpoint's contents, a process's exit), never for a time.
The rows are narrow (8 features) so that millions of them are written and read in seconds.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import procs
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpcli.errors import CheckpointError
from mlpcli.runs.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

FEATURES = 8
TIMEOUT = 300  # seconds for one whole `mlp` process; a hang fails the test instead of CI
GIB = 1 << 30
# The address space each child may map: generous for a bounded run (importing torch maps about
# 0.6 GB), and a run whose memory grew with its rows stops there rather than take the machine's.
ADDRESS_SPACE = 4 * GIB
# What docs/streaming.md states a stream's peak resident memory stays within, above that of
# `python -c "import torch"`, for a model and buffer as small as these.
STATED_ABOVE_TORCH_MIB = 200


def write_folder(
    folder: Path, files: int, groups: int, rows: int, task: str | None = "binary"
) -> Path:
    """`files` Parquet files of `groups` row groups of `rows` rows: x1..x8 (float32) and a
    target y (float32): a noisy function of them (regression), its sign as 0 or 1 (binary), or
    none (None). Row group g of file f is drawn from the seed (f, g), so a folder of fewer
    groups per file holds the first groups of a larger one. Written a group at a time."""
    folder.mkdir(parents=True)
    weights = np.linspace(-1.0, 1.0, FEATURES)
    names = [f"x{i + 1}" for i in range(FEATURES)] + (["y"] if task else [])
    schema = pa.schema([(name, pa.float32()) for name in names])
    for f in range(files):
        with pq.ParquetWriter(folder / f"part-{f:03d}.parquet", schema) as writer:
            for g in range(groups):
                rng = np.random.default_rng([f, g])
                x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
                y = np.tanh(x @ weights) + 0.1 * rng.standard_normal(rows)
                y = (y > 0) if task == "binary" else y
                columns = [*x.T, y.astype(np.float32)][: len(names)]
                writer.write_table(pa.table(columns, schema=schema), row_group_size=rows)
    return folder


def write_config(
    folder: Path, name: str, data: Path, task: str = "binary", **train: object
) -> Path:
    config = {
        "name": name,
        "task": task,
        "data": {
            "source": "parquet",
            "path": str(data),
            "target": "y",
            "stream": True,
            "shuffle_buffer": 32768,
        },
        "model": {"hidden": [32]},
        "train": {"epochs": 1, "batch_size": 512, "threads": 1, "plots": False, **train},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def peak_mib(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Run a whole process under the address-space limit: its own peak resident memory (MiB)
    and its stdout; fails the test, showing stderr, when it exits with another code than 0."""
    with open(cwd / "out.log", "w+") as out, open(cwd / "err.log", "w+") as err:
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, preexec_fn=limited)
        try:
            _, status, usage = os.wait4(child.pid, 0)  # this child's rusage, reaped here
        except BaseException:
            child.kill()
            child.wait()
            raise
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        assert code == 0, f"{argv[3:5]} exited with {code}:\n{err.read()[-3000:]}"
        return usage.ru_maxrss / 1024, out.read()


def wait_for(condition, timeout: float = TIMEOUT) -> None:
    """Poll until `condition()` holds (a checkpoint's contents, a process's exit)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def mlp(*args: object) -> list[str]:
    return [sys.executable, "-m", "mlpcli", *(str(a) for a in args)]


# ---------------------------------------------------------------- memory set by the buffer


def test_the_peak_memory_of_a_stream_does_not_grow_with_its_rows(tmp_path):
    """262,144 rows against 4,194,304 (16x, 151 MB of float32): the same peak within 10%,
    and within what the docs state above `import torch`."""
    small = write_folder(tmp_path / "small", files=4, groups=4, rows=16384)
    large = write_folder(tmp_path / "large", files=4, groups=64, rows=16384)
    floor, _ = peak_mib([sys.executable, "-c", "import torch"], tmp_path)
    peaks, summaries = {}, {}
    for name, data in (("small", small), ("large", large)):
        config = write_config(tmp_path, name, data)
        peaks[name], out = peak_mib(mlp("train", config, "--out", "runs", "-q", "--json"), tmp_path)
        summaries[name] = json.loads(out)
    assert summaries["large"]["rows"]["train"] > 15 * summaries["small"]["rows"]["train"]
    assert all(s["status"] == "completed" for s in summaries.values())
    assert peaks["large"] <= 1.10 * peaks["small"], (peaks, floor)
    assert peaks["large"] <= floor + STATED_ABOVE_TORCH_MIB, (peaks, floor)


# ---------------------------------------------------------------- kill -9 within an epoch

# 131,072 rows: about 150 steps of 512 training rows per epoch; with checkpoint_seconds 0 a
# checkpoint is taken at every step hook (every 64 steps) as well as at each epoch's end.
KILLED = {"epochs": 3, "batch_size": 512, "checkpoint_seconds": 0}


def stream_state(run: Path) -> dict | None:
    """The stream entry of the run's checkpoint, or None while it has none."""
    path = run / "checkpoints" / "last.pt"
    try:
        return load_checkpoint(path).get("stream") if path.exists() else None
    except CheckpointError:  # replaced by the next one while being read
        return None


def test_a_kill_9_within_an_epoch_and_resume_end_bitwise_as_an_uninterrupted_run(tmp_path):
    data = write_folder(tmp_path / "events", files=2, groups=8, rows=8192)
    config = write_config(tmp_path, "killed", data, **KILLED)
    log = tmp_path / "train.log"

    whole = procs.start(["train", config, "--out", tmp_path / "whole", "--name", "r", "-q"], log)
    whole.join(TIMEOUT)
    assert whole.exitcode == 0, log.read_text()[-3000:]

    run = tmp_path / "killed" / "r"
    process = procs.start(["train", config, "--out", run.parent, "--name", "r", "-q"], log)
    try:
        # Within the second epoch, short of its end: the kill lands mid-epoch.
        def mid_epoch() -> bool:
            state = stream_state(run)
            return not process.is_alive() or (
                state is not None and state["epoch"] == 2 and state["step"] > 0
            )

        wait_for(mid_epoch)
        process.kill()  # SIGKILL, to this process only
    finally:
        process.join(TIMEOUT)
    assert process.exitcode == -9, "the run ended before it was killed"
    state = stream_state(run)
    assert state is not None and state["step"] > 0, state
    assert json.loads((run / "summary.json").read_text())["status"] == "running"

    resumed = procs.start(["train", "--resume", run, "-q"], log)
    resumed.join(TIMEOUT)
    assert resumed.exitcode == 0, log.read_text()[-3000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert model_file(run) == model_file(tmp_path / "whole" / "r")


def model_file(run: Path) -> tuple[dict, bytes]:
    """A model.safetensors as its parsed header and its tensors' bytes: safetensors writes the
    metadata keys in the order of a Rust HashMap, which changes from process to process."""
    data = (run / "model.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]), data[8 + size :]


# ---------------------------------------------------------------- predict a large folder


def test_mlp_predict_of_a_large_folder_writes_every_row_in_order_in_bounded_memory(tmp_path):
    """2,097,152 rows in 8 files: the same peak within 10% as predicting one file of them, and
    every row's prediction, in order, equal to the model's prediction of its own file."""
    import pandas as pd

    import mlpcli

    train = write_folder(tmp_path / "train", files=2, groups=2, rows=8192, task="regression")
    config = write_config(tmp_path, "model", train, task="regression")
    run = mlpcli.train(config, out=tmp_path, quiet=True).run_dir
    rows = write_folder(tmp_path / "rows", files=8, groups=4, rows=65536, task=None)
    # One file in a folder of its own is read in chunks too (a file given alone that fits in
    # memory is read whole).
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "part-000.parquet").write_bytes((rows / "part-000.parquet").read_bytes())
    one, _ = peak_mib(mlp("predict", run, tmp_path / "alone", "-o", "one.parquet"), tmp_path)
    every, _ = peak_mib(mlp("predict", run, rows, "-o", "every.parquet"), tmp_path)
    assert every <= 1.10 * one, (every, one)

    written = pd.read_parquet(tmp_path / "every.parquet")
    assert len(written) == 8 * 4 * 65536
    model = mlpcli.load(run)
    at = 0
    for file in sorted(rows.iterdir()):
        piece = pd.read_parquet(file)
        expected = model.predict(piece)
        got = written.iloc[at : at + len(piece)].reset_index(drop=True)
        at += len(piece)
        assert list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got[list(piece.columns)], piece)  # the rows, in order
        # The same arithmetic per row, in batches cut elsewhere: equal to float32 rounding.
        np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-6, atol=1e-6)
    assert at == len(written)

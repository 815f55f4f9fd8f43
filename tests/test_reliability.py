"""Nothing lost: kill -9 at random moments, Ctrl-C and SIGTERM, many runs at once, a full or
read-only disk. Every test here drives real processes or real files; those that start processes
are marked slow, and every wait is for something observable (a file's rows, a process's exit),
never a fixed delay.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import procs
import pytest
import torch
from conftest import InterruptAt
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.config.schema import load_config
from mlpcli.runs.checkpoint import load_checkpoint, load_model_file

runner = CliRunner()


def cli(argv: list):
    return runner.invoke(app, [str(a) for a in argv])


# Checkpoints after every epoch, so that kills land in saves often.
KILLABLE = """\
name: kill
data: {source: moons, n_samples: 2000}
model: {hidden: [128, 128], dropout: 0.1}
optim: {lr: 0.002}
train: {epochs: %(epochs)d, batch_size: 64, checkpoint_seconds: %(every)s}
"""


def write_config(folder: Path, epochs: int = 80, every: float = 0) -> Path:
    path = folder / "kill.yaml"
    path.write_text(KILLABLE % {"epochs": epochs, "every": every})
    return path


def wait_for(condition, timeout: float = 60.0, poll: float = 0.01) -> None:
    """Poll until `condition()` holds (a file has its rows, a process has ended)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(poll)


def run_to_end(argv: list, log: Path) -> int:
    process = procs.start(argv, log)
    process.join(120)
    return process.exitcode


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_model_file(run / "model.safetensors")[0]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def temporaries(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*.tmp")] if run.exists() else []


def completed(run: Path) -> bool:
    summary = run / "summary.json"
    return summary.exists() and json.loads(summary.read_text())["status"] == "completed"


def check_whole(run: Path) -> int:
    """Every file under a final name is complete; returns the checkpoint's epoch (0: none)."""
    if not (run / "config.yaml").exists():
        return 0
    load_config(run / "config.yaml")
    if (run / "summary.json").exists():
        json.loads((run / "summary.json").read_text())
    if (run / "metrics.csv").exists():
        lines = (run / "metrics.csv").read_text().splitlines()
        if lines:
            width = len(lines[0].split(","))
            assert all(len(line.split(",")) == width for line in lines), lines
    if (run / "model.safetensors").exists():
        weights(run)
    if (run / "plots" / "loss.png").exists():
        assert (run / "plots" / "loss.png").read_bytes().endswith(b"IEND\xaeB`\x82")
    checkpoint = run / "checkpoints" / "last.pt"
    return load_checkpoint(checkpoint)["epoch"] if checkpoint.exists() else 0


# ---------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_resume_is_exact(tmp_path):
    """Kill at 10 random moments and 4 more while a checkpoint is being written; after each,
    every file is whole and the checkpoint never goes back; each run, resumed to its end,
    has weights and metrics bitwise equal to a run that was never interrupted.
    """
    config = write_config(tmp_path)
    log = tmp_path / "log.txt"
    assert run_to_end(["train", config, "--out", tmp_path, "--name", "whole", "-q"], log) == 0
    whole = tmp_path / "whole"

    rng = random.Random(20261128)
    kills: list[str] = []
    chains, run, last_epoch = 0, None, 0
    for _attempt in range(60):  # a missed save is retried, but never forever
        if len(kills) == 14:
            break
        if run is None or not (run / "config.yaml").exists():
            if run is not None:  # killed before its folder and config.yaml were both made
                shutil.rmtree(run, ignore_errors=True)
            chains += 1
            run, last_epoch = tmp_path / f"cut{chains}", 0
            argv = ["train", config, "--out", tmp_path, "--name", run.name, "-q"]
        else:
            argv = ["train", config, "--resume", run, "-q"]
        process = procs.start(argv, log)
        hunting = len(kills) >= 10
        if hunting:  # wait for a checkpoint's temporary file, then kill at once
            saving = run / "checkpoints"
            wait_for(
                lambda saving=saving, process=process: (
                    not process.is_alive()
                    or (
                        saving.is_dir()
                        and any(p.name.startswith(".last.pt") for p in saving.iterdir())
                    )
                ),
                poll=0.0002,
            )
        else:  # not a wait: the kill lands at a random moment of the run
            time.sleep(rng.uniform(0.0, 1.5))
        process.kill()  # SIGKILL
        process.join()
        if process.exitcode == 0 or completed(run):  # it finished: check it, start another
            assert same_weights(run, whole)
            assert without_timing(metric_rows(run)) == without_timing(metric_rows(whole))
            run = None
            continue
        assert process.exitcode == -signal.SIGKILL, log.read_text()[-2000:]
        during_save = any(p.name.startswith(".last.pt") for p in temporaries(run))
        if hunting and not during_save:
            continue  # the save finished between seeing it and the kill: try again
        epoch = check_whole(run)
        assert epoch >= last_epoch, "the newest complete checkpoint was lost"
        last_epoch = epoch
        if during_save:
            kills.append("during a save")
        else:
            kills.append(f"after epoch {epoch}" if run.exists() else "before its folder")

    assert len(kills) == 14, kills
    assert run is not None
    assert run_to_end(["train", config, "--resume", run, "-q"], log) == 0, log.read_text()
    assert not temporaries(run)
    assert same_weights(run, whole)
    assert without_timing(metric_rows(run)) == without_timing(metric_rows(whole))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 80
    print(f"\n{len(kills)} kills over {chains} runs: {', '.join(kills)}")
    assert sum(k == "during a save" for k in kills) >= 4


# ---------------------------------------------------------------- Ctrl-C and SIGTERM


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_signal_saves_a_checkpoint_and_exits_130(tmp_path, how):
    """With checkpoints due only every 10 s, the one found after the signal was written because
    of it; the resumed run ends bitwise equal to an uninterrupted one.
    """
    config = write_config(tmp_path, epochs=150, every=10)  # long enough to still run
    whole_log, log = tmp_path / "whole.txt", tmp_path / "cut.txt"
    assert run_to_end(["train", config, "--out", tmp_path, "--name", "whole", "-q"], whole_log) == 0
    run = tmp_path / "cut"
    argv = ["train", config, "--out", tmp_path, "--name", "cut", "-q"]
    if how == "SIGTERM":  # the installed console script, as a user or a scheduler runs it
        mlp = Path(sys.executable).with_name("mlp")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as in the forked children
        process = subprocess.Popen(
            [mlp, *map(str, argv)], stderr=subprocess.PIPE, text=True, env=env
        )
        alive = lambda: process.poll() is None  # noqa: E731
    else:
        process = procs.start(argv, log)
        alive = process.is_alive
    wait_for(lambda: (run / "metrics.csv").exists() and len(metric_rows(run)) >= 3 or not alive())
    assert alive(), "finished before the signal"
    os.kill(process.pid, getattr(signal, how))
    if how == "SIGTERM":
        stderr = process.communicate(timeout=60)[1]
        code = process.returncode
    else:
        process.join(60)
        stderr, code = log.read_text(), process.exitcode
    assert code == 130, stderr
    assert f"interrupted by {how}" in stderr or how == "SIGINT"
    assert f"--resume {run}" in stderr and "Traceback" not in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped"
    epoch = load_checkpoint(run / "checkpoints" / "last.pt")["epoch"]
    assert 2 <= epoch <= summary["epochs_run"]  # row 3 is written after epoch 2's snapshot
    assert run_to_end(["train", config, "--resume", run, "-q"], whole_log) == 0
    assert same_weights(run, tmp_path / "whole")


# ---------------------------------------------------------------- concurrency


@pytest.mark.slow
def test_sixteen_runs_started_at_once_get_sixteen_whole_folders(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: same\ndata: {source: moons, n_samples: 200}\nmodel: {hidden: [8]}\n"
        "train: {epochs: 3}\n"
    )
    gate = procs.barrier(16)
    log = tmp_path / "log.txt"
    children = [
        procs.start(["train", config, "--out", tmp_path / "runs", "-q"], log, gate)
        for _ in range(16)
    ]
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0] * 16, log.read_text()
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 16
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["name"] == folder.name
        assert len(metric_rows(folder)) == 3
        weights(folder)


@pytest.mark.slow
def test_two_resumes_of_one_run_are_refused_by_the_lock(tmp_path):
    config = write_config(tmp_path, epochs=400, every=10)
    log = tmp_path / "log.txt"
    run = tmp_path / "r"
    first = procs.start(["train", config, "--out", tmp_path, "--name", "r", "-q"], log)
    wait_for(lambda: (run / "metrics.csv").exists() and len(metric_rows(run)) >= 1)
    os.kill(first.pid, signal.SIGINT)
    first.join(60)
    assert first.exitcode == 130
    stopped_at = len(metric_rows(run))
    resumes = [procs.start(["train", config, "--resume", run, "-q"], log) for _ in range(2)]
    wait_for(lambda: any(not p.is_alive() for p in resumes))
    refused = next(p for p in resumes if not p.is_alive())
    assert refused.exitcode == 2
    assert "in use by process" in log.read_text()
    winner = next(p for p in resumes if p is not refused)
    # Interrupted while training (not while it takes the lock): it has written a new row.
    wait_for(lambda: len(metric_rows(run)) > stopped_at or not winner.is_alive())
    assert winner.is_alive(), log.read_text()
    os.kill(winner.pid, signal.SIGINT)
    winner.join(60)
    assert winner.exitcode == 130
    assert not (run / ".lock").exists()


# ---------------------------------------------------------------- a full or read-only disk


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs where the machine allows mounting one (as root in a container)."""
    folder = tmp_path / "small"
    if os.geteuid() != 0 or not _mount_tmpfs(folder, "size=2m"):
        pytest.skip("cannot mount a tmpfs here; the patched-write tests cover this")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def interrupted_run(config: Path, out: Path, epoch: int) -> tuple[Path, bytes]:
    """A run stopped after `epoch` epochs, and its checkpoint's bytes."""
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config, out=out, name="r", quiet=True, callbacks=[InterruptAt(epoch)])
    run = out / "r"
    return run, (run / "checkpoints" / "last.pt").read_bytes()


def assert_checkpoint_kept(run: Path, before: bytes, epoch: int) -> None:
    checkpoint = run / "checkpoints" / "last.pt"
    assert checkpoint.read_bytes() == before
    assert load_checkpoint(checkpoint)["epoch"] == epoch
    assert not temporaries(run)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_cleanly_and_keeps_the_checkpoint(small_disk, tmp_path):
    config = write_config(tmp_path, epochs=8, every=0)
    run, before = interrupted_run(config, small_disk, 3)
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(bytes(free - 8192))  # leave two pages

    result = cli(["train", config, "--resume", run])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr and "disk is full" in result.stderr
    assert f"--resume {run}" in result.stderr and "Traceback" not in result.output
    assert_checkpoint_kept(run, before, 3)

    (small_disk / "filler").unlink()  # room again: the run continues where it stopped
    assert cli(["train", config, "--resume", run, "-q"]).exit_code == 0
    whole = mlpcli.train(config, out=tmp_path, name="whole", quiet=True)
    assert same_weights(run, whole.run_dir)


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    """Where no small disk can be mounted: from the third checkpoint on, writes fail half-way."""
    from mlpcli.runs import atomic, checkpoint

    config = write_config(tmp_path, epochs=8, every=0)
    saves = []

    def fill_up(path, write):
        if Path(path).name == "last.pt":
            saves.append(path)
            if len(saves) >= 3:  # the disk stays full

                def half(handle):
                    handle.write(b"half a checkpoint")
                    raise OSError(errno.ENOSPC, "No space left on device")

                return atomic.atomic_write(path, half)
        return atomic.atomic_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", fill_up)
    result = cli(["train", config, "--out", tmp_path, "--name", "r"])
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert "last.pt" in result.stderr and "Traceback" not in result.output
    run = tmp_path / "r"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    assert not temporaries(run)
    monkeypatch.undo()
    assert cli(["train", config, "--resume", run, "-q"]).exit_code == 0
    whole = mlpcli.train(config, out=tmp_path, name="whole", quiet=True)
    assert same_weights(run, whole.run_dir)


@pytest.mark.slow
def test_a_read_only_output_folder_is_a_clean_error(tmp_path):
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=1m"):
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        folder.mkdir()
        folder.chmod(0o555)
    try:
        config = write_config(tmp_path, epochs=2)
        log = tmp_path / "log.txt"
        assert run_to_end(["train", config, "--out", folder / "runs"], log) == 2
        text = log.read_text()
        assert "--out" in text and ("Read-only" in text or "ermission" in text)
        assert "Traceback" not in text
        run = tmp_path / "done"
        assert run_to_end(["train", config, "--out", tmp_path, "--name", "done", "-q"], log) == 0
        rows = tmp_path / "rows.csv"
        rows.write_text("x1,x2\n0.5,0.1\n")
        log.write_text("")
        assert run_to_end(["predict", run, rows, "-o", folder / "p.csv"], log) == 2
        assert "is not writable" in log.read_text()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_an_errno_is_named_with_what_to_do(tmp_path):
    from mlpcli.runs.atomic import write_error

    assert "disk is full" in str(write_error(tmp_path / "f", OSError(errno.ENOSPC, "No space")))


def test_a_short_append_is_undone_and_reported(tmp_path, monkeypatch):
    """A full disk can cut a write() short without an error: no half row may stay behind."""
    from mlpcli.errors import WriteError
    from mlpcli.runs import atomic

    path = tmp_path / "metrics.csv"
    atomic.append_line(path, "epoch,loss\n1,0.5\n")
    real_write = os.write
    monkeypatch.setattr(atomic.os, "write", lambda fd, data: real_write(fd, data[:3]))
    with pytest.raises(WriteError, match="metrics.csv: cannot write.*disk is full"):
        atomic.append_line(path, "2,0.25\n")
    assert path.read_text() == "epoch,loss\n1,0.5\n"


def test_a_model_file_that_cannot_be_written_leaves_a_resumable_run(tmp_path, monkeypatch):
    from mlpcli.runs.atomic import write_error
    from mlpcli.training import run as api

    def full(path, model, metadata):
        raise write_error(path, OSError(errno.ENOSPC, "No space left on device"))

    config = write_config(tmp_path, epochs=3, every=10)
    monkeypatch.setattr(api, "save_model", full)
    result = cli(["train", config, "--out", tmp_path, "--name", "r"])
    assert result.exit_code == 1 and "model.safetensors: cannot write" in result.stderr
    assert f"--resume {tmp_path / 'r'}" in result.stderr and "Traceback" not in result.output
    monkeypatch.undo()
    resumed = cli(["train", config, "--resume", tmp_path / "r", "--json", "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs_run"] == 3
    weights(tmp_path / "r")


@pytest.mark.slow
def test_sigterm_stops_a_sweep_and_its_workers(tmp_path):
    """kill reaches only the sweep's own process; it passes the stop on to its workers."""
    config = write_config(tmp_path, epochs=100_000, every=10)
    log = tmp_path / "log.txt"
    argv = ["sweep", config, "--hidden", "8,16", "--workers", "2", "--out", tmp_path, "--name", "s"]
    process = procs.start(argv, log)
    trials = [tmp_path / "s" / "trials" / f"trial-00{i}" for i in range(2)]
    # Two rows: the first epoch's checkpoint snapshot is taken after its metrics row.
    wait_for(
        lambda: all((t / "metrics.csv").exists() and len(metric_rows(t)) >= 2 for t in trials),
        timeout=120,
    )
    os.kill(process.pid, signal.SIGTERM)
    process.join(60)
    assert process.exitcode == 130, log.read_text()
    assert "interrupted by SIGTERM" in log.read_text() and "--resume" in log.read_text()
    for trial in trials:
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] == "stopped" and summary["epochs_run"] < 100_000
        assert load_checkpoint(trial / "checkpoints" / "last.pt")["epoch"] >= 1

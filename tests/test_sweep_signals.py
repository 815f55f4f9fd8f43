"""A real `mlp sweep` process stopped by Ctrl-C, SIGTERM or kill -9, or run twice at once: no
trial starts after the stop, the workers end with it, and the sweep's folder stays resumable."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import resume_hint

pytestmark = pytest.mark.slow

MLP = Path(sys.executable).with_name("mlp")

# Trials far too long to end by themselves, in small fast epochs.
LONG = """\
name: long
data: {source: moons, n_samples: 400}
model: {hidden: [16]}
train: {epochs: 1000000, batch_size: 64, checkpoint_seconds: 0}
"""


def start(tmp_path: Path, *argv: str, text: str = LONG) -> subprocess.Popen:
    """`mlp sweep` of the config `text` into tmp_path/s, in a process group of its own."""
    config = tmp_path / "long.yaml"
    config.write_text(text)
    command = [str(MLP), "sweep", str(config), "--out", str(tmp_path), "--name", "s", *argv]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a job
    )


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll until `condition()` holds; fail at once if the process under test ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"mlp sweep ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def trial(tmp_path: Path, i: int) -> Path:
    return tmp_path / "s" / "trials" / f"trial-{i:03d}"


def epochs_logged(run: Path) -> int:
    try:
        with open(run / "metrics.csv", newline="") as handle:
            return len(list(csv.DictReader(handle)))
    except FileNotFoundError:
        return 0


def started(tmp_path: Path) -> list[str]:
    folder = tmp_path / "s" / "trials"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def finish(process: subprocess.Popen, timeout: float = 20) -> tuple[int, str]:
    """The exit code and stderr of a process told to stop; it must end within `timeout`."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"mlp sweep still running {timeout} s after the signal") from None
    return process.returncode, stderr


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stopped_sweep_starts_no_trial_and_exits_at_once(tmp_path, how):
    process = start(tmp_path, "--hidden", "2,4,8,16,32,64", "--workers", "2")
    wait_for(lambda: all(epochs_logged(trial(tmp_path, i)) >= 2 for i in (0, 1)), process)
    running = started(tmp_path)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the whole job
    else:
        os.kill(process.pid, signal.SIGTERM)
    code, stderr = finish(process)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert started(tmp_path) == running == ["trial-000", "trial-001"]
    for i in (0, 1):
        summary = json.loads((trial(tmp_path, i) / "summary.json").read_text())
        assert summary["status"] == "stopped"
    rows = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert {r["status"] for r in rows} == {"stopped"} and len(rows) == 2
    signal_name = "SIGINT" if how == "ctrl-c" else "SIGTERM"
    assert {r["error"] for r in rows} == {f"interrupted by {signal_name}"}
    assert not children(process.pid)
    # The command it prints continues the sweep as it ran: its plan is in the folder, the
    # number of workers is not.
    sweep = tmp_path / "s"
    command = ["mlp", "sweep", str(sweep / "sweep.yaml"), "--resume", str(sweep), "--workers", "2"]
    assert resume_hint(stderr) == command


def test_ctrl_c_with_an_idle_worker_prints_no_traceback(tmp_path):
    process = start(tmp_path, "--grid", "train.epochs=2,1000000", "--workers", "2")
    wait_for(lambda: (trial(tmp_path, 0) / "model.safetensors").exists(), process)
    wait_for(lambda: epochs_logged(trial(tmp_path, 1)) >= 2, process)
    os.killpg(process.pid, signal.SIGINT)
    code, stderr = finish(process)
    assert code == 130 and "Traceback" not in stderr, stderr


def test_kill_9_of_the_sweep_ends_its_workers(tmp_path):
    process = start(tmp_path, "--hidden", "2,4,8,16", "--workers", "2")
    wait_for(lambda: all(epochs_logged(trial(tmp_path, i)) >= 2 for i in (0, 1)), process)
    workers = children(process.pid)
    assert len(workers) >= 2
    os.kill(process.pid, signal.SIGKILL)
    process.wait()  # not communicate(): workers left behind would hold its pipes open
    try:
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=15)
    finally:
        for pid in workers:  # this test's own grandchildren, should they outlive it
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert started(tmp_path) == ["trial-000", "trial-001"]


def test_a_second_process_on_one_sweep_is_refused(tmp_path):
    process = start(tmp_path, "--hidden", "2,4", "--workers", "1")
    try:
        wait_for(lambda: epochs_logged(trial(tmp_path, 0)) >= 1, process)
        second = subprocess.run(
            [
                str(MLP),
                "sweep",
                str(tmp_path / "long.yaml"),
                "--hidden",
                "2,4",
                "--resume",
                str(tmp_path / "s"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert "in use by process" in second.stderr and str(process.pid) in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.kill(process.pid, signal.SIGTERM)
        code, stderr = finish(process)
    assert code == 130, stderr

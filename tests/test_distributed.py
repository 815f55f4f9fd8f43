"""One run trained by two processes under torchrun (gloo on the CPU): the same losses as one
process, one run folder, every process stopped at the same step by a NaN on one of them, and a
resume after a killed process that ends bitwise where an uninterrupted run ends.

The process tests start `python -m torch.distributed.run --standalone --nproc_per_node 2 -m
mlpcli train ...` (torchrun without needing it on PATH) or `mlp train --nproc 2`, each with a
timeout, with gloo on the loopback interface. CUDA (NCCL) cannot run here; its paths are shared
with the CPU ones except for the device and the backend.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import NETNS, InterruptAt, assert_exit_2, netns_works
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.config.schema import build_config, load_config
from mlpcli.data.splits import batch_part
from mlpcli.errors import ConfigError
from mlpcli.runs.checkpoint import load_checkpoint, load_model_file
from mlpcli.training import trainer as trainer_module
from mlpcli.training.distributed import SOLO, Group, check_processes
from mlpcli.training.run import prepare

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # seconds for one launch of two processes; a hang fails the test instead of CI

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch without gloo"
)

# 405 rows: 243 training rows in batches of 32, so the last batch (19 rows) splits 10 / 9 and
# the processes' shares of it differ. No loss plot: it would only add matplotlib's start-up.
EPOCHS = 30
CURVE = f"""\
name: curve
seed: 5
data: {{source: moons, n_samples: 405, noise: 0.2}}
model: {{hidden: [16, 16]}}
optim: {{name: adam, lr: 0.01}}
train: {{epochs: {EPOCHS}, batch_size: 32, plots: false}}
"""


LOOPBACK_ONLY = list(NETNS) if netns_works() else None
needs_loopback_only = pytest.mark.skipif(
    LOOPBACK_ONLY is None,
    reason="needs unshare and ip to keep torch's rendezvous store off the network",
)


def isolated(command: list[str]) -> list[str]:
    """The command in a network namespace that has the loopback interface only."""
    assert LOOPBACK_ONLY is not None
    return [*LOOPBACK_ONLY, *command]


def launch_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's connections on 127.0.0.1
    return env


def torchrun_command(*args: object) -> list[str]:
    return isolated(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", "-m", "mlpcli", "train"),
            *map(str, args),
        ]
    )


def torchrun(cwd: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        torchrun_command(*args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=launch_env(),
    )


def only_run(out: Path) -> Path:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs  # exactly one run folder, written by process 0
    return runs[0]


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def model_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_model_file(run / "model.safetensors")[0]


def assert_bitwise(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------ in one process


def test_the_batch_parts_cover_every_row_once_in_order():
    for rows in (1, 2, 7, 19, 32, 33):
        for size in (1, 2, 3, 4):
            parts = [batch_part(rows, rank, size) for rank in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, in order
            lengths = [stop - start for start, stop in parts]
            assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_several_processes_refuse_cpu_batch_norm_and_batches_smaller_than_them():
    config = build_config({"model": {"norm": "batch"}})
    check_processes(config, 1, "cpu")  # one process: nothing to refuse
    check_processes(config, 2, "cuda")  # SyncBatchNorm
    with pytest.raises(ConfigError, match=r"^model\.norm: batch .* 2 processes on cpu"):
        check_processes(config, 2, "cpu")
    with pytest.raises(ConfigError, match=r"^train\.batch_size: 1 is smaller than the 2"):
        check_processes(build_config({"train": {"batch_size": 1}}), 2, "cpu")


@pytest.fixture
def group_of_one(monkeypatch):
    """A real gloo process group of one process, in this process (its store in memory, and
    gloo's own listener on the loopback interface)."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", launch_env().get("GLOO_SOCKET_IFNAME", "lo"))
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        yield Group(torch.device("cpu"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("engine", ["backprop", "autograd"])
@pytest.mark.parametrize("each_step", [True, False], ids=["cpu-reads", "device-buffer"])
def test_a_group_of_one_trains_bitwise_as_one_process(group_of_one, monkeypatch, engine, each_step):
    """Every collective path (step losses, the accelerator's tally, the flat gradient's
    all-reduce, DistributedDataParallel, process 0's validation scores) leaves one process's
    numbers exactly as they are."""
    monkeypatch.setattr(trainer_module, "reads_each_step", lambda device: each_step)
    config = build_config(
        {
            "seed": 2,
            "data": {"source": "moons", "n_samples": 300},
            "model": {"hidden": [8]},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 3, "batch_size": 32, "engine": engine},
        }
    )
    results = []
    for world in (SOLO, group_of_one):
        trainer = prepare(config, world=world).trainer
        trainer.fit()
        assert trainer.engine.name == engine
        history = [{k: v for k, v in r.items() if k != "seconds"} for r in trainer.history]
        results.append((history, trainer.model.state_dict()))
    assert results[0][0] == results[1][0]
    assert_bitwise(results[0][1], results[1][1])


@pytest.mark.skipif(
    not (torch.cuda.is_available() and dist.is_nccl_available()), reason="needs CUDA and NCCL"
)
def test_a_cuda_group_of_one_trains_as_one_process_with_sync_batch_norm():
    """The CUDA paths: NCCL, the losses kept on the device and tallied at the epoch's end,
    DistributedDataParallel on the GPU, batch norm turned into SyncBatchNorm (which with one
    process normalises as BatchNorm does)."""
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=0, world_size=1, store=dist.HashStore(), device_id=device)
    config = build_config(
        {
            "data": {"source": "moons", "n_samples": 300},
            "model": {"hidden": [16], "norm": "batch"},
            "train": {"epochs": 3, "batch_size": 32, "device": "cuda"},
        }
    )
    try:
        results = []
        for world in (SOLO, Group(device)):
            trainer = prepare(config, world=world).trainer
            trainer.fit()
            history = [{k: v for k, v in r.items() if k != "seconds"} for r in trainer.history]
            results.append((history, trainer.model.state_dict()))
    finally:
        dist.destroy_process_group()
    (solo, solo_state), (group, group_state) = results
    assert [r["epoch"] for r in solo] == [r["epoch"] for r in group]
    for a, b in zip(solo, group):
        assert b == pytest.approx(a, rel=1e-5)
    assert solo_state.keys() == group_state.keys()


def test_a_resumed_run_draws_each_process_s_dropout_masks_again(group_of_one, tmp_path):
    """In a run of several processes each one reseeds its dropout stream from (seed, epoch,
    rank) every epoch, so a resume from any checkpoint draws the masks it would have drawn."""
    config = build_config(
        {
            "data": {"source": "moons", "n_samples": 300},
            "model": {"hidden": [16], "dropout": 0.2},
            "train": {"epochs": 5, "batch_size": 32},
        }
    )
    whole = mlpcli.train(config, out=tmp_path, name="whole", quiet=True, world=group_of_one)
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(
            config,
            out=tmp_path,
            name="cut",
            quiet=True,
            world=group_of_one,
            callbacks=[InterruptAt(2)],
        )
    torch.manual_seed(12345)  # whatever state the process is left in
    resumed = mlpcli.train(config, resume=tmp_path / "cut", quiet=True, world=group_of_one)
    assert metrics_rows(resumed.run_dir) == metrics_rows(whole.run_dir)
    assert_bitwise(model_tensors(resumed.run_dir), model_tensors(whole.run_dir))
    plain = mlpcli.train(config, out=tmp_path, name="plain", quiet=True)
    assert metrics_rows(plain.run_dir) != metrics_rows(whole.run_dir)  # the masks did change


def test_a_process_of_a_torchrun_refuses_cpu_batch_norm_and_only_process_0_says_so(
    tmp_path, monkeypatch
):
    config = tmp_path / "curve.yaml"
    config.write_text(CURVE)
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["train", str(config), "model.norm=batch", "--out", str(tmp_path / "runs")]
    for rank, says in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert ("model.norm: batch" in result.stderr) is says, result.stderr
    assert not (tmp_path / "runs").exists()


def test_mlp_train_nproc_refuses_cpu_batch_norm_before_starting_anything(tmp_path):
    config = tmp_path / "curve.yaml"
    config.write_text(CURVE)
    out = tmp_path / "runs"
    args = ["train", str(config), "model.norm=batch", "--nproc", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert_exit_2(result, "model.norm: batch cannot train in 2 processes on cpu", "SyncBatchNorm")
    assert not out.exists()


def test_a_one_process_train_imports_nothing_more_of_torch_distributed(tmp_path):
    """Start-up: `import torch` loads some of torch.distributed itself; a one-process `mlp
    train` adds nothing to it (no launcher, no elastic agent, no process group)."""
    config = tmp_path / "curve.yaml"
    config.write_text(CURVE.replace(f"epochs: {EPOCHS}", "epochs: 1"))
    script = f"""
import sys
import torch
def loaded():
    return {{m for m in sys.modules if m.startswith(("torch.distributed", "torch.nn.parallel"))}}
before = loaded()
from mlpcli.cli import app
try:
    app(["train", {str(config)!r}, "--out", {str(tmp_path / "runs")!r}, "-q"], prog_name="mlp")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("new:" + ",".join(sorted(loaded() - before)))
print("group:" + str(torch.distributed.is_initialized()))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "new:" in lines and "group:False" in lines, done.stdout


# ------------------------------------------------------------ two processes


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """An uninterrupted run of CURVE by two processes under torchrun."""
    folder = tmp_path_factory.mktemp("two")
    (folder / "curve.yaml").write_text(CURVE)
    done = torchrun(folder, "curve.yaml", "--out", "runs", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run runs/") == 1  # process 0's table only
    return only_run(folder / "runs")


def assert_same_curve(two: Path, one: Path) -> None:
    """The one-process loss curve within 1e-5 relative, and the same validation accuracy."""
    curve_two, curve_one = metrics_rows(two), metrics_rows(one)
    assert len(curve_two) == len(curve_one) == EPOCHS
    for a, b in zip(curve_two, curve_one):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"]


@pytest.mark.slow
@needs_loopback_only
def test_two_processes_follow_the_one_process_loss_curve(tmp_path, two_process_run):
    config = load_config(two_process_run / "config.yaml")
    one = mlpcli.train(config, out=tmp_path, quiet=True).run_dir
    assert_same_curve(two_process_run, one)
    summary = json.loads((two_process_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["processes"] == 2
    assert summary["engine"] == "backprop" and summary["rows"]["train"] == 243


@pytest.mark.slow
@needs_loopback_only
def test_mlp_train_nproc_launches_two_processes_and_writes_one_run_folder(tmp_path):
    """Through torch's launcher, with autograd: DistributedDataParallel, whose averaged
    gradients are weighted by each process's share of the uneven last batch."""
    (tmp_path / "curve.yaml").write_text(CURVE)
    override = "train.engine=autograd"
    done = subprocess.run(
        isolated(
            [sys.executable, "-m", "mlpcli", "train", "curve.yaml", override, "--nproc", "2"]
            + ["--json", "-q"]
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=launch_env(),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # stdout holds process 0's JSON and nothing else
    assert summary["status"] == "completed" and summary["processes"] == 2
    assert summary["engine"] == "autograd"
    # The command as typed, --nproc included, not the one each process was started with.
    assert summary["command"] == f"mlp train curve.yaml {override} --nproc 2 --json -q"
    two = tmp_path / summary["run_dir"]
    assert two == only_run(tmp_path / "runs")
    one = mlpcli.train(load_config(two / "config.yaml"), out=tmp_path / "one", quiet=True)
    assert_same_curve(two, one.run_dir)


def poisoned_rows(tmp_path: Path, seed: int, batch: int, step: int) -> Path:
    """A regression CSV whose one huge target (the loss of its batch becomes inf) sits, in the
    first epoch's permutation, in the second half of the given step's batch: process 1's part."""
    import numpy as np

    x = np.random.default_rng(0).normal(size=(120, 2)).tolist()
    y = [2 * a - b for a, b in x]
    poisoned = list(y)
    order = torch.randperm(120, generator=torch.Generator().manual_seed(seed)).tolist()
    poisoned[order[(step - 1) * batch + batch // 2 + 1]] = 1e30
    # Only the training rows carry the huge target.
    for name, rows, targets in (("train", x, poisoned), ("val", x[:40], y), ("test", x[40:80], y)):
        lines = [f"{a!r},{b!r},{t!r}" for (a, b), t in zip(rows, targets)]
        (tmp_path / f"{name}.csv").write_text("a,b,y\n" + "\n".join(lines) + "\n")
    config = tmp_path / "poisoned.yaml"
    config.write_text(
        f"seed: {seed}\n"
        "data: {source: csv, path: train.csv, val_path: val.csv, test_path: test.csv, "
        "target: y, standardize: false}\n"
        f"model: {{hidden: [8]}}\ntrain: {{epochs: 3, batch_size: {batch}, plots: false}}\n"
    )
    return config


@pytest.mark.slow
@needs_loopback_only
def test_a_nan_on_process_1_stops_both_at_its_step_with_exit_1(tmp_path):
    config = poisoned_rows(tmp_path, seed=0, batch=16, step=3)
    started = time.monotonic()
    done = torchrun(tmp_path, config, "--out", tmp_path / "runs", "-q")
    assert time.monotonic() - started < TIMEOUT
    assert done.returncode == 1
    # Process 0 never saw the row: it stopped on the whole batch's loss, which process 1's made
    # infinite, at the same step, before either one changed its weights.
    assert "the training loss became inf at epoch 1, step 3 of 8" in done.stderr
    assert done.stderr.count("error:") == 1  # process 1 prints nothing
    # torchrun's report: both ended with exit 1 on their own, neither stopped by the launcher.
    report = re.findall(r"rank\s*: (\d) \(local_rank: \d\)\n\s*exitcode\s*: (-?\d+)", done.stderr)
    assert dict(report) == {"0": "1", "1": "1"}, done.stderr
    summary = json.loads((only_run(tmp_path / "runs") / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] == 0


def worker_pid(launcher: int, rank: int) -> int | None:
    """The pid of the launcher's child process of the given rank (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0") if parent == launcher else []
        except (OSError, ValueError, IndexError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def epochs_logged(out: Path) -> int:
    files = list(out.glob("*/metrics.csv"))
    return max(0, len(files[0].read_text().splitlines()) - 1) if files else 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@needs_loopback_only
def test_a_resume_after_killing_process_1_ends_bitwise_as_an_uninterrupted_run(
    tmp_path, two_process_run
):
    (tmp_path / "curve.yaml").write_text(CURVE)
    out = tmp_path / "runs"
    # A checkpoint after every epoch (the same training otherwise).
    args = ["curve.yaml", "train.checkpoint_seconds=0", "--out", out, "-q"]
    with open(tmp_path / "killed.log", "w") as log:
        launcher = subprocess.Popen(
            torchrun_command(*args), cwd=tmp_path, env=launch_env(), stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while epochs_logged(out) < 3 and launcher.poll() is None:
                assert time.monotonic() < deadline, "no epoch logged"
                time.sleep(0.01)
            pid = worker_pid(launcher.pid, 1)
            assert pid is not None, "process 1 not found"
            os.kill(pid, signal.SIGKILL)
            launcher.wait(timeout=TIMEOUT)
        finally:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    assert launcher.returncode != 0
    run = only_run(out)
    stopped_at = load_checkpoint(run / "checkpoints/last.pt")["epoch"]
    assert 3 <= stopped_at < EPOCHS, "the run was not interrupted mid-way"
    assert json.loads((run / "summary.json").read_text())["status"] != "completed"

    done = torchrun(tmp_path, *args[:2], "--resume", run, "-q")
    assert done.returncode == 0, done.stderr
    assert only_run(out) == run
    assert metrics_rows(run) == metrics_rows(two_process_run)
    assert_bitwise(model_tensors(run), model_tensors(two_process_run))
    resumed, whole = (json.loads((r / "summary.json").read_text()) for r in (run, two_process_run))
    assert resumed["status"] == "completed" and resumed["metrics"] == whole["metrics"]

"""Run folders, model files and checkpoints made by someone else are not trusted.

A shared run folder may hold symbolic links planted to make a resume write elsewhere; a model
file's metadata may claim a network far larger than its weights; a checkpoint's plain values may
have the wrong kinds; a lock may name a process that has nothing to do with the run. Each is
refused with exit 2, naming the file and the key or path, before anything is changed on disk.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_exit_2, mlp
from safetensors import safe_open
from safetensors.torch import save

CONFIG = """\
name: hostile
data: {source: moons, n_samples: 300}
model: {hidden: [8]}
train: {epochs: 3, checkpoint_seconds: 0}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished run ('done'), the same run stopped after its last epoch ('stopped'), rows."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "hostile.yaml").write_text(CONFIG)
    result = mlp("train", folder / "hostile.yaml", "--out", folder, "--name", "done", "-q")
    assert result.exit_code == 0, result.output
    stopped = folder / "stopped"
    shutil.copytree(folder / "done", stopped)
    (stopped / "model.safetensors").unlink()
    summary = json.loads((stopped / "summary.json").read_text())
    (stopped / "summary.json").write_text(json.dumps({**summary, "status": "stopped"}))
    (folder / "rows.csv").write_text("x1,x2\n0.1,0.5\n1.0,-0.2\n")
    return folder


@pytest.fixture
def stopped(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "stopped", run)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------ symbolic links in a run folder


def plant_link(run: Path, entry: str, outside: Path) -> None:
    """Replace the run's own `entry` by a symbolic link to a copy of it in `outside`."""
    own = run / entry
    target = outside / entry.replace("/", "_")
    if own.is_dir():
        shutil.copytree(own, target)
        shutil.rmtree(own)
    elif own.exists():
        shutil.copy(own, target)
        own.unlink()
    else:
        target.write_text("someone else's file")
    own.symlink_to(target)


RUN_ENTRIES = [
    "checkpoints",
    "plots",
    "summary.json",
    "metrics.csv",
    "config.yaml",
    "checkpoints/last.pt",
    "plots/loss.png",
    ".lock",
]


@pytest.mark.parametrize("entry", RUN_ENTRIES)
def test_resume_refuses_a_symlink_in_the_run_folder_and_writes_nothing_outside(
    runs, stopped, tmp_path, entry
):
    outside = tmp_path / "outside"
    outside.mkdir()
    plant_link(stopped, entry, outside)
    before, own_before = snapshot(outside), snapshot(stopped)
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
    assert_exit_2(result, str(stopped / entry), "symbolic link")
    assert snapshot(outside) == before
    assert snapshot(stopped) == own_before


@pytest.mark.parametrize("entry", ["summary.json", "checkpoints/last.pt", "plots"])
def test_resume_refuses_an_entry_of_the_wrong_kind(runs, stopped, entry):
    own = stopped / entry
    shutil.rmtree(own) if own.is_dir() else own.unlink()
    if entry == "plots":
        own.write_text("a file where a folder belongs")
    else:
        os.mkfifo(own)  # reading it would wait forever
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
    assert_exit_2(result, str(own), "not a regular")


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_and_predict_refuse_a_symlinked_model_in_a_run_folder(runs, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(runs / "done", run)
    outside = tmp_path / "outside"
    outside.mkdir()
    plant_link(run, "model.safetensors", outside)
    args = [run, runs / "rows.csv"] if command == "predict" else [run]
    assert_exit_2(mlp(command, *args), str(run / "model.safetensors"), "symbolic link")


def test_a_model_file_named_directly_may_be_a_link(runs, tmp_path):
    """The rule is about a run folder's own files; a path the user gives is theirs to choose."""
    link = tmp_path / "linked.safetensors"
    link.symlink_to(runs / "done" / "model.safetensors")
    result = mlp("eval", link, "--json")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------ model files that lie


def model_parts(runs: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(runs / "done" / "model.safetensors"), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        metadata = json.loads(handle.metadata()["mlpcli"])
    return tensors, metadata


def write_model(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | str) -> Path:
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    path.write_bytes(save(tensors, metadata={"format": "mlpcli-model", "mlpcli": text}))
    return path


def test_a_model_whose_metadata_claims_other_shapes_names_the_tensor(runs, tmp_path):
    tensors, metadata = model_parts(runs)
    metadata["config"]["model"]["hidden"] = [9]
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    assert_exit_2(mlp("eval", model), str(model), "0.weight", "(8, 2)", "(9, 2)")


HUGE_CLAIM = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
sys.argv = ["mlp", "eval", sys.argv[1]]
from mlpcli.cli import app
app(prog_name="mlp")
"""


def eval_limited(model: Path) -> subprocess.CompletedProcess:
    """`mlp eval MODEL` under a 3 GB address-space limit; it must refuse cleanly (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-c", HUGE_CLAIM, str(model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.slow
def test_a_model_claiming_a_huge_network_is_refused_before_building_it(runs, tmp_path):
    """A 14 GB network claimed by a 2 KB file: under a 3 GB address-space limit, eval must
    refuse it from the header alone (without the check it dies of MemoryError)."""
    _, metadata = model_parts(runs)
    metadata["config"]["model"]["hidden"] = [60000, 60000]
    shapes = {"0": (8, 2), "2": (8, 8), "4": (1, 8)}  # the layers of hidden: [8, 8]
    tensors = {f"{k}.weight": torch.zeros(s) for k, s in shapes.items()}
    tensors.update({f"{k}.bias": torch.zeros(s[0]) for k, s in shapes.items()})
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    done = eval_limited(model)
    assert "0.weight" in done.stderr and "(60000, 2)" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_model_claiming_a_huge_data_set_is_refused_before_drawing_it(runs, tmp_path):
    """n_samples 4e8 in a model's metadata: eval of its test split must refuse to draw 400M
    rows again (24 GB) under a 3 GB address-space limit, naming the key and the estimate."""
    tensors, metadata = model_parts(runs)
    metadata["config"]["data"]["n_samples"] = 400_000_000
    metadata.pop("data")  # as a model saved before fingerprints were recorded
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    done = eval_limited(model)
    assert "data.n_samples 400000000" in done.stderr and "GB" in done.stderr, done.stderr


def nested(depth: int) -> str:
    return '{"config": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda m: nested(100_000), "nested"),
        (lambda m: m["preprocessor"].update(categorical=["x1"]), "preprocessor.categorical"),
        (lambda m: m["preprocessor"].update(task="bogus"), "preprocessor.task"),
        (lambda m: m.update(task="bogus"), "task"),
        (lambda m: m["preprocessor"].update(labels={"a": 1}), "preprocessor.labels"),
        (lambda m: m["preprocessor"].update(numeric={"x1": "wide"}), "preprocessor.numeric"),
        (lambda m: m["preprocessor"].update(stats={"x1": [0.0, -1.0]}), "preprocessor.stats"),
        (lambda m: m["preprocessor"].update(modes={"x1": "red"}), "modes must name"),
        (lambda m: m.pop("preprocessor"), "preprocessor"),
        (lambda m: m.update(epoch="many"), "epoch"),
        (lambda m: "[1, 2]", "a JSON object"),
    ],
    ids=[
        "deep",
        "categorical",
        "prep-task",
        "task",
        "labels",
        "numeric",
        "stats",
        "modes",
        "missing",
        "epoch",
        "list",
    ],
)
def test_model_metadata_of_the_wrong_kind_is_refused_naming_the_key(runs, tmp_path, change, key):
    tensors, metadata = model_parts(runs)
    changed = change(metadata)
    model = write_model(tmp_path / "model.safetensors", tensors, changed or metadata)
    for argv in (["eval", model], ["predict", model, runs / "rows.csv"]):
        assert_exit_2(mlp(*argv), str(model), key)


def test_an_oversized_metadata_header_is_refused(runs, tmp_path):
    tensors, metadata = model_parts(runs)
    metadata["padding"] = "x" * (20 << 20)
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    assert_exit_2(mlp("eval", model), str(model), "header")


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64, torch.int64])
def test_weights_that_are_not_floating_point_are_refused(runs, tmp_path, dtype):
    tensors, metadata = model_parts(runs)
    tensors["0.weight"] = tensors["0.weight"].to(dtype)
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    assert_exit_2(mlp("eval", model), str(model), "0.weight", "floating")


def test_a_missing_or_extra_tensor_is_named(runs, tmp_path):
    tensors, metadata = model_parts(runs)
    tensors["extra"] = tensors.pop("0.bias")
    model = write_model(tmp_path / "model.safetensors", tensors, metadata)
    assert_exit_2(mlp("eval", model), str(model), "0.bias", "extra")


# ------------------------------------------------------------ checkpoints with wrong kinds


def uint8_rng_as_long(state):
    state["rng"]["torch"] = state["rng"]["torch"].long()


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda s: s.update(epoch="many"), "epoch"),
        (lambda s: s.update(epoch=-3), "epoch"),
        (lambda s: s.update(history={"a": 1}), "history"),
        (lambda s: s.update(history=[{"epoch": "one"}]), "history"),
        (lambda s: s.update(best=[1, 2]), "best"),
        (lambda s: s["best"].update(epoch="x"), "best.epoch"),
        (lambda s: s.update(bad_epochs=1.5), "bad_epochs"),
        (lambda s: s.update(stopped_early="no"), "stopped_early"),
        (lambda s: s.update(train_seconds="slow"), "train_seconds"),
        (uint8_rng_as_long, "rng.torch"),
        (lambda s: s.update(model=[1]), "model: Input should be a valid dictionary"),
    ],
    ids=[
        *("epoch-text", "epoch-negative", "history-dict", "history-text", "best-list"),
        *("best-epoch", "bad-epochs", "stopped-early", "train-seconds", "rng-dtype", "model"),
    ],
)
def test_a_checkpoint_with_values_of_the_wrong_kind_changes_nothing(runs, stopped, change, key):
    path = stopped / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())
    before = snapshot(stopped)
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
    assert_exit_2(result, str(path), key)
    assert snapshot(stopped) == before
    assert json.loads((stopped / "summary.json").read_text())["status"] == "stopped"


# ------------------------------------------------------------ the lock


def lock_record(run_dir: Path, **changes: str) -> str:
    """The lock file this process writes for run_dir, with some of its key=value lines changed:
    what another process (or host) would have left."""
    from mlpcli.runs.folder import run_lock

    with run_lock(run_dir):
        lines = (run_dir / ".lock").read_text().splitlines()
    keys = [line.split("=", 1)[0] for line in lines]
    assert set(changes) <= set(keys), keys
    return "".join(
        f"{key}={changes[key]}\n" if key in changes else f"{line}\n"
        for key, line in zip(keys, lines)
    )


def test_a_lock_naming_an_unrelated_live_process_is_taken_over(runs, stopped, monkeypatch):
    import filelock

    # init: alive, but not the process that wrote the record (its start time differs)
    (stopped / ".lock").write_text(lock_record(stopped, pid="1"))
    waits = []
    acquire = filelock.SoftFileLease.acquire

    def recorded(self, *args, **kwargs):
        waits.append(kwargs.get("timeout", args[0] if args else None))
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(filelock.SoftFileLease, "acquire", recorded)
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped, "-q")
    assert result.exit_code == 0, result.output
    assert "in use" not in result.output
    assert not (stopped / ".lock").exists()
    assert waits == [0]  # taken at once, never waiting for a lease to lapse


HOST_IN_RECORD = """
import filelock, sys
from mlpcli.runs.folder import _host_name
lock = filelock.SoftFileLease(sys.argv[1], lease_duration=5)
with lock:
    print(lock.owner.hostname == _host_name(), flush=True)
"""


@pytest.mark.parametrize("namespace", ["this one", "a container's own pids"])
def test_this_host_is_named_as_filelock_records_it(tmp_path, namespace):
    """A holder on this host is probed, not waited on: also in a container, whose host name
    filelock marks with its PID namespace."""
    command = [sys.executable, "-c", HOST_IN_RECORD, str(tmp_path / ".lock")]
    if namespace != "this one":
        command = ["unshare", "--pid", "--fork", "--map-root-user", *command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare")
    if done.returncode != 0 and namespace != "this one":
        pytest.skip(f"no PID namespace here: {done.stderr.strip()[-200:]}")
    assert done.stdout.strip() == "True", done.stderr


@pytest.fixture
def short_lease(monkeypatch):
    import mlpcli.runs.folder

    monkeypatch.setattr(mlpcli.runs.folder, "LEASE_SECONDS", 0.5)


def test_another_hosts_live_lock_is_never_taken(runs, stopped, short_lease):
    """On a shared filesystem another host's holder cannot be probed: its lock stands for as
    long as its heartbeat refreshes it."""
    lock = stopped / ".lock"
    lock.write_text(lock_record(stopped, pid="4242", host="other-host"))
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(0.1):
            os.utime(lock)

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
    finally:
        done.set()
        beating.join()
    assert_exit_2(result, "in use by process 4242 on host other-host (it still refreshes")
    assert "pid=4242" in lock.read_text()


def test_another_hosts_lapsed_lock_is_taken_over(runs, stopped, short_lease):
    """A holder on a host that crashed (or lost the filesystem) stops refreshing its lease:
    the lock is taken once it has gone one lease unrefreshed."""
    (stopped / ".lock").write_text(lock_record(stopped, pid="4242", host="other-host"))
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped, "-q")
    assert result.exit_code == 0, result.output
    assert not (stopped / ".lock").exists()


def test_a_lock_file_whose_writer_died_before_its_record_is_taken_over(runs, stopped):
    """No record to probe and older than a record takes to write: nobody holds it."""
    lock = stopped / ".lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped, "-q")
    assert result.exit_code == 0, result.output


def test_a_run_locked_by_a_live_holder_is_refused_naming_it(runs, stopped):
    from mlpcli.runs.folder import run_lock

    with run_lock(stopped):
        result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
        assert_exit_2(result, f"in use by process {os.getpid()}")
    assert not (stopped / ".lock").exists()


HOLD = """
import sys, time
from mlpcli.runs.folder import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_lock_is_released_when_its_holder_is_killed(runs, stopped):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(stopped)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_exit_2(
            mlp("train", runs / "hostile.yaml", "--resume", stopped), f"process {holder.pid}"
        )
    finally:
        holder.kill()
        holder.wait()
    assert (stopped / ".lock").exists()  # a kill -9 leaves the file, but not the lock
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped, "-q")
    assert result.exit_code == 0, result.output


def test_resume_on_a_read_only_file_system_names_the_folder(runs, stopped, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = mlp("train", runs / "hostile.yaml", "--resume", stopped)
    assert_exit_2(result, str(stopped), "read-only")


@pytest.mark.slow
def test_resume_on_a_read_only_mount_names_the_folder(runs, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copytree(runs / "stopped", folder / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        result = mlp("train", runs / "hostile.yaml", "--resume", folder / "run")
        assert_exit_2(result, str(folder / "run"), "read-only")
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# ------------------------------------------------------------ leftovers of killed writers


def test_predict_sweeps_leftovers_of_dead_writers_but_not_of_live_ones(runs, tmp_path):
    out = tmp_path / "out.csv"
    dead = tmp_path / ".out.csv.999999999.tmp"
    live = tmp_path / f".out.csv.{os.getppid()}.tmp"
    other = tmp_path / ".other.csv.999999999.tmp"
    for leftover in (dead, live, other):
        leftover.write_text("partial")
    result = mlp("predict", runs / "done", runs / "rows.csv", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and not dead.exists()
    assert live.exists() and other.exists()


# ------------------------------------------------------------ messages


def test_resume_is_suggested_only_for_unfinished_runs(runs, tmp_path):
    config = runs / "hostile.yaml"
    shutil.copytree(runs / "done", tmp_path / "done")
    shutil.copytree(runs / "stopped", tmp_path / "stopped")
    (tmp_path / "plain").mkdir()
    for name in ("done", "plain"):
        result = mlp("train", config, "--out", tmp_path, "--name", name)
        assert_exit_2(result, "already exists")
        assert "--resume" not in result.stderr
    result = mlp("train", config, "--out", tmp_path, "--name", "stopped")
    assert_exit_2(result, "already exists", f"--resume {tmp_path / 'stopped'}")
    result = mlp("eval", tmp_path / "plain")
    assert_exit_2(result, "model.safetensors")
    assert "--resume" not in result.stderr
    result = mlp("eval", tmp_path / "stopped")
    assert_exit_2(result, "model.safetensors", f"--resume {tmp_path / 'stopped'}")


def test_an_unknown_output_type_lists_only_what_predict_writes(runs, tmp_path):
    result = mlp("predict", runs / "done", runs / "rows.csv", "-o", tmp_path / "o.txt")
    assert_exit_2(result, ".csv", ".parquet")
    assert ".npz" not in result.stderr


# ------------------------------------------------------------ terminal escapes


def test_control_characters_in_an_error_are_escaped(tmp_path):
    result = mlp("eval", tmp_path / "run\x1b]2;TITLE\x07\x1b[2J")
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]2;TITLE\\x07\\x1b[2J" in result.stderr


def train_with_label(tmp_path: Path, bad: str) -> Path:
    """A run whose classes are 'good' and `bad`, and rows.csv to predict; returns the run."""
    csv = tmp_path / "labels.csv"
    rows = ["x,label"] + [f"{i / 10},{bad if i % 2 else 'good'}" for i in range(40)]
    csv.write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {{source: csv, path: {csv}, target: label}}\nmodel: {{hidden: [4]}}\n"
        "train: {epochs: 1}\n"
    )
    assert mlp("train", config, "--out", tmp_path, "--name", "r", "-q").exit_code == 0
    (tmp_path / "rows.csv").write_text("x\n0.1\n0.2\n0.3\n")
    return tmp_path / "r"


def test_labels_are_escaped_in_csv_to_a_terminal_and_exact_in_a_pipe(tmp_path):
    run = train_with_label(tmp_path, "\x1b[2Jbad")
    piped = mlp("predict", run, tmp_path / "rows.csv", "--proba")
    assert piped.exit_code == 0 and "\x1b[2Jbad" in piped.stdout  # byte-exact in a pipe

    from mlpcli.cli import terminal_safe

    assert terminal_safe("a\x1b[2Jb\tc\n\x9b\x7f") == "a\\x1b[2Jb\tc\n\\x9b\\x7f"


PTY_PREDICT = """
import sys
import threading
import time
sys.argv = ["mlp", "predict", *sys.argv[1:]]
from mlpcli.cli import app
app(prog_name="mlp")
"""


@pytest.mark.slow
def test_predict_to_a_terminal_escapes_control_characters(tmp_path):
    import pty

    bad = "\x1b]2;T\x07"
    train_with_label(tmp_path, bad)
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", PTY_PREDICT, tmp_path / "r", tmp_path / "rows.csv", "--proba"],
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert child.wait() == 0
    assert b"\x1b" not in seen and b"\x07" not in seen
    assert b"proba_\\x1b]2;T\\x07" in seen


# ------------------------------------------------------------ symbolic links in a sweep folder


@pytest.fixture(scope="module")
def swept(runs):
    argv = ["sweep", runs / "hostile.yaml", "--hidden", "4,8", "--workers", "1", "-q"]
    result = mlp(*argv, "--out", runs, "--name", "swept")
    assert result.exit_code == 0, result.output
    return runs / "swept", argv


@pytest.mark.parametrize("entry", ["trials", "results.csv", "summary.json", "trial", "trial-plots"])
def test_sweep_resume_refuses_a_symlink_in_the_sweep_folder(swept, tmp_path, entry):
    folder, argv = swept
    sweep = tmp_path / "sweep"
    shutil.copytree(folder, sweep)
    trial = sorted((sweep / "trials").iterdir())[0].relative_to(sweep)
    entry = {"trial": str(trial), "trial-plots": str(trial / "plots")}.get(entry, entry)
    outside = tmp_path / "outside"
    outside.mkdir()
    plant_link(sweep, entry, outside)
    before = snapshot(outside)
    assert_exit_2(mlp(*argv, "--resume", sweep), str(sweep / entry), "symbolic link")
    assert snapshot(outside) == before

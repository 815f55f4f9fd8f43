"""`mlp sweep --executor ray`: the same results as local workers, retries of a dead worker, a
clean stop and resume, and one-line errors. The cluster tests start their own Ray head on
127.0.0.1 only, in a session of their own, and end it by that session's process ids."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlpcli.cli import app
from mlpcli.sweep.ray_connect import version_mismatch

ROOT = Path(__file__).resolve().parents[1]
# Two trials of each width run at once on the 2-CPU cluster; each trains for a second or two.
PLAN = ["train.epochs=40", "--hidden", "4,8", "--seeds", "2"]
LONG = ["train.epochs=150", "--hidden", "4", "--seeds", "1"]  # one trial, long enough to kill


def mlp(*args: object, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlpcli", "sweep", str(ROOT / "configs" / "moons.yaml")]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def metrics(sweep_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Each trial's metric columns, by its settings and seed (not times, not folders)."""
    with open(sweep_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    splits = ("train_", "val_", "test_")
    return {
        (row["model.hidden"], row["seed"]): {
            k: v for k, v in row.items() if k.startswith(splits) and k != "train_seconds"
        }
        | {"status": row["status"], "best_epoch": row["best_epoch"]}
        for row in rows
    }


# ------------------------------------------------------------ processes and listeners


def session_pids(sid: int) -> list[int]:
    """The live processes of a session (not the exited ones waiting to be reaped)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
                if os.getsid(int(entry)) == sid and state != "Z":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """The TCP addresses these processes listen on, from /proc/net/tcp{,6} and their sockets."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hexip, hexport = fields[1].split(":")
            raw = bytes.fromhex(hexip)
            # The kernel writes each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
            sockets[fields[9]] = (socket.inet_ntop(family, raw), int(hexport, 16))
    found = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        found |= {sockets[link[8:-1]] for link in links if link[8:-1] in sockets}
    return found


def loopback(ip: str) -> bool:
    return ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def end_session(sid: int) -> None:
    """End every process of the cluster's session: a polite stop, then a kill."""
    for how in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(sid):
            try:
                os.kill(pid, how)
            except ProcessLookupError:
                pass
        try:
            wait_for(lambda: not session_pids(sid), timeout=5)
            return
        except AssertionError:
            continue


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray head on 127.0.0.1 only (Ray on Linux swaps 127.0.0.1 for the routable address
    unless clusters are disabled as on macOS), its files in a temporary folder of its own."""
    pytest.importorskip("ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live there
    work = Path(temp) / "work"  # the workers' temporary folders, where trials train
    work.mkdir()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    env["TMPDIR"] = str(work)
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            *(str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"),
            *("--port", str(port), "--num-cpus", "2", "--include-dashboard", "false"),
            *("--object-store-memory", str(200 * 2**20), "--temp-dir", temp),
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _answers(port), timeout=60, every=0.25)
        yield {"address": f"127.0.0.1:{port}", "sid": head.pid, "work": work}
    finally:
        end_session(head.pid)
        head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The reference: the plans on two local worker processes (one thread each, on two cores)."""
    out = tmp_path_factory.mktemp("local")
    for name, plan in (("plan", PLAN), ("long", LONG)):
        done = mlp(*plan, "--workers", "2", "--out", out, "--name", name, "-q")
        assert done.returncode == 0, done.stderr
    return {"plan": metrics(out / "plan"), "long": metrics(out / "long")}


def trial_pid(sid: int) -> int | None:
    """A Ray worker of the cluster running a trial now (Ray titles it after the task)."""
    return next((p for p in session_pids(sid) if title(p) == "ray::ray_trial"), None)


def training(work: Path, old: set[Path], epochs: int = 3) -> bool:
    """Whether a trial has finished `epochs` epochs in its worker's temporary run folder (not
    in the `old` ones a killed worker left behind)."""
    for path in work.glob("mlp-trial-*/*/metrics.csv"):
        if path.parents[1] in old:
            continue
        try:
            if len(path.read_text().splitlines()) > epochs:
                return True
        except OSError:
            continue  # its trial has just ended and taken its folder away
    return False


# ------------------------------------------------------------ on a cluster


@pytest.mark.slow
def test_ray_gives_the_results_of_local_workers_bitwise(cluster, local, tmp_path):
    done = mlp(
        *PLAN,
        *("--executor", "ray", "--address", cluster["address"], "--cpus-per-trial", "1"),
        *("--out", tmp_path, "--name", "ray", "--json"),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout: one object, no worker output
    assert summary["completed"] == 4 and summary["workers"] == 2
    assert metrics(tmp_path / "ray") == local["plan"]
    trial = tmp_path / "ray" / "trials" / "trial-000"
    for name in ("config.yaml", "metrics.csv", "model.safetensors", "summary.json"):
        assert (trial / name).is_file(), name
    # Every process of the cluster (its workers still idle now) listens on loopback only.
    addresses = listening(session_pids(cluster["sid"]))
    assert addresses and all(loopback(ip) for ip, _ in addresses), addresses


@pytest.mark.slow
@pytest.mark.parametrize("retries", [2, 0])
def test_a_killed_worker_is_retried_with_the_same_result(cluster, local, tmp_path, retries):
    command = [sys.executable, "-m", "mlpcli", "sweep", ROOT / "configs" / "moons.yaml", *LONG]
    old = set(cluster["work"].glob("mlp-trial-*"))
    sweep = subprocess.Popen(
        [
            *map(str, command),
            *("--executor", "ray", "--address", cluster["address"], "--retries", str(retries)),
            *("--out", str(tmp_path), "--name", "s", "-q"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: training(cluster["work"], old), timeout=60, every=0.05)
        os.kill(trial_pid(cluster["sid"]), signal.SIGKILL)  # mid-training
        _, stderr = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    if retries:
        assert sweep.returncode == 0, stderr
        assert metrics(tmp_path / "s") == local["long"]
    else:
        assert sweep.returncode == 1, stderr
        assert "Ray worker failed" in stderr and "Traceback" not in stderr
        assert [row["status"] for row in metrics(tmp_path / "s").values()] == ["failed"]


@pytest.mark.slow
def test_sigterm_stops_the_trials_and_resume_finishes_them(cluster, local, tmp_path):
    args = [*PLAN, "--executor", "ray", "--address", cluster["address"]]
    command = [sys.executable, "-m", "mlpcli", "sweep", ROOT / "configs" / "moons.yaml", *args]
    old = set(cluster["work"].glob("mlp-trial-*"))
    sweep = subprocess.Popen(
        [*map(str, command), "--out", str(tmp_path), "--name", "s", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: training(cluster["work"], old), timeout=60, every=0.05)
        sweep.send_signal(signal.SIGTERM)
        _, stderr = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["status"] == "stopped"
    stopped = [k for k, row in metrics(tmp_path / "s").items() if row["status"] == "stopped"]
    assert stopped  # saved on their workers mid-training, and their files brought back
    assert list((tmp_path / "s" / "trials").glob("*/checkpoints/last.pt"))
    resumed = mlp(*args, "--resume", tmp_path / "s", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(tmp_path / "s") == local["plan"]


# ------------------------------------------------------------ without a cluster


def test_help_imports_no_ray():
    code = (
        "import sys\nfrom mlpcli.cli import app\n"
        "for args in (['--help'], ['sweep', '--help']):\n"
        "    try:\n        app(args, prog_name='mlp')\n    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print('ray' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_without_ray_installed_the_error_names_the_extra(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    config = ROOT / "configs" / "moons.yaml"
    result = CliRunner().invoke(
        app, ["sweep", str(config), "--executor", "ray", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert 'pip install "mlpcli[ray]"' in result.stderr and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())  # refused before a sweep folder was made


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--executor", "rya"], "did you mean 'ray'"),
        (["--address", "127.0.0.1:1"], "--address: only with --executor ray"),
        (["--executor", "ray", "--workers", "2"], "--workers: only with --executor local"),
        (["--executor", "ray", "--address", "nohost"], "expected HOST:PORT"),
    ],
)
def test_option_mistakes_are_one_line_errors(tmp_path, args, needle):
    from typer.testing import CliRunner

    config = ROOT / "configs" / "moons.yaml"
    result = CliRunner().invoke(app, ["sweep", str(config), *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output


def test_an_address_where_nothing_listens_fails_fast(tmp_path):
    pytest.importorskip("ray")
    started = time.monotonic()
    done = mlp("--executor", "ray", "--address", f"127.0.0.1:{free_port()}", "--out", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "no Ray cluster answers there" in done.stderr and time.monotonic() - started < 30


def test_a_version_mismatch_is_one_line_naming_both():
    # Ray's own message (ray/_private/utils.py, check_version_info).
    message = (
        "Version mismatch: The cluster was started with:\n"
        "    Ray: 2.59.0\n    Python: 3.10.14\n"
        "This process on node 10.0.0.5:6379 was started with:\n"
        "    Ray: 2.60.0\n    Python: 3.11.7\n"
    )
    line = version_mismatch(message, "--address 10.0.0.5:6379")
    assert line is not None and "\n" not in line
    for needle in ("--address 10.0.0.5:6379", "Ray 2.59.0 on Python 3.10.14", "Ray 2.60.0"):
        assert needle in line
    assert "Python 3.11.7" in line
    assert version_mismatch("connection refused", "--address x") is None


def test_a_trials_files_carry_its_tensorboard_logs_and_nothing_outside_its_folder(tmp_path):
    from mlpcli.sweep.ray_executor import read_run_files, write_run_files

    run = tmp_path / "worker" / "trial-000"
    (run / "tb").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    (run / "tb" / "events.out.tfevents.1.vm.2.0").write_bytes(b"events")
    files = read_run_files(run)
    assert files == {"summary.json": b"{}", "tb/events.out.tfevents.1.vm.2.0": b"events"}
    hostile = {**files, "tb/../escape": b"x", "../escape": b"x", "tb/a/b": b"x", "tb/..": b"x"}
    target = tmp_path / "sweep" / "trials" / "trial-000"
    write_run_files(target, hostile)
    assert read_run_files(target) == files
    assert not (tmp_path / "sweep" / "trials" / "escape").exists()
    assert sorted(p.name for p in (tmp_path / "sweep" / "trials").iterdir()) == ["trial-000"]

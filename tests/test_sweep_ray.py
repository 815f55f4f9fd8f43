"""`mlp sweep --executor ray`: the same results as local workers, retries of a dead worker, a
clean stop and resume, a Ray of its own without an address, and one-line errors. The cluster
tests start their own Ray head on 127.0.0.1 only, in a session of their own, and end it by that
session's process ids; every sweep runs with a home folder and a Ray temporary folder of its own."""

from __future__ import annotations

import contextlib
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
from conftest import resume_hint

from mlpcli.cli import app
from mlpcli.sweeps.executors.ray_connect import GIVE_UP_SECONDS, connect_error, version_mismatch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "moons.yaml"
# Two trials of each width run at once on the 2-CPU cluster; each trains for a second or two.
PLAN = ["train.epochs=40", "--hidden", "4,8", "--seeds", "2"]
LONG = ["train.epochs=150", "--hidden", "4", "--seeds", "1"]  # one trial, long enough to kill
ENDLESS = ["train.epochs=1000000", "--hidden", "4", "--seeds", "1"]  # LONG's trial, never ending
# What the tests' own environment must not lend a sweep: an address, a token.
RAY_SETTINGS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def mlp(*args: object, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlpcli", "sweep", str(CONFIG)]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture
def ray_env(tmp_path):
    """A sweep's environment: an empty home folder and a Ray temporary folder of its own (short:
    Ray's socket paths live there), and no address or token from the tests' environment."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in RAY_SETTINGS}
    env.update(HOME=str(home), RAY_TMPDIR=str(temp), RAY_USAGE_STATS_ENABLED="0")
    try:
        yield {"env": env, "home": home, "temp": temp}
    finally:
        shutil.rmtree(temp, ignore_errors=True)


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


@contextlib.contextmanager
def ray_head(**settings: str):
    """A 2-CPU Ray head on 127.0.0.1 only (Ray on Linux swaps 127.0.0.1 for the routable address
    unless clusters are disabled as on macOS), its files and home folder in a temporary folder
    of its own, `settings` in its environment; ended by its session's process ids."""
    pytest.importorskip("ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live there
    work = Path(temp) / "work"  # the workers' temporary folders, where trials train
    home = Path(temp) / "home"
    work.mkdir()
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in RAY_SETTINGS}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    env.update(TMPDIR=str(work), HOME=str(home), **settings)
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


@pytest.fixture(scope="module")
def cluster():
    with ray_head() as head:
        yield head


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
    return {"plan": metrics(out / "plan"), "long": metrics(out / "long"), "out": out}


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
def test_ray_gives_the_results_of_local_workers_bitwise(cluster, local, tmp_path, ray_env):
    done = mlp(
        *PLAN,
        *("--executor", "ray", "--address", cluster["address"], "--cpus-per-trial", "1"),
        *("--out", tmp_path, "--name", "ray", "--json"),
        env=ray_env["env"],
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
def test_a_killed_worker_is_retried_with_the_same_result(
    cluster, local, tmp_path, ray_env, retries
):
    command = [sys.executable, "-m", "mlpcli", "sweep", CONFIG, *LONG]
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
        env=ray_env["env"],
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


def epochs_in_worker(work: Path, old: set[Path]) -> int:
    """The epochs a trial has logged in its worker's temporary run folder (not in the `old`
    ones): the record that it has started, and how far it has come."""
    counts = [0]
    for path in work.glob("mlp-trial-*/*/metrics.csv"):
        if path.parents[1] not in old:
            with contextlib.suppress(OSError):  # its trial has just ended and taken it away
                counts.append(len(path.read_text().splitlines()) - 1)
    return max(counts)


def epoch_rows(run: Path) -> list[dict[str, str]]:
    """A run's metrics.csv, each epoch's values but its time."""
    with open(run / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def stop_when(command: list[object], started, env: dict[str, str], log: Path) -> tuple[int, str]:
    """Run `mlp sweep`, send it SIGTERM once `started()` holds (failing at once should it end
    first), and return its exit code and stderr."""
    guard = time.monotonic() + 300  # against a hang only: the signal waits for `started()`
    with open(log, "w") as stderr:
        sweep = subprocess.Popen(
            list(map(str, command)), stdout=subprocess.DEVNULL, stderr=stderr, env=env
        )
        try:
            while not started():
                assert sweep.poll() is None, log.read_text()
                assert time.monotonic() < guard, "the trial never started"
                time.sleep(0.05)
            sweep.send_signal(signal.SIGTERM)
            code = sweep.wait(timeout=120)
        finally:
            sweep.kill()
    return code, log.read_text()


@pytest.mark.slow
def test_sigterm_stops_the_running_trial_as_sigterm_and_the_printed_command_continues_it(
    cluster, local, tmp_path, ray_env
):
    """The trial never ends by itself, so the stop cannot race its end: the signal is sent once
    its first epoch is logged, and again once the resumed trial has gone past its checkpoint."""
    work, address, env = cluster["work"], cluster["address"], ray_env["env"]
    old = set(work.glob("mlp-trial-*"))
    command = [sys.executable, "-m", "mlpcli", "sweep", CONFIG, *ENDLESS]
    command += ["--executor", "ray", "--address", address, "--out", tmp_path, "--name", "s", "-q"]
    code, stderr = stop_when(command, lambda: epochs_in_worker(work, old) >= 1, env, tmp_path / "1")
    assert code == 130, stderr
    assert "Traceback" not in stderr and "interrupted by SIGTERM" in stderr
    sweep, trial = tmp_path / "s", tmp_path / "s" / "trials" / "trial-000"
    hint = resume_hint(stderr)
    assert hint == [
        *("mlp", "sweep", str(sweep / "sweep.yaml"), "--resume", str(sweep)),
        *("--executor", "ray", "--address", address, "-q"),
    ]
    assert json.loads((sweep / "summary.json").read_text())["status"] == "stopped"
    with open(sweep / "results.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["status"], row["error"]) == ("stopped", "interrupted by SIGTERM")
    assert json.loads((trial / "summary.json").read_text())["status"] == "stopped"
    assert (trial / "checkpoints" / "last.pt").is_file()  # saved on its worker, brought back
    saved = epoch_rows(trial)
    reference = epoch_rows(local["out"] / "long" / "trials" / "trial-000")  # never stopped
    assert saved and saved[: len(reference)] == reference[: len(saved)]

    # The command it printed sends the trial back to a worker, which goes on from its checkpoint.
    old = set(work.glob("mlp-trial-*"))
    resume = [sys.executable, "-m", "mlpcli", *hint[1:]]
    code, stderr = stop_when(
        resume, lambda: epochs_in_worker(work, old) > len(saved), env, tmp_path / "2"
    )
    assert code == 130 and "interrupted by SIGTERM" in stderr, stderr
    assert resume_hint(stderr) == hint
    resumed = epoch_rows(trial)
    assert len(resumed) > len(saved) and resumed[: len(saved)] == saved
    assert resumed[: len(reference)] == reference[: len(resumed)]  # as if never stopped


@pytest.mark.slow
def test_a_search_with_asha_prunes_trials_on_ray(cluster, tmp_path, ray_env):
    """The workers wait for the driver's verdicts through Ray: pruned trials stop early and
    keep their checkpoints, and the journal ends with no trial running."""
    pytest.importorskip("optuna")
    from optuna import load_study
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    done = mlp(
        *("train.epochs=16", "--search", "random", "--trials", "6", "--prune", "asha"),
        *("--space", "optim.lr=log(1e-4,1e-1)", "--executor", "ray"),
        *("--address", cluster["address"], "--out", tmp_path, "--name", "s", "-q"),
        env=ray_env["env"],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "s"
    with open(sweep / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"completed", "pruned"}
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned, rows
    for row in pruned:
        assert int(row["epochs"]) == int(row["pruned_at"]) < 16
        assert row["reason"].startswith(f"epoch {row['epochs']}: "), row["reason"]
        trial = sweep / "trials" / row["trial"]
        assert (trial / "checkpoints" / "last.pt").is_file()  # brought back from its worker
        assert len(epoch_rows(trial)) == int(row["epochs"])
    storage = JournalStorage(JournalFileBackend(str(sweep / "search.journal")))
    trials = load_study(study_name="search", storage=storage).get_trials(deepcopy=False)
    assert len(trials) == 6
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert sum(t.state == TrialState.PRUNED for t in trials) == len(pruned)


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


def test_an_address_where_nothing_listens_fails_fast(tmp_path, ray_env):
    pytest.importorskip("ray")
    started = time.monotonic()
    address = f"127.0.0.1:{free_port()}"
    done = mlp("--executor", "ray", "--address", address, "--out", tmp_path, env=ray_env["env"])
    assert done.returncode == 2, done.stderr
    assert f"--address {address}: no Ray cluster answers there" in done.stderr
    assert time.monotonic() - started < 30


def test_an_address_from_ray_address_is_named_as_such(tmp_path, ray_env):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"
    env = {**ray_env["env"], "RAY_ADDRESS": address}
    done = mlp("--executor", "ray", "--out", tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert f"RAY_ADDRESS={address} (from the environment): no Ray cluster answers" in error


@pytest.mark.slow
def test_an_address_that_answers_but_not_as_ray_fails_within_the_stated_time(tmp_path, ray_env):
    """Something accepts connections there (the kernel does, for a socket that listens) and
    never answers: Ray alone would try for about 12 minutes."""
    pytest.importorskip("ray")
    env, args = ray_env["env"], ["--executor", "ray", "--out", tmp_path]
    # What the command takes besides connecting: the same, refused at once.
    started = time.monotonic()
    refused = mlp(*args, "--address", f"127.0.0.1:{free_port()}", env=env)
    before = time.monotonic() - started
    assert refused.returncode == 2, refused.stderr
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = mlp(*args, "--address", address, env=env, timeout=600)
        took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: --address {address}: no Ray cluster answered there within")
    assert "Traceback" not in done.stderr
    assert took - before < GIVE_UP_SECONDS, (took, before)


@pytest.mark.slow
def test_without_an_address_the_sweep_runs_on_a_ray_of_its_own_and_leaves_home_as_found(
    tmp_path, ray_env
):
    """An earlier `ray start` left its address in Ray's temporary folder and its cluster is
    gone: Ray's default (address=None) would wait on it for minutes. Nor does the instance the
    sweep starts write a token into the home folder (Ray's default for a new local instance)."""
    pytest.importorskip("ray")
    stale = ray_env["temp"] / "ray" / "ray_current_cluster"
    stale.parent.mkdir()
    stale.write_text(f"127.0.0.1:{free_port()}")
    command = [sys.executable, "-m", "mlpcli", "sweep", CONFIG, "train.epochs=3", "--hidden", "4"]
    command += ["--executor", "ray", "--out", tmp_path, "--name", "s", "-q"]
    sweep = subprocess.Popen(
        list(map(str, command)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ray_env["env"],
        start_new_session=True,  # whatever the instance leaves behind is ended by its pids
    )
    try:
        _, stderr = sweep.communicate(timeout=600)
    finally:
        sweep.kill()
        end_session(sweep.pid)
    assert sweep.returncode == 0, stderr
    assert [row["status"] for row in metrics(tmp_path / "s").values()] == ["completed"]
    assert stale.read_text().startswith("127.0.0.1:")  # left as it was
    assert not (ray_env["home"] / ".ray").exists()


# Ray's errors for a cluster with token authentication (ray/_private/node.py, ray/exceptions.py),
# raised from ray.init as ConnectionError from RuntimeError, or as AuthenticationError.
REFUSED = (
    "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
    '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
    "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is "
    "missing or incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token'). Ensure "
    "that the token for the cluster is available in a local file (e.g., ~/.ray/auth_token or "
    "via RAY_AUTH_TOKEN_PATH) or as the `RAY_AUTH_TOKEN` environment variable.\n"
)
NO_TOKEN = (
    "Token authentication is enabled but no authentication token was found. Ensure that the "
    "token for the cluster is available in a local file (e.g., ~/.ray/auth_token or via "
    "RAY_AUTH_TOKEN_PATH) or as the `RAY_AUTH_TOKEN` environment variable."
)


@pytest.mark.parametrize("mode", [None, "token"])
def test_an_authentication_failure_is_one_line_naming_the_token_file_and_mode(
    tmp_path, monkeypatch, mode
):
    for key in RAY_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if mode is None:  # a cluster asking for a token this process does not send
        exc = ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")
        exc.__cause__ = RuntimeError(REFUSED)
    else:  # token mode here, and no token to send
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
        exc = type("AuthenticationError", (RuntimeError,), {})(NO_TOKEN)
    line = connect_error(exc, "--address 10.0.0.5:6379")
    assert "\n" not in line
    token = tmp_path / ".ray" / "auth_token"
    assert line.startswith("--address 10.0.0.5:6379: the Ray cluster requires its authentication")
    assert f"RAY_AUTH_MODE is {mode or 'unset'}, {token} does not exist" in line
    assert f"connect with RAY_AUTH_MODE=token and the cluster's token in {token}" in line
    token.parent.mkdir()
    token.write_text("a token of another cluster")
    assert f"{token} holds a token" in connect_error(exc, "--address 10.0.0.5:6379")
    assert connect_error(RuntimeError("connection refused"), "--address x") == (
        "--address x: cannot connect to a Ray cluster (connection refused)"
    )


@pytest.mark.slow
def test_a_cluster_with_token_authentication_names_what_to_do_without_its_token(tmp_path, ray_env):
    with ray_head(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0123456789abcdef" * 4) as head:
        address = head["address"]
        done = mlp("--executor", "ray", "--address", address, "--out", tmp_path, env=ray_env["env"])
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    token = ray_env["home"] / ".ray" / "auth_token"
    assert error.startswith(f"error: --address {address}: the Ray cluster requires its")
    assert f"RAY_AUTH_MODE is unset, {token} does not exist" in error
    assert "Traceback" not in done.stderr and not any(tmp_path.glob("moons-sweep*"))


def test_ray_reads_its_settings_again_when_imported_before(tmp_path):
    """Ray reads its settings (and token) from the environment when imported: a process that
    imported it earlier reads them again before connecting (Ray's own Config and token loader)."""
    pytest.importorskip("ray")
    code = (
        "import os, ray\n"
        "from ray._raylet import AuthenticationTokenLoader, Config\n"
        "from mlpcli.sweeps.executors.ray_connect import import_ray\n"
        "loader = AuthenticationTokenLoader.instance()\n"
        "print(Config.py_gcs_connect_timeout_s(), loader.has_token(ignore_auth_mode=True))\n"
        "os.environ.update(RAY_py_gcs_connect_timeout_s='7', RAY_AUTH_TOKEN='ab' * 32)\n"
        "import_ray()\n"
        "print(Config.py_gcs_connect_timeout_s(), loader.has_token(ignore_auth_mode=True))\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in RAY_SETTINGS}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30", "False", "7", "True"]


class Interrupted:
    """An executor whose trials are stopped by SIGTERM as soon as they are asked to run."""

    workers = 1

    def run(self, tasks, progress=None, window=None):
        raise KeyboardInterrupt("SIGTERM")
        yield


def test_the_resume_hint_repeats_the_ray_options_it_was_given(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import mlpcli.sweeps.executors.ray_executor as ray_executor

    given = []
    monkeypatch.setattr(
        ray_executor, "make_ray_executor", lambda o: given.append(o) or Interrupted()
    )
    options = ["--executor", "ray", "--address", "10.0.0.5:6379", "--cpus-per-trial", "2"]
    options += ["--gpus-per-trial", "0.5", "--retries", "0", "--shared-dir"]
    args = ["sweep", str(CONFIG), "--hidden", "4", *options, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--name", "s", "-q", "--json"])
    assert result.exit_code == 130, result.output
    hint = resume_hint(result.stderr)
    sweep = tmp_path / "s"
    assert hint == [
        *("mlp", "sweep", str(sweep / "sweep.yaml"), "--resume", str(sweep)),
        *options,
        *("-q", "--json"),
    ]
    again = CliRunner().invoke(app, hint[1:])  # the command it printed, run
    assert again.exit_code == 130, again.output
    assert resume_hint(again.stderr) == hint and given[1] == given[0]


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
    from mlpcli.sweeps.executors.ray_executor import read_run_files, write_run_files

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


def test_the_executor_keeps_the_name_of_a_signal_that_ray_drops():
    """Ray turns an interrupt raised while it waits into a KeyboardInterrupt without the name of
    the signal; the executor notes each stop signal as it comes, then handles it as before."""
    from mlpcli.sweeps.executors.ray_executor import signal_names

    def as_ray_leaves_it(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, as_ray_leaves_it)
    try:
        with signal_names() as received, pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        assert received == ["SIGTERM"]
        assert signal.getsignal(signal.SIGTERM) is as_ray_leaves_it
    finally:
        signal.signal(signal.SIGTERM, previous)

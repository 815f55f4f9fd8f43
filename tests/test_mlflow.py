"""train.mlflow (--mlflow): the params, the metric history, the final metrics and the files of a
run in MLflow, one MLflow run per run folder (a resume continues it), a sweep as a parent run
with its trials nested, and a tracking server that is down or refuses as one warning line."""

from __future__ import annotations

import csv
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import NETNS, InterruptAt, assert_exit_2, mlp, netns_works

import mlpcli
from mlpcli.callbacks import Callback
from mlpcli.config.schema import load_config
from mlpcli.errors import Interrupted, TrainingError
from mlpcli.runs.tracking import flat_hparams

mlflow = pytest.importorskip("mlflow")

ROOT = Path(__file__).resolve().parents[1]
TINY = """\
name: tiny
seed: 0
data: {source: moons, n_samples: 200, noise: 0.2}
model: {hidden: [8]}
optim: {name: adam, lr: 0.01}
train: {epochs: 6, batch_size: 32}
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite store in tmp_path (also the working folder: MLflow writes mlruns/ there),
    and tiny.yaml; the store's URI."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "tiny.yaml").write_text(TINY)
    return uri


def client(uri: str) -> Any:
    return mlflow.tracking.MlflowClient(uri)


def all_runs() -> list[Any]:
    return mlflow.search_runs(experiment_names=["mlpcli"], output_format="list")


def only_run(folder: Path) -> Path:
    (run,) = folder.iterdir()
    return run


def csv_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as (epoch, value) per column."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        key: [(int(row["epoch"]), float(row[key])) for row in rows]
        for key in rows[0]
        if key != "epoch"
    }


def assert_history_is_metrics_csv(uri: str, run_id: str, run_dir: Path) -> None:
    for key, expected in csv_history(run_dir).items():
        logged = client(uri).get_metric_history(run_id, key)
        assert sorted((m.step, m.value) for m in logged) == expected, key


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


def test_params_equal_the_resolved_config_and_history_equals_metrics_csv(store):
    result = mlp("train", "tiny.yaml", "--mlflow", "-q")
    assert result.exit_code == 0, result.output
    assert not warnings_of(result.stderr)
    run_dir = only_run(Path("runs"))
    (run,) = all_runs()
    expected = flat_hparams(load_config(run_dir / "config.yaml"))
    assert run.data.params == {key: str(value) for key, value in expected.items()}
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    record = json.loads((run_dir / "mlflow.json").read_text())
    assert record == {
        "tracking_uri": store,
        "experiment_id": run.info.experiment_id,
        "run_id": run.info.run_id,
    }
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    assert len(csv_history(run_dir)["train_loss"]) == 6


def test_final_metrics_baselines_and_artifacts(store):
    result = mlp("train", "tiny.yaml", "--mlflow", "--baseline", "linear", "--report", "-q")
    assert result.exit_code == 0, result.output
    run_dir = only_run(Path("runs"))
    summary = json.loads((run_dir / "summary.json").read_text())
    (run,) = all_runs()
    metrics = run.data.metrics
    for split in ("train", "val", "test"):
        for key, value in summary["metrics"][split].items():
            assert metrics[f"final/{split}/{key}"] == pytest.approx(value, rel=1e-12)
        linear = summary["baselines"]["linear"]["metrics"][split]
        assert metrics[f"baseline/linear/{split}/accuracy"] == pytest.approx(linear["accuracy"])
    stored = summary["baselines"]["linear"]["stored_numbers"]
    assert metrics["baseline/linear/stored_numbers"] == stored
    files = {a.path for a in client(store).list_artifacts(run.info.run_id)}
    plots = {a.path for a in client(store).list_artifacts(run.info.run_id, "plots")}
    assert {"config.yaml", "summary.json", "metrics.csv", "model.safetensors"} <= files
    assert "report.html" in files  # the page train.report wrote, added once it was written
    assert "checkpoints" not in files
    assert "plots/loss.png" in plots


def test_log_files_adds_to_the_folder_s_run_and_warns_without_one(store, tmp_path):
    from mlpcli.runs.mlflow_log import log_files

    assert mlp("train", "tiny.yaml", "--mlflow", "-q").exit_code == 0
    run_dir = only_run(Path("runs"))
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    assert log_files(run_dir, [extra]) == []
    (run,) = all_runs()
    assert "notes.txt" in {a.path for a in client(store).list_artifacts(run.info.run_id)}
    # No mlflow.json: the run never reached MLflow, and its tracker said so; nothing more.
    assert log_files(tmp_path, [extra]) == []


def test_a_resumed_run_is_one_mlflow_run_without_a_repeated_step(store):
    with pytest.raises(Interrupted):
        mlpcli.train("tiny.yaml", ["train.mlflow=true"], quiet=True, callbacks=[InterruptAt(3)])
    run_dir = only_run(Path("runs"))
    (run,) = all_runs()
    assert run.info.status == "KILLED"
    history = client(store).get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    # --mlflow is no difference from the run's config.yaml: it changes no result.
    result = mlp("train", run_dir / "config.yaml", "--resume", run_dir, "--mlflow", "-q")
    assert result.exit_code == 0, result.output
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    steps = [m.step for m in client(store).get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]


def test_a_resume_adds_mlflow_to_a_run_trained_without(store):
    """The epochs the checkpoint holds are sent when the run opens, then the rest."""
    with pytest.raises(Interrupted):
        mlpcli.train("tiny.yaml", quiet=True, callbacks=[InterruptAt(2)])
    run_dir = only_run(Path("runs"))
    assert not all_runs() and not (run_dir / "mlflow.json").exists()
    result = mlp("train", "tiny.yaml", "--resume", run_dir, "--mlflow", "-q")
    assert result.exit_code == 0, result.output
    (run,) = all_runs()
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    # config.yaml records the setting the resume added: it and the params agree.
    config = load_config(run_dir / "config.yaml")
    assert config.train.mlflow is True
    assert run.data.params == {key: str(value) for key, value in flat_hparams(config).items()}


class Poison(Callback):
    """Every weight NaN after epoch 3: epoch 4's loss is NaN and the run fails."""

    def on_epoch_end(self, trainer: Any, record: dict[str, float]) -> None:
        if record["epoch"] == 3:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))


def test_a_failed_run_ends_failed_with_its_files(store):
    with pytest.raises(TrainingError):
        mlpcli.train("tiny.yaml", ["train.mlflow=true"], quiet=True, callbacks=[Poison()])
    run_dir = only_run(Path("runs"))
    (run,) = all_runs()
    assert run.info.status == "FAILED"
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["final/test/loss"] == pytest.approx(summary["metrics"]["test"]["loss"])
    files = {a.path for a in client(store).list_artifacts(run.info.run_id)}
    assert {"summary.json", "model.safetensors"} <= files


@pytest.mark.slow
def test_a_two_worker_sweep_is_a_parent_run_with_its_trials_nested(store):
    args = ["sweep", "tiny.yaml", "--hidden", "4,8", "--seeds", "2", "--workers", "2"]
    result = mlp(*args, "--name", "s", "--mlflow", "-q")
    assert result.exit_code == 0, result.output
    assert not warnings_of(result.stderr)
    sweep_dir = Path("runs") / "s"
    runs = all_runs()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "s" and parent.info.status == "FINISHED"
    assert json.loads((sweep_dir / "mlflow.json").read_text())["run_id"] == parent.info.run_id
    assert parent.data.metrics["completed"] == 4 and parent.data.metrics["failed"] == 0
    summary = json.loads((sweep_dir / "summary.json").read_text())
    best = parent.data.metrics["best/val_accuracy"]
    assert best == pytest.approx(summary["best"]["val_accuracy_mean"])
    parent_files = {a.path for a in client(store).list_artifacts(parent.info.run_id)}
    assert {"results.csv", "summary.json", "plots"} <= parent_files
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = sorted((sweep_dir / "trials").iterdir())
    assert sorted(r.info.run_name for r in nested) == [t.name for t in trials]
    for run in nested:
        trial = sweep_dir / "trials" / run.info.run_name
        assert run.info.status == "FINISHED"
        assert json.loads((trial / "mlflow.json").read_text())["parent_run_id"] == (
            parent.info.run_id
        )
        assert_history_is_metrics_csv(store, run.info.run_id, trial)
    assert len(runs) == 5


@pytest.mark.slow
def test_a_search_s_trials_are_nested_as_handed_out_and_a_pruned_one_is_tagged(store, monkeypatch):
    pytest.importorskip("optuna")
    import optuna

    import mlpcli.sweeps.search.driver as driver
    from mlpcli.sweeps.executors.local import InlineExecutor

    class PruneOne(optuna.pruners.BasePruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return trial.last_step == 2 and trial.user_attrs.get("mlp_trial") == 1

    monkeypatch.setattr(driver, "make_pruner", lambda optuna, name: PruneOne())
    result = mlpcli.sweep(
        "tiny.yaml",
        ["train.mlflow=true"],
        search="random",
        trials=3,
        prune="median",
        space=["optim.lr=log(1e-3,1e-1)"],
        name="search",
        quiet=True,
        executor=InlineExecutor(),
    )
    assert result.summary["pruned"] == 1
    runs = all_runs()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.metrics["pruned"] == 1 and parent.data.metrics["completed"] == 2
    nested = {r.info.run_name: r for r in runs if r is not parent}
    assert sorted(nested) == ["trial-000", "trial-001", "trial-002"]
    assert nested["trial-001"].data.tags["mlpcli.status"] == "pruned"
    assert "mlpcli.status" not in nested["trial-000"].data.tags
    for name, run in nested.items():
        trial = result.sweep_dir / "trials" / name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert_history_is_metrics_csv(store, run.info.run_id, trial)
    assert len(csv_history(result.sweep_dir / "trials" / "trial-001")["train_loss"]) == 2


def test_ray_with_a_store_on_this_host_s_disk_is_a_warning(store, tmp_path, capsys):
    from mlpcli.runs.mlflow_log import SweepTracking

    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    tracking = SweepTracking.open(sweep_dir, load_config("tiny.yaml"), ray=True)
    (line,) = warnings_of(capsys.readouterr().err)
    assert store in line and "Ray" in line and "tracking server" in line
    assert (
        tracking.record["run_id"] == json.loads((sweep_dir / "mlflow.json").read_text())["run_id"]
    )


@contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening while the test runs: a connection is refused, and no
    other process can take the port meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def assert_one_warning_and_a_complete_run(result: Any, uri: str) -> None:
    assert result.exit_code == 0, result.output
    (line,) = warnings_of(result.stderr)
    assert uri in line and "run folder is the record" in line
    run_dir = only_run(Path("runs"))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "plots" / "loss.png").is_file()
    assert not (run_dir / "mlflow.json").exists()


def test_a_server_that_is_down_is_one_warning(store, monkeypatch):
    with closed_port() as port:
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        result = mlp("train", "tiny.yaml", "--mlflow", "--report", "-q")
    assert_one_warning_and_a_complete_run(result, uri)
    # The page is written, and not logged: no second line about it.
    assert (only_run(Path("runs")) / "report.html").is_file()
    assert "mlflow.json" not in result.stderr and "note:" not in result.stderr


class Refusing(http.server.BaseHTTPRequestHandler):
    def refuse(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        body = b'{"error_code": "PERMISSION_DENIED", "message": "refused by the test"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = refuse

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def test_a_server_that_refuses_is_one_warning(store, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        result = mlp("train", "tiny.yaml", "--mlflow", "-q")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert_one_warning_and_a_complete_run(result, uri)


def test_a_missing_extra_is_one_line_before_any_folder(store, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "mlflow" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for args in (["train", "tiny.yaml"], ["sweep", "tiny.yaml", "--hidden", "4,8"]):
        result = mlp(*args, "--mlflow", "-q")
        assert_exit_2(result, 'pip install "mlpcli[mlflow]"', "train.mlflow")
        assert len(result.stderr.strip().splitlines()) == 1
    assert not Path("runs").exists()


@pytest.mark.slow
@pytest.mark.skipif(not netns_works(), reason="needs unshare and ip (see test_distributed.py)")
def test_only_process_0_of_a_two_process_run_logs(store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env["GLOO_SOCKET_IFNAME"] = "lo"
    command = [sys.executable, "-m", "mlpcli", "train", "tiny.yaml", "--nproc", "2"]
    done = subprocess.run(
        [*NETNS, *command, "train.engine=autograd", "--mlflow", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert not warnings_of(done.stderr)
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert_history_is_metrics_csv(store, run.info.run_id, only_run(tmp_path / "runs"))


def test_files_that_cannot_be_logged_still_end_the_run(store, monkeypatch):
    """An artifact store the run cannot write to (S3, without boto3 here): one warning, and
    the run's params, metrics and status are all there."""
    client(store).create_experiment("mlpcli", artifact_location="s3://nobucket-xyz/a")
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` fails, as when missing
    result = mlp("train", "tiny.yaml", "--mlflow", "-q")
    assert result.exit_code == 0, result.output
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    (line,) = warnings_of(result.stderr)
    assert "file could not be logged" in line and "boto3" in line
    run_dir = only_run(Path("runs"))
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["final/test/loss"] == pytest.approx(summary["metrics"]["test"]["loss"])


def nested_runs() -> dict[str, Any]:
    runs = all_runs()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in nested)
    return {"parent": parent, **{r.info.run_name: r for r in nested}}


def test_an_interrupted_then_resumed_sweep_has_one_run_per_trial(store):
    """Trial 0 completes, trial 1's worker dies once it has written its mlflow.json, trials 2
    and 3 never start: none is left RUNNING, and the resumed sweep reuses each trial's run."""
    from mlpcli.sweeps.executors.local import InlineExecutor

    class DiesAtTrial1(InlineExecutor):
        def run(self, tasks, progress=None, window=None):
            yield from super().run(tasks[:1], progress)
            dead = tasks[1]  # as its training process leaves it when killed with SIGKILL
            dead.run_dir.mkdir(parents=True)
            (dead.run_dir / "mlflow.json").write_text(json.dumps(dead.mlflow))
            raise KeyboardInterrupt

    plan = {"hidden": [2, 4], "seeds": 2, "quiet": True}
    with pytest.raises(Interrupted):
        mlpcli.sweep("tiny.yaml", ["train.mlflow=true"], name="s", executor=DiesAtTrial1(), **plan)
    trials = [f"trial-00{i}" for i in range(4)]
    runs = nested_runs()
    assert sorted(runs) == ["parent", *trials]
    assert {name: run.info.status for name, run in runs.items()} == {
        "parent": "KILLED",
        "trial-000": "FINISHED",
        "trial-001": "KILLED",
        "trial-002": "KILLED",
        "trial-003": "KILLED",
    }
    first = {name: run.info.run_id for name, run in runs.items()}
    sweep_dir = Path("runs") / "s"
    result = mlpcli.sweep("tiny.yaml", ["train.mlflow=true"], resume=sweep_dir, **plan)
    assert result.summary["completed"] == 4
    runs = nested_runs()
    assert {name: run.info.run_id for name, run in runs.items()} == first
    assert {run.info.status for run in runs.values()} == {"FINISHED"}
    for name in trials:
        record = json.loads((sweep_dir / "trials" / name / "mlflow.json").read_text())
        assert record["run_id"] == first[name]
        assert_history_is_metrics_csv(store, first[name], sweep_dir / "trials" / name)


CRASH = """\
import os
import sys
from pathlib import Path

import mlpcli
from mlpcli.callbacks import Callback
from mlpcli.runs.checkpoint import CheckpointSaver


class Crash(Callback):
    \"\"\"The checkpoint written at epoch 2, then the process gone at epoch 4, as by SIGKILL.\"\"\"

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 2:
            (saver,) = [c for c in trainer.callbacks if isinstance(c, CheckpointSaver)]
            saver.flush()
        if record["epoch"] == 4:
            Path("crashed").write_text("4")
            os._exit(9)


overrides = ["train.mlflow=true", "train.checkpoint_seconds=3600"]
mlpcli.train("tiny.yaml", overrides, quiet=True, callbacks=[Crash()])
"""


def test_a_crash_between_checkpoints_sends_only_checkpointed_epochs(store, tmp_path):
    from mlpcli.runs.checkpoint import load_checkpoint
    from mlpcli.runs.folder import CHECKPOINT

    (tmp_path / "crash.py").write_text(CRASH)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "crash.py"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 9 and (tmp_path / "crashed").read_text() == "4", done.stderr
    run_dir = only_run(Path("runs"))
    (run,) = all_runs()
    assert run.info.status == "RUNNING"  # nothing was left to end it
    saved = load_checkpoint(run_dir / CHECKPOINT)["epoch"]
    steps = [m.step for m in client(store).get_metric_history(run.info.run_id, "train_loss")]
    assert saved == 2 and sorted(steps) == [1, 2]
    result = mlp("train", run_dir / "config.yaml", "--resume", run_dir, "-q")
    assert result.exit_code == 0, result.output
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert_history_is_metrics_csv(store, run.info.run_id, run_dir)
    steps = [m.step for m in client(store).get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]  # each step once


def test_a_first_run_in_a_fresh_folder_prints_no_info_line_of_mlflow(store, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", "train", "tiny.yaml", "--mlflow", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").is_file()  # made by this run
    assert " INFO " not in done.stderr and not warnings_of(done.stderr), done.stderr

"""A stream under several processes: row groups too few or too uneven to share are refused before
training, the final scores read each row group once for all three splits, and an error that one
process meets alone in its own rows is reported by that process, naming it.

The two-process test launches `mlp train --nproc 2` (gloo on the loopback) on a few hundred rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import NETNS, netns_works

from mlpcli import cli
from mlpcli.config.schema import load_config
from mlpcli.data.stream.footer import StreamSource
from mlpcli.errors import DataError, TrainingError
from mlpcli.training.distributed import ProcessError, own_errors
from mlpcli.training.plan import check_shares, plan_run
from mlpcli.training.run import _final_metrics, prepare
from mlpcli.training.trainer import score

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_ONLY = list(NETNS) if netns_works() else None


def stream_config(path: Path, **train: Any) -> Path:
    """A config streaming `path` (beside the config) into a small MLP."""
    config = {
        "name": "stream",
        "seed": 3,
        "data": {"source": "parquet", "path": path.name, "target": "y", "stream": True},
        "model": {"hidden": [8]},
        "optim": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 32, "plots": False, "diagnostics": False, **train},
    }
    config_path = path.parent / "stream.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    return config_path


# ------------------------------------------------------------ row groups the processes share


def test_row_groups_too_uneven_for_the_processes_are_refused_naming_them():
    # [900, 50, 50]: one process holds the 900 rows, the other 100 at most, and both take the
    # steps of the one with 100: over 80% of the rows would sit out every epoch.
    with pytest.raises(DataError) as caught:
        check_shares(np.array([900, 50, 50]), 3, 5, 32, 2, "events/")
    message = str(caught.value)
    assert message.startswith("events/: 2 processes would train on ")
    assert "of its 1,000 training rows" in message and "3 row groups are too few" in message
    assert "row_group_size" in message and "fewer processes" in message
    with pytest.raises(DataError, match=r"on 0 of its 1,000 .* 1 row group is too few"):
        check_shares(np.array([1000]), 3, 5, 32, 2, "one.parquet")


def test_row_groups_the_processes_share_closely_enough_train():
    check_shares(np.array([1000]), 3, 5, 32, 1, "one process takes every row")
    check_shares(np.full(20, 100), 3, 5, 32, 2, "even groups")
    check_shares(np.array([100] * 19 + [150]), 3, 50, 32, 4, "slightly uneven, every epoch")
    check_shares(np.full(10_000, 10) * 1000, 3, 1000, 1024, 8, "many: the bound alone")


@pytest.mark.skipif(LOOPBACK_ONLY is None, reason="needs unshare and ip (a loopback namespace)")
def test_two_processes_on_one_row_group_exit_2_before_training(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": x.sum(axis=1)})
    pq.write_table(table, tmp_path / "one.parquet")  # a single row group
    config = stream_config(tmp_path / "one.parquet")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mlpcli", "train", str(config), "--nproc", "2"]
    assert LOOPBACK_ONLY is not None
    done = subprocess.run(
        [*LOOPBACK_ONLY, *command, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "2 processes would train on 0 of its" in done.stderr
    assert "1 row group is too few" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("error:") == 1  # process 0 reports what every process met
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------ the final scores


def test_the_final_scores_read_each_row_group_once_for_every_split(parquet_folder, monkeypatch):
    folder = parquet_folder(files=2, groups=3, rows=150, task="classification")
    config = load_config(stream_config(folder, epochs=1))
    session = prepare(config, plan=plan_run(config))
    session.trainer.fit()
    trainer = session.trainer
    alone = {
        name: score(
            trainer.model,
            trainer.loss_fn,
            trainer.task,
            split,
            trainer.target_scale,
            trainer.device,
        )
        for name, split in session.streamed.items()
    }
    reads: list[tuple[int, int]] = []
    read = StreamSource.read

    def counted(self: StreamSource, group: Any, used: list[str]) -> Any:
        reads.append((group.file, group.index))
        return read(self, group, used)

    monkeypatch.setattr(StreamSource, "read", counted)
    metrics = _final_metrics(session)
    assert sorted(reads) == sorted((g.file, g.index) for g in session.dataset.source.groups)
    assert metrics.keys() == alone.keys() == {"train", "val", "test"}
    for name, values in alone.items():
        assert metrics[name] == pytest.approx(values, rel=1e-12, abs=1e-15)


# ------------------------------------------------------------ an error met by one process


class Second:
    """The second of two processes, as far as own_errors looks."""

    rank, size = 1, 2


def test_an_error_one_process_meets_alone_names_that_process_and_keeps_its_exit_code():
    with pytest.raises(ProcessError) as caught, own_errors(Second()):  # type: ignore[arg-type]
        raise DataError("part-001.parquet, row group 2: column 'x1' holds text")
    assert str(caught.value) == (
        "process 1 of 2: part-001.parquet, row group 2: column 'x1' holds text"
    )
    assert caught.value.exit_code == 2
    # Every process meets a NaN at the same step; process 0 reports it.
    with pytest.raises(TrainingError) as failed, own_errors(Second()):  # type: ignore[arg-type]
        raise TrainingError("the training loss became nan")
    assert not isinstance(failed.value, ProcessError)


@pytest.mark.parametrize(
    ("error", "printed"),
    [
        (ProcessError("process 1 of 2: part-001.parquet: unreadable", 2), True),
        (DataError("part-001.parquet: unreadable"), False),  # process 0 reports it
    ],
)
def test_a_process_other_than_0_prints_only_the_errors_it_met_alone(
    monkeypatch, capsys, error, printed
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    # It would ignore SIGTERM from then on, in the test's own process.
    monkeypatch.setattr(cli, "_keep_exit_code", lambda: None)

    @cli.handle_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 2
    stderr = capsys.readouterr().err
    assert ("process 1 of 2: part-001.parquet" in stderr) is printed, stderr

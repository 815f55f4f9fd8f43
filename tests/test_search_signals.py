"""A real `mlp sweep --search` process killed (kill -9 of its process group) or stopped by Ctrl-C
while trials run, then resumed: exactly N trials, each once, none left running in the journal,
and the interrupted ones run again with the parameters they were proposed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import resume_hint
from test_sweep_signals import alive, children, finish, start, wait_for

pytestmark = pytest.mark.slow

MLP = Path(sys.executable).with_name("mlp")
TRIALS = 6
# Trials of a few seconds each, a checkpoint every epoch: killed mid-run, they leave one.
CONFIG = """\
name: long
data: {source: moons, n_samples: 400}
model: {hidden: [16]}
train: {epochs: 200, batch_size: 8, checkpoint_seconds: 0}
"""
SEARCH = [
    *("--search", "random", "--trials", str(TRIALS)),
    *("--space", "optim.lr=log(1e-3,1e-1)", "--workers", "2", "-q"),
]


def checkpointed(tmp_path: Path) -> bool:
    return (tmp_path / "s" / "trials" / "trial-000" / "checkpoints" / "last.pt").is_file()


def results(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def journal(sweep_dir: Path) -> list:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "search.journal")))
    return optuna.load_study(study_name="search", storage=storage).get_trials(deepcopy=False)


def running(sweep_dir: Path) -> dict[int, dict]:
    """The journal's running trials (by Optuna's number) that were given to a worker: their
    parameters. (One killed inside the ask, before it had a trial folder, never ran.)"""
    from optuna.trial import TrialState

    return {
        t.number: t.params
        for t in journal(sweep_dir)
        if t.state == TrialState.RUNNING and "mlp_trial" in t.user_attrs
    }


def check_resumed(sweep_dir: Path, interrupted: dict[int, dict]) -> None:
    """N trials, each once and completed; nothing running or waiting; the interrupted trials
    run again with their own parameters (and told failed, as runs that never ended)."""
    from optuna.trial import TrialState

    found = results(sweep_dir)
    assert len(found) == TRIALS
    assert sorted(row["trial"] for row in found) == [f"trial-{i:03d}" for i in range(TRIALS)]
    assert {row["status"] for row in found} == {"completed"}
    trials = journal(sweep_dir)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    by_number = {t.number: t for t in trials}
    reruns = {t.user_attrs["rerun_of"]: t for t in trials if "rerun_of" in t.user_attrs}
    assert set(reruns) == set(interrupted)
    for number, params in interrupted.items():
        assert by_number[number].state == TrialState.FAIL
        assert reruns[number].params == params and reruns[number].state == TrialState.COMPLETE
        index = reruns[number].user_attrs["mlp_trial"]
        assert index == by_number[number].user_attrs["mlp_trial"]
        row = next(r for r in found if r["trial"] == f"trial-{index:03d}")
        assert float(row["optim.lr"]) == params["optim.lr"]
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(completed) == TRIALS
    assert len({t.user_attrs["mlp_trial"] for t in completed}) == TRIALS


def test_kill_9_then_resume_ends_with_n_trials_none_running(tmp_path):
    process = start(tmp_path, *SEARCH, text=CONFIG)
    workers: list[int] = []
    try:
        wait_for(lambda: checkpointed(tmp_path), process)
        workers = children(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the sweep and its workers, mid-trial
        process.communicate()
    # A killed worker still holds its trial's lock until it has ended.
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=15)
    sweep_dir = tmp_path / "s"
    interrupted = running(sweep_dir)
    assert interrupted  # at least trial-000 was mid-run
    resumed = subprocess.run(
        [str(MLP), "sweep", str(sweep_dir / "sweep.yaml"), "--resume", str(sweep_dir), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    check_resumed(sweep_dir, interrupted)


def test_ctrl_c_then_the_printed_command_completes_the_search(tmp_path):
    process = start(tmp_path, *SEARCH, text=CONFIG)
    wait_for(lambda: checkpointed(tmp_path), process)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the whole job
    code, stderr = finish(process)
    assert code == 130 and "Traceback" not in stderr, stderr
    sweep_dir = tmp_path / "s"
    interrupted = running(sweep_dir)
    assert interrupted
    command = resume_hint(stderr)
    assert command[:2] == ["mlp", "sweep"]
    resumed = subprocess.run([str(MLP), *command[1:]], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    check_resumed(sweep_dir, interrupted)

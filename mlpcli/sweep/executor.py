"""Running trials: one after another in this process, or in a pool of local worker processes.

An executor takes trial tasks and yields their results as they finish. The grid and results code
only see that interface, so a distributed engine can be plugged in later as another executor.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .grid import Trial


@dataclass
class TrialTask:
    trial: Trial
    config: dict[str, Any]  # the trial's resolved config
    run_dir: Path  # its run folder: new, or one to resume


@dataclass
class TrialResult:
    trial: Trial
    status: str  # completed | failed | stopped
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


class Executor(Protocol):
    def run(self, tasks: list[TrialTask]) -> Iterator[TrialResult]:
        """Yield one result per task, in the order they finish."""
        ...


# Datasets already loaded in this process, by data section and seed (sweep points share them).
# Bounded, so that a grid over data settings does not hold every variant in memory.
_datasets: dict[str, Any] = {}
MAX_CACHED_DATASETS = 4


def run_trial(task: TrialTask) -> TrialResult:
    """Train one trial into its run folder; a user error or a divergence is a failed trial."""
    from ..api import train
    from ..config import build_config
    from ..data import load_dataset
    from ..data.sources import data_seed
    from ..errors import MlpError

    started = time.perf_counter()
    result = TrialResult(task.trial, "failed", task.run_dir)
    try:
        config = build_config(task.config)
        key = json.dumps([config.data.model_dump(mode="json"), data_seed(config), config.task])
        if key not in _datasets:
            if len(_datasets) >= MAX_CACHED_DATASETS:
                _datasets.pop(next(iter(_datasets)))
            _datasets[key] = load_dataset(config)
        resume = task.run_dir if (task.run_dir / "config.yaml").exists() else None
        trained = train(
            config,
            out=task.run_dir.parent,
            name=task.run_dir.name,
            resume=resume,
            quiet=True,
            dataset=_datasets[key],
        )
        result.status, result.summary = "completed", trained.summary
    except KeyboardInterrupt:
        result.status, result.error = "stopped", "interrupted"
    except MlpError as exc:
        result.error = str(exc)
    except Exception as exc:  # a trial's crash must not end the sweep
        result.error = f"{exc.__class__.__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    if not result.summary and (task.run_dir / "summary.json").exists():
        result.summary = json.loads((task.run_dir / "summary.json").read_text())
    return result


class InlineExecutor:
    """Trials one after another in this process (one worker; also what tests use)."""

    def run(self, tasks: list[TrialTask]) -> Iterator[TrialResult]:
        _datasets.clear()  # files may have changed since an earlier sweep in this process
        for task in tasks:
            yield run_trial(task)


def _start_worker(threads: int) -> None:
    """Worker start-up: share the cores instead of every worker spinning on all of them, and
    take SIGTERM (which `mlp sweep` passes on when it gets one) as an interrupt, so that a
    running trial saves its checkpoint and is marked stopped.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


class LocalExecutor:
    """A pool of worker processes on this machine, each with its share of the CPU threads."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)

    def run(self, tasks: list[TrialTask]) -> Iterator[TrialResult]:
        import multiprocessing

        # spawn, not fork: a forked copy of a process holding thread pools can deadlock.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_start_worker, initargs=(self.threads,)
        )
        futures: dict[Future[TrialResult], TrialTask] = {}
        try:
            futures = {pool.submit(run_trial, task): task for task in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield _result_of(future, futures[future])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _result_of(future: Future[TrialResult], task: TrialTask) -> TrialResult:
    """The trial's result, or a failed one when its worker process died."""
    try:
        return future.result()
    except Exception as exc:
        return TrialResult(
            task.trial,
            "failed",
            task.run_dir,
            error=f"the worker process failed ({exc.__class__.__name__}: {exc})",
        )


def make_executor(workers: int) -> Executor:
    return InlineExecutor() if workers <= 1 else LocalExecutor(workers)

"""Running trials: one after another in this process, or in a pool of local worker processes.

An executor takes trial tasks, reports their progress and yields their results as they finish.
The grid and results code only see that interface; ray_executor.py runs trials on a Ray cluster
behind it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import signal
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...callbacks import Callback
from ..grid import Trial


@dataclass
class TrialTask:
    trial: Trial
    config: dict[str, Any]  # the trial's resolved config
    run_dir: Path  # its run folder: new, or one to resume
    # A search's trial reports every epoch's values, and at the epochs in `ask_at` waits for
    # the driver's verdict: words to stop with (it was pruned), or none to go on. A re-run of a
    # trial pruned before the sweep was killed stops at `stop_at` with `stop_reason`, unasked.
    report_epochs: bool = False
    ask_at: frozenset[int] = frozenset()
    stop_at: int | None = None
    stop_reason: str = ""
    # With train.mlflow, the trial's nested MLflow run, made by the sweep process (empty: the
    # sweep could not reach MLflow); None without.
    mlflow: dict[str, str] | None = None


@dataclass
class TrialProgress:
    """A running trial's last finished epoch (0 when it starts) and its task; for a search's
    trial also that epoch's validation values and whether it waits for a verdict."""

    trial: Trial
    epoch: int
    epochs: int
    task: str
    values: dict[str, float] = field(default_factory=dict)
    asks: bool = False


@dataclass
class TrialResult:
    trial: Trial
    status: str  # completed | pruned | failed | stopped
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    interrupt: str = ""  # the signal that stopped it, for a stopped trial
    extra: dict[str, Any] = field(default_factory=dict)  # a search's results.csv columns


# Called with each progress event; for an event that asks, what it returns is the verdict:
# words to stop the trial with, or None to let it go on.
Progress = Callable[[TrialProgress], "str | None"]
Answer = Callable[[TrialTask, int], "str | None"]  # a worker's wait for the verdict at an epoch


class Executor(Protocol):
    def run(
        self,
        tasks: Iterable[TrialTask],
        progress: Progress | None = None,
        window: int | None = None,
    ) -> Generator[TrialResult, None, None]:
        """Yield one result per task, in the order they finish, calling `progress` as trials
        start and end epochs. On an interrupt (KeyboardInterrupt here, or a trial stopped by a
        signal) no further trial starts: the running ones save and are yielded as stopped, then
        KeyboardInterrupt is raised.

        With a `window`, at most that many trials run at once and the next task is taken from
        `tasks` only once a result has been yielded and the caller has come back for more: a
        search's driver makes each task from the results it has seen. Without one, every task
        is taken at once (a grid)."""
        ...


# Datasets already loaded in this process, by data section and seed (sweep points share them).
# Bounded, so that a grid over data settings does not hold every variant in memory.
_datasets: dict[str, Any] = {}
MAX_CACHED_DATASETS = 4


class _ProgressFailed(BaseException):
    """An error of the sweep's own progress callback (a search's journal that cannot be
    written, say), carried through the trial's training, which saves the run as failed, to end
    the sweep with it rather than to fail one trial."""


class _Reporter(Callback):
    """Passes a trial's start and its latest epoch on to the executor, a few times a second at
    most (small epochs end by the thousand); a search's trial every epoch, with its values,
    stopping where the driver's verdict (or its task's `stop_at`) says so."""

    EVERY = 0.5  # seconds

    def __init__(self, task: TrialTask, send: Progress, answer: Answer | None = None) -> None:
        self.task, self.send, self.answer, self.last = task, send, answer, 0.0

    def on_train_start(self, trainer: Any) -> None:
        if self.task.report_epochs and trainer.history:
            # Resumed from a checkpoint: its epoch's report may have been lost with the sweep
            # that stopped, and a verdict due there would be skipped.
            self.on_epoch_end(trainer, trainer.history[-1])
        else:
            self._report(trainer, trainer.epoch)

    def on_epoch_end(self, trainer: Any, record: dict[str, float]) -> None:
        epoch, task = int(record["epoch"]), self.task
        if task.report_epochs or time.monotonic() - self.last >= self.EVERY:
            values = {k: float(v) for k, v in record.items() if k.startswith(("val_", "train_"))}
            asks = epoch in task.ask_at
            reply = self._report(trainer, epoch, values, asks)
            # A worker process waits for the verdict; in the sweep's own process it is the reply.
            verdict = self.answer(task, epoch) if asks and self.answer else reply
            if asks and isinstance(verdict, str) and verdict:
                trainer.stop(verdict)
        if task.stop_at is not None and epoch >= task.stop_at:
            trainer.stop(task.stop_reason)

    def _report(
        self, trainer: Any, epoch: int, values: dict[str, float] | None = None, asks: bool = False
    ) -> Any:
        self.last = time.monotonic()
        event = TrialProgress(
            self.task.trial, epoch, trainer.config.train.epochs, trainer.task, values or {}, asks
        )
        try:
            return self.send(event)
        except Exception as exc:
            raise _ProgressFailed(exc) from exc


def dataset_key(config: Any) -> str:
    """What makes two trials' data sets the same: their data section, data seed and task."""
    from ...data.sources import data_seed

    return json.dumps([config.data.model_dump(mode="json"), data_seed(config), config.task])


def run_trial(
    task: TrialTask,
    progress: Progress | None = None,
    *,
    dataset: Any = None,
    callbacks: Sequence[Callback] = (),
    answer: Answer | None = None,
) -> TrialResult:
    """Train one trial into its run folder; a user error or a divergence is a failed trial.

    `dataset` is the trial's data set when the caller has loaded it already (an executor that
    loads each data set once for many processes); else it is loaded here, or taken from this
    process's cache. `callbacks` are added to the trial's own (a stop flag to poll, say).
    `answer` waits for the driver's verdict where the task asks for one; without it, the
    verdict is what `progress` returns. A trial stopped by a verdict is `pruned`: it ends at
    that epoch as a completed run does, model, metrics and checkpoint saved.
    """
    from ...config.schema import build_config
    from ...data import load_dataset
    from ...errors import MlpError
    from ...runs.atomic import write_text_atomic
    from ...runs.folder import CONFIG_FILE, SUMMARY_FILE, read_json
    from ...training.baselines.kernel_run import fit_kernel_run
    from ...training.run import train

    started = time.perf_counter()
    result = TrialResult(task.trial, "failed", task.run_dir)
    try:
        config = build_config(task.config)
        key = dataset_key(config)
        if dataset is None and key not in _datasets:
            if len(_datasets) >= MAX_CACHED_DATASETS:
                _datasets.pop(next(iter(_datasets)))
            _datasets[key] = load_dataset(config)
        data = dataset if dataset is not None else _datasets[key]
        if task.trial.baseline == "kernel":  # fitted, not trained: no epochs to report
            result.summary = fit_kernel_run(config, task.run_dir, data)
            result.status = "completed"
        else:
            if task.run_dir.is_dir() and not (task.run_dir / CONFIG_FILE).exists():
                # Stopped between making the folder and its first write: start it in place.
                write_text_atomic(task.run_dir / CONFIG_FILE, config.to_yaml())
            trained = train(
                config,
                out=task.run_dir.parent,
                name=task.run_dir.name,
                resume=task.run_dir if task.run_dir.is_dir() else None,
                quiet=True,
                callbacks=[*([_Reporter(task, progress, answer)] if progress else []), *callbacks],
                dataset=data,
                mlflow_run=task.mlflow,
            )
            result.summary = trained.summary
            result.status = "pruned" if trained.summary.get("stopped_by") else "completed"
    except _ProgressFailed as failed:
        raise failed.args[0] from None
    except KeyboardInterrupt as exc:
        result.status, result.interrupt = "stopped", str(exc.args[0]) if exc.args else "SIGINT"
        result.error = f"interrupted by {result.interrupt}"
    except MlpError as exc:
        result.error = str(exc)
    except Exception as exc:  # a trial's crash must not end the sweep
        result.error = f"{exc.__class__.__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    if not result.summary and (task.run_dir / SUMMARY_FILE).exists():
        with contextlib.suppress(MlpError):  # read as every run file is: no links
            result.summary = read_json(task.run_dir / SUMMARY_FILE)
    return result


def _interrupted(result: TrialResult) -> KeyboardInterrupt:
    return KeyboardInterrupt(result.interrupt)


class InlineExecutor:
    """Trials one after another in this process (one worker; also what tests use)."""

    def run(
        self,
        tasks: Iterable[TrialTask],
        progress: Progress | None = None,
        window: int | None = None,
    ) -> Generator[TrialResult, None, None]:
        _datasets.clear()  # files may have changed since an earlier sweep in this process
        for task in tasks:
            result = run_trial(task, progress)
            yield result
            if result.status == "stopped":
                raise _interrupted(result)


# ------------------------------------------------------------ the worker side of the pool

# Set in each worker by _start_worker: the pool's stop flag (once set, no worker starts a trial),
# its progress queue, its verdict queues (one per slot), the sweep process's pid, and whether a
# trial is running here now.
_stop: Any = None
_progress: Any = None
_answers: Any = None
_parent = 0
_busy = False
_signalled = False

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _start_worker(threads: int, stop: Any, progress: Any, answers: Any, parent: int) -> None:
    """Worker start-up: die with the sweep process, take Ctrl-C and SIGTERM as an interrupt of
    the running trial only (an idle worker has nothing to save, and its traceback would be
    noise), and share the cores instead of every worker spinning on all of them.
    """
    global _stop, _progress, _answers, _parent
    _stop, _progress, _answers, _parent = stop, progress, answers, parent
    # Progress not yet read when the sweep stops is of no use; never wait on it to exit.
    progress.cancel_join_thread()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the sweep died before the death signal was armed
        os._exit(1)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held since the spawn
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def _on_signal(signum: int, frame: Any) -> None:
    global _signalled
    if os.getppid() != _parent and not _busy:
        os._exit(1)  # the sweep process is gone and this worker has nothing to save
    if _busy and not _signalled:
        _signalled = True  # a second signal must not cut short the first one's save
        raise KeyboardInterrupt(signal.Signals(signum).name)


def _worker_trial(task: TrialTask, slot: int | None = None) -> TrialResult | None:
    """Run one trial in a worker, unless the sweep is stopping or gone (then None). `slot` is
    the verdict queue the driver answers this trial's asks on."""
    global _busy, _signalled
    result = None
    _busy, _signalled = True, False
    answer = None if slot is None else functools.partial(_wait_verdict, _answers[slot])
    try:
        if not _stop.is_set() and os.getppid() == _parent:
            result = run_trial(task, _progress.put, answer=answer)
    except KeyboardInterrupt:
        pass  # the signal came just before or after the trial: nothing of it to save
    finally:
        _busy = False
    if _signalled or (result is not None and result.status == "stopped"):
        _stop.set()  # the other workers take no new trial either
    if os.getppid() != _parent:
        os._exit(1)  # no one is left to take the result
    return result


def _wait_verdict(answers: Any, task: TrialTask, epoch: int) -> str | None:
    """The driver's verdict on this trial at this epoch. While waiting, a stopping or vanished
    sweep interrupts the trial as a signal would, so that it saves as stopped."""
    while True:
        try:
            index, at, words = answers.get(timeout=0.05)
        except queue.Empty:
            if _stop.is_set() or os.getppid() != _parent:
                raise KeyboardInterrupt("the sweep stopping") from None
            continue
        if (index, at) == (task.trial.index, epoch):  # not a late answer to a stopped trial
            return words or None


# ------------------------------------------------------------ the pool

WORKER_MEMORY = 512 * 2**20  # bytes: a worker with torch imported and a small data set
STOP_SECONDS = 10.0  # how long running trials get to save after an interrupt


def worker_count(
    requested: int | None,
    trials: int,
    cores: int | None = None,
    memory: int | None = None,
    what: str = "--workers",
) -> tuple[int, str]:
    """Workers to start: what was asked (default: one per core), at most one per core and per
    WORKER_MEMORY of available memory, and never more than there are trials. The note says why
    when fewer than asked are started."""
    cores = cores or os.cpu_count() or 1
    if memory is None:
        from ...resources.memory import available_memory

        memory = available_memory()[0]
    by_memory = max(1, memory // WORKER_MEMORY) if memory else cores
    limit = min(cores, by_memory)
    count = max(1, min(requested or limit, limit, trials))
    note = ""
    if requested and count < min(requested, trials):
        reason = (
            f"one per CPU core ({cores})"
            if limit == cores
            else f"as {memory / 2**30:.1f} GiB of available memory holds {by_memory} at about "
            f"{WORKER_MEMORY / 2**30:.1f} GiB each"
        )
        note = f"{what} {requested}: using {count} worker processes, {reason}"
    return count, note


class LocalExecutor:
    """A pool of worker processes on this machine, each with its share of the CPU threads."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)

    def run(
        self,
        tasks: Iterable[TrialTask],
        progress: Progress | None = None,
        window: int | None = None,
    ) -> Generator[TrialResult, None, None]:
        import multiprocessing

        # spawn, not fork: a forked copy of a process holding thread pools can deadlock.
        context = multiprocessing.get_context("spawn")
        stop, reports = context.Event(), context.Queue()
        # One verdict queue per trial running at once: a search's trials wait on theirs.
        answers = [context.Queue() for _ in range(window or 0)]
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.threads, stop, reports, answers, os.getpid()),
        )
        futures: dict[Future[TrialResult | None], TrialTask] = {}
        slots: dict[int, int] = {}  # trial index -> its verdict queue
        processes: list[Any] = []
        finished = False
        todo = iter(tasks)
        pending: set[Future[TrialResult | None]] = set()

        def submit() -> None:  # as many tasks as the window has room for
            for task in pull(todo, lambda: len(pending), window):
                slot = None
                if window:
                    slot = min(set(range(window)) - set(slots.values()))
                    slots[task.trial.index] = slot
                with _signals_held():  # workers are started here
                    future = pool.submit(_worker_trial, task, slot)
                futures[future] = task
                pending.add(future)
                processes[:] = list(getattr(pool, "_processes", {}).values())

        try:
            submit()
            every = poll_seconds(window)
            while pending:
                done, pending = wait(pending, timeout=every, return_when=FIRST_COMPLETED)
                _drain(reports, progress, answers, slots)
                for future in done:
                    slots.pop(futures[future].trial.index, None)
                    result = _result_of(future, futures[future])
                    if result is None:
                        continue
                    yield result
                    if result.status == "stopped":
                        raise _interrupted(result)
                if done:
                    submit()
            finished = True
        except KeyboardInterrupt:
            # Start nothing more; give the running trials a moment to save, and report them.
            _cancel(pool, futures, stop)
            running = [f for f in futures if not f.done()]
            wait(running, timeout=STOP_SECONDS)
            # The epochs the trials finished meanwhile: a search records them, so that a
            # resumed trial is not asked again about them. The sweep stops either way.
            with contextlib.suppress(Exception):
                _drain(reports, progress)
            for future in running:
                result = _result_of(future, futures[future]) if future.done() else None
                if result is not None:
                    yield result
            raise
        finally:
            _cancel(pool, futures, stop)
            _end_workers(processes, [f for f in futures if not f.done()], hurry=not finished)


def pull(
    tasks: Iterator[TrialTask], running: Callable[[], int], window: int | None
) -> Iterator[TrialTask]:
    """The next tasks while fewer than `window` trials run (every task without a window)."""
    while window is None or running() < window:
        task = next(tasks, None)
        if task is None:
            return
        yield task


def poll_seconds(window: int | None) -> float:
    """How often the driver looks for progress and results: a search's trials wait for
    verdicts between epochs, so it answers them promptly; a grid's only report them."""
    return 0.25 if window is None else 0.02


def _cancel(pool: ProcessPoolExecutor, futures: Iterable[Future[Any]], stop: Any) -> None:
    """Start no further trial. Futures are cancelled here rather than by the pool's own thread,
    which would leave them pending to wait(), never done."""
    stop.set()
    for future in futures:
        future.cancel()
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while workers start: a new process inherits the held set,
    so one signalled before its handlers are in place gets the signal only once they are (and
    never dies half-started, which would break the pool). Here, they arrive on leaving."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _drain(
    reports: Any,
    progress: Progress | None,
    answers: Sequence[Any] = (),
    slots: dict[int, int] | None = None,
) -> None:
    """Pass the workers' progress on; a trial that asks gets the verdict on its slot's queue."""
    while True:
        try:
            event = reports.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        verdict = progress(event) if progress is not None else None
        if event.asks and slots and event.trial.index in slots:
            answers[slots[event.trial.index]].put((event.trial.index, event.epoch, verdict or ""))


def _end_workers(processes: list[Any], running: list[Future[Any]], hurry: bool) -> None:
    """Let the workers exit once their trials are saved. After an interrupt, a worker whose
    trial is saved (or that had none) is killed rather than left to wind torch down, and one
    whose trial did not stop within STOP_SECONDS is ended too."""
    if running:
        wait(running, timeout=STOP_SECONDS)
    if hurry:
        for process in processes:
            process.kill()
    for process in processes:
        process.join(STOP_SECONDS)


def _result_of(future: Future[TrialResult | None], task: TrialTask) -> TrialResult | None:
    """The trial's result; None for one never started; a failed one when its worker died."""
    if future.cancelled():
        return None
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


def ray_options_of(executor: str, workers: int | None, **ray: Any) -> Any:
    """The RayOptions the command line asks for (None for local workers); an error for an
    unknown executor, or for options of one executor given to the other. `ray` holds the Ray
    options by their RayOptions names, None where not given."""
    from ...config.registry import EXECUTORS, unknown
    from ...errors import ConfigError
    from .ray_connect import RayOptions

    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: {unknown('executor', executor, EXECUTORS)}")
    given = {key: value for key, value in ray.items() if value is not None and value is not False}
    if executor == "local":
        if given:
            flags = ", ".join("--" + key.replace("_", "-") for key in given)
            raise ConfigError(f"{flags}: only with --executor ray (the trials run locally now)")
        return None
    if workers is not None:
        raise ConfigError(
            "--workers: only with --executor local; on Ray the cluster's CPUs and "
            "--cpus-per-trial decide how many trials run at once"
        )
    return RayOptions(**given)

"""Trials as Ray tasks (`mlp sweep --executor ray`), behind the same interface as local workers.

The driver loads each distinct data set once and puts it in Ray's object store. Each trial is a
plain Ray task: by default it trains in a temporary folder on its worker and returns the run
folder's files, which the driver writes under the sweep folder, so the nodes need no shared
filesystem. A small actor carries progress to the driver and the driver's stop request to the
trials, which poll it between epochs and save as they do on Ctrl-C. Ray is imported only here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import tempfile
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

from ...callbacks import Callback
from ...errors import ConfigError, first_line
from .local import (
    STOP_SECONDS,
    STOP_SIGNALS,
    Progress,
    TrialProgress,
    TrialResult,
    TrialTask,
    poll_seconds,
    pull,
    run_trial,
)
from .ray_connect import RayOptions, connect

Files = dict[str, bytes]  # a run folder's files by their path inside it


class RayExecutor:
    """Runs each trial as a Ray task on the cluster this process is connected to."""

    def __init__(self, options: RayOptions, ray: Any) -> None:
        self.options, self.ray = options, ray
        self.workers = trial_slots(ray, options)  # trials the cluster runs at once

    def run(
        self,
        tasks: Iterable[TrialTask],
        progress: Progress | None = None,
        window: int | None = None,
    ) -> Generator[TrialResult, None, None]:
        with signal_names() as received:
            yield from self._run(tasks, progress, received, window)

    def _run(
        self,
        tasks: Iterable[TrialTask],
        progress: Progress | None,
        received: list[str],
        window: int | None = None,
    ) -> Generator[TrialResult, None, None]:
        ray, options = self.ray, self.options
        control = ray.remote(num_cpus=0)(Control).remote()
        trial = ray.remote(ray_trial).options(
            num_cpus=options.cpus_per_trial,
            num_gpus=options.gpus_per_trial,
            max_retries=options.retries,  # a dead worker or node; never a failed trial
            retry_exceptions=False,
        )
        refs: dict[Any, TrialTask] = {}
        collected: set[Any] = set()
        todo = iter(tasks)
        pending: list[Any] = []
        datasets: dict[str, Any] = {}

        def submit() -> None:  # as many tasks as the window has room for
            for task in pull(todo, lambda: len(pending), window):
                dataset = _dataset_ref(ray, task, datasets)
                files = None if options.shared_dir else read_run_files(task.run_dir)
                args = (task, dataset, files, control, options.cpus_per_trial, options.shared_dir)
                ref = trial.remote(*args)
                refs[ref] = task
                pending.append(ref)

        try:
            submit()
            every = poll_seconds(window)
            while pending:
                done, pending[:] = ray.wait(pending, num_returns=1, timeout=every)
                _drain(ray, control, progress)
                for ref in done:
                    collected.add(ref)
                    result = self._result(ref, refs[ref])
                    if result is not None:
                        yield result
                        if result.status == "stopped":
                            raise KeyboardInterrupt(result.interrupt)
                if done:
                    submit()
        except KeyboardInterrupt as exc:
            # Raised while Ray waits, it comes back from Ray without the signal's name.
            named = str(exc.args[0]) if exc.args else None
            reason = named or (received[-1] if received else "SIGINT")
            yield from self._stop(control, refs, collected, reason)
            if named:
                raise
            raise KeyboardInterrupt(reason) from None
        except (GeneratorExit, Exception):
            # Closed by the sweep on an error of its own (an interrupt is thrown in instead),
            # or an error here (its progress callback's): the running trials still save and
            # their files are written; nothing is yielded.
            for _ in self._stop(control, refs, collected, "the sweep closing"):
                pass
            raise
        finally:
            with contextlib.suppress(Exception):
                ray.kill(control)
            ray.shutdown()

    def _stop(
        self, control: Any, refs: dict[Any, TrialTask], collected: set[Any], reason: str
    ) -> Generator[TrialResult, None, None]:
        """Start no further trial; give the running ones STOP_SECONDS to save, and yield them."""
        ray = self.ray
        try:
            started = set(ray.get(control.stop.remote(reason), timeout=STOP_SECONDS))
        except ray.exceptions.RayError:  # no answer from the control actor: assume all run
            started = {task.trial.index for task in refs.values()}
        running = []
        for ref, task in refs.items():
            if ref in collected:
                continue
            if task.trial.index in started:
                running.append(ref)
            else:  # still queued: it would only start to find the stop
                ray.cancel(ref)
        if not running:
            return
        done, late = ray.wait(running, num_returns=len(running), timeout=STOP_SECONDS)
        for ref in late:  # did not save in time: ended, as local workers are
            ray.cancel(ref, force=True)
        for ref in done:
            result = self._result(ref, refs[ref])
            if result is not None:
                yield result

    def _result(self, ref: Any, task: TrialTask) -> TrialResult | None:
        """The trial's result with its files written here; None for one that never started; a
        failed result when its worker died more often than it may be retried."""
        ray = self.ray
        try:
            returned = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return None
        except ray.exceptions.RayError as exc:
            first = first_line(str(exc), 200)
            retries = self.options.retries
            return TrialResult(
                task.trial,
                "failed",
                task.run_dir,
                error=f"its Ray worker failed, after {retries} retries "
                f"({exc.__class__.__name__}: {first})",
            )
        if returned is None:
            return None
        result, files = returned
        if files is not None:
            write_run_files(task.run_dir, files)
        result.run_dir = task.run_dir
        return result


@contextlib.contextmanager
def signal_names() -> Iterator[list[str]]:
    """The names of the stop signals (Ctrl-C, SIGTERM) this process receives meanwhile, in the
    order they come; each is then handled as it was before."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # handlers can only be set from the main thread
        return
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def note(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        handler = before[signal.Signals(signum)]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:  # what the signal does by default: end the process
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    kept = {s: h for s, h in before.items() if h is not None}  # None: a handler set from C
    for number in kept:
        signal.signal(number, note)
    try:
        yield received
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)


def make_ray_executor(options: RayOptions) -> RayExecutor:
    """Connect to the cluster (or start Ray on this machine) and check it can run a trial."""
    ray = connect(options)
    try:
        return RayExecutor(options, ray)
    except BaseException:  # no node can run a trial: disconnect (and end our own instance)
        ray.shutdown()
        raise


def trial_slots(ray: Any, options: RayOptions) -> int:
    """How many trials the cluster's live nodes run at once; an error when no node can run one."""
    slots, most_cpus, most_gpus = 0, 0.0, 0.0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        most_cpus, most_gpus = max(most_cpus, cpus), max(most_gpus, gpus)
        fits = int(cpus // options.cpus_per_trial)
        if options.gpus_per_trial:
            fits = min(fits, int(gpus // options.gpus_per_trial))
        slots += fits
    if slots == 0:
        raise ConfigError(
            f"--cpus-per-trial {options.cpus_per_trial} --gpus-per-trial "
            f"{options.gpus_per_trial:g}: no node of the Ray cluster has that much (the largest "
            f"has {most_cpus:g} CPUs and {most_gpus:g} GPUs)"
        )
    return slots


def _dataset_ref(ray: Any, task: TrialTask, refs: dict[str, Any]) -> Any:
    """The trial's data set in the object store, loaded once per distinct data section; None
    when it cannot be loaded here (the trial then loads it and fails as it would locally)."""
    from ...config.schema import build_config
    from ...data import load_dataset
    from ...errors import MlpError
    from .local import dataset_key

    try:
        config = build_config(task.config)
        key = dataset_key(config)
        if key not in refs:
            refs[key] = ray.put(load_dataset(config))
    except MlpError:
        return None
    return refs[key]


def _drain(ray: Any, control: Any, progress: Progress | None) -> None:
    """Pass the trials' progress on; a trial that asks gets the verdict through the actor."""
    for event in ray.get(control.drain.remote()):
        verdict = progress(event) if progress is not None else None
        if event.asks:
            control.answer.remote(event.trial.index, event.epoch, verdict or "")


# ------------------------------------------------------------ in the cluster


class Control:
    """One per sweep, in the cluster: trials send it their progress and ask it whether to stop.
    Its methods run one at a time, so a trial either starts before the stop or never."""

    def __init__(self) -> None:
        self.reports: list[TrialProgress] = []
        self.reason: str | None = None
        self.started: set[int] = set()
        self.verdicts: dict[tuple[int, int], str] = {}  # (trial, epoch) -> words, "" go on

    def begin(self, index: int) -> bool:
        if self.reason is None:
            self.started.add(index)
        return self.reason is None

    def report(self, event: TrialProgress) -> None:
        self.reports.append(event)

    def drain(self) -> list[TrialProgress]:
        reports, self.reports = self.reports, []
        return reports

    def stop(self, reason: str) -> list[int]:
        """Stop every trial; the trials that have started (they save and return)."""
        self.reason = reason
        return sorted(self.started)

    def stopping(self) -> str | None:
        return self.reason

    def answer(self, index: int, epoch: int, words: str) -> None:
        self.verdicts[(index, epoch)] = words

    def answered(self, index: int, epoch: int) -> tuple[str | None, str | None]:
        """(the verdict on the trial at the epoch, None while there is none yet; the reason
        the sweep is stopping, if it is). A verdict is handed out once: a retried trial that
        asks again is answered again by the driver, which keeps them all."""
        return self.verdicts.pop((index, epoch), None), self.reason


class VerdictWait:
    """A trial's wait for the driver's verdict at an epoch where it asks; a stopping sweep
    interrupts it as StopWhenAsked does."""

    def __init__(self, control: Any) -> None:
        self.control = control

    def __call__(self, task: TrialTask, epoch: int) -> str | None:
        import ray

        pause = 0.002
        while True:
            words, stopping = ray.get(self.control.answered.remote(task.trial.index, epoch))
            if stopping is not None:
                raise KeyboardInterrupt(stopping)
            if words is not None:
                return words or None
            time.sleep(pause)  # the driver answers within its next few polls
            pause = min(2 * pause, 0.05)


class StopWhenAsked(Callback):
    """Raises KeyboardInterrupt in the trial once the driver asks to stop, as Ctrl-C would: the
    trial saves its checkpoint and returns as stopped. Asks a few times a second at most."""

    EVERY = 0.2  # seconds

    def __init__(self, control: Any) -> None:
        self.control, self.last = control, 0.0

    def on_train_start(self, trainer: Any) -> None:
        self._check()

    def on_epoch_end(self, trainer: Any, record: dict[str, float]) -> None:
        if time.monotonic() - self.last >= self.EVERY:
            self._check()

    def _check(self) -> None:
        import ray

        self.last = time.monotonic()
        reason = ray.get(self.control.stopping.remote())
        if reason is not None:
            raise KeyboardInterrupt(reason)


def ray_trial(
    task: TrialTask, dataset: Any, files: Files | None, control: Any, threads: int, shared: bool
) -> tuple[TrialResult, Files | None] | None:
    """One trial in a Ray worker: its result and, unless the sweep folder is shared, its run
    folder's files; None when the sweep was stopped before it started."""
    import ray

    if not ray.get(control.begin.remote(task.trial.index)):
        return None
    _use_threads(threads)
    report, stop, answer = control.report.remote, [StopWhenAsked(control)], VerdictWait(control)
    if shared:  # in place: a retried trial resumes from the checkpoint its last try saved
        return run_trial(task, report, dataset=dataset, callbacks=stop, answer=answer), None
    with tempfile.TemporaryDirectory(prefix="mlp-trial-") as tmp:
        run_dir = Path(tmp) / task.run_dir.name
        if files:  # a stopped trial, resumed from its checkpoint
            write_run_files(run_dir, files)
        here = dataclasses.replace(task, run_dir=run_dir)
        result = run_trial(here, report, dataset=dataset, callbacks=stop, answer=answer)
        return result, read_run_files(run_dir)


def _use_threads(threads: int) -> None:
    """The trial's share of the node: as many torch threads as CPUs reserved for it."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # a reused worker has set it already
        torch.set_num_interop_threads(1)


# ------------------------------------------------------------ a run folder's files


def _carried() -> list[str]:
    """The run folder's files a trial carries between a worker and the sweep folder: all but
    its lock, parents before their contents, summary.json last (it says the run completed)."""
    from ...runs.folder import LOCK_FILE, RUN_LAYOUT, SUMMARY_FILE

    names = [n for n, kind in RUN_LAYOUT.items() if kind == "file" and n != LOCK_FILE]
    return sorted(names, key=lambda n: n == SUMMARY_FILE)


def _logs(run_dir: Path) -> list[str]:
    """The TensorBoard event files of a run folder (their names are TensorBoard's own)."""
    from ...runs.folder import TENSORBOARD_FOLDER

    folder = run_dir / TENSORBOARD_FOLDER
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [f"{TENSORBOARD_FOLDER}/{p.name}" for p in sorted(folder.iterdir()) if p.is_file()]


def _allowed(name: str) -> bool:
    """A name a trial may carry: one of the run folder's own files, or an event file directly
    inside its TensorBoard folder."""
    from ...runs.folder import TENSORBOARD_FOLDER

    folder, _, base = name.partition("/")
    in_logs = folder == TENSORBOARD_FOLDER and base not in ("", ".", "..") and "/" not in base
    return name in _carried() or in_logs


def read_run_files(run_dir: Path) -> Files | None:
    """A run folder's own files (never through a link); None when there is no folder."""
    from ...runs.atomic import open_own

    if not run_dir.is_dir():
        return None
    files = {}
    for name in [*_carried(), *_logs(run_dir)]:
        if (run_dir / name).exists():
            with open_own(run_dir / name) as handle:
                files[name] = handle.read()
    return files


def write_run_files(run_dir: Path, files: Files) -> None:
    """Write a trial's files into its run folder, each atomically; only the names a run folder
    holds, so what a worker returns cannot write elsewhere."""
    from ...runs.atomic import atomic_write, make_folder

    make_folder(run_dir)
    # summary.json last: it says the run completed.
    names = [n for n in files if _allowed(n) and n not in _carried()] + _carried()
    for name in names:
        if name in files:
            make_folder((run_dir / name).parent)
            data = files[name]
            atomic_write(run_dir / name, lambda handle, data=data: handle.write(data))  # type: ignore[misc]

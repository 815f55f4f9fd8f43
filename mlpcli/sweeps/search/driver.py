"""The search's driver: Optuna's ask and tell, in the sweep process, around the executors.

A trial is asked for only when the executor has room for it (a search runs with a `window`),
so the sampler has seen every result that came back before; each epoch's validation value is
reported as the trial runs, and at the pruner's epochs the trial waits for the verdict the
pruner gives here. The study lives in the sweep folder as Optuna's journal file: each report
and verdict is appended and synced before the trial goes on, so a killed sweep loses nothing it
decided, and `--resume` re-runs the trials it was running (with their parameters) to the total.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...config.registry import MAXIMISED_METRICS, SEARCHES
from ...config.schema import Config
from ...errors import ConfigError, WriteError
from ...runs.folder import SEARCH_JOURNAL, SUMMARY_FILE, completed_run, read_json
from ..executors.local import TrialProgress, TrialResult, TrialTask
from ..grid import Trial
from ..plan import point_config, sweep_base
from .pruning import ask_epochs, make_pruner, reason
from .space import Dim, override_words

STUDY = "search"
MLP_TRIAL = "mlp_trial"  # the user attribute holding a trial's index in the sweep folder
PRUNED_AT, PRUNE_REASON, RERUN_OF = "pruned_at", "prune_reason", "rerun_of"
TPE_STARTUP = 10  # random trials before TPE models the results (Optuna's default)


def import_optuna(kind: str) -> Any:
    """Optuna, quiet; a one-line error naming the extra when it is not installed."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            f"sweep.search {kind}: Optuna is not installed; install it with pip install "
            f'"mlpcli[search]"'
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Arguments marked experimental in some versions (multivariate TPE, constant liar).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def objective_of(metric: str) -> tuple[str, bool]:
    """What a search ranks trials by, the validation main metric (what a grid's best point
    is chosen by), and whether larger is better."""
    return f"val_{metric}", metric in MAXIMISED_METRICS


def open_study(optuna: Any, sweep_dir: Path, maximise: bool, prune: str) -> Any:
    """The sweep folder's study, new or as a killed or stopped sweep left it."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = sweep_dir / SEARCH_JOURNAL
    # A lock file (Optuna's name for it) left by a killed sweep would stall this one; the
    # sweep folder's own lock already makes this process the only one working here.
    with contextlib.suppress(FileNotFoundError):
        (sweep_dir / f"{SEARCH_JOURNAL}.lock").unlink()
    lock = JournalFileOpenLock(str(path))
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    return optuna.create_study(
        storage=storage,
        study_name=STUDY,
        direction="maximize" if maximise else "minimize",
        pruner=make_pruner(optuna, prune),
        load_if_exists=True,
    )


def make_sampler(optuna: Any, kind: str, seed: int) -> Any:
    """The sampler for one ask. Every argument is given: defaults changed between versions."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(
            n_startup_trials=TPE_STARTUP, multivariate=True, constant_liar=True, seed=seed
        )
    return optuna.samplers.RandomSampler(seed=seed)


def trial_seed(seed: int, index: int) -> int:
    """The sampler's seed for the sweep's trial `index`: its proposal depends on the sweep's
    seed, the index and the results so far, never on how often the sweep was resumed."""
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def latest_trials(study: Any) -> dict[int, Any]:
    """Each sweep trial's last Optuna trial, by its index: a re-run after the run it replaces."""
    latest = {}
    for frozen in study.get_trials(deepcopy=False):  # in the order they were made
        index = frozen.user_attrs.get(MLP_TRIAL)
        if index is not None:
            latest[index] = frozen
    return latest


class Search:
    """One pass of a search over its remaining trials, in the sweep process."""

    def __init__(
        self,
        optuna: Any,
        study: Any,
        config: Config,
        dims: dict[str, Dim],
        sweep_dir: Path,
        metric: str,
    ) -> None:
        self.optuna, self.study, self.config, self.dims = optuna, study, config, dims
        self.sweep_dir, self.metric = sweep_dir, metric
        self.objective, self.maximise = objective_of(metric)
        self.kind, self.prune = config.sweep.search, config.sweep.prune
        self.total = config.sweep.trials or 0
        self.base = sweep_base(config)
        self.live: dict[int, Any] = {}  # sweep trial index -> Optuna's running trial
        self.verdicts: dict[tuple[int, int], str | None] = {}  # asked once, answered alike
        self.trials: list[Trial] = []  # every trial of the sweep so far, in index order
        self.refused: Callable[[TrialResult], None] = lambda result: None  # set by the runner
        self.replay: dict[int, dict[int, float]] = {}  # a re-run's values from its first run
        self.decided: dict[int, int] = {}  # index -> the last epoch its first run reported
        self.reported: set[tuple[int, int]] = set()  # (index, epoch) reported to Optuna
        with self._journal():
            self.used = self._reconcile()

    # ------------------------------------------------------------ resuming

    def _reconcile(self) -> set[int]:
        """Bring the journal to a state with no running trial, as a grid's resume does with
        its folders: a trial whose run completed (or was pruned) is kept, and told if the
        sweep died before telling it; any other (running when the sweep died, stopped,
        failed) is queued to run again with its parameters, under its index, in its folder
        (resuming its checkpoint). Returns the indices used so far."""
        state = self.optuna.trial.TrialState
        numbers = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        for frozen in numbers.values():
            if MLP_TRIAL not in frozen.user_attrs and frozen.state == state.RUNNING:
                # Killed inside ask, before it was named: it never ran.
                self.study.tell(frozen.number, state=state.FAIL, skip_if_finished=True)
        latest = latest_trials(self.study)
        for index, frozen in latest.items():
            if frozen.state == state.WAITING:  # queued by an earlier resume, not asked yet
                self.replay[index] = dict(numbers[frozen.user_attrs[RERUN_OF]].intermediate_values)
                continue
            run_dir = self.sweep_dir / "trials" / f"trial-{index:03d}"
            if completed_run(run_dir):
                if frozen.state == state.RUNNING:  # its run ended, the sweep died before the tell
                    self._tell_done(frozen.number, run_dir)
                continue
            kept = {k: v for k, v in frozen.user_attrs.items() if k in (PRUNED_AT, PRUNE_REASON)}
            attrs = {MLP_TRIAL: index, RERUN_OF: frozen.number, **kept}
            self.study.enqueue_trial(frozen.params, user_attrs=attrs)
            self.replay[index] = dict(frozen.intermediate_values)
            self.study.tell(frozen.number, state=state.FAIL, skip_if_finished=True)
        return set(latest)

    def _tell_done(self, number: int, run_dir: Path) -> None:
        state = self.optuna.trial.TrialState
        summary = read_json(run_dir / SUMMARY_FILE)
        value = self.value(summary)
        if summary.get("stopped_by"):
            self.study.tell(number, state=state.PRUNED, skip_if_finished=True)
        elif isinstance(value, float) and math.isfinite(value):
            self.study.tell(number, value, skip_if_finished=True)
        else:
            self.study.tell(number, state=state.FAIL, skip_if_finished=True)

    def known_trials(self) -> list[Trial]:
        """The trials of earlier runs of the sweep that are kept (their runs completed or were
        pruned), with their settings from the journal, for the runner to read as finished."""
        state = self.optuna.trial.TrialState
        return [
            self._trial(index, frozen.params)
            for index, frozen in sorted(latest_trials(self.study).items())
            if frozen.state not in (state.WAITING, state.RUNNING)
        ]

    def note_finished(self, trial: Trial) -> None:
        self.trials.append(trial)

    # ------------------------------------------------------------ asking

    def tasks(self) -> Iterator[TrialTask]:
        """One task per trial still to run, each asked for only when the executor pulls it."""
        with self._journal():
            yield from self._tasks()

    def _tasks(self) -> Iterator[TrialTask]:
        state = self.optuna.trial.TrialState
        while True:
            waiting = self.study.get_trials(deepcopy=False, states=(state.WAITING,))
            fresh = len(self.used) < self.total
            if not waiting and not fresh:
                return
            index = waiting[0].user_attrs[MLP_TRIAL] if waiting else self._next_index()
            task = self._ask(index)
            if task is not None:
                yield task

    def _next_index(self) -> int:
        return next(i for i in itertools.count() if i not in self.used)  # the lowest unused

    def _ask(self, index: int) -> TrialTask | None:
        self.study.sampler = make_sampler(
            self.optuna, self.kind, trial_seed(self.config.seed, index)
        )
        trial = self.study.ask({k: dim.distribution() for k, dim in self.dims.items()})
        attrs = trial.user_attrs
        index = attrs.get(MLP_TRIAL, index)
        if MLP_TRIAL not in attrs:
            trial.set_user_attr(MLP_TRIAL, index)
        self.used.add(index)
        made = self._trial(index, trial.params)
        self.trials.append(made)
        run_dir = self.sweep_dir / "trials" / made.name
        try:
            raw = point_config(self.base, made.settings, made.seed, made.name, made.label())
        except ConfigError as exc:  # a combination the schema refuses: a failed trial
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            self.refused(TrialResult(made, "failed", run_dir, error=str(exc)))
            return None
        self.live[index] = trial
        replay = self.replay.pop(index, {})
        for epoch, value in sorted(replay.items()):
            trial.report(value, epoch)  # the first run's epochs, which the re-run resumes after
        self.decided[index] = max(replay, default=0)
        pruned = attrs.get(PRUNED_AT)
        return TrialTask(
            made,
            raw,
            run_dir,
            report_epochs=True,
            ask_at=frozenset() if pruned else ask_epochs(self.prune, raw["train"]["epochs"]),
            stop_at=pruned,
            stop_reason=attrs.get(PRUNE_REASON, ""),
        )

    def _trial(self, index: int, params: dict[str, Any]) -> Trial:
        settings = {k: dim.value(params[k]) for k, dim in self.dims.items() if k in params}
        return Trial(index, index, settings, self.config.seed)

    # ------------------------------------------------------------ reports and results

    def on_progress(self, event: TrialProgress) -> str | None:
        """Report the epoch's value; where the trial asks, the verdict (words to stop with)."""
        trial = self.live.get(event.trial.index)
        value = event.values.get(self.objective)
        if trial is None or value is None:
            return None
        key = (event.trial.index, event.epoch)
        if key in self.verdicts:  # asked again (a retried worker): the same answer
            return self.verdicts[key]
        if key in self.reported or event.epoch <= self.decided.get(event.trial.index, 0):
            # Reported already (a retried worker), or by the first run of a re-run trial,
            # which was let go on there (else it would stop at its pruned_at): never twice.
            return None
        self.reported.add(key)
        with self._journal():
            trial.report(value, event.epoch)
            return self._verdict(trial, event) if event.asks else None

    def _verdict(self, trial: Any, event: TrialProgress) -> str | None:
        key = (event.trial.index, event.epoch)
        verdict = None
        if trial.should_prune():
            verdict = reason(
                self.optuna,
                self.study,
                trial,
                self.prune,
                event.epoch,
                self.objective,
                self.maximise,
            )
            trial.set_user_attr(PRUNED_AT, event.epoch)
            trial.set_user_attr(PRUNE_REASON, verdict)
        self.verdicts[key] = verdict
        return verdict

    def on_result(self, result: TrialResult) -> None:
        """Tell Optuna how the trial ended; a trial stopped by a signal stays running, to be
        run again by --resume."""
        trial = self.live.pop(result.trial.index, None)
        if trial is None or result.status == "stopped":
            return
        with self._journal():
            self._tell(trial, result)

    def _tell(self, trial: Any, result: TrialResult) -> None:
        summary = result.summary
        state = self.optuna.trial.TrialState
        value = self.value(summary)
        if result.status == "completed" and value is not None and math.isfinite(value):
            self.study.tell(trial, value)
        elif result.status in ("pruned", "failed") and summary.get("epochs_run"):
            # A diverged trial's epochs tell the sampler where not to look, as a pruned one's.
            self.study.tell(trial, state=state.PRUNED)
        else:
            self.study.tell(trial, state=state.FAIL)

    @contextlib.contextmanager
    def _journal(self) -> Iterator[None]:
        """The study's writes: a journal that cannot be written stops the sweep with an error
        naming it, as a run folder that cannot be written does."""
        try:
            yield
        except OSError as exc:
            raise WriteError(
                f"{self.sweep_dir / SEARCH_JOURNAL}: the search's journal cannot be written "
                f"({exc.strerror or exc}); once it can, continue with --resume {self.sweep_dir}"
            ) from None

    def value(self, summary: dict[str, Any]) -> Any:
        """A run's objective as its summary.json records it (the kept epoch's); None if absent."""
        return summary.get("metrics", {}).get("val", {}).get(self.metric)

    def columns(self, result: TrialResult) -> dict[str, Any]:
        """A trial's results.csv columns only a search has: the epochs it ran, where and why
        it was pruned, and its settings as `mlp train` arguments."""
        summary = result.summary
        pruned = result.status == "pruned"
        return {
            "epochs": summary.get("epochs_run"),
            "pruned_at": summary.get("epochs_run") if pruned else None,
            "reason": summary.get("stopped_by", "") if pruned else "",
            "overrides": override_words(result.trial.settings),
        }

    def summary(self) -> dict[str, Any]:
        """summary.json's `search` section."""
        return {
            "kind": self.kind,
            "trials": self.total,
            "prune": self.prune,
            "space": dict(self.config.sweep.space),
            "seed": self.config.seed,
            "objective": self.objective,
            "direction": "maximize" if self.maximise else "minimize",
            "sampler": SEARCHES[self.kind].sampler,
        }

"""`mlp sweep`: expand the plan, validate every trial, run them, and gather the results."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.registry import EXECUTORS, main_metric, resolve, shown, source_task
from ..config.schema import (
    UNRESULTED,
    Config,
    as_config,
    build_config,
    check_run_name,
    differences,
    load_config,
)
from ..console import err
from ..errors import ConfigError, Interrupted, MlpError, RunError, first_line
from ..runs.atomic import write_text_atomic
from ..runs.folder import (
    SUMMARY_FILE,
    SWEEP_FILE,
    check_sweep_folder,
    completed_run,
    create_run_dir,
    read_json,
    run_lock,
    write_json,
)
from ..runs.mlflow_log import SweepTracking
from .budget import merge_budget
from .executors.local import Executor, TrialProgress, TrialResult, TrialTask, worker_count
from .grid import Trial, hidden_axis, parse_values
from .plan import plan_trials, point_config, sweep_base
from .results import best_point, point_stats, trial_row, write_results_csv
from .search.driver import Search, import_optuna, objective_of, open_study
from .search.report import draw_search, search_summary
from .search.space import Dim, check_space, parse_space
from .view import SweepView

if TYPE_CHECKING:
    from .executors.ray_connect import RayOptions


@dataclass
class SweepResult:
    sweep_dir: Path
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was not drawn, and why
    report: Path | None = None  # the page written with train.report

    @property
    def failed(self) -> int:
        return self.summary["failed"]


def with_plan(
    config: Config,
    hidden: list[int] | None = None,
    depth: list[int] | None = None,
    grid: Sequence[str] = (),
    seeds: int | None = None,
    source: str = "the config",
    params: list[int] | None = None,
    *,
    search: str | None = None,
    trials: int | None = None,
    prune: str | None = None,
    space: Sequence[str] = (),
) -> Config:
    """The config with command-line sweep options merged into its sweep section.

    A --grid key replaces that key's list in the file's sweep.grid; --hidden and --depth each
    replace one dimension of the hidden layers and keep the other from the file; --params
    (or the file's sweep.params) makes --depth the depths compared at that parameter budget.
    Flags that would silently drop what another source asks for are refused instead. --search,
    --trials and --prune replace the file's; a --space key replaces that key's spec.
    """
    sweep = config.sweep.model_copy(deep=True)
    specs: dict[str, str] = {}
    for item in space:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ConfigError(
                f"--space {shown(item)}: expected KEY=SPEC, e.g. optim.lr=log(1e-4,1e-1)"
            )
        if key in specs:
            raise ConfigError(f"--space {key} is given twice; give each key once")
        specs[key] = text.strip()
    sweep.space.update(specs)
    given: dict[str, list[Any]] = {}
    for item in grid:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--grid {shown(item)}: expected KEY=V1,V2,..., e.g. optim.lr=1e-3,1e-2"
            )
        if key in given:
            raise ConfigError(
                f"--grid {key} is given twice; put all its values in one --grid {key}=V1,V2,..."
            )
        if key in sweep.zip:
            raise ConfigError(
                f"--grid {key}: {key} is also in sweep.zip of {source}, where its values are "
                f"paired with other keys; change it there, or remove it there to use --grid"
            )
        given[key] = parse_values(text, f"--grid {key}")
    sweep.grid.update(given)
    if params is not None or sweep.params is not None:
        merge_budget(sweep, config.model.hidden, params, hidden, depth, given, source)
    elif hidden or depth:
        flags = " and ".join(n for n, v in (("--hidden", hidden), ("--depth", depth)) if v)
        if "model.hidden" in given:
            raise ConfigError(
                f"{flags} and --grid model.hidden both set the hidden layers; give them in one "
                f"place, e.g. --grid model.hidden=[16],[16,16] or --hidden 16 --depth 1,2"
            )
        if "model.hidden" in sweep.zip:
            raise ConfigError(
                f"{flags}: model.hidden is in sweep.zip of {source}, where its values are paired "
                f"with other keys; change the layers there, or remove them there to use {flags}"
            )
        base = sweep.grid.get("model.hidden") or [config.model.hidden]
        sweep.grid["model.hidden"] = hidden_axis(
            hidden, depth, base, f"sweep.grid model.hidden of {source}"
        )
    raw = config.to_dict()
    raw["sweep"] = sweep.model_dump(mode="json")
    named = (("seeds", seeds), ("search", search), ("trials", trials), ("prune", prune))
    for name, value in named:
        if value is not None:  # checked with the rest of the section, by build_config
            raw["sweep"][name] = value
    return build_config(raw)


def check_trial_data(trials: list[Trial], configs: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Read and check each distinct data section once, and every trial's loss and early-stopping
    monitor against the task its data makes, before a folder is made or a worker started: a
    missing file or a bad column is one error (exit 2), not every trial failing with it.
    Returns each distinct data section's task and whether it has validation rows."""
    from ..config.schema import loss_name
    from ..resources.kernel_memory import check_kernel_memory
    from ..training.plan import check_monitor, plan_table

    tasks: dict[str, tuple[str, bool]] = {}  # data section -> (task, has validation rows)
    sizes: dict[str, tuple[int, int]] = {}  # data section -> (training rows, most other rows)
    for trial, raw in zip(trials, configs):
        config = build_config(raw, source=f"sweep point {trial.label()}")
        key = json.dumps(raw["data"], sort_keys=True)
        try:
            if key not in tasks:
                plan = plan_table(config, what="mlp sweep")
                tasks[key] = (plan.dataset.task, len(plan.dataset.val) > 0)
                data = plan.dataset
                sizes[key] = (len(data.train), max(len(data.val), len(data.test)))
            task, has_val = tasks[key]
            loss_name(config, task)
            check_monitor(config, task, has_val)
            if trial.baseline == "kernel":  # refused now, not as a trial failing with it
                check_kernel_memory(*sizes[key])
        except ConfigError as exc:
            raise ConfigError(f"sweep point {trial.label()}: {exc}") from None
    return list(tasks.values())


def check_search(config: Config) -> tuple[dict[str, Dim], str]:
    """A search's space and data, checked before anything is made: its dims, and the main
    metric of its task (the objective is that metric on the validation rows)."""
    kind = config.sweep.search
    if config.train.baseline:
        raise ConfigError(
            f"train.baseline (--baseline): a search has no baseline point; run the baseline "
            f"with mlp train --baseline, or sweep a grid (sweep.search {kind} is set)"
        )
    dims = parse_space(config.sweep.space)
    check_space(config, dims)
    base = Trial(0, 0, {}, config.seed)
    raw = point_config(sweep_base(config), {}, config.seed, base.name, base.label())
    ((task, has_val),) = check_trial_data([base], [raw])
    if not has_val:
        raise ConfigError(
            f"sweep.search {kind}: a search ranks its trials by val_{main_metric(task)}, so it "
            f"needs validation rows; set data.val_split (0.2, say) or data.val_path"
        )
    return dims, main_metric(task)


def run_sweep(
    config: str | Path | Config,
    overrides: Sequence[str] = (),
    *,
    hidden: list[int] | None = None,
    depth: list[int] | None = None,
    params: list[int] | None = None,
    grid: Sequence[str] = (),
    seeds: int | None = None,
    search: str | None = None,
    trials: int | None = None,
    prune: str | None = None,
    space: Sequence[str] = (),
    workers: int | None = None,
    out: str | Path = "runs",
    name: str | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    executor: Executor | None = None,
    ray: RayOptions | None = None,
    command: str | None = None,
    source: str | None = None,
) -> SweepResult:
    """Run every trial of a sweep into one sweep folder and write its results and plots.

    The trials run in `executor` when one is given, else on a Ray cluster with `ray` options,
    else in local worker processes (`workers`, default one per core). A search (`search`
    random or tpe, or the config's sweep.search) asks Optuna for `trials` points of `space`
    one at a time, pruning hopeless ones by `prune`. `command`, the command line that started
    the sweep, is recorded in its summary.json. `source` names a Config's file in messages.
    """
    started = time.perf_counter()
    if name is not None:
        check_run_name(name, "--name")  # before any work is done
    if source is None:
        source = "the config" if isinstance(config, Config) else str(config)
    config = as_config(config, list(overrides))
    config = with_plan(
        config,
        hidden,
        depth,
        grid,
        seeds,
        source,
        params,
        search=search,
        trials=trials,
        prune=prune,
        space=space,
    )
    searching = config.sweep.search != "grid"
    if searching:
        dims, metric = check_search(config)
        optuna = import_optuna(config.sweep.search)  # only once all else is checked
        planned: list[Trial] = []
        configs: list[dict[str, Any]] = []
    else:
        planned, configs = plan_trials(config)
        check_trial_data(planned, configs)
    ray = ray if executor is None else None  # the trials run where `executor` runs them
    if ray is not None:  # connected before any folder is made
        executor = resolve(EXECUTORS["ray"].path)(ray)
    if resume is not None:
        sweep_dir = Path(resume)
        if not (sweep_dir / SWEEP_FILE).is_file():
            raise RunError(f"--resume {sweep_dir}: not a sweep folder (no {SWEEP_FILE})")
        check_sweep_folder(sweep_dir)  # a shared folder may hold links planted to redirect writes
    else:
        sweep_dir = create_run_dir(
            Path(out), name or f"{config.name or 'sweep'}-sweep", explicit=name is not None
        )
    # One process at a time works in a sweep folder; a second --resume is refused.
    with run_lock(sweep_dir):
        if resume is None or _check_resume(sweep_dir, config):
            write_text_atomic(sweep_dir / SWEEP_FILE, config.to_yaml())
        tasks: list[TrialTask] = []
        finished: list[TrialResult] = []
        driver = None
        if searching:  # its tasks are asked for one at a time, as the executor has room
            study = open_study(optuna, sweep_dir, objective_of(metric)[1], config.sweep.prune)
            driver = Search(optuna, study, config, dims, sweep_dir, metric)
            finished = _searched(driver, sweep_dir)
            to_run = (config.sweep.trials or 0) - len(finished)
        else:
            for trial, trial_config in zip(planned, configs):
                run_dir = sweep_dir / "trials" / trial.name
                done = _finished(trial, run_dir)
                if done:
                    finished.append(done)
                else:
                    tasks.append(TrialTask(trial, trial_config, run_dir))
            to_run = len(tasks)
        if executor is None:
            what = "--workers" if workers else "sweep.workers"
            wanted = workers or config.sweep.workers
            count, note = worker_count(wanted, max(1, to_run), what=what)
            if note:
                err.print(note, markup=False, soft_wrap=True)
            executor = resolve(EXECUTORS["local"].path)(count)
        else:  # trials it runs at once, when it knows
            count = getattr(executor, "workers", None) or worker_count(None, max(1, to_run))[0]
        hint = resume_command(sweep_dir, workers=workers, ray=ray, quiet=quiet)
        # The experiment and the sweep's run exist before any worker starts.
        tracking = (
            SweepTracking.open(sweep_dir, config, ray is not None) if config.train.mlflow else None
        )
        ended = {r.trial.index: r for r in finished}
        if driver is not None:
            run = _Run(sweep_dir, config, driver.trials, ended, count, hint, driver, command)
            return run.execute(executor, driver.tasks(), quiet, started, count, tracking)
        run = _Run(sweep_dir, config, planned, ended, count, hint, command=command)
        return run.execute(executor, tasks, quiet, started, tracking=tracking)


def _searched(driver: Search, sweep_dir: Path) -> list[TrialResult]:
    """The results of a search's trials kept from earlier runs of the sweep (the driver has
    queued every other one to run again), as their run folders say."""
    found = []
    for trial in driver.known_trials():
        result = _finished(trial, sweep_dir / "trials" / trial.name)
        if result is not None:
            result.extra = driver.columns(result)
            driver.note_finished(trial)
            found.append(result)
    return found


def resume_command(
    sweep_dir: Path, *, workers: int | None, ray: RayOptions | None, quiet: bool
) -> str:
    """The `mlp sweep` command that continues a sweep as it runs now: its plan is in its
    folder, where and how its trials run (workers, Ray and its options) is not."""
    args = ["mlp", "sweep", str(sweep_dir / SWEEP_FILE), "--resume", str(sweep_dir)]
    if workers is not None:
        args += ["--workers", str(workers)]
    if ray is not None:
        args += ray.flags()
    if quiet:
        args.append("-q")
    return shlex.join(args)


@dataclass
class _Run:
    """One pass of a sweep over its trials that have not finished yet."""

    sweep_dir: Path
    config: Config
    trials: list[Trial]
    results: dict[int, TrialResult]
    workers: int
    resume_hint: str  # the command that continues it
    search: Search | None = None  # a search's driver; None for a grid
    command: str | None = None  # the command line that started it, for summary.json

    def execute(
        self,
        executor: Executor,
        tasks: Iterable[TrialTask],
        quiet: bool,
        started: float,
        window: int | None = None,
        tracking: SweepTracking | None = None,
    ) -> SweepResult:
        metric = _main_metric(list(self.results.values())) or known_metric(self.config)
        search = self.search
        total = search.total if search is not None else len(self.trials)
        view = SweepView(self.trials, metric, quiet=quiet, total=total)
        view.start(list(self.results.values()))
        status = "completed"

        def progress(event: TrialProgress) -> str | None:
            view.on_progress(event)
            return search.on_progress(event) if search is not None else None

        if search is not None:  # a point the schema refuses is a failed trial, never run
            search.refused = lambda result: self._record(result, view)
        if tracking is not None:
            tasks = _nested(tasks, tracking)
        stream = executor.run(tasks, progress, window)
        try:
            for result in stream:
                self._record(result, view)
        except KeyboardInterrupt as exc:
            status = "stopped"
            for result in _stopped(stream, exc):
                self._record(result, view)
            raise Interrupted(*exc.args, resume_hint=self.resume_hint) from None
        except Exception:  # the sweep's own error (a journal it cannot write, say)
            status = "failed"
            raise
        finally:
            stream.close()  # an error outside the executor must stop its trials too
            view.stop()
            done = list(self.results.values())
            summary = _write_summary(
                self.sweep_dir,
                self.config,
                self.trials,
                self.results,
                _main_metric(done) or view.metric or "loss",
                status,
                time.perf_counter() - started,
                self.workers,
                search,
                self.command,
            )
            if tracking is not None and status != "completed":  # an error on its way out
                tracking.finish(summary, done)
        # Only once the summary is safe on disk and no error is on its way out.
        if search is not None:
            notes = draw_search(self.sweep_dir, search, list(self.results.values()))
        elif summary["completed"]:
            notes = _draw_boundaries(self.sweep_dir, self.trials)
        else:
            notes = []
        if tracking is not None:  # once its figures are drawn
            tracking.finish(summary, list(self.results.values()))
        return SweepResult(self.sweep_dir, summary, notes)

    def _record(self, result: TrialResult, view: SweepView) -> None:
        if self.search is not None:
            self.search.on_result(result)
            result.extra = self.search.columns(result)
        self.results[result.trial.index] = result
        view.update(result)
        rows = [trial_row(r) for r in self.results.values()]
        write_results_csv(self.sweep_dir / "results.csv", rows)


def _nested(tasks: Iterable[TrialTask], tracking: SweepTracking) -> Iterable[TrialTask]:
    """Each task with its trial's nested MLflow run, made by the sweep process: a grid's all
    before the executor starts, a search's as the executor asks for each task."""

    def nest(task: TrialTask) -> TrialTask:
        return replace(task, mlflow=tracking.nest(task.trial.index, task.run_dir))

    if isinstance(tasks, list):
        return [nest(task) for task in tasks]

    def pulled() -> Iterator[TrialTask]:
        try:
            for task in tasks:
                yield nest(task)
        finally:  # the search's journal closes with its generator
            close = getattr(tasks, "close", None)
            if close is not None:
                close()

    return pulled()


def _stopped(
    stream: Generator[TrialResult, None, None], exc: KeyboardInterrupt
) -> Iterator[TrialResult]:
    """The running trials' results after an interrupt. One that reached the sweep outside the
    executor is passed in, so that its trials stop as they would for one inside it: named by
    the same signal, and reported (an executor that raised it itself has reported them)."""
    try:
        result = stream.throw(exc)
        while True:
            yield result
            result = next(stream)
    except (KeyboardInterrupt, StopIteration):
        return


def known_metric(config: Config) -> str | None:
    """The sweep's main metric when the config alone tells the task (a set task, or a built-in
    data source); None when only the data file can tell."""
    task = source_task(config.data.source) if config.task == "auto" else config.task
    return main_metric(task) if task is not None else None


def _check_resume(sweep_dir: Path, config: Config) -> bool:
    """Refuse a resumed sweep whose plan differs from its folder's; a search may only be
    given more trials. True when its sweep.yaml is to be written again (more trials)."""
    saved = load_config(sweep_dir / SWEEP_FILE).to_dict()
    new = config.to_dict()
    before, after = saved["sweep"].get("trials"), new["sweep"].get("trials")
    grows = before is not None and after is not None and after > before
    for raw in (saved, new):
        raw.pop("name", None)
        raw["sweep"].pop("workers", None)
        for key in UNRESULTED:  # what is written about it, not its results
            section, _, field = key.partition(".")
            raw[section].pop(field, None)
        if grows:
            raw["sweep"].pop("trials")
    differ = differences(saved, new)
    if differ:
        more = " (a search may be given more trials)" if "sweep.trials" in differ else ""
        raise ConfigError(
            f"--resume {sweep_dir}: the sweep differs from its {SWEEP_FILE} at "
            f"{', '.join(differ[:5])}; a resumed sweep keeps its own plan{more}"
        )
    return grows


def _finished(trial: Trial, run_dir: Path) -> TrialResult | None:
    """The result of a trial that already completed in an earlier sweep run, else None."""
    if not completed_run(run_dir):
        return None
    summary = read_json(run_dir / SUMMARY_FILE)
    status = "pruned" if summary.get("stopped_by") else "completed"  # a search's pruned trial
    return TrialResult(trial, status, run_dir, summary, seconds=summary.get("seconds", 0.0))


def _main_metric(results: list[TrialResult]) -> str | None:
    return next((r.summary["main_metric"] for r in results if r.status == "completed"), None)


def _write_summary(
    sweep_dir: Path,
    config: Config,
    trials: list[Trial],
    results: dict[int, TrialResult],
    metric: str,
    status: str,
    seconds: float,
    workers: int,
    search: Search | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    rows = [trial_row(r) for r in results.values()]
    if rows:
        write_results_csv(sweep_dir / "results.csv", rows)
    keys = list(trials[0].settings) if trials else []
    points = point_stats(rows, keys)
    for point in points:
        kind = next((t.baseline for t in trials if t.baseline and t.point == point["point"]), "")
        if kind:
            point["baseline"] = True  # a reference beside the grid, never its best point
            point["model"] = kind  # which baseline: linear, kernel
    failed = [r for r in results.values() if r.status == "failed"]
    if failed and status == "completed":
        status = "failed"
    best = best_point([p for p in points if not p.get("baseline")], metric)
    completed = [r for r in results.values() if r.status == "completed"]
    budget = {"params": config.sweep.params, "depth": config.sweep.depth}
    summary = {
        "name": sweep_dir.name,
        **({"command": command} if command is not None else {}),
        "status": status,
        "main_metric": metric,
        "grid": config.sweep.grid,
        "zip": config.sweep.zip,
        **(budget if config.sweep.params else {}),
        "seeds": config.sweep.seeds,
        "trials": len(trials),
        "completed": len(completed),
        "failed": len(failed),
        "failures": {r.trial.name: r.error for r in failed},
        "best": best,
        "points": points,
        "workers": workers,
        "seconds": round(seconds, 3),
    }
    if search is not None:
        summary.update(search_summary(search, results, best))
    write_json(sweep_dir / "summary.json", summary)
    if completed and search is None:
        _plot(sweep_dir, points, metric)
    return summary


def _draw_boundaries(sweep_dir: Path, trials: list[Trial]) -> list[str]:
    """plots/boundaries.png (only for data with two input features); a figure that cannot be
    drawn is a note, never a failure of the trials that completed."""
    from .boundaries import BOUNDARIES_FILE, sweep_boundaries

    try:
        sweep_boundaries(sweep_dir, trials)
    except Exception as exc:  # whatever stops the figure, the sweep's results stand
        first = first_line(str(exc))  # no traceback, one line
        if not isinstance(exc, MlpError):  # an unexpected error: name its kind too
            first = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return [f"{sweep_dir / BOUNDARIES_FILE} was not drawn: {first}"]
    return []


def _plot(sweep_dir: Path, points: list[dict[str, Any]], metric: str) -> None:
    from ..plots import numeric_settings, sweep_curves, sweep_points

    title = sweep_dir.name
    # The baseline's width is 0, which a log axis cannot show: the curves draw it as a line.
    grid = [p for p in points if not p.get("baseline")]
    baseline = [p for p in points if p.get("baseline")]
    budgets = {p["budget"] for p in grid if "budget" in p}
    if budgets:  # depths compared at equal parameter counts; each budget's own width per depth
        sweep_curves(grid, sweep_dir / "plots" / "vs_depth.png", metric, "depth", title, baseline)
        if len(budgets) > 1:
            path = sweep_dir / "plots" / "vs_params.png"
            sweep_curves(grid, path, metric, "params", title, baseline)
    elif len({p.get("width") for p in grid}) > 1 and all("width" in p for p in grid):
        sweep_curves(grid, sweep_dir / "plots" / "vs_width.png", metric, "width", title, baseline)
        if len({p["depth"] for p in grid}) > 1:
            path = sweep_dir / "plots" / "vs_params.png"
            sweep_curves(grid, path, metric, "params", title, baseline)
    elif numeric := numeric_settings(grid):  # a learning rate, a weight decay: numeric axes
        for key in numeric:
            path = sweep_dir / "plots" / f"vs_{key}.png"
            sweep_curves(grid, path, metric, key, title, baseline)
    else:
        sweep_points(points, sweep_dir / "plots" / "by_point.png", metric, title)

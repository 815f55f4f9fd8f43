"""`mlp sweep`: expand the plan, validate every trial, run them, and gather the results."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..config import Config, as_config, build_config, differences, load_config, set_key
from ..errors import ConfigError, MlpError, RunError
from ..runs import create_run_dir, read_json, write_json
from .executor import Executor, TrialResult, TrialTask, make_executor
from .grid import Trial, expand, hidden_axis, parse_values
from .results import best_point, point_stats, trial_row, write_results_csv
from .view import SweepView

PLAN_FILE = "sweep.yaml"


@dataclass
class SweepResult:
    sweep_dir: Path
    summary: dict[str, Any]

    @property
    def failed(self) -> int:
        return self.summary["failed"]


def with_plan(
    config: Config,
    hidden: list[int] | None = None,
    depth: list[int] | None = None,
    grid: list[str] = (),
    seeds: int | None = None,
) -> Config:  # type: ignore[assignment]
    """The config with command-line sweep options merged into its sweep section."""
    sweep = config.sweep.model_copy(deep=True)
    for item in grid:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--grid '{item}': expected KEY=V1,V2,..., e.g. optim.lr=1e-3,1e-2")
        sweep.grid[key] = parse_values(text, f"--grid {key}")
    if hidden or depth:
        sweep.grid["model.hidden"] = hidden_axis(hidden, depth, config.model.hidden)
    if seeds is not None:
        sweep.seeds = seeds
    raw = config.to_dict()
    raw["sweep"] = sweep.model_dump(mode="json")
    return build_config(raw)


def plan_trials(config: Config) -> tuple[list[Trial], list[dict[str, Any]]]:
    """Every trial and its resolved config, all validated before anything runs."""
    sweep = config.sweep
    trials = expand(sweep.grid, sweep.zip, sweep.seeds, config.seed)
    base = config.to_dict()
    base.pop("sweep")
    if base["data"]["seed"] is None:
        base["data"]["seed"] = config.seed  # seeds vary the training, not the rows
    configs, problems = [], []
    for trial in trials:
        raw = {**copy.deepcopy(base), "seed": trial.seed, "name": trial.name}
        try:
            for key, value in trial.settings.items():
                set_key(raw, key, value, where=f"sweep key '{key}'")
            configs.append(build_config(raw, source=f"sweep point {trial.label()}").to_dict())
        except ConfigError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems[:5]))
    return trials, configs


def run_sweep(
    config: str | Path | Config,
    overrides: list[str] = (),  # type: ignore[assignment]
    *,
    hidden: list[int] | None = None,
    depth: list[int] | None = None,
    grid: list[str] = (),  # type: ignore[assignment]
    seeds: int | None = None,
    workers: int | None = None,
    out: str | Path = "runs",
    name: str | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    executor: Executor | None = None,
) -> SweepResult:
    """Run every trial of a sweep into one sweep folder and write its results and plots."""
    started = time.perf_counter()
    config = with_plan(as_config(config, overrides), hidden, depth, grid, seeds)
    trials, configs = plan_trials(config)
    if resume is not None:
        sweep_dir = Path(resume)
        _check_resume(sweep_dir, config)
    else:
        sweep_dir = create_run_dir(
            Path(out), name or f"{config.name or 'sweep'}-sweep", explicit=name is not None
        )
        write_text_atomic(sweep_dir / PLAN_FILE, config.to_yaml())
    workers = workers or config.sweep.workers or os.cpu_count() or 1
    executor = executor or make_executor(min(workers, len(trials)))

    finished, tasks = [], []
    for trial, trial_config in zip(trials, configs):
        run_dir = sweep_dir / "trials" / trial.name
        done = _finished(trial, run_dir)
        if done:
            finished.append(done)
        else:
            tasks.append(TrialTask(trial, trial_config, run_dir))
    results = {r.trial.index: r for r in finished}
    metric = _main_metric(finished)
    view = SweepView(trials, metric or "loss", quiet=quiet)
    view.start(finished)
    status = "completed"
    try:
        for result in executor.run(tasks):
            results[result.trial.index] = result
            if metric is None and result.status == "completed":
                metric = view.metric = result.summary["main_metric"]
            view.update(result)
            write_results_csv(sweep_dir / "results.csv", [trial_row(r) for r in results.values()])
    except KeyboardInterrupt as exc:
        status = "stopped"
        exc.resume_hint = f"mlp sweep {sweep_dir / PLAN_FILE} --resume {sweep_dir}"  # type: ignore[attr-defined]
        raise
    finally:
        view.stop()
        summary = _write_summary(
            sweep_dir,
            config,
            trials,
            results,
            metric or "loss",
            status,
            time.perf_counter() - started,
            workers,
        )
    return SweepResult(sweep_dir, summary)


def _check_resume(sweep_dir: Path, config: Config) -> None:
    if not (sweep_dir / PLAN_FILE).is_file():
        raise RunError(f"--resume {sweep_dir}: not a sweep folder (no {PLAN_FILE})")
    saved = load_config(sweep_dir / PLAN_FILE).to_dict()
    new = config.to_dict()
    for raw in (saved, new):
        raw.pop("name", None)
        raw["sweep"].pop("workers", None)
    differ = differences(saved, new)
    if differ:
        raise ConfigError(
            f"--resume {sweep_dir}: the sweep differs from its {PLAN_FILE} at "
            f"{', '.join(differ[:5])}; a resumed sweep keeps its own plan"
        )


def _finished(trial: Trial, run_dir: Path) -> TrialResult | None:
    """The result of a trial that already completed in an earlier sweep run, else None."""
    try:
        summary = read_json(run_dir / "summary.json")
    except MlpError:
        return None
    if summary.get("status") != "completed" or not (run_dir / "model.safetensors").exists():
        return None
    return TrialResult(trial, "completed", run_dir, summary, seconds=summary.get("seconds", 0.0))


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
) -> dict[str, Any]:
    rows = [trial_row(r) for r in results.values()]
    if rows:
        write_results_csv(sweep_dir / "results.csv", rows)
    keys = list(trials[0].settings) if trials else []
    points = point_stats(rows, keys)
    failed = [r for r in results.values() if r.status == "failed"]
    if failed and status == "completed":
        status = "failed"
    best = best_point(points, metric)
    completed = [r for r in results.values() if r.status == "completed"]
    summary = {
        "name": sweep_dir.name,
        "status": status,
        "main_metric": metric,
        "grid": config.sweep.grid,
        "zip": config.sweep.zip,
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
    write_json(sweep_dir / "summary.json", summary)
    if completed:
        _plot(sweep_dir, points, metric)
    return summary


def _plot(sweep_dir: Path, points: list[dict[str, Any]], metric: str) -> None:
    from ..plots import sweep_curves, sweep_points

    title = sweep_dir.name
    if len({p.get("width") for p in points}) > 1 and all("width" in p for p in points):
        sweep_curves(points, sweep_dir / "plots" / "vs_width.png", metric, "width", title)
        if len({p["depth"] for p in points}) > 1:
            sweep_curves(points, sweep_dir / "plots" / "vs_params.png", metric, "params", title)
    else:
        sweep_points(points, sweep_dir / "plots" / "by_point.png", metric, title)

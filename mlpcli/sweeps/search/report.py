"""What a finished search adds to its sweep's summary.json, and its three figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ...errors import MlpError, first_line
from ..executors.local import TrialResult
from .driver import Search, latest_trials
from .pruning import rungs

PARALLEL, IMPORTANCE, INTERMEDIATE = (
    Path("plots") / name for name in ("parallel.png", "importance.png", "intermediate.png")
)
MIN_IMPORTANCE_TRIALS = 4  # fANOVA's forest on fewer completed trials says nothing


def search_summary(
    search: Search, results: dict[int, TrialResult], best: dict[str, Any] | None
) -> dict[str, Any]:
    """The search's settings, how many trials were pruned, the epochs run against the epochs
    every trial running to the end would have taken, and the best trial with its overrides."""
    epochs = search.config.train.epochs
    ran = sum(r.summary.get("epochs_run") or 0 for r in results.values())
    # What pruning saved, not early stopping: a pruned trial counts the epochs it was set.
    full = sum(
        r.trial.settings.get("train.epochs", epochs)
        if r.status == "pruned"
        else r.summary.get("epochs_run") or 0
        for r in results.values()
    )
    best_result = results.get(best["point"]) if best else None
    return {
        "trials": search.total,
        "ranking": ranking(search, results),
        "search": search.summary(),
        "pruned": sum(r.status == "pruned" for r in results.values()),
        "epochs": ran,
        "epochs_without_pruning": full,
        "best_trial": best_result.trial.name if best_result else None,
        "overrides": best_result.extra.get("overrides") if best_result else None,
    }


def ranking(search: Search, results: dict[int, TrialResult]) -> list[dict[str, Any]]:
    """Every trial, best first: completed ones by the objective, then pruned ones by the
    value they were stopped at, then failed ones."""
    from ..grid import format_value

    rows = []
    for result in results.values():
        value = search.value(result.summary)
        rows.append(
            {
                "trial": result.trial.name,
                "settings": {k: format_value(v) for k, v in result.trial.settings.items()},
                "status": result.status,
                "epochs": result.extra.get("epochs"),
                search.objective: value if result.status in ("completed", "pruned") else None,
                "reason": result.extra.get("reason") or result.error or "",
            }
        )
    order = {"completed": 0, "pruned": 1}
    sign = -1 if search.maximise else 1

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row[search.objective]
        bad = not isinstance(value, (int, float)) or math.isnan(value)
        return order.get(row["status"], 2), math.inf if bad else sign * value

    return sorted(rows, key=key)


def search_points(search: Search, results: list[TrialResult]) -> list[Any]:
    """Each trial as the figures see it: its settings, how it ended, its value per epoch."""
    from .plots import SearchPoint

    curves = {i: dict(t.intermediate_values) for i, t in latest_trials(search.study).items()}
    points = []
    for result in sorted(results, key=lambda r: r.trial.index):
        if result.status == "stopped":
            continue
        curve = sorted(curves.get(result.trial.index, {}).items())
        value = search.value(result.summary)
        if result.status == "pruned" and curve:
            value = curve[-1][1]
        points.append(
            SearchPoint(
                result.trial.name,
                result.status,
                dict(result.trial.settings),
                value if result.status != "failed" else None,
                curve,
                result.extra.get("pruned_at"),
            )
        )
    return points


def importances(search: Search) -> tuple[dict[str, float], int]:
    """Each searched key's share of the objective's variance over the completed trials
    (fANOVA, seeded by the sweep's seed), and how many trials it used."""
    optuna = search.optuna
    complete = search.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {}, len(complete)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=search.config.seed)
    found = optuna.importance.get_param_importances(search.study, evaluator=evaluator)
    return dict(found), len(complete)


def draw_search(sweep_dir: Path, search: Search, results: list[TrialResult]) -> list[str]:
    """plots/parallel.png, importance.png and intermediate.png; a figure that cannot be drawn
    is a note, never a failure of the trials that ran."""
    from .plots import importance_figure, intermediate_figure, parallel_figure

    notes: list[str] = []
    points = search_points(search, results)
    if not points:
        return notes
    title, objective, maximise = sweep_dir.name, search.objective, search.maximise
    epochs = max((p.curve[-1][0] for p in points if p.curve), default=0)
    shown_rungs = rungs(epochs) if search.prune == "asha" else []
    figures = (
        (
            PARALLEL,
            lambda path: parallel_figure(points, search.dims, objective, maximise, path, title),
        ),
        (
            INTERMEDIATE,
            lambda path: intermediate_figure(
                points, objective, maximise, path, title, rungs=shown_rungs
            ),
        ),
    )
    for name, draw in figures:
        notes += _drawn(sweep_dir, name, draw)
    try:
        found, used = importances(search)
    except Exception as exc:  # the figure is extra; the search's results stand
        found, used = {}, 0
        notes.append(f"{sweep_dir / IMPORTANCE} was not drawn: {_first(exc)}")
    else:
        if not found:
            notes.append(
                f"{sweep_dir / IMPORTANCE} was not drawn: parameter importance needs "
                f"{MIN_IMPORTANCE_TRIALS} completed trials, the search has {used}"
            )
    if found:
        note = f"fANOVA over {used} completed trials"
        notes += _drawn(
            sweep_dir,
            IMPORTANCE,
            lambda path: importance_figure(found, objective, path, title, note=note),
        )
    return notes


def _drawn(sweep_dir: Path, name: Path, draw: Any) -> list[str]:
    try:
        draw(sweep_dir / name)
    except Exception as exc:  # whatever stops the figure, the sweep's results stand
        return [f"{sweep_dir / name} was not drawn: {_first(exc)}"]
    return []


def _first(exc: Exception) -> str:
    first = first_line(str(exc))  # no traceback, one line
    if not isinstance(exc, MlpError):  # an unexpected error: name its kind too
        first = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return first

"""A sweep's plots/boundaries.png: one decision-region panel per grid point, from the first
seed's trial that completed, drawn when the sweep's data has exactly two input features.

Each model is loaded once; the data's points are drawn once for every trial that was trained on
the same rows (a sweep over model or optimiser settings), and the small panels use a coarser grid
than `mlp plot`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ..console import settings_text
from ..errors import ConfigError, DataError
from ..insight.figures import PlotResult
from ..runs.folder import SUMMARY_FILE, SWEEP_FILE, check_sweep_folder, completed_run, read_json
from .grid import Trial
from .plan import plan_trials

if TYPE_CHECKING:
    from ..insight.boundary import BoundaryGrid, Points
    from ..serving.evaluate import Predictor

BOUNDARIES_FILE = Path("plots") / "boundaries.png"
RESOLUTION = 60  # grid points per axis in each (small) panel
MAX_PANELS = 36  # points drawn, the first ones in the plan's order


def first_seeds(sweep_dir: Path, trials: list[Trial]) -> list[tuple[str, Path | None]]:
    """Per point, in point order: its title and the folder of its first completed trial
    (None when none completed)."""
    chosen: dict[int, tuple[str, Path | None]] = {}
    for trial in sorted(trials, key=lambda t: (t.point, t.seed)):
        label = trial.label() if trial.baseline else settings_text(trial.settings)
        chosen.setdefault(trial.point, (label, None))
        run = sweep_dir / "trials" / trial.name
        if chosen[trial.point][1] is None and completed_run(run):
            chosen[trial.point] = (label, run)
    return [chosen[p] for p in sorted(chosen)]


def first_completed(sweep_dir: Path, trials: list[Trial]) -> Path | None:
    """The folder of the first trial, in point order, that completed."""
    return next((run for _, run in first_seeds(sweep_dir, trials) if run is not None), None)


def not_two_features(predictor: Predictor) -> str | None:
    """Why a model's inputs cannot be drawn in one plane (None: exactly two numeric ones)."""
    from ..config.messages import listed
    from ..insight.boundary import numeric_features

    features = predictor.preprocessor.features
    numeric = len(numeric_features(predictor))
    if len(features) == 2 == numeric:
        return None
    return f"its models read {len(features)} input features ({numeric} numeric: {listed(features)})"


def same_rows(a: Predictor, b: Predictor) -> bool:
    """Whether two trials were trained and tested on the same rows: the same data section,
    data seed, task and columns, and the same recorded sha256 of their files and splits."""
    from ..data.fingerprint import recorded_fingerprint
    from ..data.sources import data_seed

    prep_a, prep_b = a.preprocessor, b.preprocessor
    return (
        a.config.data == b.config.data
        and data_seed(a.config) == data_seed(b.config)
        and a.config.task == b.config.task
        and (prep_a.features, prep_a.targets) == (prep_b.features, prep_b.targets)
        and recorded_fingerprint(a.metadata) == recorded_fingerprint(b.metadata)
    )


def sweep_boundaries(sweep_dir: Path, trials: list[Trial]) -> Path | None:
    """Draw plots/boundaries.png when the sweep's models read exactly two numeric features;
    None (nothing drawn) otherwise or when no trial completed."""
    from ..insight.boundary_plots import sweep_boundaries_figure
    from ..serving.evaluate import load

    picks = first_seeds(sweep_dir, trials)
    first = next((run for _, run in picks if run is not None), None)
    if first is None or not_two_features(load(first)) is not None:
        return None
    title = sweep_dir.name
    if len(picks) > MAX_PANELS:
        title += f" (the first {MAX_PANELS} of {len(picks)} points)"
    grids: list[tuple[str, BoundaryGrid | None]] = []
    drawn: list[tuple[Predictor, Points]] = []  # the rows drawn so far, and a model of each
    for label, run in picks[:MAX_PANELS]:
        if run is None:
            grids.append((label, None))  # a panel that says no trial completed
        else:
            grids.append((_with_score(label, run), _panel(run, drawn)))
    return sweep_boundaries_figure(grids, sweep_dir / BOUNDARIES_FILE, title)


def _panel(run: Path, drawn: list[tuple[Predictor, Points]]) -> BoundaryGrid:
    """One trial's grid, on the points already drawn for a trial with the same rows, if any
    (else its own, added to `drawn`)."""
    from ..insight.boundary import boundary_grid
    from ..serving.evaluate import load

    predictor = load(run)
    points = next((p for owner, p in drawn if same_rows(owner, predictor)), None)
    grid = boundary_grid(run, resolution=RESOLUTION, predictor=predictor, points=points)
    if points is None:
        drawn.append((predictor, grid.points))
    return grid


def _with_score(label: str, run: Path) -> str:
    """'hidden=[6]' and, under it, the trial's headline validation metric."""
    summary = read_json(run / SUMMARY_FILE)
    metric = summary.get("main_metric")
    value = summary.get("metrics", {}).get("val", {}).get(metric)
    return f"{label}\nval {metric} {value:.3f}" if isinstance(value, float) else label


def _first_trial(sweep_dir: Path) -> tuple[list[Trial], Path | None]:
    """A sweep folder's trials, from its plan, and its first completed trial's run folder."""
    from ..config.schema import load_config

    check_sweep_folder(sweep_dir)
    trials, _ = plan_trials(load_config(sweep_dir / SWEEP_FILE))
    return trials, first_completed(sweep_dir, trials)


def redraw_sweep_boundaries(sweep_dir: Path) -> Path:
    """plots/boundaries.png of an existing sweep folder, from its plan and finished trials."""
    from ..insight.boundary import numeric_features
    from ..serving.evaluate import load

    trials, first = _first_trial(sweep_dir)
    if first is None:
        raise DataError(f"{sweep_dir}: no trial of this sweep completed; nothing to draw")
    predictor = load(first)
    reason = not_two_features(predictor)
    if reason is not None:
        numeric = numeric_features(predictor)
        pick = f" --features {shlex.quote(','.join(numeric[:2]))}" if len(numeric) > 2 else ""
        instead = f"; plot one trial instead: mlp plot {shlex.quote(str(first))} --boundary{pick}"
        raise DataError(
            f"{sweep_dir}: boundaries.png needs exactly two numeric input features, and {reason}"
            + (instead if len(numeric) >= 2 else "")
        )
    path = sweep_boundaries(sweep_dir, trials)
    assert path is not None
    return path


def plot_sweep(
    sweep_dir: Path,
    *,
    boundary: bool = False,
    detectors: bool = False,
    features: str | None = None,
    neurons: bool = False,
    data: str | Path | None = None,
) -> PlotResult:
    """`mlp plot SWEEP --boundary`: redraw plots/boundaries.png; what applies to one run only
    is refused with the command that draws it for one of the sweep's trials."""
    asked = {
        "--detectors": ["--detectors"] if detectors else [],
        "--features": ["--boundary", "--features", features] if features is not None else [],
        "--neurons": ["--boundary", "--neurons"] if neurons else [],
        "--data": ["--boundary", "--data", str(data)] if data is not None else [],
    }
    for flag, args in asked.items():
        if args:
            _, trial = _first_trial(sweep_dir)
            instead = (
                "no trial of it has completed yet to draw instead"
                if trial is None
                else "draw one of its trials instead: "
                + shlex.join(["mlp", "plot", str(trial), *args])
            )
            raise ConfigError(
                f"{flag}: {sweep_dir} is a sweep folder, where only --boundary applies; {instead}"
            )
    return PlotResult([redraw_sweep_boundaries(sweep_dir)])

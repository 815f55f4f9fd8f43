"""A sweep's plots/boundaries.png: one decision-region panel per grid point, from the first
seed's trial that completed, drawn when the sweep's data has exactly two input features."""

from __future__ import annotations

from pathlib import Path

from ..console import settings_text
from ..errors import DataError
from ..runs import SUMMARY_FILE, check_sweep_folder, completed_run, read_json
from .grid import Trial

BOUNDARIES_FILE = Path("plots") / "boundaries.png"
RESOLUTION = 120  # grid points per axis in each (small) panel
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


def not_two_features(run: Path) -> str | None:
    """Why a model's inputs cannot be drawn in one plane (None: exactly two numeric ones)."""
    from ..boundary import numeric_features
    from ..data.messages import listed
    from ..evaluate import load

    predictor = load(run)
    features = predictor.preprocessor.features
    if len(features) == 2 == len(numeric_features(predictor)):
        return None
    numeric = len(numeric_features(predictor))
    return f"its models read {len(features)} input features ({numeric} numeric: {listed(features)})"


def sweep_boundaries(sweep_dir: Path, trials: list[Trial]) -> Path | None:
    """Draw plots/boundaries.png when the sweep's models read exactly two numeric features;
    None (nothing drawn) otherwise or when no trial completed."""
    from ..boundary import BoundaryGrid, boundary_grid
    from ..insight_plots import sweep_boundaries_figure

    picks = first_seeds(sweep_dir, trials)
    first = next((run for _, run in picks if run is not None), None)
    if first is None or not_two_features(first) is not None:
        return None
    title = sweep_dir.name
    if len(picks) > MAX_PANELS:
        title += f" (the first {MAX_PANELS} of {len(picks)} points)"
    grids: list[tuple[str, BoundaryGrid | None]] = []
    for label, run in picks[:MAX_PANELS]:
        if run is None:
            grids.append((label, None))  # a panel that says no trial completed
        else:
            grids.append((_with_score(label, run), boundary_grid(run, resolution=RESOLUTION)))
    return sweep_boundaries_figure(grids, sweep_dir / BOUNDARIES_FILE, title)


def _with_score(label: str, run: Path) -> str:
    """'hidden=[6]' and, under it, the trial's headline validation metric."""
    summary = read_json(run / SUMMARY_FILE)
    metric = summary.get("main_metric")
    value = summary.get("metrics", {}).get("val", {}).get(metric)
    return f"{label}\nval {metric} {value:.3f}" if isinstance(value, float) else label


def redraw_sweep_boundaries(sweep_dir: Path) -> Path:
    """plots/boundaries.png of an existing sweep folder, from its plan and finished trials."""
    from ..config import load_config
    from .runner import PLAN_FILE, plan_trials

    check_sweep_folder(sweep_dir)
    trials, _ = plan_trials(load_config(sweep_dir / PLAN_FILE))
    first = next((run for _, run in first_seeds(sweep_dir, trials) if run is not None), None)
    if first is None:
        raise DataError(f"{sweep_dir}: no trial of this sweep completed; nothing to draw")
    reason = not_two_features(first)
    if reason is not None:
        raise DataError(
            f"{sweep_dir}: boundaries.png needs exactly two numeric input features, and {reason}; "
            f"plot one trial instead: mlp plot {first} --boundary --features A,B"
        )
    path = sweep_boundaries(sweep_dir, trials)
    assert path is not None
    return path

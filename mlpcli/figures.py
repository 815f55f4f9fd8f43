"""`mlp plot`: the figures asked for, drawn for a run folder, a model file or a sweep folder, and
where they are written (a run's plots/ folder; for a model file, plots/ beside it)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .runs import check_run_folder

if TYPE_CHECKING:
    from .boundary import BoundaryGrid
    from .evaluate import Predictor

BOUNDARY_FILE = Path("plots") / "boundary.png"
DETECTORS_FILE = Path("plots") / "detectors.png"


@dataclass
class PlotResult:
    paths: list[Path]  # the files written
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why


def plot_run(
    target: str | Path,
    *,
    boundary: bool = False,
    detectors: bool = False,
    features: str | None = None,
    neurons: bool = False,
    resolution: int | None = None,
) -> PlotResult:
    """Draw plots/boundary.png (with `neurons`, the first hidden layer's units under it) and/or
    plots/detectors.png for a run; for a sweep folder, redraw its plots/boundaries.png.
    `features` is --features as typed: two input column names joined by a comma."""
    from .boundary import DEFAULT_RESOLUTION, boundary_grid, neuron_maps, parse_features
    from .detectors import check_detectors, detector_weights
    from .evaluate import load, model_path
    from .first_layer import first_hidden_layer
    from .insight_plots import boundary_figure, detectors_figure
    from .sweep.runner import PLAN_FILE

    target = Path(target)
    if target.is_dir() and (target / PLAN_FILE).is_file():
        return _plot_sweep(target, detectors, features, neurons)
    model_path(target)  # a run that did not complete is refused here, with how to resume it
    folder = target if target.is_dir() else target.parent
    check_run_folder(folder)
    predictor = load(target)
    if neurons:
        first_hidden_layer(predictor)  # refused before anything is drawn, like what follows
    if detectors:
        check_detectors(predictor)
    result = PlotResult([])
    title = _title(target, predictor)
    if boundary:
        names = parse_features(features, predictor) if features is not None else None
        grid = boundary_grid(target, names, resolution or DEFAULT_RESOLUTION, predictor)
        result.notes.extend(_boundary_notes(grid))
        maps = neuron_maps(grid) if neurons else None
        if maps is not None and len(maps.units) < maps.total:
            result.notes.append(
                f"--neurons: {maps.total - len(maps.units)} of {maps.total} units are not drawn "
                f"(the least active over the grid)"
            )
        result.paths.append(boundary_figure(grid, folder / BOUNDARY_FILE, title, maps))
    if detectors:
        found = detector_weights(target, predictor=predictor)
        result.notes.extend(found.notes)
        result.paths.append(detectors_figure(found, folder / DETECTORS_FILE, title))
    return result


def _boundary_notes(grid: BoundaryGrid) -> list[str]:
    if grid.train is None:
        return [
            f"the regions are drawn without the data's points: {grid.notes[0]}",
            *grid.notes[1:],
        ]
    return grid.notes


def _plot_sweep(
    sweep_dir: Path, detectors: bool, features: str | None, neurons: bool
) -> PlotResult:
    from .sweep.boundaries import redraw_sweep_boundaries

    asked = {
        "--detectors": ["--detectors"] if detectors else [],
        "--features": ["--boundary", "--features", features] if features is not None else [],
        "--neurons": ["--boundary", "--neurons"] if neurons else [],
    }
    for flag, args in asked.items():
        if args:
            raise ConfigError(
                f"{flag}: {sweep_dir} is a sweep folder, where only --boundary applies; "
                + _one_trial_instead(sweep_dir, args)
            )
    return PlotResult([redraw_sweep_boundaries(sweep_dir)])


def _one_trial_instead(sweep_dir: Path, args: list[str]) -> str:
    """'draw one of its trials instead: mlp plot <its first completed trial> <args>'."""
    from .config import load_config
    from .runs import check_sweep_folder
    from .sweep.boundaries import first_completed
    from .sweep.runner import PLAN_FILE, plan_trials

    check_sweep_folder(sweep_dir)
    trials, _ = plan_trials(load_config(sweep_dir / PLAN_FILE))
    trial = first_completed(sweep_dir, trials)
    if trial is None:
        return "no trial of it has completed yet to draw instead"
    return "draw one of its trials instead: " + shlex.join(["mlp", "plot", str(trial), *args])


def _title(target: Path, predictor: Predictor) -> str:
    """The run's name and network, e.g. 'moons-narrow: binary, hidden [8], relu'."""
    model = predictor.config.model
    name = target.name if target.is_dir() else target.parent.name or target.name
    activation = ", ".join(dict.fromkeys(a["name"] for a in model.activations())) or "linear"
    return f"{name}: {predictor.task}, hidden {model.hidden}, {activation}"

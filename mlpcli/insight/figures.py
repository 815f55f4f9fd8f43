"""`mlp plot`: the figures asked for, drawn for a run folder, a model file or a sweep folder, and
where they are written (a run's plots/ folder; for a model file, plots/ beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..runs.folder import check_run_folder

if TYPE_CHECKING:
    from ..serving.evaluate import Predictor
    from .boundary import BoundaryGrid, NeuronMaps

BOUNDARY_FILE = Path("plots") / "boundary.png"
CURVE_FILE = Path("plots") / "curve.png"  # --boundary for a model with one numeric input
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
    data: str | Path | None = None,
) -> PlotResult:
    """Draw plots/boundary.png (with `neurons`, the first hidden layer's units under it) and/or
    plots/detectors.png for a run (a sweep folder's are sweeps.boundaries.plot_sweep's).
    `features` is --features as typed: two input column names joined by a comma. `data`, a
    labelled file, gives the rows to draw (and to rank the detectors by) instead of the run's."""
    from ..serving.evaluate import labelled_rows, load, model_path, require_network
    from .boundary import (
        DEFAULT_RESOLUTION,
        Points,
        boundary_grid,
        neuron_maps,
        parse_features,
    )
    from .boundary_plots import detectors_figure
    from .detectors import check_detectors, detector_weights
    from .first_layer import first_hidden_layer

    target = Path(target)
    model_path(target)  # a run that did not complete is refused here, with how to resume it
    folder = target if target.is_dir() else target.parent
    check_run_folder(folder)
    predictor = load(target)
    if neurons or detectors:
        require_network(predictor, target, "--neurons" if neurons else "--detectors")
    if neurons:
        first_hidden_layer(predictor)  # refused before anything is drawn, like what follows
    if detectors:
        check_detectors(predictor)
    rows = labelled_rows(data, predictor.preprocessor, "plotting") if data is not None else None
    result = PlotResult([])
    title = _title(target, predictor)
    if boundary:
        names = parse_features(features, predictor) if features is not None else None
        points = None
        if rows is not None:
            given = f"the points (marked as train) are the {len(rows)} rows of {data} (--data)"
            points = Points(rows, None, [given])
        size = resolution or DEFAULT_RESOLUTION
        grid = boundary_grid(target, names, size, predictor=predictor, points=points)
        result.notes.extend(_boundary_notes(grid))
        maps = neuron_maps(grid) if neurons else None
        if maps is not None and len(maps.units) < maps.total:
            result.notes.append(
                f"--neurons: {maps.total - len(maps.units)} of {maps.total} units are not drawn "
                f"(the least active over the grid)"
            )
        result.paths.append(_grid_figure(grid, folder, title, maps))
    if detectors:
        found = detector_weights(target, predictor=predictor, rows=rows)
        result.notes.extend(found.notes)
        result.paths.append(detectors_figure(found, folder / DETECTORS_FILE, title))
    return result


def _grid_figure(grid: BoundaryGrid, folder: Path, title: str, maps: NeuronMaps | None) -> Path:
    """plots/boundary.png over two features, or plots/curve.png along a model's one input."""
    from .boundary_plots import boundary_figure
    from .curve_plots import curve_figure

    if len(grid.features) == 1:
        return curve_figure(grid, folder / CURVE_FILE, title, maps)
    return boundary_figure(grid, folder / BOUNDARY_FILE, title, maps)


def _boundary_notes(grid: BoundaryGrid) -> list[str]:
    if grid.train is None:
        return [
            f"the regions are drawn without the data's points: {grid.notes[0]}; pass the "
            f"labelled rows with --data",
            *grid.notes[1:],
        ]
    return grid.notes


def _title(target: Path, predictor: Predictor) -> str:
    """The run's name and network, e.g. 'moons-narrow: binary, hidden [8], relu'."""
    model = predictor.config.model
    name = target.name if target.is_dir() else target.parent.name or target.name
    activation = ", ".join(dict.fromkeys(a["name"] for a in model.activations())) or "linear"
    return f"{name}: {predictor.task}, hidden {model.hidden}, {activation}"

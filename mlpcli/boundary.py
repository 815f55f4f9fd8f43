"""Decision regions and output surfaces: a grid of raw rows over two input features, scored by
the run's Predictor exactly as `mlp predict` scores a file, and the first hidden layer's units
over the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, DataError
from .evaluate import Predictor, load
from .registry import FILE_SOURCES

DEFAULT_RESOLUTION = 200  # grid points along each axis
MARGIN = 0.1  # of each axis's range, added on both sides of the plotted points
MAX_UNITS = 64  # first-layer units drawn by --neurons and --detectors


@dataclass
class BoundaryGrid:
    """A square grid over two input features, every other feature held fixed, and the model's
    outputs on it. Row i of `frame` is (xs[i % n], ys[i // n]) for n = len(xs)."""

    predictor: Predictor
    features: tuple[str, str]
    xs: np.ndarray  # values of features[0], raw units
    ys: np.ndarray  # values of features[1], raw units
    frame: pd.DataFrame  # the raw rows scored, one column per input feature
    outputs: np.ndarray  # Predictor.outputs(frame): probabilities, or scaled regression values
    held: dict[str, Any]  # the other features' fixed values
    train: pd.DataFrame | None  # the run's training rows, when they could be drawn again
    test: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.predictor.task

    def probabilities(self) -> pd.DataFrame:
        """proba_<label> columns, as `mlp predict --proba` writes them for the grid's rows."""
        return self.predictor.preprocessor.probabilities(self.outputs)

    def values(self) -> np.ndarray:
        """Regression outputs in the targets' own units (rows x targets)."""
        return self.predictor.preprocessor.unscale(self.outputs)

    def surface(self, values: np.ndarray) -> np.ndarray:
        """One value per grid row, shaped (len(ys), len(xs)) for contour and image plots."""
        return np.asarray(values).reshape(len(self.ys), len(self.xs))


def numeric_features(predictor: Predictor) -> list[str]:
    """The model's numeric input columns, in the order it reads them."""
    prep = predictor.preprocessor
    return [c for c in prep.features if c in prep.numeric]


def choose_features(predictor: Predictor, names: list[str] | None) -> tuple[str, str]:
    """The two features to plot: the names given, or the model's first two numeric inputs."""
    numeric = numeric_features(predictor)
    accepted = ", ".join(numeric) or "none"
    if len(numeric) < 2:
        raise DataError(
            f"--boundary: needs two numeric input features; this model has {len(numeric)} "
            f"({accepted})"
        )
    if names is None:
        return numeric[0], numeric[1]
    if len(names) != 2:
        raise ConfigError(f"--features: expected two names, e.g. {numeric[0]},{numeric[1]}")
    if names[0] == names[1]:
        raise ConfigError(f"--features: {names[0]!r} is named twice; accepted: {accepted}")
    for name in names:
        if name in predictor.preprocessor.categorical:
            raise ConfigError(
                f"--features: {name!r} is a categorical column; accepted (numeric): {accepted}"
            )
        if name not in numeric:
            from .registry import unknown

            raise ConfigError(f"--features: {unknown('input column', name, numeric)}")
    return names[0], names[1]


def training_rows(predictor: Predictor, run: str | Path) -> tuple[pd.DataFrame | None, str]:
    """The run's training rows, drawn again through Predictor.split (which checks them against
    the fingerprint the model recorded); or None and why they cannot be."""
    if not Path(run).is_dir() and predictor.config.data.source in FILE_SOURCES:
        # A model file travels alone; the paths in its metadata are not trusted to be opened.
        return None, f"{run}: a model file alone does not say which data file to read"
    try:
        return predictor.split("train"), ""
    except DataError as exc:
        return None, str(exc)


def training_points(
    predictor: Predictor, run: str | Path
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """The run's train and test rows, and notes on what could not be drawn."""
    train, reason = training_rows(predictor, run)
    if train is None:
        return None, None, [reason]
    try:
        test = predictor.split("test")
    except DataError as exc:
        return train, None, [f"the test points are not drawn: {exc}"]
    return train, test, []


def held_values(predictor: Predictor, train: pd.DataFrame | None) -> tuple[dict[str, Any], str]:
    """A fixed value for every input feature: numeric ones at their training mean (raw units),
    categorical ones at their most frequent training value; and how they were chosen."""
    prep = predictor.preprocessor
    if train is not None:
        values: dict[str, Any] = {
            c: float(train[c].astype(np.float64).mean()) for c in prep.numeric
        }
        for col in prep.categorical:
            values[col] = train[col].astype(str).mode().iloc[0]  # ties: the first in sort order
        return values, "their training mean (categories: their most frequent training value)"
    # Without the rows: the mean the scaler recorded (the training mean with data.standardize).
    values = {c: mean for c, (mean, _) in prep.numeric.items()}
    values.update({c: cats[0] for c, cats in prep.categorical.items()})
    return values, "the mean the scaler recorded (categories: their first value)"


def axis_range(
    predictor: Predictor, feature: str, frames: list[pd.DataFrame]
) -> tuple[float, float]:
    """The plotted points' range plus a margin; without points, the recorded mean +- 3 std."""
    if frames:
        values = np.concatenate([f[feature].to_numpy(dtype=np.float64) for f in frames])
        low, high = float(values.min()), float(values.max())
    else:
        mean, std = predictor.preprocessor.numeric[feature]
        low, high = mean - 3 * std, mean + 3 * std
    span = high - low if high > low else max(abs(low), 1.0)
    return low - MARGIN * span, high + MARGIN * span


def boundary_grid(
    run: str | Path,
    features: list[str] | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    predictor: Predictor | None = None,
) -> BoundaryGrid:
    """The grid of raw rows over two features (others held fixed) and the model's outputs on
    it, scored with the run's own Predictor, so they equal `mlp predict --proba` of those rows."""
    predictor = predictor or load(run)
    chosen = choose_features(predictor, features)
    train, test, notes = training_points(predictor, run)
    frames = [f for f in (train, test) if f is not None]
    held, how = held_values(predictor, train)
    xs = np.linspace(*axis_range(predictor, chosen[0], frames), resolution)
    ys = np.linspace(*axis_range(predictor, chosen[1], frames), resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    plotted = {chosen[0]: grid_x.ravel(), chosen[1]: grid_y.ravel()}
    size = grid_x.size
    frame = pd.DataFrame(  # the model's columns in its own order, as a file would hold them
        {
            c: plotted[c] if c in plotted else [held[c]] * size
            for c in predictor.preprocessor.features
        }
    )
    outputs = predictor.outputs(frame, where="the boundary grid")
    others = {c: v for c, v in held.items() if c not in chosen}
    if others:
        notes.append(f"features not plotted are held at {how}")
    return BoundaryGrid(predictor, chosen, xs, ys, frame, outputs, others, train, test, notes)


def first_hidden_layer(predictor: Predictor) -> nn.Sequential:
    """The modules from the input to the first hidden layer's activation (Linear, an optional
    norm, the activation)."""
    if not predictor.config.model.hidden:
        raise ConfigError(
            "model.hidden is [] (a linear model): it has no hidden units to draw; "
            "train with model.hidden=[N] to see them"
        )
    model = predictor.model
    assert isinstance(model, nn.Sequential)  # build_mlp's
    for i, module in enumerate(model):
        if i > 0 and not isinstance(module, (nn.Linear, nn.BatchNorm1d, nn.LayerNorm)):
            return nn.Sequential(*list(model)[: i + 1])
    raise ConfigError("the model has no activation after its first layer")


def hidden_activations(predictor: Predictor, frame: pd.DataFrame, where: str) -> np.ndarray:
    """The first hidden layer's activations (rows x units) for raw rows, in eval mode."""
    layer = first_hidden_layer(predictor)
    x = predictor.preprocessor.transform(frame, where, before="plotting")
    with torch.inference_mode():
        tensor = torch.from_numpy(x).to(predictor.device)
        out = torch.cat([layer(tensor[i : i + 65536]) for i in range(0, len(tensor), 65536)])
    return out.float().cpu().numpy()


def by_activity(activations: np.ndarray) -> np.ndarray:
    """Unit indices, the largest mean |activation| first (ties keep their order)."""
    return np.argsort(-np.abs(activations).mean(axis=0), kind="stable")


@dataclass
class NeuronMaps:
    """First-hidden-layer units over a BoundaryGrid, the most active ones (over the grid) first."""

    units: list[int]  # indices of the units drawn, in drawing order
    maps: np.ndarray  # (len(units), len(ys), len(xs)) activations
    total: int  # units in the layer
    activation: str  # the layer's activation name


def neuron_maps(grid: BoundaryGrid, limit: int = MAX_UNITS) -> NeuronMaps:
    """Each unit's activation over the grid, ordered by mean |activation| over it; at most
    `limit` units."""
    acts = hidden_activations(grid.predictor, grid.frame, "the boundary grid")
    order = [int(u) for u in by_activity(acts)[:limit]]
    maps = np.stack([grid.surface(acts[:, u]) for u in order])
    name = grid.predictor.config.model.activations()[0]["name"]
    return NeuronMaps(order, maps, acts.shape[1], name)

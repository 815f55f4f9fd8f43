"""Decision regions and output surfaces: a grid of raw rows over two input features, scored by
the run's Predictor exactly as `mlp predict` scores a file, the data's points to draw over it,
and the first hidden layer's units over the same grid.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.messages import listed
from .errors import ConfigError, DataError
from .evaluate import Predictor, load
from .first_layer import MAX_UNITS, by_activity, hidden_activations
from .registry import FILE_SOURCES, unknown

DEFAULT_RESOLUTION = 200  # grid points along each axis
MARGIN = 0.1  # of each axis's range, added on both sides of the plotted points
MAX_POINTS = 2000  # rows of a split scattered; a larger split is drawn as a seeded sample
CHUNK_CELLS = 1 << 22  # grid rows x input features built and scored at a time (wide data)
DEFAULT_SPAN = 3.0  # with nothing recorded to size an axis by, it runs from -3 to 3


@dataclass
class Points:
    """The run's train and test rows, drawn again (None where they could not be), and why not."""

    train: pd.DataFrame | None
    test: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)

    def frames(self) -> list[pd.DataFrame]:
        return [f for f in (self.train, self.test) if f is not None]


@dataclass
class BoundaryGrid:
    """A square grid over two input features, every other feature held fixed, and the model's
    outputs on it. Row i of the grid is (xs[i % n], ys[i // n]) for n = len(xs)."""

    predictor: Predictor
    features: tuple[str, str]
    xs: np.ndarray  # values of features[0], raw units
    ys: np.ndarray  # values of features[1], raw units
    held: dict[str, Any]  # the other features' fixed values
    outputs: np.ndarray  # Predictor.outputs of the rows: probabilities, or scaled regression values
    points: Points
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.predictor.task

    @property
    def train(self) -> pd.DataFrame | None:
        return self.points.train

    @property
    def test(self) -> pd.DataFrame | None:
        return self.points.test

    @property
    def frame(self) -> pd.DataFrame:
        """Every grid row as a file would hold it (rows x input features values: on wide data,
        read it in pieces with rows())."""
        return self.rows(0, len(self.xs) * len(self.ys))

    def rows(self, start: int, stop: int) -> pd.DataFrame:
        """Grid rows start..stop-1 as raw rows, the model's columns in its own order."""
        return grid_rows(self.predictor, self.features, self.xs, self.ys, self.held, start, stop)

    def shown(self, split: str) -> pd.DataFrame | None:
        """The rows of a split that are scattered: all, or a seeded sample of MAX_POINTS."""
        return sample_rows(self.train if split == "train" else self.test)

    def probabilities(self) -> pd.DataFrame:
        """proba_<label> columns, as `mlp predict --proba` writes them for the grid's rows."""
        return self.predictor.preprocessor.probabilities(self.outputs)

    def values(self) -> np.ndarray:
        """Regression outputs in the targets' own units (rows x targets)."""
        return self.predictor.preprocessor.unscale(self.outputs)

    def surface(self, values: np.ndarray) -> np.ndarray:
        """One value per grid row, shaped (len(ys), len(xs)) for contour and image plots."""
        return np.asarray(values).reshape(len(self.ys), len(self.xs))


def sample_rows(frame: pd.DataFrame | None, limit: int | None = None) -> pd.DataFrame | None:
    """All the rows, or `limit` (default MAX_POINTS) of them drawn with a fixed seed (the same
    ones on every call), in their original order."""
    limit = MAX_POINTS if limit is None else limit
    if frame is None or len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=0).sort_index()


def numeric_features(predictor: Predictor) -> list[str]:
    """The model's numeric input columns, in the order it reads them."""
    prep = predictor.preprocessor
    return [c for c in prep.features if c in prep.numeric]


def parse_features(text: str, predictor: Predictor) -> list[str]:
    """--features A,B as a list of names. A column name may itself hold a comma, so each comma
    is tried in turn and the cut whose two sides both name input columns is taken. Failing
    that, a cut with one side known (choose_features names the other), else every comma."""
    known = set(predictor.preprocessor.features)
    cuts = [
        [_as_name(text[:i], known), _as_name(text[i + 1 :], known)]
        for i, char in enumerate(text)
        if char == ","
    ]
    found = [cut for cut in cuts if cut[0] in known and cut[1] in known]
    if len(found) > 1:
        readings = " or as ".join(f"{a!r} and {b!r}" for a, b in found)
        raise ConfigError(
            f"--features: {text!r} reads as {readings}; these columns cannot be told apart "
            f"by --features, so rename one of them"
        )
    half = [cut for cut in cuts if cut[0] in known or cut[1] in known]
    return (found or half or [[part.strip() for part in text.split(",")]])[0]


def _as_name(part: str, known: set[str]) -> str:
    """The part as written when it names a column, else without surrounding spaces."""
    return part if part in known else part.strip()


def choose_features(predictor: Predictor, names: list[str] | None) -> tuple[str, str]:
    """The two features to plot: the names given, or the model's first two numeric inputs."""
    numeric = numeric_features(predictor)
    accepted = listed(numeric, limit=20, quote=False) or "none"
    if len(numeric) < 2:
        raise DataError(
            f"--boundary: needs two numeric input features; this model has {len(numeric)} "
            f"({accepted})"
        )
    if names is None:
        return numeric[0], numeric[1]
    if len(names) != 2:
        example = shlex.quote(f"{numeric[0]},{numeric[1]}")
        raise ConfigError(f"--features: expected two names, e.g. --features {example}")
    if names[0] == names[1]:
        raise ConfigError(f"--features: {names[0]!r} is named twice; accepted: {accepted}")
    for name in names:
        if name in predictor.preprocessor.categorical:
            raise ConfigError(
                f"--features: {name!r} is a categorical column; accepted (numeric): {accepted}"
            )
        if name not in numeric:
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


def training_points(predictor: Predictor, run: str | Path) -> Points:
    """The run's train and test rows, and notes on what could not be drawn."""
    train, reason = training_rows(predictor, run)
    if train is None:
        return Points(None, None, [reason])
    try:
        return Points(train, predictor.split("test"))
    except DataError as exc:
        return Points(train, None, [f"the test points are not drawn: {exc}"])


def held_values(predictor: Predictor, train: pd.DataFrame | None) -> tuple[dict[str, Any], str]:
    """A fixed value for every input feature, and how they were chosen: numeric ones at their
    training mean (raw units), categorical ones at their most frequent training value. Without
    the rows, the mean the scaler recorded, or 0 where data.standardize recorded none."""
    prep = predictor.preprocessor
    numeric = list(prep.numeric)
    if train is not None:
        means = train[numeric].astype(np.float64).mean()  # one pass, however many columns
        values: dict[str, Any] = {c: float(means[c]) for c in numeric}
        for col in prep.categorical:
            values[col] = train[col].astype(str).mode().iloc[0]  # ties: the first in sort order
        return values, "their training mean (categories: their most frequent training value)"
    values = {c: cats[0] for c, cats in prep.categorical.items()}
    if predictor.config.data.standardize:
        values.update({c: mean for c, (mean, _) in prep.numeric.items()})
        return values, "the training mean the model recorded (categories: their first value)"
    values.update({c: 0.0 for c in numeric})
    return values, (
        "0, a default: the model was trained with data.standardize: false, so it recorded no "
        "training mean (categories: their first value)"
    )


def axis_range(
    predictor: Predictor, feature: str, frames: list[pd.DataFrame]
) -> tuple[float, float]:
    """The plotted points' range plus a margin; without points, the recorded mean +- 3 std, or
    -3..3 where data.standardize recorded neither."""
    if frames:
        values = np.concatenate([f[feature].to_numpy(dtype=np.float64) for f in frames])
        low, high = float(values.min()), float(values.max())
    elif predictor.config.data.standardize:
        mean, std = predictor.preprocessor.numeric[feature]
        low, high = mean - 3 * std, mean + 3 * std
    else:
        return -DEFAULT_SPAN, DEFAULT_SPAN
    span = high - low if high > low else max(abs(low), 1.0)
    return low - MARGIN * span, high + MARGIN * span


def grid_rows(
    predictor: Predictor,
    features: tuple[str, str],
    xs: np.ndarray,
    ys: np.ndarray,
    held: dict[str, Any],
    start: int,
    stop: int,
) -> pd.DataFrame:
    """Rows start..stop-1 of the grid over `features` (row i is (xs[i % n], ys[i // n])), every
    other input at its held value, the model's columns in its own order."""
    prep = predictor.preprocessor
    index = np.arange(start, stop)
    numeric = [c for c in prep.features if c in prep.numeric]
    # One float block for the numeric columns: the held row broadcast, then the two plotted.
    block = np.empty((len(index), len(numeric)))
    block[:] = [held.get(c, 0.0) for c in numeric]
    block[:, numeric.index(features[0])] = xs[index % len(xs)]
    block[:, numeric.index(features[1])] = ys[index // len(xs)]
    frame = pd.DataFrame(block, columns=numeric, copy=False)
    if not prep.categorical:
        return frame
    texts = {c: np.full(len(index), held[c], dtype=object) for c in prep.categorical}
    return pd.concat([frame, pd.DataFrame(texts)], axis=1)[prep.features]


def grid_chunks(grid: BoundaryGrid) -> Iterator[pd.DataFrame]:
    """The grid's rows in pieces of about CHUNK_CELLS values, so that a model with thousands
    of inputs is scored without holding the whole grid at once."""
    size = len(grid.xs) * len(grid.ys)
    step = max(1, CHUNK_CELLS // len(grid.predictor.preprocessor.features))
    for start in range(0, size, step):
        yield grid.rows(start, min(start + step, size))


def boundary_grid(
    run: str | Path,
    features: list[str] | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    predictor: Predictor | None = None,
    points: Points | None = None,
) -> BoundaryGrid:
    """The grid of raw rows over two features (others held fixed) and the model's outputs on
    it, scored with the run's own Predictor, so they equal `mlp predict --proba` of those rows.
    `points`, when given, are the run's rows already drawn (a sweep's trials share them)."""
    predictor = predictor or load(run)
    chosen = choose_features(predictor, features)
    points = points or training_points(predictor, run)
    frames = points.frames()
    values, how = held_values(predictor, points.train)
    held = {c: v for c, v in values.items() if c not in chosen}
    xs = np.linspace(*axis_range(predictor, chosen[0], frames), resolution)
    ys = np.linspace(*axis_range(predictor, chosen[1], frames), resolution)
    grid = BoundaryGrid(predictor, chosen, xs, ys, held, np.empty(0), points, list(points.notes))
    # Scored piece by piece: the whole grid of a wide model need never be in memory at once.
    scored = [predictor.outputs(rows, where="the boundary grid") for rows in grid_chunks(grid)]
    grid.outputs = np.concatenate(scored)
    grid.notes.extend(_grid_notes(grid, how))
    return grid


def _grid_notes(grid: BoundaryGrid, how: str) -> list[str]:
    """What a reader of the figure should know: how the others are held, a default range,
    a sampled split."""
    notes = []
    if grid.held:
        notes.append(f"features not plotted are held at {how}")
    if not grid.points.frames() and not grid.predictor.config.data.standardize:
        notes.append(
            f"the axes span {-DEFAULT_SPAN:g} to {DEFAULT_SPAN:g}, a default range: there are "
            f"no points to span and data.standardize: false recorded no mean or spread"
        )
    for split, frame in (("train", grid.train), ("test", grid.test)):
        if frame is not None and len(frame) > MAX_POINTS:
            notes.append(f"{MAX_POINTS} of the {len(frame)} {split} rows are drawn (a sample)")
    return notes


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
    where = "the boundary grid"
    acts = np.concatenate(
        [hidden_activations(grid.predictor, rows, where) for rows in grid_chunks(grid)]
    )
    order = [int(u) for u in by_activity(acts)[:limit]]
    maps = np.stack([grid.surface(acts[:, u]) for u in order])
    name = grid.predictor.config.model.activations()[0]["name"]
    return NeuronMaps(order, maps, acts.shape[1], name)

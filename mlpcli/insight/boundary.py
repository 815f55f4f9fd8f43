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

from ..config.messages import listed
from ..config.registry import FILE_SOURCES, unknown
from ..errors import ConfigError, DataError
from ..serving.evaluate import Predictor, load
from ..serving.stream_eval import is_sample, rows_text
from .first_layer import MAX_UNITS, by_activity, hidden_activations

DEFAULT_RESOLUTION = 200  # grid points along each axis
MARGIN = 0.1  # of each axis's range, added on both sides of the plotted points
MAX_POINTS = 2000  # rows of a split scattered; a larger split is drawn as a seeded sample
CHUNK_CELLS = 1 << 22  # grid rows x input features built and scored at a time (wide data)
DEFAULT_SPAN = 3.0  # with nothing recorded to size an axis by, it runs from -3 to 3


@dataclass
class Points:
    """The run's rows to draw, by split (None where they could not be drawn again, or are not
    drawn: regions draw train and test, a curve train and val), and why not."""

    train: pd.DataFrame | None
    test: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    val: pd.DataFrame | None = None

    def frames(self) -> list[pd.DataFrame]:
        return [f for f in (self.train, self.val, self.test) if f is not None]

    def split(self, name: str) -> pd.DataFrame | None:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


@dataclass
class BoundaryGrid:
    """A square grid over two input features, every other feature held fixed, and the model's
    outputs on it. Row i of the grid is (xs[i % n], ys[i // n]) for n = len(xs). With one
    feature, a line along it (a curve's rows): ys is [0] and row i is xs[i]."""

    predictor: Predictor
    features: tuple[str, ...]
    xs: np.ndarray  # values of features[0], raw units
    ys: np.ndarray  # values of features[1], raw units ([0] for one feature)
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

    def matching(self, split: str) -> pd.DataFrame | None:
        """The rows of a split whose categorical features equal the held ones: the only rows
        the regions describe (a numeric feature is never held at a row's exact value, so it
        does not filter; the figure says the points' other numbers vary)."""
        return rows_at(self.points.split(split), held_categories(self.predictor, self.held))

    def shown(self, split: str) -> pd.DataFrame | None:
        """The rows of a split that are scattered: the matching ones, or a seeded sample of
        MAX_POINTS of them."""
        return sample_rows(self.matching(split))

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


def held_categories(predictor: Predictor, held: dict[str, Any]) -> dict[str, str]:
    """The held values of the categorical features, as text (the form they are compared in)."""
    return {c: str(v) for c, v in held.items() if c in predictor.preprocessor.categorical}


def rows_at(frame: pd.DataFrame | None, categories: dict[str, str]) -> pd.DataFrame | None:
    """The rows whose columns hold the given categories (all rows for none)."""
    if frame is None or not categories:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    for column, value in categories.items():
        keep &= (frame[column].astype(str) == value).to_numpy()
    return frame[keep]


def most_varying(predictor: Predictor) -> tuple[str, str] | None:
    """The two numeric features with the largest standard deviation on the training rows, in
    the model's column order; None for a model that recorded no spread (saved before it did).

    Raw units, as the run recorded them: standardised, every non-constant feature has
    variance 1 and none could be told apart; in the data's own units the pixels of an image
    (all one unit) rank by how much they vary, and a constant one (std 0) comes last."""
    prep = predictor.preprocessor
    numeric = numeric_features(predictor)
    if not all(c in prep.stats for c in numeric):
        return None
    ranked = sorted(numeric, key=lambda c: -prep.stats[c][1])  # stable: ties in column order
    first, second = (c for c in numeric if c in ranked[:2])
    return first, second


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


def choose_features(predictor: Predictor, names: list[str] | None) -> tuple[str, ...]:
    """The features to plot: the two names given, or the two that vary most (the first two
    numeric inputs for a model that recorded no spread); a model with one numeric input has
    that one, drawn as a curve."""
    numeric = numeric_features(predictor)
    accepted = listed(numeric, limit=20, quote=False) or "none"
    if not numeric:
        categorical = listed(list(predictor.preprocessor.categorical), limit=20, quote=False)
        raise DataError(
            f"--boundary: needs a numeric input feature to draw along; this model has none "
            f"(its inputs are categorical: {categorical})"
        )
    if len(numeric) == 1:
        if names is not None and names != numeric:
            raise ConfigError(
                f"--features: this model has one numeric input ({accepted}), whose curve "
                f"--boundary draws without --features"
            )
        return (numeric[0],)
    if names is None:
        return most_varying(predictor) or (numeric[0], numeric[1])
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


def training_points(predictor: Predictor, run: str | Path, other: str = "test") -> Points:
    """The run's train rows and its `other` split's (test beside regions, val beside a
    curve), and notes on what could not be drawn."""
    train, reason = training_rows(predictor, run)
    if train is None:
        return Points(None, None, [reason])
    try:
        rows = predictor.split(other)
    except DataError as exc:
        return Points(train, None, [f"the {other} points are not drawn: {exc}"])
    return Points(train, rows) if other == "test" else Points(train, None, val=rows)


def held_values(predictor: Predictor) -> tuple[dict[str, Any], str]:
    """A fixed value for every input feature, and how they were chosen: numeric ones at their
    training mean (raw units), categorical ones at their most frequent training value, both
    as the model recorded them, so that they are the same whether or not the data can be read
    again. A model saved before they were recorded: the scaler's mean, or 0 where
    data.standardize: false recorded none, and the first category."""
    prep = predictor.preprocessor
    if all(c in prep.stats for c in prep.numeric) and set(prep.modes) == set(prep.categorical):
        values: dict[str, Any] = {c: mean for c, (mean, _) in prep.stats.items()}
        values.update(prep.modes)
        return values, "their training mean (categories: their most frequent training value)"
    values = {c: cats[0] for c, cats in prep.categorical.items()}
    if predictor.config.data.standardize:
        values.update({c: mean for c, (mean, _) in prep.numeric.items()})
        return values, "the training mean the model recorded (categories: their first value)"
    values.update({c: 0.0 for c in prep.numeric})
    return values, (
        "0, a default: the model was trained with data.standardize: false, so it recorded no "
        "training mean (categories: their first value)"
    )


def axis_range(
    predictor: Predictor, feature: str, frames: list[pd.DataFrame]
) -> tuple[float, float]:
    """The plotted points' range plus a margin; without points, the recorded mean +- 3 std, or
    -3..3 where the model recorded neither."""
    if frames:
        values = np.concatenate([f[feature].to_numpy(dtype=np.float64) for f in frames])
        low, high = float(values.min()), float(values.max())
    elif feature in predictor.preprocessor.stats:
        mean, std = predictor.preprocessor.stats[feature]
        low, high = mean - 3 * std, mean + 3 * std
    elif predictor.config.data.standardize:
        mean, std = predictor.preprocessor.numeric[feature]
        low, high = mean - 3 * std, mean + 3 * std
    else:
        return -DEFAULT_SPAN, DEFAULT_SPAN
    span = high - low if high > low else max(abs(low), 1.0)
    return low - MARGIN * span, high + MARGIN * span


def grid_rows(
    predictor: Predictor,
    features: tuple[str, ...],
    xs: np.ndarray,
    ys: np.ndarray,
    held: dict[str, Any],
    start: int,
    stop: int,
) -> pd.DataFrame:
    """Rows start..stop-1 of the grid over `features` (row i is (xs[i % n], ys[i // n])), every
    other input at its held value, the model's columns in its own order. With one feature
    (a curve), row i is xs[i]."""
    prep = predictor.preprocessor
    index = np.arange(start, stop)
    numeric = [c for c in prep.features if c in prep.numeric]
    # One float block for the numeric columns: the held row broadcast, then the two plotted.
    block = np.empty((len(index), len(numeric)))
    block[:] = [held.get(c, 0.0) for c in numeric]
    block[:, numeric.index(features[0])] = xs[index % len(xs)]
    if len(features) > 1:
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
    it, scored with the run's own Predictor, so they equal `mlp predict --proba` of those rows;
    for a model with one numeric input, a line of rows along it (ys is [0], unused), drawn as
    a curve over the train and val points. `points`, when given, are the run's rows already
    drawn (a sweep's trials share them)."""
    predictor = predictor or load(run)
    chosen = choose_features(predictor, features)
    splits = ("train", "test") if len(chosen) == 2 else ("train", "val")
    points = points or training_points(predictor, run, splits[1])
    frames = points.frames()
    values, how = held_values(predictor)
    held = {c: v for c, v in values.items() if c not in chosen}
    xs = np.linspace(*axis_range(predictor, chosen[0], frames), resolution)
    ys = np.zeros(1)
    if len(chosen) == 2:
        ys = np.linspace(*axis_range(predictor, chosen[1], frames), resolution)
    grid = BoundaryGrid(predictor, chosen, xs, ys, held, np.empty(0), points, list(points.notes))
    # Scored piece by piece: the whole grid of a wide model need never be in memory at once.
    scored = [predictor.outputs(rows, where="the boundary grid") for rows in grid_chunks(grid)]
    grid.outputs = np.concatenate(scored)
    if features is None and len(numeric_features(predictor)) > 2:
        grid.notes.append(chosen_note(predictor, chosen))
    grid.notes.extend(_grid_notes(grid, how, splits))
    return grid


def _grid_notes(grid: BoundaryGrid, how: str, splits: tuple[str, ...]) -> list[str]:
    """What a reader of the figure should know: how the others are held and which rows that
    leaves, a default range, a sampled split."""
    notes = []
    if grid.held:
        notes.append(f"features not plotted are held at {how}")
    categories = held_categories(grid.predictor, grid.held)
    counts = [
        f"{len(shown)} of {len(full)} {split}"
        for split in splits
        if (full := grid.points.split(split)) is not None
        and (shown := grid.matching(split)) is not None
    ]
    if categories and counts:
        notes.append(
            f"only the rows with {held_text(categories)} are drawn, as the figure holds them: "
            + ", ".join(counts)
        )
    recorded = all(f in grid.predictor.preprocessor.stats for f in grid.features)
    if not (grid.points.frames() or recorded or grid.predictor.config.data.standardize):
        notes.append(
            f"the axes span {-DEFAULT_SPAN:g} to {DEFAULT_SPAN:g}, a default range: there are "
            f"no points to span and data.standardize: false recorded no mean or spread"
        )
    for split in splits:
        full = grid.points.split(split)
        if full is not None and is_sample(full):  # a streamed run's split
            notes.append(f"the {split} points are {rows_text(full)} of the {split} split")
        frame = grid.matching(split)
        if frame is not None and len(frame) > MAX_POINTS:
            notes.append(f"{MAX_POINTS} of the {len(frame)} {split} rows are drawn (a sample)")
    return notes


def held_text(held: dict[str, Any]) -> str:
    """'x3 = 0.12, colour = red': held values as the figures state them."""
    return ", ".join(
        f"{c} = {v:.3g}" if isinstance(v, float) else f"{c} = {v}" for c, v in held.items()
    )


def chosen_note(predictor: Predictor, features: tuple[str, ...]) -> str:
    """Why these two features were drawn, when the model has more to choose from."""
    if most_varying(predictor) is None:
        return (
            f"{features[0]} and {features[1]} are drawn: the first two numeric features (the "
            f"model recorded no spread to choose by); choose others with --features A,B"
        )
    return (
        f"{features[0]} and {features[1]} are drawn: the two numeric features that vary most "
        f"(standard deviation on the training rows, in their own units); choose others with "
        f"--features A,B"
    )


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

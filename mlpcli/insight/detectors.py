"""What the first hidden layer detects when the inputs are an image's pixels: each unit's
incoming weights laid out as an image, the most active units first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.registry import IMAGE_SHAPES
from ..config.schema import Config
from ..errors import ConfigError
from ..serving.evaluate import Predictor, load
from .boundary import training_rows
from .first_layer import (
    MAX_UNITS,
    by_activity,
    first_hidden_layer,
    first_weights,
    hidden_activations,
)


@dataclass
class Detectors:
    """First-layer weights as images, in drawing order."""

    images: np.ndarray  # (len(units), height, width): each unit's weight on each pixel; NaN
    # where the pixel was constant in the training rows (its weight never mattered)
    units: list[int]  # unit indices, in drawing order
    total: int  # units in the first hidden layer
    ranked_by: str  # how the order was chosen
    notes: list[str] = field(default_factory=list)


def image_shape(config: Config) -> tuple[int, int]:
    """The input image's (height, width): data.image_shape, or what the source is known to hold."""
    if config.data.image_shape is not None:
        height, width = config.data.image_shape
        return height, width
    known = IMAGE_SHAPES.get(config.data.source)
    if known is None:
        sources = ", ".join(f"{s} {h}x{w}" for s, (h, w) in IMAGE_SHAPES.items())
        raise ConfigError(
            f"--detectors: no image shape is known for data.source {config.data.source}; set "
            f"data.image_shape: [height, width] in the config, with height x width equal to the "
            f"number of input features (known without it: {sources})"
        )
    return known


def check_detectors(predictor: Predictor) -> tuple[int, int]:
    """The image shape, once the model is known to have a first hidden layer whose inputs are
    that many pixels."""
    height, width = image_shape(predictor.config)
    first_hidden_layer(predictor)  # a linear model has no units to draw
    inputs = predictor.preprocessor.in_dim
    if height * width != inputs:
        raise ConfigError(
            f"data.image_shape: {height} x {width} = {height * width} pixels, but the model has "
            f"{inputs} inputs; the two must be equal"
        )
    return height, width


def detector_weights(
    run: str | Path,
    limit: int = MAX_UNITS,
    predictor: Predictor | None = None,
    rows: pd.DataFrame | None = None,
) -> Detectors:
    """Each first-hidden-layer unit's incoming weights as an image, at most `limit` units, the
    largest mean |activation| on the training rows (or on `rows`, given instead) first; by
    weight norm when the rows cannot be drawn again."""
    predictor = predictor or load(run)
    height, width = check_detectors(predictor)
    weights = first_weights(predictor)  # (units, inputs)
    train, reason = (rows, "") if rows is not None else training_rows(predictor, run)
    if train is not None:
        where = "train split" if rows is None else "the rows given"
        order = by_activity(hidden_activations(predictor, train, where))
        on = "the training rows" if rows is None else "the rows given"
        ranked_by, notes = f"mean |activation| on {on}", []
    else:  # a model file alone, or data that changed since training
        order = np.argsort(-np.linalg.norm(weights, axis=1), kind="stable")
        ranked_by = "weight norm"
        notes = [
            f"units ordered by their weight norm: {reason}; pass the labelled rows with --data"
        ]
    shown = order[:limit]
    if len(order) > limit:
        notes.append(f"{len(order) - limit} of {len(order)} units are not drawn (the least active)")
    images = weights[shown].reshape(len(shown), height, width)
    if train is not None and not predictor.preprocessor.categorical:
        # A pixel constant in training is standardised to 0: its weight never mattered.
        constant = (train[predictor.preprocessor.features].nunique() <= 1).to_numpy()
        images[:, constant.reshape(height, width)] = np.nan
    return Detectors(images, [int(u) for u in shown], len(order), ranked_by, notes)

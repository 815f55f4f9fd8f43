"""The first hidden layer of a trained network: its modules, its activations on raw rows, and its
units ordered by how active they are. `mlp plot --neurons` and `--detectors` read it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from ..model.factory import layer_groups
from ..model.layers import EVAL_BATCH
from ..serving.evaluate import Predictor

MAX_UNITS = 64  # first-layer units drawn by --neurons and --detectors


def first_hidden_layer(predictor: Predictor) -> nn.Sequential:
    """The first hidden layer as build_mlp made it: Linear, an optional norm, the activation
    (its dropout left out: at prediction it passes rows through unchanged)."""
    if not predictor.config.model.hidden:
        raise ConfigError(
            "model.hidden is [] (a linear model): it has no hidden units to draw; "
            "train with model.hidden=[N] to see them"
        )
    model = predictor.model
    assert isinstance(model, nn.Sequential)  # build_mlp's
    group = layer_groups(model)[0]
    return nn.Sequential(*(m for m in group if not isinstance(m, nn.Dropout)))


def first_weights(predictor: Predictor) -> np.ndarray:
    """The first hidden layer's weights (units x inputs), on standardised inputs."""
    linear = first_hidden_layer(predictor)[0]
    assert isinstance(linear, nn.Linear)
    return linear.weight.detach().float().cpu().numpy()


def hidden_activations(predictor: Predictor, frame: pd.DataFrame, where: str) -> np.ndarray:
    """The first hidden layer's activations (rows x units) for raw rows, in eval mode."""
    layer = first_hidden_layer(predictor)  # load() left the model in eval mode
    x = predictor.preprocessor.transform(frame, where, before="plotting")
    with torch.inference_mode():
        tensor = torch.from_numpy(x).to(predictor.device)
        batches = [layer(tensor[i : i + EVAL_BATCH]) for i in range(0, len(tensor), EVAL_BATCH)]
    return torch.cat(batches).float().cpu().numpy()


def by_activity(activations: np.ndarray) -> np.ndarray:
    """Unit indices, the largest mean |activation| first (ties keep their order)."""
    return np.argsort(-np.abs(activations).mean(axis=0), kind="stable")

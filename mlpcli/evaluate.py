"""Evaluation and prediction from a run folder or a model file.

A model file describes itself (config, preprocessing, labels), so a path is all eval and predict
need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checkpoint import load_model_file
from .config import Config, build_config
from .data import Preprocessor, load_dataset
from .data.files import read_table
from .errors import CheckpointError, DataError, MlpError
from .model import build_mlp, resolve_device
from .tasks import make_loss, transform
from .trainer import Split, evaluate, predict_raw, read_floats, target_scale

MODEL_FILE = "model.safetensors"


def model_path(path: str | Path) -> Path:
    """The model file of a run folder, or the path itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            raise CheckpointError(
                f"{path}: no {MODEL_FILE} in this folder; expected a run folder from mlp train "
                f"(an unfinished run can be continued with mlp train CONFIG --resume {path})"
            )
        return model
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or model file")
    return path


@dataclass
class Predictor:
    """A trained model with everything needed to score or use it on new tables."""

    config: Config
    preprocessor: Preprocessor
    model: nn.Module
    metadata: dict[str, Any]
    device: torch.device

    @property
    def task(self) -> str:
        return self.preprocessor.task

    def _inputs(self, frame: pd.DataFrame, where: str) -> torch.Tensor:
        return torch.from_numpy(self.preprocessor.transform(frame, where)).to(self.device)

    def outputs(self, frame: pd.DataFrame, where: str = "input") -> np.ndarray:
        """Probabilities (classification tasks) or values in scaled units (regression)."""
        raw = predict_raw(self.model, self._inputs(frame, where))
        return transform(self.task, raw).float().cpu().numpy()

    def predict(
        self, frame: pd.DataFrame, proba: bool = False, where: str = "input"
    ) -> pd.DataFrame:
        """The input rows with the predicted target column(s) in their original label values.

        A target column already in the input is kept, and the prediction is named predicted_<name>.
        """
        if proba and self.task == "regression":
            raise DataError("--proba: a regression model predicts values, not probabilities")
        out = self.outputs(frame, where)
        predicted = self.preprocessor.decode(out)
        predicted.columns = [
            f"predicted_{c}" if c in frame.columns else c for c in predicted.columns
        ]
        parts = [frame.reset_index(drop=True), predicted]
        if proba:
            parts.append(self.preprocessor.probabilities(out))
        return pd.concat(parts, axis=1)

    def evaluate(self, frame: pd.DataFrame, where: str = "data") -> dict[str, float]:
        """Loss and metrics on a labelled table (regression metrics in the targets' units)."""
        data = Split.from_frame(self.preprocessor, frame, self.device, where)
        scale = target_scale(self.preprocessor, self.device)
        loss_fn = make_loss(self.config, self.task)
        return read_floats(evaluate(self.model, loss_fn, self.task, data, scale))

    def split(self, name: str) -> pd.DataFrame:
        """The train, val or test rows of the training run, drawn again from its config."""
        frame = load_dataset(self.config).split(name)
        if len(frame) == 0:
            raise DataError(
                f"--split {name}: this run has no {name} rows (data.{name}_split was 0); "
                f"pass a labelled file with --data"
            )
        return frame


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """A Predictor from a run folder or a model.safetensors file."""
    file = model_path(path)
    tensors, meta = load_model_file(file)
    try:
        config = build_config(meta["config"])
        prep = Preprocessor.from_dict(meta["preprocessor"])
        model = build_mlp(config.model, prep.in_dim, prep.out_dim)
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"{file}: the model's metadata does not match its weights ({exc.__class__.__name__})"
        ) from None
    except MlpError as exc:  # e.g. a config that no longer validates
        raise CheckpointError(f"{file}: the model's metadata is not usable ({exc})") from None
    target = resolve_device(device)
    model.to(target).eval()
    return Predictor(config, prep, model, meta, target)


def evaluate_run(
    path: str | Path, data: str | Path | None = None, split: str = "test"
) -> dict[str, float]:
    """Metrics of a saved model on a labelled file, or on a split of its training data."""
    predictor = load(path)
    if data is not None:
        return predictor.evaluate(read_table(data), where=str(data))
    return predictor.evaluate(predictor.split(split), where=f"{split} split")


def predict_file(path: str | Path, input_path: str | Path, proba: bool = False) -> pd.DataFrame:
    """Predictions for every row of a CSV or Parquet file."""
    predictor = load(path)
    return predictor.predict(read_table(input_path), proba=proba, where=str(input_path))

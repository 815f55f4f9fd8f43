"""Evaluation and prediction from a run folder or a model file.

A model file describes itself (config, preprocessing, labels), so a path is all eval and predict
need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .checkpoint import read_model_file
from .config import Config, build_config
from .data import Preprocessor, load_dataset
from .data.columns import Table, as_frame
from .data.fingerprint import check_files, check_split, recorded_fingerprint
from .data.preprocess import check_columns, check_missing
from .errors import CheckpointError, DataError, MlpError
from .file_schemas import Layout, check_tensors, tensor_layout
from .model import build_mlp, resolve_device
from .registry import FILE_SOURCES
from .runs import MODEL_FILE, check_run_folder, unfinished_run
from .tasks import make_loss, transform
from .trainer import Split, evaluate, predict_raw, read_floats, target_scale

if TYPE_CHECKING:
    import pandas as pd


def model_path(path: str | Path) -> Path:
    """The model file of a run folder, or the path itself when it is a file.

    A run folder's model must be its own file, not a link; a path given directly is the
    user's own choice and may be one.
    """
    path = Path(path)
    if path.is_dir():
        check_run_folder(path)
        model = path / MODEL_FILE
        if not model.is_file():
            advice = "expected a run folder from mlp train"
            if unfinished_run(path):
                advice = (
                    f"the run did not finish; continue it with "
                    f"mlp train {path / 'config.yaml'} --resume {path}"
                )
            raise CheckpointError(f"{path}: no {MODEL_FILE} in this folder; {advice}")
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
        x = self.preprocessor.transform(frame, where, before="predicting")
        return torch.from_numpy(x).to(self.device)

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
        import pandas as pd

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

    def evaluate(self, frame: Table, where: str = "data") -> dict[str, float]:
        """Loss and metrics on a labelled table (regression metrics in the targets' units)."""
        prep = self.preprocessor
        check_columns(frame, prep.features + prep.targets, where, "feature or target")
        check_missing(frame, prep.features + prep.targets, where, before="evaluating")
        data = Split.from_frame(prep, frame, self.device, where)
        scale = target_scale(self.preprocessor, self.device)
        loss_fn = make_loss(self.config, self.task)
        return read_floats(evaluate(self.model, loss_fn, self.task, data, scale))

    def split(self, name: str) -> pd.DataFrame:
        """The train, val or test rows of the training run, drawn again from its config.

        When the model recorded its data (sha256 of files and splits), the files are compared
        before they are read and the split after it is drawn; a mismatch is a DataError.
        """
        return as_frame(self.rows(name))

    def rows(self, name: str) -> Table:
        """split(name) as the data layer holds it: Columns for a synthetic source (no pandas)."""
        recorded = recorded_fingerprint(self.metadata)
        if recorded is not None:
            check_files(self.config.data, recorded)
        elif self.config.data.source in FILE_SOURCES:
            # Nothing to check the file against: its path alone is not trusted to be opened.
            raise DataError(
                f"--split {name}: this model records no sha256 of its data file (saved by an "
                f"older mlpcli), so {self.config.data.path} is not read; pass the labelled rows "
                f"with --data"
            )
        frame = load_dataset(self.config).split(name)
        if recorded is not None:
            check_split(frame, name, recorded, self.config.data.path or self.config.data.source)
        if len(frame) == 0:
            raise DataError(
                f"--split {name}: this run has no {name} rows (data.{name}_split was 0); "
                f"pass a labelled file with --data"
            )
        return frame


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """A Predictor from a run folder or a model.safetensors file.

    The metadata is validated and the network it describes is compared with the stored
    tensors' shapes (read from the header) before anything is built: a small file claiming a
    huge network is refused without allocating it.
    """
    file = model_path(path)
    model_file = read_model_file(file)
    meta = model_file.metadata
    try:
        config = build_config(meta["config"])
    except MlpError as exc:  # e.g. a config that no longer validates
        raise CheckpointError(f"{file}: the model's metadata is not usable ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{file}: the model's config is nested too deeply") from None
    prep = Preprocessor.from_dict(meta["preprocessor"])
    layers, stored = len(config.model.hidden) + 1, len(model_file.shapes)
    if layers > stored:  # every layer has a weight at least; spares building a long stack
        raise CheckpointError(
            f"{file}: the metadata describes {layers} layers, but the file holds only "
            f"{stored} tensors"
        )
    try:
        expected = expected_layout(config, prep)
    except MlpError as exc:
        raise CheckpointError(f"{file}: the model's metadata is not usable ({exc})") from None
    check_tensors(file, model_file.shapes, expected)
    model = build_mlp(config.model, prep.in_dim, prep.out_dim)
    model.load_state_dict(model_file.tensors())
    target = resolve_device(device)
    model.to(target).eval()
    return Predictor(config, prep, model, meta, target)


def expected_layout(config: Config, prep: Preprocessor) -> Layout:
    """Name -> (shape, dtype name) of the network a model file describes, built on the meta
    device: shapes only, no memory."""
    with torch.device("meta"):
        model = build_mlp(config.model, prep.in_dim, prep.out_dim)
    return tensor_layout(model.state_dict())


def evaluate_run(
    path: str | Path, data: str | Path | None = None, split: str = "test"
) -> dict[str, float]:
    """Metrics of a saved model on a labelled file, or on a split of its training data."""
    from .data.files import read_table

    predictor = load(path)
    if data is not None:
        return predictor.evaluate(read_table(data), where=str(data))
    if not Path(path).is_dir() and predictor.config.data.source in FILE_SOURCES:
        # A model file travels alone; the paths in its metadata are not trusted to be opened.
        raise DataError(
            f"{path}: a model file alone does not say which file to read; pass the labelled "
            f"rows with --data, or evaluate the run folder the model was trained in"
        )
    return predictor.evaluate(predictor.rows(split), where=f"{split} split")


def predict_file(path: str | Path, input_path: str | Path, proba: bool = False) -> pd.DataFrame:
    """Predictions for every row of a CSV or Parquet file."""
    from .data.files import read_table

    predictor = load(path)
    return predictor.predict(read_table(input_path), proba=proba, where=str(input_path))

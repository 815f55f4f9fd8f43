"""Evaluation and prediction from a run folder or a model file.

A model file describes itself (config, preprocessing, labels), so a path is all eval and predict
need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config.registry import FILE_SOURCES
from ..config.schema import Config, build_config
from ..data import Preprocessor, load_dataset
from ..data.columns import Table, as_frame
from ..data.fingerprint import check_files, check_split, recorded_fingerprint
from ..data.preprocess import check_columns, check_missing
from ..data.stream.chunks import fits_whole, read_chunks
from ..errors import CheckpointError, DataError, MlpError
from ..model.factory import build_mlp, resolve_device
from ..model.kernel import KERNEL_KEY, KernelMachine
from ..model.outputs import Split, predict_raw, read_floats, score_outputs, target_scale
from ..model.tasks import confusion_matrix, make_loss, per_class_scores, transform
from ..runs.checkpoint import ModelFile, read_model_file
from ..runs.file_schemas import Layout, check_tensors, tensor_layout
from ..runs.folder import (
    CONFUSION_FILE,
    MODEL_FILE,
    SWEEP_FILE,
    check_run_folder,
    unfinished_run,
)
from .stream_eval import (
    ChunkScore,
    first_rows,
    is_streamed,
    sample_rows,
    score_frames,
    score_stream_split,
)

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
            elif (path / SWEEP_FILE).is_file():
                raise CheckpointError(_sweep_advice(path))
            raise CheckpointError(f"{path}: no {MODEL_FILE} in this folder; {advice}")
        return model
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or model file")
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("yaml", "yml"):
        raise CheckpointError(
            f"{path}: a config file, not a trained model; train it first with "
            f"`mlp train {path}`, then pass the run folder it writes (runs/NAME) or its "
            f"{MODEL_FILE}"
        )
    if suffix in FILE_SOURCES:
        raise CheckpointError(
            f"{path}: a data file, not a trained model; expected a run folder or a "
            f"{MODEL_FILE} written by mlp train (mlp eval takes labelled rows with --data, "
            f"mlp predict takes its rows after the run)"
        )
    return path


def _sweep_advice(sweep_dir: Path) -> str:
    """What to pass instead of a sweep folder: one of its trials' run folders."""
    trials = sorted(p.parent for p in (sweep_dir / "trials").glob(f"*/{MODEL_FILE}"))
    example = trials[0] if trials else sweep_dir / "trials" / "trial-000"
    return (
        f"{sweep_dir}: a sweep folder, not a run; pass one of its trials' run folders, e.g. "
        f"{example} (results.csv lists them with their settings)"
    )


# The tasks whose rows each hold one class: those with a confusion matrix.
CLASS_TASKS = ("binary", "classification")


@dataclass
class Evaluation:
    """What `mlp eval` reports: the metrics and, for binary and multiclass models, the
    confusion matrix and the scores of each class (None elsewhere)."""

    metrics: dict[str, float]
    labels: list[Any] | None = None  # the class labels as the model stores them, in its order
    confusion: list[list[int]] | None = None  # rows: true class; columns: predicted class
    per_class: list[dict[str, Any]] | None = None  # precision, recall, f1, support per label
    figure: Path | None = None  # the confusion figure, when one was drawn
    scored: str = ""  # what was scored: "its test split", or the --data file

    def to_dict(self) -> dict[str, Any]:
        """The flat metrics, then "confusion": {labels, matrix} and "per_class": [{label,
        precision, recall, f1, support}, ...] where there are classes."""
        result: dict[str, Any] = dict(self.metrics)
        if self.labels is not None and self.confusion is not None and self.per_class is not None:
            result["confusion"] = {"labels": self.labels, "matrix": self.confusion}
            result["per_class"] = [
                {"label": label, **scores} for label, scores in zip(self.labels, self.per_class)
            ]
        return result


@dataclass
class Predictor:
    """A trained model with everything needed to score or use it on new tables."""

    config: Config
    preprocessor: Preprocessor
    model: nn.Module
    metadata: dict[str, Any]
    device: torch.device
    # A streamed run's split samples, all drawn by the first rows() call's one pass.
    samples: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

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
        return self.score(frame, where).metrics

    def score(self, frame: Table, where: str = "data") -> Evaluation:
        """evaluate(), and for binary and multiclass models the confusion matrix and each
        class's precision, recall and F1, from one pass of the model over the rows."""
        prep = self.preprocessor
        check_columns(frame, prep.features + prep.targets, where, "feature or target")
        check_missing(frame, prep.features + prep.targets, where, before="evaluating")
        data = Split.from_frame(prep, frame, self.device, where)
        scale = target_scale(self.preprocessor, self.device)
        loss_fn = make_loss(self.config, self.task)
        outputs = predict_raw(self.model, data.x)
        metrics = read_floats(score_outputs(outputs, loss_fn, self.task, data.y, scale))
        if isinstance(self.model, KernelMachine):  # fitted to its own targets, not this loss
            metrics.pop("loss")
        if self.task not in CLASS_TASKS:
            return Evaluation(metrics)
        matrix = confusion_matrix(self.task, outputs, data.y).cpu().tolist()
        return Evaluation(metrics, list(prep.labels), matrix, per_class_scores(matrix))

    def split(self, name: str) -> pd.DataFrame:
        """The train, val or test rows of the training run, drawn again from its config.

        When the model recorded its data (sha256 of files and splits), the files are compared
        before they are read and the split after it is drawn; a mismatch is a DataError.
        """
        return as_frame(self.rows(name))

    def rows(self, name: str) -> Table:
        """split(name) as the data layer holds it: Columns for a synthetic source (no pandas).
        For a streamed run, a bounded sample of the split (attrs["sample_of"]: its rows in all),
        never the whole table."""
        if is_streamed(self.config):
            if not self.samples:
                self.samples = sample_rows(self.config, self.preprocessor, self.metadata)
            if len(self.samples[name]) == 0:
                raise DataError(f"the {name} split: this run has none (data.{name}_split was 0)")
            return self.samples[name]
        recorded = recorded_fingerprint(self.metadata)
        if recorded is not None:
            check_files(self.config.data, recorded)
        elif self.config.data.source in FILE_SOURCES:
            # Nothing to check the file against: its path alone is not trusted to be opened.
            raise DataError(
                f"the {name} split: this model records no sha256 of its data file (saved by an "
                f"older mlpcli), so {self.config.data.path} is not read"
            )
        frame = load_dataset(self.config).split(name)
        if recorded is not None:
            check_split(frame, name, recorded, self.config.data.path or self.config.data.source)
        if len(frame) == 0:
            raise DataError(f"the {name} split: this run has none (data.{name}_split was 0)")
        return frame

    def head(self, name: str, k: int) -> Table:
        """The first k rows of a split, as rows(name) holds them; a streamed run's read from
        its files only until k are read (attrs["first_of"]: the split's rows in all)."""
        if is_streamed(self.config):
            return first_rows(self.config, self.preprocessor, self.metadata, name, k)
        table = self.rows(name)
        return table.take(np.arange(min(len(table), k)))


def labelled_rows(data: str | Path, prep: Preprocessor, before: str) -> pd.DataFrame:
    """A labelled file's rows, checked as eval checks them: every feature and target column
    there, no missing or infinite values (`before`: what the rows are for)."""
    from ..data.files import read_table

    frame = read_table(data)
    columns = prep.features + prep.targets
    check_columns(frame, columns, str(data), "feature or target")
    check_missing(frame, columns, str(data), before=before)
    return frame


def with_data_hint(exc: DataError | CheckpointError) -> DataError | CheckpointError:
    """The error met drawing a run's own rows again, with what the commands that take a
    labelled file (eval, inspect, plot) can do instead. Predictor.rows itself names no option:
    other callers (export) fall back on other rows."""
    return type(exc)(f"{exc}; pass the labelled rows with --data")


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
    if KERNEL_KEY in meta:  # a sweep's kernel baseline point
        return _kernel_predictor(file, model_file, config, prep, device)
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


def _kernel_predictor(
    file: Path, model_file: ModelFile, config: Config, prep: Preprocessor, device: str
) -> Predictor:
    """A kernel machine's Predictor: its tensors checked against the shapes its centres and the
    preprocessor's inputs and outputs make, before they are read."""
    centres = model_file.shapes.get("centres", ((0,), ""))[0][:1] or (0,)
    with torch.device("meta"):
        empty = KernelMachine.empty(centres[0], prep.in_dim, prep.out_dim)
    check_tensors(file, model_file.shapes, tensor_layout(empty.state_dict()))
    model = KernelMachine.empty(centres[0], prep.in_dim, prep.out_dim)
    model.load_state_dict(model_file.tensors())
    target = resolve_device(device)
    model.to(target).eval()
    return Predictor(config, prep, model, model_file.metadata, target)


def require_network(predictor: Predictor, path: str | Path, what: str) -> None:
    """Refuse (exit 2) what only a network has, for a sweep's kernel baseline point."""
    require_network_file(predictor.metadata, path, what)


def require_network_file(metadata: dict[str, Any], path: str | Path, what: str) -> None:
    """require_network() from a model file's metadata, before any model is built."""
    if KERNEL_KEY in metadata:
        raise CheckpointError(
            f"{path}: a sweep's kernel baseline point, a kernel machine with no layers of its "
            f"own, so {what} does not apply; mlp eval, mlp predict and mlp plot --boundary "
            f"take it"
        )


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
    return score_run(path, data, split).metrics


def score_run(
    path: str | Path, data: str | Path | None = None, split: str = "test", plot: bool = False
) -> Evaluation:
    """evaluate_run() with the confusion matrix and per-class scores of a classifier; with
    plot, also drawn to plots/confusion.png in the run folder (beside a model file given
    alone), whatever was scored: the figure's title names it. A file too large to read whole,
    a folder of Parquet files, and the splits of a streamed run are scored chunk by chunk."""
    predictor = load(path)
    if plot and predictor.task not in CLASS_TASKS:
        raise DataError(
            f"--plot: draws a confusion matrix, which binary and multiclass models have; "
            f"{path} is a {predictor.task} model"
        )
    if data is not None:
        result = _score_data(predictor, data)
        result.scored = str(data)
    elif is_streamed(predictor.config):
        result = _score_streamed(predictor, Path(path), split)
    else:
        if not Path(path).is_dir() and predictor.config.data.source in FILE_SOURCES:
            # A model file travels alone; the paths in its metadata are not trusted to be opened.
            raise DataError(
                f"{path}: a model file alone does not say which file to read; pass the labelled "
                f"rows with --data, or evaluate the run folder the model was trained in"
            )
        try:
            rows = predictor.rows(split)
        except (DataError, CheckpointError) as exc:
            raise with_data_hint(exc) from None
        result = predictor.score(rows, where=f"{split} split")
        result.scored = f"its {split} split"
    if plot:
        result.figure = _draw_confusion(Path(path), result)
    return result


def _score_data(predictor: Predictor, data: str | Path) -> Evaluation:
    """A labelled file read whole and scored at once when it fits in memory (the numbers eval
    has always given); a file that does not, or a folder or glob of Parquet files, chunk by
    chunk with memory bounded by a chunk."""
    from ..data.files import read_table

    if fits_whole(data):
        return predictor.score(read_table(data), where=str(data))
    p = predictor
    frames = read_chunks(data)
    summed = score_frames(p.config, p.preprocessor, p.model, p.device, frames, str(data))
    return _evaluation(predictor, summed)


def _score_streamed(predictor: Predictor, path: Path, split: str) -> Evaluation:
    """A streamed run's split, read again from its Parquet files by row group."""
    if not path.is_dir():
        raise DataError(
            f"{path}: a model file alone does not say which files to read; pass the labelled "
            f"rows with --data, or evaluate the run folder the model was trained in"
        )
    p = predictor
    try:
        summed = score_stream_split(p.config, p.preprocessor, p.model, p.device, p.metadata, split)
    except (DataError, CheckpointError) as exc:
        raise with_data_hint(exc) from None
    result = _evaluation(predictor, summed)
    result.scored = f"its {split} split"
    return result


def _evaluation(predictor: Predictor, summed: ChunkScore) -> Evaluation:
    metrics = dict(summed.metrics)
    if isinstance(predictor.model, KernelMachine):  # fitted to its own targets, not this loss
        metrics.pop("loss")
    if summed.confusion is None:
        return Evaluation(metrics)
    labels = list(predictor.preprocessor.labels)
    return Evaluation(metrics, labels, summed.confusion, per_class_scores(summed.confusion))


def _draw_confusion(path: Path, result: Evaluation) -> Path:
    assert result.labels is not None and result.confusion is not None
    from .confusion_plot import confusion_figure

    folder = path if path.is_dir() else path.parent
    check_run_folder(folder)  # plots/confusion.png is written in place, never through a link
    name = path.name if path.is_dir() else folder.name or path.name
    return confusion_figure(
        result.labels, result.confusion, folder / CONFUSION_FILE, f"{name} on {result.scored}"
    )


def predict_file(path: str | Path, input_path: str | Path, proba: bool = False) -> pd.DataFrame:
    """Predictions for every row of a CSV or Parquet file."""
    from ..data.files import read_table

    predictor = load(path)
    return predictor.predict(read_table(input_path), proba=proba, where=str(input_path))

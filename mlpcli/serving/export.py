"""mlp export: a trained model as one self-contained ONNX file, checked against mlpcli itself.

The graph takes the model's input columns as float32: numeric columns in their own units, and
each category of a text column as a 0/1 column named `column=category`. It standardises them
as training did, runs the network and ends in the output transform: the probability of each
label (as `mlp predict --proba` gives them) or regression values in the targets' own units. A
JSON sidecar names the input columns, the encodings and the output columns. The export checks
itself: onnxruntime scores the run's test rows and must agree with mlpcli's own predictions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config.registry import FILE_SOURCES
from ..data import Preprocessor
from ..errors import ConfigError, DataError, MlpError
from ..model.layers import EVAL_BATCH
from ..runs.atomic import atomic_write, write_text_atomic
from ..version import __version__
from .evaluate import Predictor, load, model_path, require_network
from .stream_eval import is_sample, rows_text

FORMATS = ("onnx",)
EXTRA = 'pip install "mlpcli[onnx]"'
OPSET = 20
TOLERANCE = 1e-4  # largest difference from mlpcli's predictions (relative beyond 1) that passes
CHECK_ROWS = 65536  # at most this many of the run's rows are scored by both


class ExportError(MlpError):
    """The exported graph does not compute what the model does."""

    exit_code = 1


@dataclass
class Exported:
    path: Path
    sidecar: Path
    rows_checked: int
    checked_on: str  # which rows: "test split", ...
    max_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": str(self.path),
            "sidecar": str(self.sidecar),
            "bytes": self.path.stat().st_size,
            "rows_checked": self.rows_checked,
            "checked_on": self.checked_on,
            "max_difference": self.max_difference,
            "tolerance": TOLERANCE,
        }


def input_columns(prep: Preprocessor) -> list[str]:
    """The graph's input columns in order: a numeric feature's name, or one `name=category`
    per category of a text feature (the model's own one-hot order)."""
    names: list[str] = []
    for col in prep.features:
        if col in prep.numeric:
            names.append(col)
        else:
            names.extend(f"{col}={category}" for category in prep.categorical[col])
    return names


def output_columns(prep: Preprocessor) -> list[str]:
    if prep.task == "regression":
        return list(prep.targets)
    return [f"proba_{label}" for label in prep.labels]


class Deployable(nn.Module):
    """Standardisation, the network and the output transform, in one module to export."""

    shift: torch.Tensor
    scale: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(self, model: nn.Module, prep: Preprocessor) -> None:
        super().__init__()
        self.model, self.task = model, prep.task
        shift, scale = [], []
        for col in prep.features:
            if col in prep.numeric:
                mean, std = prep.numeric[col]
                shift.append(mean)
                scale.append(std)
            else:  # one-hot columns enter as they are
                shift.extend([0.0] * len(prep.categorical[col]))
                scale.extend([1.0] * len(prep.categorical[col]))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        targets = np.array(prep.target_scale or [[0.0, 1.0]], dtype=np.float32)
        self.register_buffer("target_mean", torch.from_numpy(targets[:, 0].copy()))
        self.register_buffer("target_std", torch.from_numpy(targets[:, 1].copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model((x - self.shift) / self.scale)
        if self.task == "classification":
            return torch.softmax(z, dim=1)
        if self.task == "binary":
            p = torch.sigmoid(z)
            return torch.cat([1 - p, p], dim=1)
        if self.task == "multilabel":
            return torch.sigmoid(z)
        return z * self.target_std + self.target_mean


def require_onnx() -> None:
    """A one-line error naming the extra when the exporter's packages are missing."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"--format onnx needs {', '.join(missing)}; install them: {EXTRA}")


def default_path(run: Path) -> Path:
    """model.onnx in a run folder; beside a model file given directly, its name with .onnx."""
    return run / "model.onnx" if run.is_dir() else run.with_suffix(".onnx")


def check_target(out: Path) -> None:
    """An -o file is the user's to name, never one that exists (nothing is overwritten)."""
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"-o {out}: expected a file name ending in .onnx")
    for path in (out, sidecar_path(out)):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"-o {out}: {path} already exists; choose another name")
    if not out.parent.is_dir():
        raise ConfigError(f"-o {out}: no such folder {out.parent}")


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def export_run(run: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Exported:
    """Write the ONNX file and its sidecar, then check them against the model's predictions."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: '{fmt}'; accepted: {', '.join(FORMATS)}")
    run = Path(run)
    model_path(run)  # the run's own error for a folder without a model, before the imports
    if out is not None:
        check_target(Path(out))
    require_onnx()
    predictor = load(run)
    require_network(predictor, run, "mlp export")
    path = Path(out) if out is not None else default_path(run)
    module = Deployable(predictor.model, predictor.preprocessor).eval()
    graph = to_onnx(module, len(input_columns(predictor.preprocessor)))
    inputs, expected, checked_on = check_rows(predictor, run)
    got = run_onnx(graph, inputs)
    difference = largest_difference(got, expected)
    if not difference <= TOLERANCE:  # NaN fails too
        raise ExportError(
            f"the ONNX graph differs from the model's predictions by {difference:.3g} on "
            f"{checked_on} (accepted: {TOLERANCE:g}); nothing was written"
        )
    atomic_write(path, lambda f: f.write(graph))
    sidecar = sidecar_path(path)
    write_text_atomic(sidecar, json.dumps(describe(predictor, path, run), indent=2) + "\n")
    return Exported(path, sidecar, len(inputs), checked_on, difference)


def to_onnx(module: nn.Module, width: int) -> bytes:
    """The module as ONNX bytes, weights inside, with a variable batch size. The exporter's
    progress lines and warnings are not the user's business: kept off stdout and stderr."""
    example = torch.zeros(2, width)
    batch = torch.export.Dim("batch")
    chatter = io.StringIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter's own failure, with what it said
        raise ExportError(
            f"torch.onnx.export failed ({exc.__class__.__name__}: {str(exc)[:300]})"
        ) from None
    finally:
        quiet.setLevel(level)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    return bytes(program.model_proto.SerializeToString())


def largest_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference, relative to the value where that exceeds 1: float32 outputs (as
    ONNX gives them) of regression targets in the thousands differ from float64 ones in their
    fourth decimal, however exact the graph."""
    if not len(expected):
        return 0.0
    return float((np.abs(got - expected) / np.maximum(1.0, np.abs(expected))).max())


def run_onnx(graph: bytes, inputs: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for the input rows, in batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    parts = [
        session.run(None, {"input": inputs[i : i + EVAL_BATCH]})[0]
        for i in range(0, len(inputs), EVAL_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def raw_inputs(prep: Preprocessor, table: Any, where: str) -> np.ndarray:
    """The graph's inputs for a table: transform() without the standardisation the graph does."""
    unscaled = Preprocessor.from_dict(
        {**prep.to_dict(), "numeric": {c: [0.0, 1.0] for c in prep.numeric}}
    )
    return unscaled.transform(table, where, before="exporting")


def expected_outputs(predictor: Predictor, table: Any, where: str) -> np.ndarray:
    """What mlpcli predicts for the rows, as the graph's outputs are laid out."""
    prep = predictor.preprocessor
    out = predictor.outputs(table, where)
    if prep.task == "binary":
        return np.c_[1 - out[:, 0], out[:, 0]]
    if prep.task == "regression":
        return prep.unscale(out)
    return out


def check_rows(predictor: Predictor, run: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Inputs and mlpcli's predictions for the run's test rows (else its validation or training
    rows), at most CHECK_ROWS of them; rows drawn around the training means where none can be
    read (a model file alone of a file source: the path in its metadata is not opened)."""
    if run.is_dir() or predictor.config.data.source not in FILE_SOURCES:
        for name in ("test", "val", "train"):
            try:
                table = predictor.head(name, CHECK_ROWS)
            except DataError:
                continue
            if len(table):
                # A streamed run's split is read only so far: the message says how far.
                checked = f" ({rows_text(table)})" if is_sample(table) else ""
                where = f"{name} split"
                inputs = raw_inputs(predictor.preprocessor, table, where)
                return inputs, expected_outputs(predictor, table, where), f"the {where}{checked}"
    return synthetic_check(predictor)


def synthetic_check(predictor: Predictor) -> tuple[np.ndarray, np.ndarray, str]:
    """1,024 rows around the training rows: each numeric input its mean plus its standard
    deviation times a normal draw, each text input one of its categories at random."""
    import pandas as pd

    prep = predictor.preprocessor
    rng = np.random.default_rng(0)
    n = 1024
    columns: dict[str, Any] = {}
    for col in prep.features:
        if col in prep.numeric:
            mean, std = prep.numeric[col]
            columns[col] = mean + std * rng.standard_normal(n)
        else:
            columns[col] = rng.choice(np.array(prep.categorical[col], dtype=object), n)
    frame = pd.DataFrame(columns)
    where = "rows drawn around the training means"
    return raw_inputs(prep, frame, where), expected_outputs(predictor, frame, where), where


def describe(predictor: Predictor, path: Path, run: Path) -> dict[str, Any]:
    """The sidecar: what each input and output column is."""
    prep = predictor.preprocessor
    meaning = {
        "regression": "predicted values in the targets' own units",
        "binary": "the probability of each class",
        "classification": "the probability of each class",
        "multilabel": "the probability that each label is 1",
    }[prep.task]
    return {
        "format": "onnx",
        "opset": OPSET,
        "file": path.name,
        "task": prep.task,
        "input": {
            "name": "input",
            "dtype": "float32",
            "shape": ["batch", len(input_columns(prep))],
            "columns": input_columns(prep),
            "numeric": {c: {"mean": m, "std": s} for c, (m, s) in prep.numeric.items()},
            "categorical": prep.categorical,
            "note": (
                "numeric columns in their own units (the graph standardises them); each "
                "category of a text column is a 0/1 column named column=category"
            ),
        },
        "output": {
            "name": "output",
            "dtype": "float32",
            "shape": ["batch", len(output_columns(prep))],
            "columns": output_columns(prep),
            "meaning": meaning,
        },
        "labels": prep.labels,
        "targets": prep.targets,
        "source": {"model": str(model_path(run).name), "mlpcli": __version__},
    }

"""The typed Python API: one function per `mlp` command, the one that command calls, for
notebooks and scripts too. Each imports its capability when called, so `import mlpcli` stays
free of torch; what a command returns is what its function returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .config.schema import Config, load_config
from .runs.folder import SWEEP_FILE

if TYPE_CHECKING:
    import pandas as pd

    from .insight.figures import PlotResult
    from .insight.inspection import Inspection
    from .serving.evaluate import Evaluation, Predictor
    from .serving.export import Exported
    from .sweeps.runner import SweepResult
    from .training.lr_find import LrFind
    from .training.run import TrainResult

__all__ = [
    "Config",
    "evaluate",
    "export",
    "inspect",
    "load",
    "load_config",
    "lr_find",
    "plot",
    "predict",
    "predict_to",
    "summary",
    "sweep",
    "train",
]


def train(
    config: Config | str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any
) -> TrainResult:
    """Train a config (a file, or a Config) into a run folder; `mlp train`. Options: out, name,
    resume, quiet, callbacks, world (see mlpcli.training.run.train). `--baseline NAMES` is the
    config key train.baseline (the override "train.baseline=linear,kernel")."""
    from .training.run import train as train_run

    return train_run(config, overrides, **options)


def lr_find(
    config: Config | str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any
) -> LrFind:
    """The learning-rate range test of a config, and its suggested optim.lr; `mlp lr-find`.
    Options: start, end, steps, out, output, plot (see mlpcli.training.run.find_lr)."""
    from .training.run import find_lr

    return find_lr(config, overrides, **options)


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """A trained model from a run folder or a model file, ready to predict and score."""
    from .serving.evaluate import load as load_model

    return load_model(path, device)


def evaluate(
    run: str | Path, data: str | Path | None = None, split: str = "test", plot: bool = False
) -> Evaluation:
    """Score a run on one of its splits or a labelled file; `mlp eval`."""
    from .serving.evaluate import score_run

    return score_run(run, data, split, plot=plot)


def predict(run: str | Path, rows: str | Path, proba: bool = False) -> pd.DataFrame:
    """Predict every row of a CSV or Parquet file; `mlp predict`."""
    from .serving.evaluate import predict_file

    return predict_file(run, rows, proba=proba)


def predict_to(
    run: str | Path, rows: str | Path, output: str | Path | IO[bytes], proba: bool = False
) -> int:
    """Predict every row of a CSV, Parquet or NPZ file, or a folder or glob of Parquet files,
    into a new .csv or .parquet file (written whole or not at all) or a binary stream (CSV);
    the rows written. A file that fits in memory is read whole; anything else a chunk at a
    time, memory bounded by a chunk; `mlp predict`."""
    from .serving.predict import predict_to as predict_chunked

    return predict_chunked(run, rows, output, proba=proba)


def sweep(
    config: Config | str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any
) -> SweepResult:
    """Train a grid of variations of a config, or search a space of them; `mlp sweep`. Options:
    hidden, depth, params, grid, seeds, search, trials, prune, space, workers, out, name, resume,
    quiet, ray (see mlpcli.sweeps.runner.run_sweep)."""
    from .sweeps.runner import run_sweep

    return run_sweep(config, list(overrides), **options)


def inspect(
    run: str | Path,
    at: str = "best",
    data: str | Path | None = None,
    probes: bool = False,
    noise: bool = False,
) -> tuple[Inspection, list[Path]]:
    """Why a run's network learns or fails, layer by layer; `mlp inspect`. With probes, a
    linear probe per layer; with noise, the gradient noise scale. Returns the report and the
    files written."""
    from .insight.inspection import inspect_run

    return inspect_run(run, at, data, probes=probes, noise=noise)


def plot(target: str | Path, **options: Any) -> PlotResult:
    """The figures of `mlp plot` for a run folder, a model file or a sweep folder. Options:
    boundary, detectors, features, neurons, data."""
    if Path(target).is_dir() and (Path(target) / SWEEP_FILE).is_file():
        from .sweeps.boundaries import plot_sweep

        return plot_sweep(Path(target), **options)
    from .insight.figures import plot_run

    return plot_run(target, **options)


def export(run: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Exported:
    """The model as one self-contained ONNX file, checked by onnxruntime; `mlp export`."""
    from .serving.export import export_run

    return export_run(run, fmt, out)


def summary(target: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The network a config, run or model file describes, layer by layer; `mlp summary`."""
    from .insight.summary import summarize

    return summarize(target, overrides)

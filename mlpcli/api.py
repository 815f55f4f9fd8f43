"""The typed Python API: one function per `mlp` command, the one that command calls, for
notebooks and scripts too. Each imports its capability when called, so `import mlpcli` stays
free of torch; what a command returns is what its function returns.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .config.schema import Config, as_config, load_config
from .errors import Interrupted, MlpError
from .runs.folder import SWEEP_FILE

if TYPE_CHECKING:
    import pandas as pd

    from .data.starter import InitResult
    from .insight.figures import PlotResult
    from .insight.inspection import Inspection
    from .pages.build import Report
    from .runs.comparison import Comparison
    from .runs.listing import RunRow
    from .serving.evaluate import Evaluation, Predictor
    from .serving.export import Exported
    from .sweeps.runner import SweepResult
    from .training.lr_find import LrFind
    from .training.run import TrainResult

__all__ = [
    "Config",
    "compare",
    "config_schema",
    "evaluate",
    "export",
    "init_config",
    "inspect",
    "list_runs",
    "load",
    "load_config",
    "lr_find",
    "plot",
    "predict",
    "predict_to",
    "report",
    "summary",
    "sweep",
    "train",
]


def train(
    config: Config | str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any
) -> TrainResult:
    """Train a config (a file, or a Config) into a run folder; `mlp train`. Options: out, name,
    resume, quiet, callbacks, world, command (see mlpcli.training.run.train). `--baseline
    NAMES` is the config key train.baseline (the override "train.baseline=linear,kernel").
    With train.report, the run's page is written once it ends, even by an error; a page
    that cannot be written is a note in the result's notes, not an error."""
    from .training.run import train as train_run

    config = as_config(config, overrides)
    try:
        result = train_run(config, **options)
    except (MlpError, Interrupted) as exc:
        # A run that failed or was stopped has its page too: what went wrong is worth seeing.
        if exc.run_dir is not None and config.train.report:
            with contextlib.suppress(MlpError, KeyboardInterrupt):  # the error is the news
                _after(exc.run_dir, config)
        raise
    if result.summary:  # process 0, which wrote the run folder
        notes, result.report = _after(result.run_dir, config)
        result.notes += notes
    return result


def _after(folder: Path, config: Config) -> tuple[list[str], Path | None]:
    """What train.report asks for once a run or a sweep has ended: notes of what failed, and
    the page written (None without train.report, or when it could not be written)."""
    if not config.train.report:
        return [], None
    from .pages.build import write_report

    try:
        page = write_report(folder, draw="cheap")
    except MlpError as exc:  # the run itself is done and recorded; only its page is missing
        return [f"the page was not written: {exc}; `mlp report {folder}` tries again"], None
    if not config.train.mlflow:
        return page.notes, page.path
    from .runs.mlflow_log import log_files

    return [*page.notes, *log_files(folder, [page.path])], page.path


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

    # Read once, before the sweep: the file may be edited or removed while the trials run.
    source = None if isinstance(config, Config) else str(config)
    config = as_config(config, list(overrides))
    result = run_sweep(config, source=source, **options)
    notes, result.report = _after(result.sweep_dir, config)
    result.notes += notes
    return result


def report(target: str | Path, output: str | Path | None = None, draw: bool = True) -> Report:
    """One self-contained HTML page of a run folder or a sweep folder, written to `output` or
    TARGET/report.html; `mlp report`. With draw, a run's missing figures are drawn first (into
    its plots/) where its files and data allow."""
    from .pages.build import write_report

    return write_report(target, output, draw="all" if draw else "none")


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


def config_schema(output: str | Path | None = None) -> dict[str, Any]:
    """The JSON Schema of a config file, for editors; `mlp config schema`. With output, also
    written there (atomically): a file that holds a schema this wrote is rewritten, any other
    existing path refused."""
    from .config.json_schema import TITLE, holds_schema, schema_text
    from .config.json_schema import config_schema as make_schema
    from .runs.atomic import check_output

    path = None
    if output is not None:
        refused = f"it is not a config schema (title {TITLE!r}); give another file name"
        path = check_output(output, replace=holds_schema, what=refused)
    schema = make_schema()
    if path is not None:
        from .runs.atomic import write_text_atomic

        write_text_atomic(path, schema_text(schema))
    return schema


def init_config(
    table: str | Path,
    targets: list[str] | None = None,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """A commented starter config for a CSV, Parquet or NPZ table; `mlp init`. Without targets
    nothing is written: the result lists the columns and their kinds."""
    from .data.starter import write_starter

    return write_starter(table, targets, output, name=name, force=force)


def compare(runs: list[str | Path], output: str | Path | None = None) -> Comparison:
    """Two or more run folders side by side: the settings that differ, the metrics of every
    split and baseline, epochs, parameters and times; `mlp compare`. With output, the loss
    curves of every run in one PNG figure there (an existing file is refused, before any run
    is read)."""
    from .runs.atomic import check_output
    from .runs.comparison import compare_runs

    path = check_output(output) if output is not None else None
    comparison = compare_runs(list(runs))
    if path is not None:
        from .plots import compare_curves

        curves = [(r.name, r.curves["train"], r.curves["val"]) for r in comparison.runs]
        title = "compare: " + ", ".join(r.name for r in comparison.runs)
        comparison.figure = compare_curves(curves, path, title)
    return comparison


def list_runs(folder: str | Path = "runs", sort: str | None = None) -> list[RunRow]:
    """Every entry of `folder` as a row, newest first or, with `sort`, by a metric best first
    (`val_accuracy`, `test_loss`; a bare name is its val value); `mlp runs`."""
    from .runs.listing import list_runs as listed

    return listed(folder, sort)

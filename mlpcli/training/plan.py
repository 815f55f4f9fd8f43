"""What a training run will be, checked before torch is imported.

The data is read and split, the preprocessing fitted, the loss and the early-stopping monitor
checked against the task the data makes, and the host memory the run needs checked against what
the machine has: every mistake in a config or a data file surfaces here, in about the time
`mlp config show` takes. Only then does `mlp train` pay for importing torch.

A stream (data.stream: true) is planned from its Parquet footers alone, in about the same time:
its statistics pass reads every row, so it runs later, in each process (run.prepare).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..config.registry import TASKS
from ..config.schema import Config, loss_name
from ..data import Dataset, Preprocessor, fit_preprocessor, load_dataset
from ..data.targets import check_regression_targets
from ..errors import ConfigError, DataError
from ..resources import memory
from ..resources.kernel_memory import check_kernel_memory

if TYPE_CHECKING:
    from ..data.stream.footer import StreamSource
    from ..data.stream.stats import StreamFit


@dataclass
class RunPlan:
    """A checked config with its data, preprocessing and memory estimate."""

    config: Config
    dataset: Dataset
    prep: Preprocessor
    needs: memory.Estimate


@dataclass
class StreamPlan:
    """A checked config on a stream: its files and row groups (footers only), and the memory
    it needs, which does not grow with its rows."""

    config: Config
    source: StreamSource
    needs: memory.Estimate


def plan_run(config: Config, dataset: Dataset | None = None) -> RunPlan | StreamPlan:
    """Every check of a run that needs no torch; raises the user's errors (exit 2).

    A dataset already loaded for this config's data section and seed may be passed in (a sweep
    worker reuses one across trials).
    """
    if config.data.stream:
        return plan_stream(config)
    return plan_table(config, dataset)


def _require_extras(config: Config) -> None:
    """The optional packages the config's train settings need (tensorboard, mlflow): one line
    naming the extra to install, before any data is read."""
    if config.train.tensorboard:
        from ..runs.tracking import require_tensorboard

        require_tensorboard()
    if config.train.mlflow:
        from ..runs.mlflow_log import require_mlflow

        require_mlflow()


def plan_table(
    config: Config, dataset: Dataset | None = None, what: str = "this command"
) -> RunPlan:
    """plan_run of a config whose table is read into memory; a stream is refused, naming
    `what` needs the table."""
    if config.data.stream:
        raise ConfigError(
            f"data.stream: {what} reads the whole table into memory, which a stream never "
            f"holds; mlp train trains on a stream (or set data.stream: false if it fits)"
        )
    _require_extras(config)
    dataset = dataset or load_dataset(config)
    prep = fit_preprocessor(config, dataset)
    check_regression_targets(dataset, config.data)
    loss_name(config, dataset.task)  # raises when the loss does not fit the data's task
    check_monitor(config, dataset.task, has_val=len(dataset.val) > 0)
    rows = len(dataset.train) + len(dataset.val) + len(dataset.test)
    needs = memory.estimate(config, rows, prep.in_dim, prep.out_dim)
    # The data is read into host memory whatever the device: check that part now; the model's
    # share is checked once the device is known.
    memory.check(replace(needs, model_bytes=0, activation_bytes=0), config)
    if "kernel" in config.train.baseline:  # refused before the MLP trains, not after
        check_kernel_memory(len(dataset.train), max(len(dataset.val), len(dataset.test)))
    return RunPlan(config, dataset, prep, needs)


def plan_stream(config: Config) -> StreamPlan:
    """The footers of a stream's files, their columns checked, and the memory it needs: cheap,
    so that `mlp train --nproc` runs it before starting the processes."""
    from ..data.stream.stats import open_stream, used_columns

    _require_extras(config)
    source = open_stream(config)
    # The inputs and outputs are known once the statistics pass has read the categories and
    # classes; a column each is the least they can be.
    features, targets = used_columns(config, source)
    used = len(features) + len(targets)
    needs = _stream_needs(config, source, len(features), len(targets), used)
    memory.check(needs.data_only(), config)
    return StreamPlan(config, source, needs)


def _stream_needs(
    config: Config, source: StreamSource, in_dim: int, out_dim: int, columns: int
) -> memory.Estimate:
    """The memory of a stream whose network has in_dim inputs and out_dim outputs, reading
    `columns` columns."""
    from ..data.stream.chunks import CHUNK_ROWS
    from ..data.stream.reservoir import SAMPLE_ROWS

    largest = max((group.bytes for group in source.groups), default=0)
    return memory.stream_estimate(
        config,
        in_dim,
        out_dim,
        columns,
        largest,
        source.rows,
        min(SAMPLE_ROWS, source.rows),
        CHUNK_ROWS,
    )


def check_stream(config: Config, fit: StreamFit, processes: int = 1) -> memory.Estimate:
    """The checks of plan_run that need the task a stream's statistics pass found: the loss,
    the early-stopping monitor, the row groups' share among the processes; and the memory
    estimate with the real inputs and outputs."""
    from ..data.stream.hashsplit import TRAIN

    loss_name(config, fit.task)
    check_monitor(config, fit.task, has_val=fit.counts["val"] > 0)
    train = config.train
    check_shares(
        fit.group_counts[:, TRAIN],
        config.seed,
        train.epochs,
        train.batch_size,
        processes,
        str(config.data.path),
    )
    used = len(fit.features) + len(fit.targets)
    return _stream_needs(config, fit.source, fit.prep.in_dim, fit.prep.out_dim, used)


# The most of a stream's training rows an epoch of several processes may leave out: each process
# reads whole row groups of its own, and all take as many steps as the one with the fewest rows.
SIT_OUT = 0.1


def check_shares(
    train_rows: np.ndarray, seed: int, epochs: int, batch_size: int, processes: int, where: str
) -> None:
    """Refuse a stream whose row groups (their training rows: train_rows) the processes cannot
    share: an epoch of epochs 1..epochs with no step, or one leaving out more than SIT_OUT of
    the training rows. One process trains on every row."""
    from ..data.splits import batch_part
    from ..data.stream.order import plan_epoch

    if processes <= 1:
        return
    total = int(train_rows.sum())
    start, stop = batch_part(batch_size, 0, processes)  # the first process's part is widest
    widest = stop - start
    # The greedy deal leaves no process more than the largest row group above the one with
    # the fewest rows: when even that worst case trains enough, no epoch need be dealt here.
    fewest = (total - (processes - 1) * int(train_rows.max(initial=0))) // processes
    steps = max(fewest, 0) // widest
    if steps and total - steps * batch_size <= SIT_OUT * total:
        return
    steps = min(
        len(plan_epoch(train_rows, seed, epoch, batch_size, 0, processes).sizes)
        for epoch in range(1, epochs + 1)
    )
    left = total - steps * batch_size
    if steps and left <= SIT_OUT * total:
        return
    groups = int((train_rows > 0).sum())
    raise DataError(
        f"{where}: {processes} processes would train on {total - left:,} of its {total:,} "
        f"training rows in an epoch ({left / max(total, 1):.0%} left out): each process reads "
        f"whole row groups of its own and all take the steps of the one with the fewest rows, "
        f"so {groups:,} row group{'s are' if groups != 1 else ' is'} too few or too uneven to "
        f"share; write the files with smaller row groups (pyarrow.parquet.write_table's "
        f"row_group_size) or train in fewer processes"
    )


def check_monitor(config: Config, task: str, has_val: bool) -> None:
    """Early stopping must watch a metric this task reports, on a split that exists."""
    stop = config.train.early_stopping
    if stop is None:
        return
    metric = stop.monitor.removeprefix("val_")
    if stop.monitor.startswith("val_"):
        if not has_val:
            raise ConfigError(
                f"train.early_stopping.monitor: '{stop.monitor}' needs validation rows; "
                f"set data.val_split > 0 or data.val_path, or monitor train_loss"
            )
        if metric != "loss" and metric not in TASKS[task][2]:
            accepted = ", ".join(["val_loss", *(f"val_{m}" for m in TASKS[task][2]), "train_loss"])
            raise ConfigError(
                f"train.early_stopping.monitor: '{stop.monitor}' is not reported for a {task} "
                f"task; accepted: {accepted}"
            )

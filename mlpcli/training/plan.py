"""What a training run will be, checked before torch is imported.

The data is read and split, the preprocessing fitted, the loss and the early-stopping monitor
checked against the task the data makes, and the host memory the run needs checked against what
the machine has: every mistake in a config or a data file surfaces here, in about the time
`mlp config show` takes. Only then does `mlp train` pay for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config.registry import TASKS
from ..config.schema import Config, loss_name
from ..data import Dataset, Preprocessor, fit_preprocessor, load_dataset
from ..data.targets import check_regression_targets
from ..errors import ConfigError
from ..resources import memory
from ..resources.kernel_memory import check_kernel_memory


@dataclass
class RunPlan:
    """A checked config with its data, preprocessing and memory estimate."""

    config: Config
    dataset: Dataset
    prep: Preprocessor
    needs: memory.Estimate


def plan_run(config: Config, dataset: Dataset | None = None) -> RunPlan:
    """Every check of a run that needs no torch; raises the user's errors (exit 2).

    A dataset already loaded for this config's data section and seed may be passed in (a sweep
    worker reuses one across trials).
    """
    if config.train.tensorboard:
        from ..runs.tracking import require_tensorboard

        require_tensorboard()
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

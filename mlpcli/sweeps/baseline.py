"""A sweep's linear baseline: one extra point, the base config with `model.hidden: []`, trained
with each of the sweep's seeds. `train.baseline: true` in the base config (or `--baseline`) asks
for it; the trials themselves train no baseline of their own.
"""

from __future__ import annotations

import copy
from typing import Any

from ..config.schema import Config, SweepConfig, build_config
from ..console import BASELINE_LABEL
from ..errors import ConfigError
from ..training.baseline import linear_raw
from .grid import Trial

KEY = "train.baseline"


def check_baseline_key(sweep: SweepConfig) -> None:
    """The baseline is one point of the whole sweep, so it cannot vary from point to point."""
    for where, keys in (("sweep.grid", sweep.grid), ("sweep.zip", sweep.zip)):
        if KEY in keys:
            raise ConfigError(
                f"{where}: {KEY} cannot be swept; a sweep trains one {BASELINE_LABEL} point "
                f"for all its trials: set {KEY}: true in the base config, or pass --baseline"
            )


def baseline_trials(
    config: Config, trials: list[Trial], base: dict[str, Any]
) -> tuple[list[Trial], list[dict[str, Any]]]:
    """The baseline point's trials (one per seed, after the grid's) and their resolved configs.

    `base` is the trials' base mapping: the config without its sweep section, its data seed set.
    """
    point = max((t.point for t in trials), default=-1) + 1
    extra, configs = [], []
    for s in range(config.sweep.seeds):
        trial = Trial(len(trials) + s, point, {"model.hidden": []}, config.seed + s, baseline=True)
        raw = linear_raw({**copy.deepcopy(base), "seed": trial.seed, "name": trial.name})
        configs.append(build_config(raw, source=f"sweep point {trial.label()}").to_dict())
        extra.append(trial)
    return extra, configs

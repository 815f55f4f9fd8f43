"""A sweep's baselines: one extra point for each name in the base config's `train.baseline` (or
`--baseline NAMES`), run with each of the sweep's seeds: the linear one is the base config with
`model.hidden: []`, the kernel one the base config's data fitted by kernel ridge regression
(executors.local.run_trial runs it). The trials themselves train no baseline of their own.
"""

from __future__ import annotations

import copy
from typing import Any

from ..config.schema import Config, SweepConfig, build_config
from ..errors import ConfigError
from ..training.baselines.fit import linear_raw
from .grid import Trial

KEY = "train.baseline"


def check_baseline_key(sweep: SweepConfig) -> None:
    """The baseline is one point of the whole sweep, so it cannot vary from point to point."""
    for where, keys in (("sweep.grid", sweep.grid), ("sweep.zip", sweep.zip)):
        if KEY in keys:
            raise ConfigError(
                f"{where}: {KEY} cannot be swept; a sweep trains one point per baseline for "
                f"all its trials: set {KEY} (e.g. [linear, kernel]) in the base config, or "
                f"pass --baseline"
            )


def baseline_trials(
    config: Config, trials: list[Trial], base: dict[str, Any]
) -> tuple[list[Trial], list[dict[str, Any]]]:
    """The baseline points' trials (one per seed, after the grid's, a point per baseline) and
    their resolved configs.

    `base` is the trials' base mapping: the config without its sweep section, its data seed set.
    """
    point = max((t.point for t in trials), default=-1) + 1
    extra: list[Trial] = []
    configs = []
    for name in config.train.baseline:
        settings: dict[str, Any] = {"model.hidden": []} if name == "linear" else {}
        for s in range(config.sweep.seeds):
            index = len(trials) + len(extra)
            trial = Trial(index, point, settings, config.seed + s, baseline=name)
            raw = {**copy.deepcopy(base), "seed": trial.seed, "name": trial.name}
            if name == "linear":
                raw = linear_raw(raw)
            configs.append(build_config(raw, source=f"sweep point {trial.label()}").to_dict())
            extra.append(trial)
        point += 1
    return extra, configs

"""A sweep's trials and each one's resolved config, all validated before anything runs."""

from __future__ import annotations

import copy
from typing import Any

from ..config.schema import Config, build_config, set_key
from ..errors import ConfigError
from .baseline import baseline_trials, check_baseline_key
from .budget import budget_trials
from .grid import Trial, expand


def plan_trials(config: Config) -> tuple[list[Trial], list[dict[str, Any]]]:
    """Every trial and its resolved config, all validated before anything runs."""
    sweep = config.sweep
    check_baseline_key(sweep)
    base = sweep_base(config)
    if sweep.params is not None:
        trials = budget_trials(config, base)
    else:
        trials = expand(sweep.grid, sweep.zip, sweep.seeds, config.seed)
    configs = []
    problems: dict[str, list[str]] = {}  # a problem, once, with the points that have it
    for trial in trials:
        try:
            configs.append(
                point_config(base, trial.settings, trial.seed, trial.name, trial.label())
            )
        except ConfigError as exc:
            header, _, body = str(exc).partition("\n")
            problems.setdefault(body or header, []).append(header)
    if problems:
        raise ConfigError("\n".join(_once(body, headers) for body, headers in problems.items()))
    if config.train.baseline:
        extra, extra_configs = baseline_trials(config, trials, base)
        trials, configs = trials + extra, configs + extra_configs
    return trials, configs


def sweep_base(config: Config) -> dict[str, Any]:
    """The mapping every trial's config starts from: the config without its sweep section."""
    base = config.to_dict()
    base.pop("sweep")
    if base["data"]["seed"] is None:
        base["data"]["seed"] = config.seed  # seeds vary the training, not the rows
    base["train"]["baseline"] = False  # the sweep's baseline is one point, not one per trial
    return base


def point_config(
    base: dict[str, Any], settings: dict[str, Any], seed: int, name: str, label: str
) -> dict[str, Any]:
    """One trial's resolved config: base with its settings, seed and name; a ConfigError
    names the point by label."""
    raw = {**copy.deepcopy(base), "seed": seed, "name": name}
    for key, value in settings.items():
        set_key(raw, key, value, where=f"sweep key '{key}'")
    return build_config(raw, source=f"sweep point {label}").to_dict()


def _once(body: str, headers: list[str]) -> str:
    """A problem shared by several points, named with its first point and how many more."""
    more = len(set(headers)) - 1
    header = headers[0] + (f" (and {more} more sweep points)" if more else "")
    return f"{header}\n{body}" if body != headers[0] else header

"""Sweeps at one parameter budget: each depth gets the uniform width whose parameter count is
nearest the budget (`mlp sweep --params N --depth 1,2,3`, or sweep.params and sweep.depth).

The count is count_parameters' for each point's own config (its norm layers, bias, learnable
Swish) and its data's input and output widths, read before torch the way a run's plan reads them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..config.schema import Config, SweepConfig, build_config, set_key
from ..data import fit_preprocessor, load_dataset
from ..errors import ConfigError
from ..resources.memory import count_parameters
from .grid import Trial, expand

LAYERS = "model.hidden"  # the setting a budget chooses
WHERE = "sweep.params (--params)"


def merge_budget(
    sweep: SweepConfig,
    hidden_now: list[int],
    params: list[int] | None,
    hidden: list[int] | None,
    depth: list[int] | None,
    given: dict[str, list[Any]],
    source: str,
) -> None:
    """--params and --depth merged into `sweep` (changed in place) as sweep.params and
    sweep.depth. --params without --depth keeps the depths of the file's model.hidden (its
    sweep.grid lists, or its one model.hidden); options that would set the layers a second way
    are refused, naming both."""
    if params is not None:
        _check_counts("--params", params)
    if depth is not None:
        _check_counts("--depth", depth)
    budget = "--params" if params is not None else f"sweep.params of {source}"
    if hidden:
        raise ConfigError(
            f"--hidden and {budget} both set the hidden layers: a budget chooses each depth's "
            f"width; give the depths with --depth, or drop {budget.split(' ')[0]}"
        )
    if LAYERS in given:
        raise ConfigError(
            f"--grid {LAYERS} and {budget} both set the hidden layers; give the depths with --depth"
        )
    if LAYERS in sweep.zip:
        raise ConfigError(
            f"{budget}: {LAYERS} is in sweep.zip of {source}, where its values are paired with "
            f"other keys; remove it there to sweep a parameter budget"
        )
    layers = sweep.grid.pop(LAYERS, None)  # the budget replaces the file's list of layers
    if params is not None:
        sweep.params = params
    if depth is not None:
        sweep.depth = depth
    elif sweep.depth is None:
        depths = list(dict.fromkeys(len(h) for h in layers or [hidden_now]))
        if 0 in depths:
            raise ConfigError(
                f"{budget}: {source} has a linear model (model.hidden: []) and a budget needs "
                f"hidden layers; give the depths with --depth, e.g. --depth 1,2,3"
            )
        sweep.depth = depths


def _check_counts(flag: str, values: Sequence[Any]) -> None:
    bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise ConfigError(f"{flag}: expected positive integers, got {bad[0]!r}")


def budget_depths(config: Config) -> list[int]:
    """sweep.depth, or the one depth of model.hidden."""
    if config.sweep.depth is not None:
        return config.sweep.depth
    if not config.model.hidden:
        raise ConfigError(
            "sweep.params: model.hidden is [] (a linear model) and a budget needs hidden "
            "layers; give the depths in sweep.depth, e.g. [1, 2, 3]"
        )
    return [len(config.model.hidden)]


def with_layers(config: Config, hidden: list[int]) -> Config:
    """The config with other hidden layers; nothing else in it changes, so it is not
    validated again (an activation list of another length is the plan's to refuse)."""
    return config.model_copy(update={"model": config.model.model_copy(update={"hidden": hidden})})


def width_for_budget(config: Config, depth: int, budget: int, in_dim: int, out_dim: int) -> int:
    """The width w >= 1 whose `depth` layers of w units give the parameter count nearest
    `budget` (ties to the smaller width). The count grows with w, so a doubling search brackets
    the first width at or above the budget and a bisection finds it."""

    def count(width: int) -> int:
        return count_parameters(with_layers(config, [width] * depth), in_dim, out_dim)

    least = count(1)
    if least > budget:
        raise ConfigError(
            f"{WHERE}: a budget of {budget:,} parameters is below the {least:,} that "
            f"{_count(depth, 'hidden layer')} of width 1 take on {_count(in_dim, 'input')} and "
            f"{_count(out_dim, 'output')}; give a budget of at least {least:,}, or fewer layers"
        )
    high = 1
    while count(high) < budget:
        high *= 2
    low = high // 2  # count(low) < budget whenever high > 1
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle) < budget:
            low = middle
        else:
            high = middle
    if high > 1 and budget - count(high - 1) <= count(high) - budget:
        return high - 1
    return high


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def budget_trials(config: Config, base: dict[str, Any]) -> list[Trial]:
    """The plan of a budget sweep: (budget, depth) pairs crossed with sweep.grid, zipped rows
    and seeds, each point given the width nearest its budget for its own config and data.

    `base` is the trials' base mapping: the config without its sweep section, its data seed set.
    """
    sweep = config.sweep
    assert sweep.params is not None
    pairs = [(n, d) for n in sweep.params for d in budget_depths(config)]
    trials = expand({LAYERS: pairs, **sweep.grid}, sweep.zip, sweep.seeds, config.seed)
    dims: dict[str, tuple[int, int]] = {}  # per data section read
    widths: dict[int, int] = {}  # per point
    planned = []
    for trial in trials:
        budget, depth = trial.settings[LAYERS]
        if trial.point not in widths:
            widths[trial.point] = _point_width(trial, base, budget, depth, dims)
        settings = {**trial.settings, LAYERS: [widths[trial.point]] * depth}
        planned.append(replace(trial, settings=settings, budget=budget))
    return planned


def _point_width(
    trial: Trial,
    base: dict[str, Any],
    budget: int,
    depth: int,
    dims: dict[str, tuple[int, int]],
) -> int:
    """The width nearest `budget` at `depth` for this point's own config and data."""
    raw = {**copy.deepcopy(base), "seed": trial.seed, "name": trial.name}
    try:
        for key, value in trial.settings.items():
            if key != LAYERS:
                set_key(raw, key, value, where=f"sweep key '{key}'")
        set_key(raw, LAYERS, [1] * depth, where=LAYERS)
        config = build_config(raw)
    except ConfigError:
        return 1  # the plan builds this same config next and reports its problem once
    key = json.dumps([raw["data"], raw.get("task")], sort_keys=True)
    if key not in dims:
        dataset = load_dataset(config)
        prep = fit_preprocessor(config, dataset)
        dims[key] = (prep.in_dim, prep.out_dim)
    return width_for_budget(config, depth, budget, *dims[key])

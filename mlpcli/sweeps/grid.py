"""Sweep plans: the full product of some settings, paired (zipped) values of others, and seeds.

A trial is a base config plus a few dotted-key settings and a seed. Expansion is pure and cheap
(no torch), so every trial config can be validated before the first one runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..config.bounded_yaml import safe_load
from ..config.registry import BASELINES, shown
from ..config.schema import MAX_TRIALS
from ..console import BASELINE_LABEL
from ..errors import ConfigError


@dataclass(frozen=True)
class Trial:
    index: int
    point: int  # the grid point; trials that differ only by seed share it
    settings: dict[str, Any] = field(hash=False)
    seed: int = 0
    # A baseline's point (a BASELINES name of train.baseline: linear, kernel), not a grid
    # point; "" for a grid point.
    baseline: str = ""
    budget: int | None = None  # the parameter budget (sweep.params) its width was chosen for

    @property
    def name(self) -> str:
        return f"trial-{self.index:03d}"

    def label(self) -> str:
        """'model.hidden=[16] optim.lr=0.01' for tables and messages."""
        if self.baseline == "linear":
            return f"{BASELINE_LABEL} (model.hidden=[])"
        if self.baseline:
            return f"{BASELINES[self.baseline].label} (RBF kernel ridge)"
        parts = [f"{k}={format_value(v)}" for k, v in self.settings.items()]
        if self.budget is not None:  # the width follows from it
            parts.insert(0, f"budget={self.budget}")
        return " ".join(parts) or "(base)"


def format_value(value: Any) -> str:
    """A setting as compact one-line YAML: [32,32], relu, {name: swish, beta: 2}."""
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ",".join(str(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def parse_values(text: str, where: str) -> list[Any]:
    """'8,16,32' or '[64],[32,32]' or 'relu,tanh' -> a list of YAML values."""
    try:
        values = safe_load(f"[{text}]")
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{where}: {shown(text)} is not a comma-separated list of YAML values "
            f"({getattr(exc, 'problem', exc)})"
        ) from None
    if not values:
        raise ConfigError(f"{where}: give at least one value")
    return values


def hidden_axis(
    widths: list[int] | None, depths: list[int] | None, base: list[list[int]], where: str
) -> list[list[int]]:
    """--hidden K with --depth D means D layers of width K. Either flag alone keeps the other
    dimension from `base` (the file's model.hidden lists, or its one model.hidden): --depth puts
    each of its widths at each depth, --hidden each of its depths at each width."""
    for name, values in (("--hidden", widths), ("--depth", depths)):
        bad = [v for v in values or [] if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad:
            raise ConfigError(f"{name}: expected positive integers, got {bad[0]!r}")
    if widths is None:
        uneven = next((h for h in base if len(set(h)) > 1), None)
        if uneven is not None:
            raise ConfigError(
                f"--depth: {where} has {format_value(uneven)}, whose layers differ in width; "
                f"--depth repeats one width, so give the layers with --hidden or in the file"
            )
        widths = list(dict.fromkeys(h[0] if h else 64 for h in base))
    if depths is None:
        depths = list(dict.fromkeys(len(h) for h in base))
    return [[w] * d for d in depths for w in widths]


def plan_size(grid: dict[str, list[Any]], zipped: dict[str, list[Any]], seeds: int) -> int:
    """The number of trials a plan makes, computed without making them."""
    rows = len(next(iter(zipped.values()))) if zipped else 1
    return math.prod(len(v) for v in grid.values()) * rows * seeds


def expand(
    grid: dict[str, list[Any]], zipped: dict[str, list[Any]], seeds: int, base_seed: int
) -> list[Trial]:
    """Every combination of grid values, times the zipped rows, times the seeds."""
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k} ({len(v)})" for k, v in zipped.items())
        raise ConfigError(f"sweep.zip: every list needs the same length; got {sizes}")
    both = sorted(set(grid) & set(zipped))
    if both:
        raise ConfigError(f"sweep: '{both[0]}' is in both sweep.grid and sweep.zip")
    empty = [k for k, v in {**grid, **zipped}.items() if not v]
    if empty:
        raise ConfigError(f"sweep: '{empty[0]}' has no values")
    size = plan_size(grid, zipped, seeds)
    if size > MAX_TRIALS:
        factors = " x ".join(
            [f"{len(v)} {k}" for k, v in grid.items()]
            + ([f"{len(next(iter(zipped.values())))} sweep.zip rows"] if zipped else [])
            + [f"{seeds} seeds"]
        )
        raise ConfigError(
            f"sweep: {size:,} trials ({factors}) is more than the {MAX_TRIALS:,} a sweep runs; "
            f"sweep fewer values at a time"
        )
    rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] or [{}]
    points = [
        {**dict(zip(grid, combo)), **row}
        for combo in itertools.product(*grid.values())
        for row in rows
    ]
    trials: list[Trial] = []
    for p, settings in enumerate(points):
        for s in range(seeds):
            trials.append(Trial(len(trials), p, settings, base_seed + s))
    return trials

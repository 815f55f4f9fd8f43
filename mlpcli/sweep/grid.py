"""Sweep plans: the full product of some settings, paired (zipped) values of others, and seeds.

A trial is a base config plus a few dotted-key settings and a seed. Expansion is pure and cheap
(no torch), so every trial config can be validated before the first one runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError


@dataclass(frozen=True)
class Trial:
    index: int
    point: int  # the grid point; trials that differ only by seed share it
    settings: dict[str, Any] = field(hash=False)
    seed: int = 0

    @property
    def name(self) -> str:
        return f"trial-{self.index:03d}"

    def label(self) -> str:
        """'model.hidden=[16] optim.lr=0.01' for tables and messages."""
        return " ".join(f"{k}={format_value(v)}" for k, v in self.settings.items()) or "(base)"


def format_value(value: Any) -> str:
    """A setting as compact one-line YAML: [32,32], relu, {name: swish, beta: 2}."""
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ",".join(str(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def parse_values(text: str, where: str) -> list[Any]:
    """'8,16,32' or '[64],[32,32]' or 'relu,tanh' -> a list of YAML values."""
    try:
        values = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{where}: '{text}' is not a comma-separated list of YAML values "
            f"({getattr(exc, 'problem', exc)})"
        ) from None
    if not values:
        raise ConfigError(f"{where}: give at least one value")
    return values


def hidden_axis(
    widths: list[int] | None, depths: list[int] | None, base: list[int]
) -> list[list[int]]:
    """--hidden K with --depth D means D layers of width K; either alone keeps the base's other."""
    base_depth = len(base) or 1
    base_width = base[0] if base else 64
    for name, values in (("--hidden", widths), ("--depth", depths)):
        bad = [v for v in values or [] if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad:
            raise ConfigError(f"{name}: expected positive integers, got {bad[0]!r}")
    return [[w] * d for d in (depths or [base_depth]) for w in (widths or [base_width])]


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
    rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] or [{}]
    points = [
        {**dict(zip(grid, combo)), **row}
        for combo in itertools.product(*grid.values())
        for row in rows
    ]
    trials = []
    for p, settings in enumerate(points):
        for s in range(seeds):
            trials.append(Trial(len(trials), p, settings, base_seed + s))
    return trials

"""The statistics pass of a streamed source: every row checked as load_dataset checks a table, and
the Preprocessor that Preprocessor.fit would give on the same train rows, in one read of the data
shared among ranks.

Each rank reads its row groups (every size-th, from its rank), tallies them (tally.py) and hands
its tally as one JSON text to `gather`, which returns every rank's text in rank order (one process:
its own); every rank merges them in that order, so all ranks hold the same StreamFit.

The train sample: each rank keeps a reservoir of its own train rows; once the tallies tell every
rank's train count n_r of N, rank r keeps k * n_r / N of its rows (largest remainders, a seeded
choice of its slots), and those travel in a second gathered text. All ranks' rows together are at
most SAMPLE_ROWS, each train row with the same chance to be among them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...config.messages import rows, shown
from ...errors import ConfigError, DataError, MlpError
from ..columns import Columns
from ..preprocess import Preprocessor, _counted, unseen_categories, unseen_classes
from ..sources import feature_columns, target_columns
from .footer import StreamSource
from .hashsplit import SPLITS, TRAIN, SplitRule
from .reservoir import SAMPLE_ROWS, STREAM_TAG, Reservoir, as_frame, from_json, to_json
from .rows import codes_of
from .tally import HELD_OUT, Tally
from .targets import fit_features, fit_targets, infer_stream_task

if TYPE_CHECKING:
    import pandas as pd

    from ...config.schema import Config

Gather = Callable[[str], list[str]]


@dataclass
class StreamFit:
    source: StreamSource
    rule: SplitRule
    features: list[str]
    targets: list[str]
    task: str
    prep: Preprocessor  # as Preprocessor.fit on the train rows gives it
    counts: dict[str, int]  # rows per split over the whole data
    group_counts: np.ndarray  # int64 (row groups, 3): rows per split per row group
    sample: pd.DataFrame  # up to SAMPLE_ROWS train rows: raw features and targets


def used_columns(config: Config, source: StreamSource) -> tuple[list[str], list[str]]:
    """(features, targets) as sources chooses them for a table of the first file's columns."""
    names = Columns({c: np.empty(0) for c in source.columns})
    targets = target_columns(config.data, names)
    features = feature_columns(config.data, names, targets)
    if not features:
        raise ConfigError(f"data.features: {config.data.path} has no feature columns")
    return features, targets


def open_stream(config: Config) -> StreamSource:
    """The source of a streamed config, its used columns checked in every file (footers only)."""
    assert config.data.path is not None  # the config requires a path for file sources
    source = StreamSource.open(config.data.path)
    features, targets = used_columns(config, source)
    source.check_columns(features + targets)
    return source


def column_kinds(source: StreamSource, columns: list[str]) -> tuple[list[str], list[str]]:
    """(numeric columns, boolean columns) among the given ones, by the first file's types."""
    import pyarrow as pa

    types = {c: source.schema(0).field(c).type for c in columns}
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    numeric = [c for c, t in types.items() if any(kind(t) for kind in kinds)]
    return numeric, [c for c, t in types.items() if pa.types.is_boolean(t)]


def fit_stream(
    config: Config,
    source: StreamSource,
    rank: int = 0,
    size: int = 1,
    gather: Gather = lambda text: [text],
) -> StreamFit:
    """One pass over this rank's row groups; see the module's docstring."""
    features, targets = used_columns(config, source)
    used = features + targets
    numeric, booleans = column_kinds(source, used)
    rule = SplitRule.from_config(config)
    # Targets whose distinct values matter only up to a point: numbers, unless they are classes.
    keep_all = config.task in ("binary", "classification")
    capped = [t for t in targets if t in numeric and t not in booleans and not keep_all]

    def tally() -> Tally:
        return Tally(features, targets, numeric, capped, len(source.groups))

    mine, reservoir = tally(), Reservoir(used, SAMPLE_ROWS, config.seed, rank)
    try:
        for position in range(rank, len(source.groups), size):
            group = source.groups[position]
            table = source.read(group, used)
            codes = codes_of(source, rule, group)
            reservoir.add(mine.add(position, group, table, codes))
            del table  # before the next row group is read
        text = _dumps(mine.to_json())
    except MlpError as error:
        # Every rank is in the gather below: an error of this rank's row groups travels through
        # it, so that every rank stops with it rather than waiting on this one.
        kind = type(error).__name__
        text = _dumps({"error": str(error), "kind": kind, "code": error.exit_code})
    states = [json.loads(text) for text in gather(text)]
    raise_first(states)
    merged = tally()
    for state in states:
        merged.merge(state)
    check_rows(source, merged)
    task = (
        config.task if config.task != "auto" else infer_stream_task(merged, booleans, source.rows)
    )
    if task in ("binary", "classification") and len(targets) != 1:
        raise ConfigError(
            f"task: {task} takes one target column, got {len(targets)} ({', '.join(targets)}); "
            f"several 0/1 columns are a multilabel task"
        )
    counts = {name: int(merged.group_counts[:, i].sum()) for i, name in enumerate(SPLITS)}
    check_splits(source, rule, counts)
    where = f"{config.data.path} (train split)"
    prep = Preprocessor(features=list(features), targets=list(targets), task=task)
    fit_features(prep, merged, config.data.standardize, where)
    fit_targets(prep, merged, config.data.standardize, where)
    check_held_out(str(config.data.path), prep, merged)
    shares = [int(np.asarray(s["groups"], dtype=np.int64)[:, TRAIN].sum()) for s in states]
    sample = _sample(reservoir, shares, rank, size, config.seed, gather)
    return StreamFit(
        source, rule, features, targets, task, prep, counts, merged.group_counts, sample
    )


def _dumps(state: Any) -> str:
    return json.dumps(state, separators=(",", ":"))


def raise_first(states: list[dict[str, Any]]) -> None:
    """Raise the first rank's error among the gathered states, as its class with its exit code
    (every rank alike)."""
    for state in states:
        if "error" in state:
            kind = _error_classes().get(state["kind"], MlpError)
            try:
                error = kind(state["error"])
            except TypeError:  # a class made with more than a message
                error = MlpError(state["error"])
            error.exit_code = state["code"]
            raise error


def _error_classes() -> dict[str, type[MlpError]]:
    found: dict[str, type[MlpError]] = {}
    todo: list[type[MlpError]] = [MlpError]
    while todo:
        kind = todo.pop()
        found[kind.__name__] = kind
        todo.extend(kind.__subclasses__())
    return found


def check_held_out(path: str, prep: Preprocessor, tally: Tally) -> None:
    """The val and test rows' text values and classes, refused when training never saw them, as
    Preprocessor.transform and encode_targets refuse them (split by split, features first)."""
    classes = prep.task in ("binary", "classification")
    for name in HELD_OUT:
        where = f"{path} ({name} split)"
        for col in prep.features:
            if col in prep.categorical:
                values, more = tally.held_text[name][col]
                categories = prep.categorical[col]
                unseen = sorted(set(values) - set(categories))
                if unseen:
                    raise unseen_categories(where, col, unseen, categories, more)
        held = tally.held_labels[name]
        for target in prep.targets:
            counter = held[target]
            if classes and counter is not None:
                index = {label: i for i, label in enumerate(prep.labels)}
                unseen = sorted({str(v) for v in counter if v not in index})
                if unseen:
                    raise unseen_classes(where, target, unseen, prep.labels)


def check_rows(source: StreamSource, tally: Tally) -> None:
    """load_dataset's checks of every row: missing and infinite values (counted per column in
    the first file that holds any), then a text column that is mostly numbers."""
    for file, name in enumerate(source.names):
        found = [
            f"{what} values in {_counted(dict(counts))}"
            for what, counts in (
                ("missing", tally.missing.get(file)),
                ("infinite", tally.infinite.get(file)),
            )
            if counts
        ]
        if found:
            raise DataError(f"{name}: {'; '.join(found)}; fill or drop those rows before training")
    for col in tally.text:
        parsed, total, first = tally.parsed[col]
        if total and parsed / total >= 0.5 and first is not None:
            file, row, value = first
            raise DataError(
                f"{source.names[file]}: column {shown(col)} is numeric but row {row + 1} holds "
                f"{shown(value)}; accepted: numbers only"
            )


def check_splits(source: StreamSource, rule: SplitRule, counts: dict[str, int]) -> None:
    """Refuse a split asked for that no row fell in (rows are drawn one by one, not counted)."""
    asked = {"train": 1.0, "val": rule.val, "test": rule.test}
    for name in SPLITS:
        if asked[name] > 0 and counts[name] == 0:
            fix = (
                "use more rows, or smaller data.val_split and data.test_split"
                if name == "train"
                else f"use more rows, or set data.{name}_split to 0"
            )
            raise DataError(
                f"{source.path}: none of its {rows(source.rows)} fell in the {name} split; {fix}"
            )


def _sample(
    reservoir: Reservoir, shares: list[int], rank: int, size: int, seed: int, gather: Gather
) -> pd.DataFrame:
    """The train sample of all ranks: each rank's share of it, gathered (see the docstring)."""
    if size == 1:
        return as_frame(reservoir.rows())
    total = sum(shares)
    k = min(reservoir.k, total)
    exact = np.asarray(shares, dtype=np.float64) * (k / total if total else 0.0)
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: k - int(quota.sum())]] += 1
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAM_TAG, rank, 1])))
    keep = np.sort(rng.choice(reservoir.held(), size=int(quota[rank]), replace=False))
    parts = [from_json(json.loads(t)) for t in gather(_dumps(to_json(reservoir.rows(keep))))]
    columns = {c: np.concatenate([p[c] for p in parts]) for c in reservoir.columns}
    return as_frame(columns)

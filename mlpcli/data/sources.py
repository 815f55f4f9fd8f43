"""From a config's data section to train / val / test tables, their columns and the task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.messages import rows
from ..config.registry import BUNDLED_SOURCES, FILE_SOURCES, SYNTHETIC_SOURCES, resolve, source_task
from ..config.schema import Config, DataConfig
from ..errors import ConfigError, DataError
from ..resources import memory
from .columns import Columns, Table, as_frame
from .fingerprint import data_fingerprint, file_hashes
from .preprocess import Preprocessor, check_columns, check_values, infer_task
from .splits import part_size, split_frame


@dataclass
class Dataset:
    train: Table
    val: Table
    test: Table
    features: list[str]
    targets: list[str]
    task: str
    files: dict[str, str] = field(default_factory=dict)  # data.path, ... -> sha256
    _fingerprint: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def split(self, name: str) -> Table:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def fingerprint(self) -> dict[str, Any]:
        """sha256 of the files read and of each split's rows, for the model file's metadata;
        computed once (a sweep worker's trials share one data set)."""
        if self._fingerprint is None:
            splits = {n: self.split(n) for n in ("train", "val", "test")}
            self._fingerprint = data_fingerprint(self.files, splits)
        return self._fingerprint


def read_source(data: DataConfig, seed: int) -> Table:
    """The whole table a source provides (before splitting): Columns for a synthetic source, a
    DataFrame for the others (which import pandas here, when they are used)."""
    if data.source in SYNTHETIC_SOURCES:
        rng = np.random.default_rng(seed)
        return resolve(f"mlpcli.data.synthetic.{data.source}")(data.n_samples, data.noise, rng)
    if data.source in BUNDLED_SOURCES:
        from .synthetic import bundled

        return bundled(data.source)
    from .files import read_table

    assert data.path is not None  # the config requires a path for file sources
    return read_table(data.path, data.source)


def target_columns(data: DataConfig, frame: Table) -> list[str]:
    if data.target is not None:
        targets = [data.target] if isinstance(data.target, str) else list(data.target)
        check_columns(frame, targets, str(data.path), "target")
        return targets
    if data.source in SYNTHETIC_SOURCES:
        return list(SYNTHETIC_SOURCES[data.source].targets)
    if data.source == "npz":  # the reader names them y, or y1..yK
        return [c for c in frame.columns if c[:1] == "y"]
    if data.source not in FILE_SOURCES:
        return ["y"]
    guesses = [c for c in ("y", "target") if c in frame.columns]
    if len(guesses) == 1:
        return guesses
    raise ConfigError(
        f"data.target: name the target column(s) of {data.path} (only a lone column named y or "
        f"target is taken without it); columns: {', '.join(map(str, frame.columns))}"
    )


def feature_columns(data: DataConfig, frame: Table, targets: list[str]) -> list[str]:
    if data.features is None:
        return [c for c in frame.columns if c not in targets]
    check_columns(frame, data.features, str(data.path), "feature")
    overlap = sorted(set(data.features) & set(targets))
    if overlap:
        raise ConfigError(f"data.features: '{overlap[0]}' is also a target column")
    return list(data.features)


def check_enough_rows(n: int, test_fraction: float, val_fraction: float, data: DataConfig) -> None:
    """Refuse, before splitting, a table that leaves no training rows once test and validation
    rows (one at least each, when asked for) are split off."""
    left = n - part_size(n, test_fraction)
    left -= part_size(left, val_fraction)
    if left < 1:
        asked = [
            f"data.{key}_split {getattr(data, f'{key}_split'):g}"
            for key in ("test", "val")
            if getattr(data, f"{key}_path") is None and getattr(data, f"{key}_split") > 0
        ]
        raise DataError(
            f"{data.path or data.source}: {rows(n)} are too few to split into training rows and "
            f"{' and '.join(asked)} (each split takes one row at least); use more rows, or set "
            f"those splits to 0 or pass data.val_path / data.test_path"
        )


def fit_preprocessor(config: Config, dataset: Dataset) -> Preprocessor:
    """The Preprocessor of a run: fitted on the training split only."""
    where = config.data.path or config.data.source
    return Preprocessor.fit(
        dataset.train,
        dataset.features,
        dataset.targets,
        dataset.task,
        config.data.standardize,
        where=f"{where} (train split)",
    )


def data_seed(config: Config) -> int:
    return config.data.seed if config.data.seed is not None else config.seed


def load_dataset(config: Config) -> Dataset:
    """Read the source, choose columns and task, and split (stratified for classes)."""
    data = config.data
    seed = data_seed(config)
    drawn = memory.before_loading(config)
    if drawn is not None:  # a synthetic set's size is known before a row is drawn
        memory.check(drawn.data_only(), config)
    frame = read_source(data, seed)
    targets = target_columns(data, frame)
    features = feature_columns(data, frame, targets)
    if not features:
        raise ConfigError(f"data.features: {data.path or data.source} has no feature columns")
    check_values(frame, features, targets, str(data.path or data.source))
    task: str = config.task
    if task == "auto":
        task = source_task(data.source) or infer_task(as_frame(frame), targets)
    if task in ("binary", "classification") and len(targets) != 1:
        raise ConfigError(
            f"task: {task} takes one target column, got {len(targets)} ({', '.join(targets)}); "
            f"several 0/1 columns are a multilabel task"
        )

    extra: dict[str, Table] = {}
    for key in ("val_path", "test_path"):
        path = getattr(data, key)
        if path is not None:
            from .files import read_table

            part = read_table(path, data.source)
            check_columns(part, features + targets, path, "feature or target")
            check_values(part, features, targets, path)
            extra[key] = part
    classes = task in ("binary", "classification")

    def strata(f: Table) -> np.ndarray | None:
        """Each row's class as text, the labels the split keeps in proportion."""
        if not classes:
            return None
        if isinstance(f, Columns):
            return f[targets[0]].astype(str)
        return f[targets[0]].astype(str).to_numpy()

    test_fraction = 0 if "test_path" in extra else data.test_split
    val_fraction = 0 if "val_path" in extra else data.val_split / (1 - test_fraction)
    check_enough_rows(len(frame), test_fraction, val_fraction, data)
    rest = frame
    test = extra.get("test_path")
    if test is None:
        rest, test = split_frame(rest, test_fraction, seed, strata(rest))
    val = extra.get("val_path")
    if val is None:
        # Wrapped: seeds run to 2**32 - 1, and so does what scikit-learn takes.
        rest, val = split_frame(rest, val_fraction, (seed + 1) % 2**32, strata(rest))
    return Dataset(rest, val, test, features, targets, task, file_hashes(data))

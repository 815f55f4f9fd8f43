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
from .columns import Table, as_frame
from .fingerprint import data_fingerprint, file_hashes
from .preprocess import Preprocessor, check_columns, check_values, infer_task
from .splits import part_size, split_indices


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

    def release_rows(self) -> None:
        """Let go of the rows once a run holds them as tensors, so that it holds them once and
        not twice (a third of its peak memory on a large table). The fingerprint, which hashes
        the rows, is taken first; the columns and the task stay, and split() then gives each
        split's columns without rows."""
        self.fingerprint()
        self.train, self.val, self.test = (
            part.take([]) for part in (self.train, self.val, self.test)
        )


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
    return read_table(data.path, data.source, memory.stream_remedy(data))


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
    test_fraction = 0 if "test_path" in extra else data.test_split
    val_fraction = 0 if "val_path" in extra else data.val_split / (1 - test_fraction)
    check_enough_rows(len(frame), test_fraction, val_fraction, data)
    classes = task in ("binary", "classification")
    train_rows, val_rows, test_rows = split_positions(
        len(frame),
        test_fraction,
        val_fraction,
        seed,
        strata(frame[targets[0]]) if classes else None,
    )
    train = frame if train_rows is None else frame.take(train_rows)
    val = extra.get("val_path")
    if val is None:
        val = frame.take(val_rows)
    test = extra.get("test_path")
    if test is None:
        test = frame.take(test_rows)
    return Dataset(train, val, test, features, targets, task, file_hashes(data))


def strata(target: Any) -> np.ndarray:
    """Each row's class, the labels a split keeps in proportion: integer codes numbered in the
    order of the labels' text, so that the rows split as they would by the text (splits sort the
    labels) without a Python string per row; text targets as text."""
    values = np.asarray(target)
    if values.dtype.kind not in "biuf" or (values.dtype.kind == "f" and _negative_zero(values)):
        return _text(target)  # text, or -0.0 beside 0.0: two labels as text, one as a number
    distinct, codes = np.unique(values, return_inverse=True)
    if not isinstance(target, np.ndarray):
        import pandas as pd

        distinct = pd.Series(distinct, dtype=target.dtype)
    text = _text(distinct)
    rank = np.empty(len(distinct), dtype=np.intp)
    rank[np.argsort(text, kind="stable")] = np.arange(len(distinct))
    return rank[codes.reshape(-1)]


def _text(values: Any) -> np.ndarray:
    """A column's values as the text astype(str) writes, numpy's or pandas' as the column is."""
    return values.astype(str) if isinstance(values, np.ndarray) else values.astype(str).to_numpy()


def _negative_zero(values: np.ndarray) -> bool:
    return bool(np.any(np.signbit(values) & (values == 0)))


def split_positions(
    n: int, test_fraction: float, val_fraction: float, seed: int, labels: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """split_rows with a run's seeds: the data seed for the test rows, the next one for the
    validation rows (val_fraction of the rows left once the test rows are out)."""
    # Wrapped: seeds run to 2**32 - 1, and so does what scikit-learn takes.
    return split_rows(n, (test_fraction, seed), (val_fraction, (seed + 1) % 2**32), labels)


def split_rows(
    n: int,
    test: tuple[float, int],
    val: tuple[float, int],
    labels: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Row positions of (train, val, test) among n rows: the test rows split off first, then
    the validation rows from the rest, each a (fraction, seed); train is None when it is every
    row in order. The same rows as split_frame twice, taken from the table once."""
    rest = np.arange(n)
    none = np.arange(0)
    parts = []
    for fraction, seed in (test, val):
        if fraction <= 0:
            parts.append(none)
            continue
        kept, part = split_indices(
            len(rest), fraction, seed, None if labels is None else labels[rest]
        )
        parts.append(rest[part])
        rest = rest[kept]
    whole = all(len(p) == 0 for p in parts)
    return (None if whole else rest), parts[1], parts[0]

"""The task and the Preprocessor's fields from a merged tally: what infer_task and
Preprocessor.fit give on the same rows, from counts rather than the rows themselves."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DataError
from ..columns import Columns, Table
from ..preprocess import MAX_AUTO_CLASSES, MAX_CATEGORIES, Preprocessor
from .tally import VALUE_CAP, Tally


def infer_stream_task(tally: Tally, booleans: list[str], rows: int) -> str:
    """infer_task's answer for the whole data (all rows, every split), from distinct values."""
    targets = tally.targets
    if len(targets) > 1:
        text = [t for t in targets if t in tally.text]
        if text:
            raise DataError(
                f"data.target: '{text[0]}' holds text; several targets must all be numbers "
                f"(multi-output regression) or all 0/1 (multilabel); for classes use one target"
            )
        values = [tally.values[t] for t in targets]
        binary = all(v is not None and set(v) <= {0, 1} for v in values)
        return "multilabel" if binary else "regression"
    (target,) = targets
    counts = tally.values[target]
    if target in tally.text or target in booleans:
        assert counts is not None  # classes are never capped
        return "binary" if len(counts) == 2 else "classification"
    if counts is None:  # more distinct numbers than any class count
        return "regression"
    n = len(counts)
    # Few distinct whole numbers are classes; set task: classification for more than that.
    if tally.integral[target] and n <= min(MAX_AUTO_CLASSES, max(2, rows // 5)):
        return "binary" if n == 2 else "classification"
    return "regression"


def fit_features(prep: Preprocessor, tally: Tally, standardize: bool, where: str) -> None:
    """Scaling of numeric features, categories and modes of text ones (train rows)."""
    stats = tally.moments.mean_std()
    constant = tally.moments.constant()
    index = {c: i for i, c in enumerate(tally.numeric)}
    for col in prep.features:
        if col in index:
            mean, std = stats[index[col]]
            prep.numeric[col] = [mean, std] if standardize else [0.0, 1.0]
            prep.stats[col] = [mean, 0.0 if constant[index[col]] else std]
            continue
        counts = tally.vocab[col]
        if counts is None:
            raise DataError(
                f"{where}: column '{col}' has more than {MAX_CATEGORIES} distinct text values; "
                f"list the useful columns in data.features"
            )
        prep.categorical[col] = sorted(counts)
        most = max(counts.values())
        prep.modes[col] = min(v for v, n in counts.items() if n == most)  # ties: first sorted


def fit_targets(prep: Preprocessor, tally: Tally, standardize: bool, where: str) -> None:
    """Labels (classes, multilabel) or target scaling (regression), as Preprocessor.fit gives."""
    if prep.task == "regression" and not any(t in tally.text for t in prep.targets):
        index = {c: i for i, c in enumerate(tally.numeric)}
        stats = tally.moments.mean_std()
        prep.target_scale = [
            list(stats[index[t]]) if standardize else [0.0, 1.0] for t in prep.targets
        ]
        return
    # The labels' checks and order are Preprocessor's own, run on a stand-in table that holds
    # each distinct train value once.
    prep._fit_targets(_stand_in(prep.targets, tally, where), standardize, where)


def _stand_in(targets: list[str], tally: Tally, where: str) -> Table:
    """A table whose columns hold each target's distinct train values (repeated to one length)."""
    distinct: dict[str, list[Any]] = {}
    for t in targets:
        counts = tally.labels[t]
        if counts is None:
            raise DataError(
                f"{where}: target '{t}' holds more than {VALUE_CAP} distinct values; "
                f"accepted: 0/1 or true/false for multilabel, or one target for classes"
            )
        distinct[t] = list(counts)
    length = max((len(v) for v in distinct.values()), default=0)
    if any(isinstance(v, str) for values in distinct.values() for v in values):
        import pandas as pd

        return pd.DataFrame(
            {
                t: pd.Series(np.resize(np.array(v, dtype=object), length))
                for t, v in distinct.items()
            }
        )
    return Columns({t: np.resize(np.asarray(v), length) for t, v in distinct.items()})

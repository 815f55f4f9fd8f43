"""Regression targets a run can score: values whose squared errors fit in float64 (mse is
reported in the target's own units), and splits whose targets vary (r2 compares the errors with
that variation, and is undefined without it).
"""

from __future__ import annotations

import numpy as np

from ..config.messages import rows, shown
from ..config.schema import DataConfig
from ..errors import DataError
from .sources import Dataset

# The largest target magnitude accepted: errors up to a few thousand times it still square
# below float64's largest value, 1.8e308.
MAX_MAGNITUDE = 1e150

SPLITS = {"train": "training", "val": "validation", "test": "test"}


def check_regression_targets(dataset: Dataset, data: DataConfig) -> None:
    """Refuse, before training, a regression whose metrics could not be reported: a target
    beyond MAX_MAGNITUDE, or a split in which a target holds one value only."""
    if dataset.task != "regression":
        return
    where = data.path or data.source
    columns = {
        name: {t: np.asarray(dataset.split(name)[t], dtype=np.float64) for t in dataset.targets}
        for name in SPLITS
        if len(dataset.split(name))
    }
    check_split_targets(str(where), columns, data)


def check_split_targets(
    where: str, columns: dict[str, dict[str, np.ndarray]], data: DataConfig
) -> None:
    """check_regression_targets' checks on each split's (non-empty) target values as floats,
    by split name (train, val, test) and target; `mlp init` applies them to the rows it splits."""
    for target in next(iter(columns.values()), {}):
        largest = max(float(np.abs(split[target]).max()) for split in columns.values())
        if largest > MAX_MAGNITUDE:
            raise DataError(
                f"{where}: regression target {shown(target)} reaches {largest:.3g} in magnitude; "
                f"accepted: up to {MAX_MAGNITUDE:.0e}, so that its squared errors (mse, in its "
                f"own units) stay within float64's range (1.8e+308); divide the column by a "
                f"power of ten before training"
            )
    for name, split in columns.items():
        for target, values in split.items():
            if values.min() == values.max():
                raise DataError(_constant(where, name, target, values, data))


def _constant(where: str, split: str, target: str, values: np.ndarray, data: DataConfig) -> str:
    held = f"{shown(target)} = {values[0]:g}"
    has = f"a single row ({held})" if len(values) == 1 else f"{rows(len(values))}, all with {held}"
    if split == "train":
        advice = "a regression needs a target that varies"
    elif getattr(data, f"{split}_path") is not None:
        advice = f"use a data.{split}_path file whose targets vary"
    else:
        fraction = getattr(data, f"{split}_split")
        advice = f"raise data.{split}_split ({fraction:g}) for more rows, or set it to 0"
    return (
        f"{where}: the {SPLITS[split]} split has {has}; r2 is undefined for a target that does "
        f"not vary; {advice}"
    )

"""The Preprocessor: what turns a table into model inputs and targets, and outputs back into labels.

It is fitted on the training split only and saved with the model as plain JSON, so eval and
predict apply exactly what training did: the same columns, scaling, one-hot categories and labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config.messages import MAX_SHOWN_VALUES, cut, listed, rows, shown
from ..errors import DataError
from .columns import Columns, Table, as_frame

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 200
MAX_AUTO_CLASSES = 20
MAX_LISTED_COLUMNS = 30
EXACT = 2**53  # integers up to this size are exact as float64
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{shown(c)} ({rows(n)})" for c, n in counts.items())


def _count_infinite(series: pd.Series) -> int:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return 0
    return int(np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan)).sum())


def _missing_and_infinite(
    frame: Table, columns: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """How many rows of each column are missing (NaN, None, NA) and infinite."""
    if isinstance(frame, Columns):
        floats = {c: frame[c] for c in columns if frame[c].dtype.kind in "fc"}
        missing = {c: n for c, v in floats.items() if (n := int(np.isnan(v).sum()))}
        return missing, {c: n for c, v in floats.items() if (n := int(np.isinf(v).sum()))}
    missing = {c: int(n) for c, n in frame[columns].isna().sum().items() if n > 0}
    return missing, {c: n for c in columns if (n := _count_infinite(frame[c]))}


def check_missing(frame: Table, columns: list[str], where: str, before: str = "training") -> None:
    """Refuse missing and infinite values, naming each column and how many rows hold them.

    `before` names what the rows are for (training, predicting, evaluating).
    """
    missing, infinite = _missing_and_infinite(frame, columns)
    problems = [
        f"{what} values in {_counted(counts)}"
        for what, counts in (("missing", missing), ("infinite", infinite))
        if counts
    ]
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}; fill or drop those rows before {before}")


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of finite values (std 1 for a constant column).

    Computed on the values divided by their largest magnitude, then scaled back, so that squares of
    values near 1e308 do not overflow and those of values near 1e-300 do not vanish.
    """
    scale = float(np.abs(values).max()) if len(values) else 0.0
    if scale == 0.0:
        return 0.0, 1.0
    unit = values / scale
    mean, std = float(unit.mean()) * scale, float(unit.std()) * scale
    return mean, std if std > 0 else 1.0


def standardise(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(values - mean) / std in float64, without overflow where the difference exceeds 1e308."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - mean) / std
        far = ~np.isfinite(scaled)
        if far.any():
            scaled[far] = values[far] / std - mean / std
    return scaled


def check_representable(blocks: dict[str, np.ndarray], where: str) -> None:
    """Refuse scaled values beyond float32's range, which the model would see as infinite."""
    refuse_far({c: beyond_float32(v) for c, v in blocks.items()}, where)


def beyond_float32(values: np.ndarray) -> int:
    """How many scaled values are beyond float32's range."""
    return int((np.abs(values) > FLOAT32_MAX).sum())


def refuse_far(counts: dict[str, int], where: str) -> None:
    """check_representable's refusal, from each column's count of values beyond float32."""
    far = {c: n for c, n in counts.items() if n}
    if far:
        raise DataError(
            f"{where}: values in {_counted(far)} are beyond float32's range ({FLOAT32_MAX:.1e}) "
            f"once scaled by the training rows' mean and standard deviation; check those rows"
        )


def check_columns(frame: Table, columns: list[str], where: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from ..config.registry import suggest

        hints = "".join(suggest(c, frame.columns) for c in missing[:1])
        raise DataError(
            f"{where}: no {what} column {listed(missing)}{hints}; "
            f"columns: {listed(frame.columns, MAX_LISTED_COLUMNS, quote=False)}"
        )


def is_numeric(series: pd.Series) -> bool:
    """Numbers or booleans (which enter models as 0/1)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _numeric_column(frame: Table, col: str) -> bool:
    return isinstance(frame, Columns) or is_numeric(frame[col])


def _floats(frame: Table, col: str) -> np.ndarray:
    """A numeric column's values as float64."""
    if isinstance(frame, Columns):
        return frame[col].astype(np.float64)
    return frame[col].to_numpy(dtype=np.float64)


def _distinct(frame: Table, col: str) -> list[Any]:
    """A column's distinct values as Python values (in no particular order)."""
    if isinstance(frame, Columns):
        return _python(np.unique(frame[col]))
    import pandas as pd

    return _python(pd.unique(frame[col]))


def _check_text_column(series: pd.Series, where: str) -> None:
    """A text column that is mostly numbers holds a typo, not categories."""
    numbers, first = numbers_and_first_text(series)
    if first is not None and mostly_numbers(numbers, len(series)):
        row, value = first
        raise DataError(
            f"{where}: column {shown(series.name)} is numeric but row {row + 1} holds "
            f"{shown(value)}; accepted: numbers only"
        )


def mostly_numbers(numbers: int, rows: int) -> bool:
    """Whether a text column with this many values that read as numbers is a numeric column
    with a typo (refused) rather than a column of categories."""
    return numbers / rows >= 0.5


def numbers_and_first_text(series: pd.Series) -> tuple[int, tuple[int, Any] | None]:
    """How many values of a column read as numbers, and the position and value of the first
    present one that does not (None when all do): the facts of the rule above, which `mlp init`
    also adds up over the chunks of a file."""
    import pandas as pd

    parsed = pd.to_numeric(series, errors="coerce")
    bad = (parsed.isna() & series.notna()).to_numpy()
    numbers = int(parsed.notna().sum())
    if not bad.any():
        return numbers, None
    row = int(bad.nonzero()[0][0])
    return numbers, (row, series.iloc[row])


def check_scalars(frame: Table, columns: list[str], where: str) -> None:
    """Refuse columns of lists, mappings or arrays (Parquet's list, struct and map types), which
    would otherwise be taken as text categories or fail deep inside pandas."""
    if isinstance(frame, Columns):
        return  # numbers only
    for col in columns:
        kind = nested_type(frame, col)
        if kind is not None:
            raise DataError(
                f"{where}: column {shown(col)} holds values of type {cut(kind)}; accepted: "
                f"numbers, booleans or text (list the other columns in data.features)"
            )


def nested_type(frame: pd.DataFrame, col: str) -> str | None:
    """The type of a column's nested values (lists, mappings, arrays), None for scalars: the
    type noted when the file was read, else that of the first such value."""
    noted = frame.attrs.get("nested", {}).get(col)
    if noted is not None:
        return str(noted)
    series = frame[col]
    if series.dtype != object:
        return None
    compound = series.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
    if not compound.any():
        return None
    return type(series[compound].iloc[0]).__name__


def check_values(frame: Table, features: list[str], targets: list[str], where: str) -> None:
    """Check a whole table before it is split, so that counts and row numbers are the file's."""
    check_scalars(frame, features + targets, where)
    check_missing(frame, features + targets, where)
    for col in features + targets:
        if not _numeric_column(frame, col):
            _check_text_column(frame[col], where)


def infer_task(frame: pd.DataFrame, targets: list[str]) -> str:
    """regression, binary, classification or multilabel, from the target values."""
    return task_and_reason(frame, targets)[0]


def task_and_reason(frame: pd.DataFrame, targets: list[str]) -> tuple[str, str]:
    """infer_task's answer and why, in words ("12 distinct strings: classification"): the one
    rule `task: auto` applies, which `mlp init` states in the configs it writes."""
    import pandas as pd

    if len(targets) > 1:
        text = [t for t in targets if not is_numeric(frame[t])]
        if text:
            raise DataError(
                f"data.target: '{text[0]}' holds text; several targets must all be numbers "
                f"(multi-output regression) or all 0/1 (multilabel); for classes use one target"
            )
        binary = all(set(pd.unique(frame[t].dropna())) <= {0, 1} for t in targets)
        if binary:
            return "multilabel", f"{len(targets)} targets, each 0/1: multilabel"
        return "regression", f"{len(targets)} numeric targets: multi-output regression"
    y = frame[targets[0]].dropna()
    if not is_numeric(y) or pd.api.types.is_bool_dtype(y):
        n = y.nunique()
        what = "true/false values" if pd.api.types.is_bool_dtype(y) else "distinct strings"
        task = "binary" if n == 2 else "classification"
        return task, f"{n:,} {what}: {task}"
    values = y.to_numpy()
    integral = np.all(np.mod(values, 1) == 0)
    distinct = np.unique(values)
    n = len(distinct)
    # Few distinct whole numbers are classes; set task: classification for more than that.
    limit = min(MAX_AUTO_CLASSES, max(2, len(values) // 5))
    if integral and n <= limit:
        task = "binary" if n == 2 else "classification"
        shown_values = " and ".join(str(v) for v in _python(distinct[:2]))
        held = f"{n} distinct values {shown_values}" if n == 2 else f"{n} distinct whole numbers"
        return task, f"{held}: {task}"
    if integral:
        return "regression", (
            f"{n:,} distinct whole numbers, more than the {limit:,} taken as classes: regression"
        )
    return "regression", f"{n:,} distinct numbers: regression"


def _python(values: Any) -> list[Any]:
    """Labels as JSON-able Python values (numpy scalars become int, float, bool or str)."""
    return [v.item() if hasattr(v, "item") else v for v in values]


def unseen_categories(
    where: str, col: str, unseen: list[str], categories: list[str], more: bool = False
) -> DataError:
    """The refusal of text values a feature did not hold in training (sorted; `more`: the list
    is the first of yet more)."""
    return DataError(
        f"{where}: column '{col}' holds {_unseen(unseen, more)}, "
        f"{'a category' if len(unseen) == 1 and not more else 'categories'} not seen in "
        f"training; accepted: {listed(categories, MAX_CATEGORIES, quote=False)}"
    )


def unseen_classes(where: str, target: str, unseen: list[str], labels: list[Any]) -> DataError:
    """The refusal of target values that were not classes in training (sorted, as text)."""
    return DataError(
        f"{where}: target '{target}' holds {listed(unseen)}, "
        f"{'a class' if len(unseen) == 1 else 'classes'} not seen in training; "
        f"accepted: {listed(labels, MAX_CATEGORIES, quote=False)}"
    )


def _unseen(values: list[str], more: bool) -> str:
    if not more:
        return listed(values)
    return f"{listed(values[:MAX_SHOWN_VALUES])} and over {len(values) - MAX_SHOWN_VALUES} more"


def _number_codes(labels: list[Any], values: np.ndarray) -> np.ndarray | None:
    """Each value's index among the labels (int64) by a sorted search, when labels and values are
    all numbers that float64 holds exactly and every value is a label: the codes the row-by-row
    lookup gives (1 == 1.0 == True there too), without a Python loop over millions of rows. None
    for anything else (text, huge integers, an unseen class), which the lookup handles and names."""
    exact = all(isinstance(v, (bool, int, float)) and abs(v) < EXACT for v in labels)
    if not labels or not exact or values.dtype.kind not in "biuf" or not len(values):
        return None
    if values.dtype.kind in "iu" and (values.max() >= EXACT or values.min() <= -EXACT):
        return None
    known = np.asarray(labels, dtype=np.float64)
    order = np.argsort(known, kind="stable")
    ranked = known[order]
    wanted = values.astype(np.float64)
    at = np.minimum(np.searchsorted(ranked, wanted), len(ranked) - 1)
    if len(np.unique(known)) < len(known) or not (ranked[at] == wanted).all():
        return None
    return order[at].astype(np.int64)


@dataclass
class Preprocessor:
    features: list[str]
    targets: list[str]
    task: str
    numeric: dict[str, list[float]] = field(default_factory=dict)  # column -> [mean, std]
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> categories
    labels: list[Any] = field(default_factory=list)  # class labels, in output order
    target_scale: list[list[float]] = field(default_factory=list)  # regression: [mean, std] each
    # What the figures hold fixed and rank features by, recorded so that they need no data file:
    # numeric column -> [mean, std] of the training rows in raw units, whatever
    # data.standardize says (std 0: constant); text column -> its most frequent training value.
    stats: dict[str, list[float]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        frame: Table,
        features: list[str],
        targets: list[str],
        task: str,
        standardize: bool = True,
        where: str = "data",
    ) -> Preprocessor:
        """Learn columns, scaling, categories and labels from the training rows."""
        check_missing(frame, features + targets, where)
        prep = cls(features=list(features), targets=list(targets), task=task)
        for col in features:
            if _numeric_column(frame, col):
                values = _floats(frame, col)
                mean, std = mean_std(values)
                prep.numeric[col] = [mean, std] if standardize else [0.0, 1.0]
                constant = len(values) == 0 or values.min() == values.max()
                prep.stats[col] = [mean, 0.0 if constant else std]
            else:
                assert not isinstance(frame, Columns)
                series = frame[col]
                _check_text_column(series, where)
                categories = sorted(series.astype(str).unique())
                if len(categories) > MAX_CATEGORIES:
                    raise DataError(
                        f"{where}: column '{col}' has {len(categories)} distinct text values; "
                        f"list the useful columns in data.features"
                    )
                prep.categorical[col] = categories
                prep.modes[col] = str(series.astype(str).mode().iloc[0])  # ties: first sorted
        prep._fit_targets(frame, standardize, where)
        return prep

    def _fit_targets(self, frame: Table, standardize: bool, where: str) -> None:
        if self.task in ("binary", "classification"):
            (target,) = self.targets
            labels = _distinct(frame, target)
            self.labels = sorted(labels, key=lambda v: (str(type(v)), v))
            if self.task == "binary" and len(self.labels) != 2:
                raise DataError(
                    f"{where}: task binary needs exactly 2 classes in '{target}', found "
                    f"{len(self.labels)}; use task: classification"
                )
            if len(self.labels) < 2:
                raise DataError(f"{where}: target '{target}' holds one class only")
        elif self.task == "multilabel":
            for t in self.targets:
                bad = set(_distinct(frame, t)) - {0, 1}
                if bad:
                    raise DataError(
                        f"{where}: multilabel target '{t}' holds {listed(sorted(map(str, bad)))}; "
                        f"accepted: 0/1 or true/false"
                    )
            self.labels = list(self.targets)
        else:
            for t in self.targets:
                if not _numeric_column(frame, t):
                    raise DataError(
                        f"{where}: regression target '{t}' is not numeric; "
                        f"use task: classification for labels"
                    )
                values = _floats(frame, t)
                self.target_scale.append(list(mean_std(values)) if standardize else [0.0, 1.0])

    # ------------------------------------------------------------ applying

    @property
    def in_dim(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categorical.values())

    @property
    def out_dim(self) -> int:
        if self.task == "classification":
            return len(self.labels)
        return 1 if self.task == "binary" else len(self.targets)

    def transform(self, frame: Table, where: str = "data", before: str = "training") -> np.ndarray:
        """Feature matrix (rows x in_dim, float32); columns matched by name, in any order."""
        check_columns(frame, self.features, where, "feature")
        if isinstance(frame, Columns) and self.categorical:
            frame = as_frame(frame)  # one-hot codes come from pandas' Categorical
        check_scalars(frame, self.features, where)
        check_missing(frame, self.features, where, before)
        # Each column is written into its slot as it is scaled, so that the float64 values of
        # one column at a time exist beside the matrix (float64 to float32 on assignment rounds
        # as astype does).
        matrix = np.empty((len(frame), self.in_dim), dtype=np.float32)
        at = 0
        far = {}
        for col in self.features:
            if col in self.numeric:
                if not _numeric_column(frame, col):
                    assert not isinstance(frame, Columns)
                    series = frame[col]
                    _check_text_column(series, where)
                    raise DataError(
                        f"{where}: column '{col}' must be numeric, as in training; "
                        f"it holds text such as {shown(series.iloc[0])}"
                    )
                scaled = standardise(_floats(frame, col), *self.numeric[col])
                far[col] = beyond_float32(scaled)
                if not far[col]:  # else refused below, once every column is checked
                    matrix[:, at] = scaled
                at += 1
            else:
                import pandas as pd

                assert not isinstance(frame, Columns)
                series = frame[col]
                categories = self.categorical[col]
                text = series.astype(str)
                unseen = sorted(set(text.unique()) - set(categories))
                if unseen:
                    raise unseen_categories(where, col, unseen, categories)
                codes = pd.Categorical(text, categories=categories).codes
                block = matrix[:, at : at + len(categories)]
                block[:] = 0
                block[np.arange(len(frame)), codes] = 1  # one-hot
                at += len(categories)
        refuse_far(far, where)
        return matrix

    def encode_targets(
        self, frame: Table, where: str = "data", before: str = "training"
    ) -> np.ndarray:
        """Targets as the loss wants them: class indices, 0/1 floats, or scaled values."""
        check_columns(frame, self.targets, where, "target")
        check_scalars(frame, self.targets, where)
        check_missing(frame, self.targets, where, before)
        if self.task in ("binary", "classification"):
            (target,) = self.targets
            column = frame[target] if isinstance(frame, Columns) else frame[target].to_numpy()
            codes = _number_codes(self.labels, column)
            if codes is None:
                index = {label: i for i, label in enumerate(self.labels)}
                values = _python(column)
                unseen = sorted({str(v) for v in values if v not in index})
                if unseen:
                    raise unseen_classes(where, target, unseen, self.labels)
                codes = np.array([index[v] for v in values], dtype=np.int64)
            return codes.astype(np.float32)[:, None] if self.task == "binary" else codes
        if isinstance(frame, Columns):
            numbers = frame.numbers(self.targets)
        else:
            numbers = frame[self.targets].to_numpy(dtype=np.float64)
        if self.task == "regression":
            scaled = {
                t: standardise(numbers[:, i], *self.target_scale[i])
                for i, t in enumerate(self.targets)
            }
            check_representable(scaled, where)
            numbers = np.stack(list(scaled.values()), axis=1)
        return numbers.astype(np.float32)

    def decode(self, outputs: np.ndarray) -> pd.DataFrame:
        """Transformed model outputs (probabilities or scaled values) -> target columns.

        A probability of exactly 0.5 is the negative class, as in the metrics (logit > 0).
        """
        import pandas as pd

        if self.task == "classification":
            labels = np.asarray(self.labels, dtype=object)[outputs.argmax(axis=1)]
            return pd.DataFrame({self.targets[0]: labels})
        if self.task == "binary":
            labels = np.asarray(self.labels, dtype=object)[(outputs[:, 0] > 0.5).astype(int)]
            return pd.DataFrame({self.targets[0]: labels})
        if self.task == "multilabel":
            return pd.DataFrame((outputs > 0.5).astype(int), columns=self.targets)
        return pd.DataFrame(self.unscale(outputs), columns=self.targets)

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """Regression outputs in the targets' own units."""
        scale = np.array(self.target_scale)
        with np.errstate(over="ignore"):  # beyond float64 is inf, as the units demand
            return values * scale[:, 1] + scale[:, 0]

    def probabilities(self, outputs: np.ndarray) -> pd.DataFrame:
        """proba_<label> columns for classification, binary and multilabel outputs."""
        import pandas as pd

        if self.task == "binary":
            outputs = np.c_[1 - outputs[:, 0], outputs[:, 0]]
        return pd.DataFrame(outputs, columns=[f"proba_{label}" for label in self.labels])

    # ------------------------------------------------------------ saving

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        return cls(**state)

"""The Preprocessor: what turns a table into model inputs and targets, and outputs back into labels.

It is fitted on the training split only and saved with the model as plain JSON, so eval and
predict apply exactly what training did: the same columns, scaling, one-hot categories and labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

MAX_CATEGORIES = 200
MAX_AUTO_CLASSES = 20


def check_missing(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    """Refuse missing values, naming each column and how many rows lack it."""
    counts = frame[columns].isna().sum()
    counts = counts[counts > 0]
    if len(counts):
        listed = ", ".join(f"'{c}' ({n} rows)" for c, n in counts.items())
        raise DataError(
            f"{where}: missing values in {listed}; fill or drop those rows before training"
        )


def check_columns(frame: pd.DataFrame, columns: list[str], where: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from ..registry import suggest

        hints = "".join(suggest(c, frame.columns) for c in missing[:1])
        raise DataError(
            f"{where}: no {what} column {', '.join(repr(c) for c in missing)}{hints}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _check_text_column(series: pd.Series, where: str) -> None:
    """A text column that is mostly numbers holds a typo, not categories."""
    parsed = pd.to_numeric(series, errors="coerce")
    bad = parsed.isna() & series.notna()
    if parsed.notna().mean() >= 0.5 and bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        raise DataError(
            f"{where}: column '{series.name}' is numeric but row {row + 1} holds "
            f"{series.iloc[row]!r}; accepted: numbers only"
        )


def check_values(frame: pd.DataFrame, features: list[str], targets: list[str], where: str) -> None:
    """Check a whole table before it is split, so that counts and row numbers are the file's."""
    check_missing(frame, features + targets, where)
    for col in features + targets:
        if not _is_numeric(frame[col]):
            _check_text_column(frame[col], where)


def infer_task(frame: pd.DataFrame, targets: list[str]) -> str:
    """regression, binary, classification or multilabel, from the target values."""
    if len(targets) > 1:
        text = [t for t in targets if not _is_numeric(frame[t])]
        if text:
            raise DataError(
                f"data.target: '{text[0]}' holds text; several targets must all be numbers "
                f"(multi-output regression) or all 0/1 (multilabel); for classes use one target"
            )
        binary = all(set(pd.unique(frame[t].dropna())) <= {0, 1} for t in targets)
        return "multilabel" if binary else "regression"
    y = frame[targets[0]].dropna()
    if not _is_numeric(y) or pd.api.types.is_bool_dtype(y):
        n = y.nunique()
        return "binary" if n == 2 else "classification"
    values = y.to_numpy()
    integral = np.all(np.mod(values, 1) == 0)
    n = len(np.unique(values))
    # Few distinct whole numbers are classes; set task: classification for more than that.
    if integral and n <= min(MAX_AUTO_CLASSES, max(2, len(values) // 5)):
        return "binary" if n == 2 else "classification"
    return "regression"


def _python(values: Any) -> list[Any]:
    """Labels as JSON-able Python values (numpy scalars become int, float, bool or str)."""
    return [v.item() if hasattr(v, "item") else v for v in values]


@dataclass
class Preprocessor:
    features: list[str]
    targets: list[str]
    task: str
    numeric: dict[str, list[float]] = field(default_factory=dict)  # column -> [mean, std]
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> categories
    labels: list[Any] = field(default_factory=list)  # class labels, in output order
    target_scale: list[list[float]] = field(default_factory=list)  # regression: [mean, std] each

    # ------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
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
            series = frame[col]
            if _is_numeric(series):
                values = series.to_numpy(dtype=np.float64)
                mean, std = (values.mean(), values.std()) if standardize else (0.0, 1.0)
                prep.numeric[col] = [float(mean), float(std) if std > 0 else 1.0]
            else:
                _check_text_column(series, where)
                categories = sorted(series.astype(str).unique())
                if len(categories) > MAX_CATEGORIES:
                    raise DataError(
                        f"{where}: column '{col}' has {len(categories)} distinct text values; "
                        f"list the useful columns in data.features"
                    )
                prep.categorical[col] = categories
        prep._fit_targets(frame, standardize, where)
        return prep

    def _fit_targets(self, frame: pd.DataFrame, standardize: bool, where: str) -> None:
        if self.task in ("binary", "classification"):
            (target,) = self.targets
            labels = pd.unique(frame[target])
            self.labels = _python(sorted(labels, key=lambda v: (str(type(v)), v)))
            if self.task == "binary" and len(self.labels) != 2:
                raise DataError(
                    f"{where}: task binary needs exactly 2 classes in '{target}', found "
                    f"{len(self.labels)}; use task: classification"
                )
            if len(self.labels) < 2:
                raise DataError(f"{where}: target '{target}' holds one class only")
        elif self.task == "multilabel":
            for t in self.targets:
                bad = set(_python(pd.unique(frame[t]))) - {0, 1}
                if bad:
                    raise DataError(
                        f"{where}: multilabel target '{t}' holds {sorted(map(str, bad))[:3]}; "
                        f"accepted: 0/1 or true/false"
                    )
            self.labels = list(self.targets)
        else:
            for t in self.targets:
                if not _is_numeric(frame[t]):
                    raise DataError(
                        f"{where}: regression target '{t}' is not numeric; "
                        f"use task: classification for labels"
                    )
                values = frame[t].to_numpy(dtype=np.float64)
                std = values.std() if standardize else 1.0
                mean = values.mean() if standardize else 0.0
                self.target_scale.append([float(mean), float(std) if std > 0 else 1.0])

    # ------------------------------------------------------------ applying

    @property
    def in_dim(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categorical.values())

    @property
    def out_dim(self) -> int:
        if self.task == "classification":
            return len(self.labels)
        return 1 if self.task == "binary" else len(self.targets)

    def transform(self, frame: pd.DataFrame, where: str = "data") -> np.ndarray:
        """Feature matrix (rows x in_dim, float32); columns matched by name, in any order."""
        check_columns(frame, self.features, where, "feature")
        check_missing(frame, self.features, where)
        blocks = []
        for col in self.features:
            series = frame[col]
            if col in self.numeric:
                if not _is_numeric(series):
                    _check_text_column(series, where)
                    raise DataError(
                        f"{where}: column '{col}' must be numeric, as in training; "
                        f"it holds text such as {series.iloc[0]!r}"
                    )
                mean, std = self.numeric[col]
                blocks.append(((series.to_numpy(dtype=np.float64) - mean) / std)[:, None])
            else:
                categories = self.categorical[col]
                text = series.astype(str)
                unseen = sorted(set(text.unique()) - set(categories))
                if unseen:
                    raise DataError(
                        f"{where}: column '{col}' holds {unseen[0]!r}, a category not seen in "
                        f"training; accepted: {', '.join(categories)}"
                    )
                codes = pd.Categorical(text, categories=categories).codes
                blocks.append(np.eye(len(categories))[codes])
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def encode_targets(self, frame: pd.DataFrame, where: str = "data") -> np.ndarray:
        """Targets as the loss wants them: class indices, 0/1 floats, or scaled values."""
        check_columns(frame, self.targets, where, "target")
        check_missing(frame, self.targets, where)
        if self.task in ("binary", "classification"):
            (target,) = self.targets
            index = {label: i for i, label in enumerate(self.labels)}
            values = _python(frame[target].to_numpy())
            unseen = sorted({str(v) for v in values if v not in index})
            if unseen:
                raise DataError(
                    f"{where}: target '{target}' holds {unseen[0]!r}, a class not seen in "
                    f"training; accepted: {', '.join(map(str, self.labels))}"
                )
            codes = np.array([index[v] for v in values], dtype=np.int64)
            return codes.astype(np.float32)[:, None] if self.task == "binary" else codes
        values = frame[self.targets].to_numpy(dtype=np.float64)
        if self.task == "regression":
            scale = np.array(self.target_scale)
            values = (values - scale[:, 0]) / scale[:, 1]
        return values.astype(np.float32)

    def decode(self, outputs: np.ndarray) -> pd.DataFrame:
        """Transformed model outputs (probabilities or scaled values) -> target columns.

        A probability of exactly 0.5 is the negative class, as in the metrics (logit > 0).
        """
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
        return values * scale[:, 1] + scale[:, 0]

    def probabilities(self, outputs: np.ndarray) -> pd.DataFrame:
        """proba_<label> columns for classification, binary and multilabel outputs."""
        if self.task == "binary":
            outputs = np.c_[1 - outputs[:, 0], outputs[:, 0]]
        return pd.DataFrame(outputs, columns=[f"proba_{label}" for label in self.labels])

    # ------------------------------------------------------------ saving

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        return cls(**state)

"""A synthetic set travels as Columns, not as a DataFrame: the same inputs, targets, preprocessing
and fingerprints as its DataFrame gives, which is the oracle here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpcli.config.registry import SYNTHETIC_SOURCES
from mlpcli.config.schema import build_config
from mlpcli.data import Preprocessor, load_dataset
from mlpcli.data.columns import Columns, as_frame
from mlpcli.data.fingerprint import check_split, data_fingerprint, rows_sha256
from mlpcli.data.preprocess import check_missing
from mlpcli.errors import DataError


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal, laid out alike in memory (a loss adds a tensor up in its memory order)."""
    same_layout = a.strides == b.strides
    return same_layout and a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("source", list(SYNTHETIC_SOURCES))
def test_columns_give_what_their_dataframe_gives(source, standardize):
    config = build_config(
        {"seed": 3, "data": {"source": source, "n_samples": 301, "standardize": standardize}}
    )
    dataset = load_dataset(config)
    assert all(isinstance(dataset.split(n), Columns) for n in ("train", "val", "test"))
    frames = {n: as_frame(dataset.split(n)) for n in ("train", "val", "test")}
    assert data_fingerprint({}, frames) == dataset.fingerprint()

    args = (dataset.features, dataset.targets, dataset.task, standardize)
    prep = Preprocessor.fit(dataset.train, *args)
    assert prep.to_dict() == Preprocessor.fit(frames["train"], *args).to_dict()
    for name, frame in frames.items():
        columns = dataset.split(name)
        assert same(prep.transform(columns), prep.transform(frame))
        assert same(prep.encode_targets(columns), prep.encode_targets(frame))
        check_split(columns, name, dataset.fingerprint(), "test")


def test_columns_report_missing_and_infinite_values_as_a_dataframe_does():
    columns = Columns(
        {
            "x1": np.array([1.0, np.nan, np.inf, -np.inf]),
            "x2": np.array([0.5, 0.5, np.nan, 1.0]),
            "y": np.array([0, 1, 0, 1]),
        }
    )
    messages = []
    for table in (columns, as_frame(columns)):
        with pytest.raises(DataError) as caught:
            check_missing(table, ["x1", "x2", "y"], "moons")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "missing values in 'x1' (1 row), 'x2' (1 row)" in messages[0]
    assert "infinite values in 'x1' (2 rows)" in messages[0]


def test_a_preprocessor_with_categories_reads_columns_through_pandas():
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "c": ["1", "2", "1", "2"], "y": [0, 1, 0, 1]})
    prep = Preprocessor.fit(frame, ["x1", "c"], ["y"], "binary")
    columns = Columns({name: frame[name].to_numpy() for name in ("x1", "y")})
    columns.data["c"] = np.array([1, 2, 1, 2])
    assert same(prep.transform(columns), prep.transform(frame))


def test_a_split_of_other_rows_is_refused():
    dataset = load_dataset(build_config({"data": {"source": "moons", "n_samples": 100}}))
    other = dataset.test.take(np.arange(len(dataset.test))[::-1])
    assert rows_sha256(other) != rows_sha256(dataset.test)
    with pytest.raises(DataError, match="the test split drawn again holds other rows"):
        check_split(other, "test", dataset.fingerprint(), "moons")

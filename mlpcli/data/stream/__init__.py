"""Parquet data larger than memory: files and row groups from their footers, splits from a hash
of each row's position, the Preprocessor's statistics in one exact pass merged across ranks, and
the epochs' row-group order and shuffle window. numpy and pyarrow only; never torch."""

from .footer import RowGroup, StreamSource
from .hashsplit import TEST, TRAIN, VAL, SplitRule
from .reader import TrainStream
from .reservoir import SAMPLE_ROWS, sample_split
from .rows import split_chunks
from .stats import StreamFit, fit_stream, open_stream

__all__ = [
    "SAMPLE_ROWS",
    "TEST",
    "TRAIN",
    "VAL",
    "RowGroup",
    "SplitRule",
    "StreamFit",
    "StreamSource",
    "TrainStream",
    "fit_stream",
    "open_stream",
    "sample_split",
    "split_chunks",
]

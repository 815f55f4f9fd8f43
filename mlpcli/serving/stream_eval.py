"""Scoring in chunks: a streamed run's split read again from its Parquet files by row group, or a
labelled file larger than one chunk, scored through StreamScore with memory bounded by a chunk;
and the bounded sample of a streamed run's split that inspect, plot and export look at."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config.schema import Config
from ..data import Preprocessor
from ..data.preprocess import check_columns, check_missing
from ..errors import DataError
from ..model.outputs import StreamScore, feed, target_scale
from ..model.tasks import make_loss

if TYPE_CHECKING:
    import pandas as pd

    from ..data.stream import StreamSource


def is_streamed(config: Config) -> bool:
    """Whether a run was trained with data.stream: true (its rows are never read whole)."""
    return config.data.stream


@dataclass
class ChunkScore:
    """Metrics summed over chunks, and a classifier's confusion matrix."""

    metrics: dict[str, float]
    confusion: list[list[int]] | None
    rows: int


def recorded_stream(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a streamed run recorded of its data: {"stream": {"files": {name: footer sha256},
    "rows": n}, "counts": {split: rows}}."""
    data = metadata.get("data")
    stream = data.get("stream") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not (
        isinstance(stream, dict) and isinstance(stream.get("files"), dict)
    ):
        raise DataError(
            "this model records no footers of its Parquet files, so they are not read again"
        )
    return data


def open_source(config: Config, metadata: dict[str, Any]) -> StreamSource:
    """A streamed run's Parquet files, checked against the footers the run recorded."""
    from ..data.stream import open_stream

    recorded = recorded_stream(metadata)["stream"]["files"]
    source = open_stream(config)
    now = source.fingerprint()["files"]
    changed = sorted(set(recorded) ^ set(now)) or [n for n in now if now[n] != recorded[n]]
    if changed:
        raise DataError(
            f"{config.data.path}: {changed[0]} differs from the files the run was trained on "
            f"(added, removed or rewritten since)"
        )
    return source


def score_stream_split(
    config: Config,
    prep: Preprocessor,
    model: nn.Module,
    device: torch.device,
    metadata: dict[str, Any],
    split: str,
) -> ChunkScore:
    """A streamed run's split, read again row group by row group and scored in chunks, as
    training scored it (model.outputs.feed)."""
    from ..data.stream import SplitRule, split_chunks

    source = open_source(config, metadata)
    rule = SplitRule.from_config(config)
    chunks = split_chunks(source, prep, rule, split)
    return _result(feed(_score(config, prep, device), model, chunks, device), prep, split)


def score_frames(
    config: Config,
    prep: Preprocessor,
    model: nn.Module,
    device: torch.device,
    frames: Iterable[pd.DataFrame],
    where: str,
) -> ChunkScore:
    """Labelled rows that come as DataFrames, each checked as Predictor.score checks a whole
    table, transformed and scored in turn."""
    columns = prep.features + prep.targets

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        start = 0
        for frame in frames:
            here = where if start == 0 else f"{where}, rows {start + 1}-{start + len(frame)}"
            check_columns(frame, columns, here, "feature or target")
            check_missing(frame, columns, here, before="evaluating")
            yield prep.transform(frame, here), prep.encode_targets(frame, here)
            start += len(frame)

    return _result(feed(_score(config, prep, device), model, chunks(), device), prep, where)


def _score(config: Config, prep: Preprocessor, device: torch.device) -> StreamScore:
    loss_fn = make_loss(config, prep.task)
    return StreamScore(loss_fn, prep.task, prep.out_dim, target_scale(prep, device), device)


def _result(score: StreamScore, prep: Preprocessor, what: str) -> ChunkScore:
    vector = score.vector()
    rows = int(vector[1])
    if rows == 0:
        raise DataError(f"the {what} split: this run has none (data.{what}_split was 0)")
    metrics = score.result(vector)
    confusion = score.confusion(vector) if prep.task in ("binary", "classification") else None
    return ChunkScore(metrics, confusion, rows)


def sample_rows(
    config: Config, prep: Preprocessor, metadata: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """A bounded, seeded uniform sample of each split of a streamed run (its raw columns), all
    three from one pass over the files (each equal to reservoir.sample_split's of its split),
    with attrs["sample_of"]: the split's rows in all, for messages that count rows."""
    from ..data.stream import SplitRule
    from ..data.stream import reservoir as sampling
    from ..data.stream.hashsplit import SPLITS
    from ..data.stream.rows import codes_of, take

    source = open_source(config, metadata)
    rule = SplitRule.from_config(config)
    used = prep.features + prep.targets
    kept = {s: sampling.Reservoir(used, sampling.SAMPLE_ROWS, 0) for s in SPLITS}
    for group in source.groups:
        codes = codes_of(source, rule, group)
        table = source.read(group, used)
        for code, split in enumerate(SPLITS):
            rows = np.flatnonzero(codes == code)
            if len(rows):
                kept[split].add(take(table, rows))
    counts = recorded_stream(metadata).get("counts") or {}
    frames = {}
    for split, reservoir in kept.items():
        frame = sampling.as_frame(reservoir.rows())
        total = counts.get(split)
        frame.attrs["sample_of"] = total if isinstance(total, int) else reservoir.seen
        frames[split] = frame
    return frames


def first_rows(
    config: Config, prep: Preprocessor, metadata: dict[str, Any], split: str, k: int
) -> pd.DataFrame:
    """The first k rows of a streamed run's split in file order (raw columns), reading row
    groups only until k are read: enough for a check that needs some rows, not a sample. With
    attrs["first_of"]: the split's rows in all."""
    import pandas as pd

    from ..data.columns import as_frame
    from ..data.stream import SplitRule
    from ..data.stream.rows import split_tables

    source = open_source(config, metadata)
    rule = SplitRule.from_config(config)
    parts, held = [], 0
    for _, table in split_tables(source, rule, split, prep.features + prep.targets):
        parts.append(as_frame(table).iloc[: k - held])
        held += len(parts[-1])
        if held >= k:
            break
    if not parts:
        raise DataError(f"the {split} split: this run has none (data.{split}_split was 0)")
    frame = pd.concat(parts, ignore_index=True)
    total = (recorded_stream(metadata).get("counts") or {}).get(split)
    frame.attrs["first_of"] = total if isinstance(total, int) else split_rows(source, rule, split)
    return frame


def split_rows(source: StreamSource, rule: Any, split: str) -> int:
    """A split's rows in all, from the hash of every position: no column is read."""
    from ..data.stream.hashsplit import SPLITS

    code = SPLITS.index(split)
    return sum(
        int((rule.codes(source.keys[g.file], g.first, g.rows) == code).sum()) for g in source.groups
    )


def is_sample(frame: Any) -> bool:
    """Whether rows are a sample or the first rows of a streamed run's split, fewer than the
    split holds."""
    attrs = getattr(frame, "attrs", {})
    total = attrs.get("sample_of", attrs.get("first_of"))
    return total is not None and total > len(frame)


def rows_text(frame: Any) -> str:
    """'a sample of N of the M rows' for a sample of a streamed run's split, 'the first N of the
    M rows' for its first rows, else 'N rows'."""
    if is_sample(frame) and "sample_of" in frame.attrs:
        return f"a sample of {len(frame):,} of the {frame.attrs['sample_of']:,} rows"
    if is_sample(frame):
        return f"the first {len(frame):,} of the {frame.attrs['first_of']:,} rows"
    return f"{len(frame):,} rows"

"""`mlp predict`: an input that fits in memory read, predicted and written whole, as it always
was; a larger one, or a folder or glob of Parquet files, a chunk of rows at a time, so memory is
bounded by a chunk whatever the input's size. A file output appears only when whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..data.files import check_output, read_table, write_csv, write_table
from ..data.stream.chunks import CsvChunks, fits_whole, read_chunks, write_chunks
from .evaluate import Predictor, load

if TYPE_CHECKING:
    import pandas as pd


def predict_chunks(
    run: str | Path | Predictor,
    input_path: str | Path,
    proba: bool = False,
    rows: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Predictions of every row of a CSV, Parquet or NPZ file, or of a folder or glob of Parquet
    files, as Predictor.predict gives them, chunk by chunk (of `rows` rows, by default
    chunks.CHUNK_ROWS). Errors name the input, and past the first chunk its rows."""
    predictor = run if isinstance(run, Predictor) else load(run)
    start = 0
    for chunk in read_chunks(input_path, rows=rows):
        where = str(input_path)
        if start:
            where = f"{where}, rows {start + 1}-{start + len(chunk)}"
        yield predictor.predict(chunk.reset_index(drop=True), proba=proba, where=where)
        start += len(chunk)


def predict_to(
    run: str | Path,
    input_path: str | Path,
    output: str | Path | IO[bytes],
    proba: bool = False,
    rows: int | None = None,
) -> int:
    """Write the predictions of every input row to `output`; the rows written.

    A path ending in .csv or .parquet (.pq) must not exist yet: it is written to a temporary
    file renamed at the end, so a failure part-way leaves nothing. A binary stream (stdout)
    receives CSV. An input file that fits in memory (data.stream.chunks.fits_whole) is read and
    predicted whole and the output written at once, as mlp predict always has; any other input,
    or any input when `rows` is given, chunk by chunk (a stream receives each chunk as it is
    predicted, so an error part-way follows the rows already printed).
    """
    path, stream = (Path(output), None) if isinstance(output, (str, Path)) else (None, output)
    fmt = check_output(path) if path is not None else "csv"  # before the work, not after it
    predictor = load(run)
    if rows is None and fits_whole(input_path):
        where = str(input_path)
        frame = predictor.predict(read_table(input_path), proba=proba, where=where)
        if path is not None:
            write_table(frame, path)
        else:
            assert stream is not None
            write_csv(frame, stream)
        return len(frame)
    chunks = predict_chunks(predictor, input_path, proba, rows)
    if stream is None:
        assert path is not None
        return write_chunks(chunks, path, fmt)
    written = 0
    writer = CsvChunks(stream)
    for frame in chunks:
        writer.write(frame)
        written += len(frame)
    return written

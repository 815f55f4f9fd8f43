"""`mlp init`: a commented starter config from a table, by the rules training applies.

The table is read as `mlp train` reads it (a file too large to read whole is sampled uniformly in
one pass, which also keeps the targets whole and counts what training refuses in every column),
each column gets a kind and the reason for it, the task is preprocess.task_and_reason's answer on
every row, and the model and training sections are sized to the rows. The YAML is built line by
line, every name and path written as a quoted scalar, and validated before it is written.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ..config.messages import listed, shown
from ..config.registry import suggest
from ..config.schema import Config, DataConfig, build_config, name_problem
from ..console import printable
from ..errors import ConfigError, DataError, WriteError
from ..runs.atomic import check_output, write_text_atomic
from . import preprocess
from .files import check_regular, format_of, read_table
from .preprocess import (
    MAX_LISTED_COLUMNS,
    _missing_and_infinite,
    is_numeric,
    numbers_and_first_text,
    task_and_reason,
)

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_ROWS = 100_000  # rows kept from a file read in chunks
WHOLE_BYTES = 256 * 2**20  # files larger than this (or than memory allows) are sampled
SAMPLE_SEED = 0
MIN_ID_ROWS = 20  # below this, distinct values per row say little about a column
LIKELY_TARGETS = ("target", "label", "class", "y", "outcome", "species", "price")
ID_NAME = re.compile(r"(^|[_\s.\-])(id|idx|index|key|rowid|row_id|uuid)$", re.IGNORECASE)
CAMEL_ID = re.compile(r"[a-z0-9]Id$")  # userId, order2Id; not PAID, VALID or GRID


@dataclass
class ColumnKind:
    """What `mlp init` makes of one column."""

    name: str
    kind: str  # target, numeric, categorical, identifier, constant, free text, nested, ...
    reason: str
    used: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InitResult:
    """The starter config written (path None when no target was named) and what it holds."""

    path: Path | None
    task: str | None
    task_reason: str | None
    columns: list[ColumnKind]
    rows_read: int
    rows: int
    command: str | None
    sampled: str  # how the rows read were chosen, in words
    text: str | None = field(default=None, repr=False)  # the YAML written
    likely_target: tuple[str, str] | None = None  # without targets: a column and why it stands out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": None if self.path is None else str(self.path),
            "task": self.task,
            "task_reason": self.task_reason,
            "columns": [c.to_dict() for c in self.columns],
            "rows_read": self.rows_read,
            "rows": self.rows,
            "sampled": self.sampled,
            "command": self.command,
            "likely_target": None if self.likely_target is None else self.likely_target[0],
        }


# ---------------------------------------------------------------- reading


@dataclass
class ColumnFacts:
    """What training's checks look at in one column, added up over every row of the file (a
    sampled table's chunks too): missing and infinite values, how many values read as numbers
    and the first that does not (its row in the file), and the distinct values, up to one more
    than the categories training accepts."""

    rows: int = 0
    missing: int = 0
    infinite: int = 0
    numbers: int = 0
    text: bool = False  # some rows held text (the whole column is then read as text)
    first_text: tuple[int, Any] | None = None
    values: set[Any] = field(default_factory=set)

    def add(self, frame: pd.DataFrame, col: str, offset: int) -> None:
        """Count the rows of frame[col], which start at row `offset` of the file."""
        import pandas as pd

        series = frame[col]
        missing, infinite = _missing_and_infinite(frame, [col])
        self.rows += len(series)
        self.missing += missing.get(col, 0)
        self.infinite += infinite.get(col, 0)
        if is_numeric(series):
            self.numbers += int(series.notna().sum())
        else:
            self.text = True
            numbers, first = numbers_and_first_text(series)
            self.numbers += numbers
            if self.first_text is None and first is not None:
                self.first_text = (offset + first[0], first[1])
        room = preprocess.MAX_CATEGORIES + 1 - len(self.values)
        if room > 0:
            self.values.update(pd.unique(series.dropna())[:room].tolist())

    @property
    def mixed(self) -> tuple[int, Any] | None:
        """The first text value of a column mostly of numbers, which training refuses."""
        if (
            self.text
            and self.first_text is not None
            and preprocess.mostly_numbers(self.numbers, self.rows)
        ):
            return self.first_text
        return None

    @classmethod
    def of(cls, frame: pd.DataFrame, col: str) -> ColumnFacts:
        facts = cls()
        facts.add(frame, col, 0)
        return facts


@dataclass
class TableRows:
    frame: pd.DataFrame  # the rows read: every row, or a sample
    rows: int  # in the whole file
    how: str
    targets: pd.DataFrame  # the target columns of every row in the file
    facts: dict[str, ColumnFacts] | None = None  # a sampled table's whole-file facts


def read_rows(path: Path, targets: list[str] | None = None) -> TableRows:
    """The table as `mlp train` reads it; a file too large to read whole (or above WHOLE_BYTES)
    as a seeded uniform sample of SAMPLE_ROWS rows in file order, from one pass in chunks that
    also keeps the targets whole and counts what training checks in every column."""
    from .stream.chunks import fits_whole

    fmt = format_of(path)
    size = check_regular(path, fmt)  # refused as training refuses it: a folder, a FIFO, none
    if fmt == "npz" or (size <= WHOLE_BYTES and fits_whole(path)):
        frame = read_table(path, fmt)
        return TableRows(frame, len(frame), "every row", frame)
    return _sample(path, fmt, targets or [])


def _sample(path: Path, fmt: str, targets: list[str]) -> TableRows:
    import pandas as pd

    from .stream.chunks import read_chunks
    from .stream.reservoir import Reservoir

    reservoir: Reservoir | None = None
    nested: dict[str, str] = {}
    facts: dict[str, ColumnFacts] = {}
    kept: list[pd.DataFrame] = []
    position = ""
    for chunk in read_chunks(path, fmt):
        if reservoir is None:
            columns = list(chunk.columns)
            position = "#row" + "#" * max((len(c) for c in columns), default=0)  # not a column
            reservoir = Reservoir([*columns, position], SAMPLE_ROWS, SAMPLE_SEED)
            facts = {c: ColumnFacts() for c in columns}
        nested.update(chunk.attrs.get("nested", {}))
        for col, counted in facts.items():
            if col not in nested:  # lists and mappings: refused whatever they hold
                counted.add(chunk, col, reservoir.seen)
        kept.append(chunk[[t for t in targets if t in chunk.columns]])
        chunk = chunk.assign(**{position: np.arange(reservoir.seen, reservoir.seen + len(chunk))})
        reservoir.add(chunk)
    if reservoir is None:
        raise DataError(f"{path}: the file holds no rows")  # read_chunks refuses it first
    held = reservoir.rows()
    order = np.argsort(held.pop(position), kind="stable")  # file order, as training sees rows
    frame = pd.DataFrame({c: pd.Series(v[order]) for c, v in held.items()})
    frame = frame.infer_objects()  # chunks of ints and of floats merge as objects
    if nested:
        frame.attrs["nested"] = nested
    how = (
        f"a uniform sample of {reservoir.held():,} of {reservoir.seen:,} rows "
        f"(seed {SAMPLE_SEED}, one pass), in file order"
    )
    if reservoir.seen <= SAMPLE_ROWS:
        how = "every row, read in chunks"
    whole = pd.concat(kept, ignore_index=True).infer_objects()
    return TableRows(frame, reservoir.seen, how, whole, facts)


# ---------------------------------------------------------------- columns


def column_kinds(
    frame: pd.DataFrame,
    targets: list[str],
    task: str | None,
    facts: dict[str, ColumnFacts] | None = None,
) -> list[ColumnKind]:
    """Each column's kind and why, in table order; targets marked as such. facts: a sampled
    table's whole-file counts, which decide what they can (the split is then the sample's)."""
    held_out = _held_out(_split_rows(frame, targets, task))
    kinds = []
    for col in frame.columns:
        if col in targets:
            kinds.append(ColumnKind(col, "target", "", True))
        else:
            whole = None if facts is None else facts.get(col)
            kinds.append(_feature_kind(frame, col, held_out, whole))
    return kinds


Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # train, validation and test positions


def _split_rows(frame: pd.DataFrame, targets: list[str], task: str | None) -> Split | None:
    """The rows of each split as `mlp train` splits this table with the defaults the starter
    keeps; None without a target."""
    if not targets or task is None:
        return None
    from .sources import split_positions, strata

    data, seed = DataConfig(), Config().seed
    classes = task in ("binary", "classification")
    train, val, test = split_positions(
        len(frame),
        data.test_split,
        data.val_split / (1 - data.test_split),
        seed,
        strata(frame[targets[0]]) if classes else None,
    )
    return (np.arange(len(frame)) if train is None else train), val, test


def _held_out(split: Split | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(training rows, validation and test rows)."""
    return None if split is None else (split[0], np.concatenate(split[1:]))


def _unseen(values: np.ndarray, held_out: tuple[np.ndarray, np.ndarray]) -> list[str]:
    """The values found only in held-out rows, which training refuses as unseen."""
    train, rest = held_out
    return sorted(set(values[rest]) - set(values[train]))


def _feature_kind(
    frame: pd.DataFrame,
    col: str,
    held_out: tuple[np.ndarray, np.ndarray] | None,
    facts: ColumnFacts | None = None,
) -> ColumnKind:
    series = frame[col]
    nested = preprocess.nested_type(frame, col)
    if nested is not None:
        return _left_out(col, "nested", f"values of type {nested}; training takes scalars only")
    sampled = facts is not None
    facts = facts or ColumnFacts.of(frame, col)
    bad = [
        f"{n:,} {what} value{'s' * (n != 1)}"
        for what, n in (("missing", facts.missing), ("infinite", facts.infinite))
        if n
    ]
    if bad:
        return _left_out(
            col,
            "missing",
            f"{' and '.join(bad)}, which training refuses; fill them or drop those rows",
        )
    if len(facts.values) <= 1:
        value = next(iter(facts.values), series.iloc[0])
        return _left_out(col, "constant", f"one value, {shown(_scalar(value))}")
    if (mixed := facts.mixed) is not None:
        row, value = mixed
        return _left_out(
            col, "mixed", f"numbers, but row {row + 1} holds {shown(value)}; training refuses it"
        )
    distinct = series.nunique()
    if is_numeric(series) and not facts.text:
        return _numeric_kind(series, col, distinct)
    return _text_kind(series, col, distinct, held_out, facts, sampled)


def _numeric_kind(series: pd.Series, col: str, distinct: int) -> ColumnKind:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return ColumnKind(col, "numeric", "true/false, as 0/1", True)
    values = series.to_numpy(dtype=np.float64)
    whole = bool(np.all(np.mod(values, 1) == 0))
    n = len(values)
    if whole and distinct == n and n >= MIN_ID_ROWS:
        ordered = bool(np.all(np.diff(values) > 0))
        if ordered or ID_NAME.search(col) or CAMEL_ID.search(col):
            why = "increasing in file order" if ordered else "named like a key"
            return _left_out(
                col, "identifier", f"whole numbers, a different one in every row, {why}"
            )
    low, high = _scalar(values.min()), _scalar(values.max())
    what = "whole numbers" if whole else "numbers"
    return ColumnKind(
        col, "numeric", f"{distinct:,} distinct {what} from {low:g} to {high:g}", True
    )


def _text_kind(
    series: pd.Series,
    col: str,
    distinct: int,
    held_out: tuple[np.ndarray, np.ndarray] | None,
    facts: ColumnFacts,
    sampled: bool,
) -> ColumnKind:
    if distinct == len(series) and len(series) >= 2:
        what = "text" if series.dtype == object else f"{series.dtype} values"
        return _left_out(col, "identifier", f"{what}, a different value in every row")
    limit = preprocess.MAX_CATEGORIES  # training's, read when used
    if len(facts.values) > limit:
        count = f"more than {limit:,}" if sampled else f"{distinct:,}"
        return _left_out(
            col,
            "free text",
            f"{count} distinct strings, more than the {limit} categories training accepts",
        )
    if held_out is not None:
        unseen = _unseen(series.astype(str).to_numpy(), held_out)
        if unseen:
            estimate = " (in the sampled rows' split: an estimate)" if sampled else ""
            return _left_out(
                col,
                "rare categories",
                f"{len(unseen)} of its {len(facts.values)} strings fall only in validation or "
                f"test rows{estimate}, which training refuses as unseen categories",
            )
    return ColumnKind(col, "categorical", f"{len(facts.values)} distinct strings, one-hot", True)


def _left_out(col: str, kind: str, reason: str) -> ColumnKind:
    return ColumnKind(col, kind, reason, False)


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def check_targets(
    frame: pd.DataFrame, targets: list[str], where: str, whole: pd.DataFrame | None = None
) -> None:
    """Refuse a target training would refuse, naming it and what is accepted; whole: the
    target columns of every row in the file, when frame is a sample."""
    columns = list(frame.columns)
    absent = [t for t in targets if t not in columns]
    if absent:
        raise ConfigError(
            f"--target: {where} has no column {shown(absent[0])}{suggest(absent[0], columns)}; "
            f"columns: {listed(columns, MAX_LISTED_COLUMNS, quote=True)}"
        )
    if len(set(targets)) != len(targets):
        raise ConfigError(f"--target: a column is named twice in {listed(targets)}")
    if len(targets) == len(columns):
        raise ConfigError(f"--target: {where} has no column left to be a feature")
    for target in targets:
        kind = _feature_kind(frame if whole is None else whole, target, None)
        accepted = (
            "numbers, booleans or text labels, with no missing values and two values at least"
        )
        if kind.kind in ("nested", "missing", "constant", "mixed"):
            raise DataError(
                f"--target: column {shown(target)} holds {kind.reason}; accepted: {accepted}"
            )


def check_classes(
    frame: pd.DataFrame, target: str, held_out: tuple[np.ndarray, np.ndarray] | None
) -> None:
    """Classes found only in validation or test rows, which training refuses."""
    if held_out is None:
        return
    unseen = _unseen(frame[target].astype(str).to_numpy(), held_out)
    if unseen:
        raise DataError(
            f"--target: column {shown(target)} has classes with too few rows to reach the "
            f"training split ({listed(unseen)}); accepted: 2 rows or more per class "
            f"(drop or merge the rare classes)"
        )


def check_splits(whole: pd.DataFrame, targets: list[str], task: str, data: DataConfig) -> None:
    """Refuse a table training would refuse once split: too few rows for the default splits,
    a class too rare to reach the training rows, a regression split whose targets do not vary."""
    from .sources import check_enough_rows
    from .targets import check_split_targets

    check_enough_rows(len(whole), data.test_split, data.val_split / (1 - data.test_split), data)
    split = _split_rows(whole, targets, task)
    if task in ("binary", "classification"):
        check_classes(whole, targets[0], _held_out(split))
    elif task == "regression" and split is not None:
        columns = {
            name: {t: whole[t].to_numpy(dtype=np.float64)[rows] for t in targets}
            for name, rows in zip(("train", "val", "test"), split)
            if len(rows)
        }
        check_split_targets(str(data.path), columns, data)


def likely_target(kinds: list[ColumnKind]) -> tuple[str, str] | None:
    """A column that stands out as the target, and why: one named like a target, else the
    last column (where tables tend to keep it) when a config could use it; None otherwise."""
    used = [k.name for k in kinds if k.used]
    for wanted in LIKELY_TARGETS:
        for name in used:
            if name.lower() == wanted:
                return name, "its name"
    if kinds and kinds[-1].used:
        return kinds[-1].name, "the last column"
    return None


# ---------------------------------------------------------------- the YAML


@dataclass(frozen=True)
class Sizing:
    hidden: list[int]
    batch_size: int
    epochs: int
    patience: int
    lr: float = 1e-3


def sizing(train_rows: int) -> Sizing:
    """Widths, batch size and epochs for this many training rows: about 3,000 optimiser steps
    for small tables (a few hundred rows need many epochs), at least 20 epochs for large ones,
    early stopping on the validation loss keeping the best weights."""
    hidden = [64, 64] if train_rows < 5_000 else [128, 128] if train_rows < 50_000 else [256, 256]
    batch = int(min(256, max(16, 2 ** round(np.log2(max(train_rows, 1) / 30)))))
    steps = max(1, -(-train_rows // batch))
    epochs = int(min(300, max(20, -(-3000 // steps))))
    patience = int(min(30, max(10, epochs // 8)))
    return Sizing(hidden, batch, epochs, patience)


def quoted(value: str) -> str:
    """A string as one double-quoted YAML scalar on one line: any name or path round-trips."""
    return yaml.safe_dump(value, default_style='"', width=2**31, allow_unicode=True).rstrip("\n")


def starter_lines(
    *,
    table_shown: str,
    data_path: str,
    source: str,
    name: str,
    targets: list[str],
    task: str,
    task_reason: str,
    kinds: list[ColumnKind],
    read: TableRows,
    size: Sizing,
    command: str,
) -> list[str]:
    from ..config.json_schema import SCHEMA_COMMENT, SCHEMA_FILE

    targets_shown = ", ".join(quoted(t) for t in targets)

    lines = [
        SCHEMA_COMMENT,
        f"# for editors, write the schema beside this file: mlp config schema -o {SCHEMA_FILE}",
        f"# Starter config written by `mlp init` from {printable(table_shown)}:",
        f"# {read.rows:,} rows, {len(read.frame):,} read ({printable(read.how)}).",
        f"name: {quoted(name)}",
        "seed: 0",
        f"task: {task}  # what task: auto decides from {printable(targets_shown)}: "
        f"{printable(task_reason)}",
        "data:",
        f"  source: {source}",
        f"  path: {quoted(data_path)}",
    ]
    if len(targets) == 1:
        lines.append(f"  target: {quoted(targets[0])}")
    else:
        lines += ["  target:", *(f"    - {quoted(t)}" for t in targets)]
    lines.append("  features:")
    for kind in kinds:
        if kind.kind == "target":
            continue
        why = printable(f"{kind.kind}: {kind.reason}")  # one line, safe in a YAML comment
        if kind.used:
            lines.append(f"    - {quoted(kind.name)}  # {why}")
        else:
            lines.append(f"    # left out {printable(quoted(kind.name))}: {why}")
    lines += [
        "model:",
        f"  hidden: [{', '.join(map(str, size.hidden))}]",
        "  activation: relu",
        "optim:",
        "  name: adam",
        f"  lr: {size.lr:g}",
        "train:",
        f"  epochs: {size.epochs}",
        f"  batch_size: {size.batch_size}",
        f"  early_stopping: {{patience: {size.patience}, monitor: val_loss}}",
        f"# train it: {printable(command)}",
    ]
    return lines


def check_written(
    text: str, output: Path, table: Path, targets: list[str], kept: list[str]
) -> None:
    """The text parses and validates as `mlp config show` would, and says what was meant."""
    from ..config.bounded_yaml import safe_load

    raw = safe_load(text)
    config = build_config(raw, output.parent, source=str(output))
    data = config.data
    target = [data.target] if isinstance(data.target, str) else data.target
    same_file = data.path is not None and os.path.samefile(data.path, table)
    if not same_file or target != targets or data.features != kept:
        raise WriteError(
            f"{output}: not written; internal error: the starter config for {table} does not "
            f"say what was meant (please report it)"
        )


# ---------------------------------------------------------------- the command


def write_starter(
    table: str | Path,
    targets: list[str] | None = None,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """`mlp init`: read the table, judge its columns, and, given targets, write the config."""
    table = Path(table)
    targets = list(targets or [])
    out = Path(output) if output is not None else Path(f"{table.stem or 'table'}.yaml")
    format_of(table)  # an unknown file type before anything else
    if name is not None and (problem := name_problem(name)):
        raise ConfigError(f"--name: {problem}")
    if targets:
        remedy = "pass --force to replace it, or choose -o FILE"
        check_output(out, replace=lambda _: force, what=remedy)
    if targets and out.exists() and table.exists() and os.path.samefile(out, table):
        raise ConfigError(f"-o {out}: is the table itself; choose another file")
    read = read_rows(table, targets)
    frame = read.frame
    if not targets:
        kinds = column_kinds(frame, [], None)
        guess = likely_target(kinds)
        return InitResult(
            path=None,
            task=None,
            task_reason=None,
            columns=kinds,
            rows_read=len(frame),
            rows=read.rows,
            command=None,
            sampled=read.how,
            likely_target=guess,
        )
    # The target columns hold every row even of a sampled table: the targets, the task, the
    # classes and the splits are judged as training judges them, on the whole file.
    whole = read.targets
    check_targets(frame, targets, str(table), whole)
    task, task_reason = task_and_reason(whole, targets)
    check_splits(whole, targets, task, DataConfig(source=format_of(table), path=str(table)))
    kinds = [
        ColumnKind(k.name, k.kind, task_reason, True) if k.kind == "target" else k
        for k in column_kinds(frame, targets, task, read.facts)
    ]
    kept = [k.name for k in kinds if k.used and k.kind != "target"]
    if not kept:
        raise DataError(
            f"{table}: no column is usable as a feature "
            f"({'; '.join(f'{k.name}: {k.reason}' for k in kinds if not k.used)[:300]})"
        )
    name = name or _run_name(out)
    command = f"mlp train {shlex.quote(str(out))}"
    text = (
        "\n".join(
            starter_lines(
                table_shown=str(table),
                data_path=os.path.relpath(table.resolve(), out.resolve().parent),
                source=format_of(table),
                name=name,
                targets=targets,
                task=task,
                task_reason=task_reason,
                kinds=kinds,
                read=read,
                size=sizing(_train_rows(read.rows)),
                command=command,
            )
        )
        + "\n"
    )
    check_written(text, out.resolve(), table.resolve(), targets, kept)
    write_text_atomic(out, text)
    return InitResult(
        path=out,
        task=task,
        task_reason=task_reason,
        columns=kinds,
        rows_read=len(frame),
        rows=read.rows,
        command=command,
        sampled=read.how,
        text=text,
    )


def _train_rows(rows: int) -> int:
    data = DataConfig()
    return max(1, round(rows * (1 - data.test_split - data.val_split)))


def _run_name(out: Path) -> str:
    """The config's name: the output file's stem when it is a valid run name."""
    stem = out.stem
    return stem if name_problem(stem) is None else "starter"

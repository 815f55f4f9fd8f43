"""Training progress: a live bar on a terminal, plain lines in a log, nothing when quiet."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich import progress
from rich.console import Console

from ..callbacks import Callback
from ..console import err, format_record

if TYPE_CHECKING:
    from .trainer import Trainer


class Progress(Callback):
    """Live epoch bar with the latest losses on a terminal; a plain line every few epochs when
    the output is a file or a pipe; nothing when quiet.
    """

    def __init__(self, metric: str, quiet: bool = False, console: Console = err) -> None:
        self.metric, self.quiet, self.console = metric, quiet, console
        self.bar: progress.Progress | None = None
        self.task = progress.TaskID(0)
        self.last_line = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        if self.quiet or not self.console.is_terminal:
            return
        bar = progress.Progress(
            progress.TextColumn("epoch"),
            progress.MofNCompleteColumn(),
            progress.BarColumn(bar_width=None),  # as wide as the terminal leaves room for
            progress.TimeRemainingColumn(),
            progress.TextColumn("{task.fields[line]}"),
            console=self.console,
            transient=True,
        )
        total = trainer.config.train.epochs
        self.task = bar.add_task("train", total=total, completed=trainer.epoch, line="")
        bar.start()
        self.bar = bar

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.quiet:
            return
        line = format_record(record, self.metric)
        if self.bar is not None:
            self.bar.update(self.task, completed=record["epoch"], line=line)
            return
        total = trainer.config.train.epochs
        now = time.monotonic()
        # Plain mode: the first epoch, the last, and then at most one line every two seconds.
        if record["epoch"] in (1, total) or now - self.last_line >= 2.0 or trainer.stopped_early:
            self.last_line = now
            self.console.print(f"epoch {int(record['epoch'])}/{total}  {line}")

    def on_train_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

"""The live sweep view: the running trials with their epoch, then each result as it finishes,
and an overall progress bar."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config.registry import TASKS, main_metric
from ..console import err, number
from .executors.local import TrialProgress, TrialResult
from .grid import Trial

STATUS_STYLE = {
    "completed": "green",
    "pruned": "bright_black",
    "failed": "red",
    "stopped": "yellow",
    "running": "cyan",
}
MAX_ROWS = 30  # a long sweep shows its most recent trials


class SweepView:
    """Rich Live view on a terminal; one plain line per finished trial otherwise."""

    def __init__(
        self,
        trials: list[Trial],
        metric: str | None,
        quiet: bool = False,
        console: Console = err,
        total: int | None = None,
    ) -> None:
        """`metric` is the main validation metric, or None until a trial's data tells it.
        `total` is the number of trials when they are not all known yet (a search)."""
        self.trials, self.metric, self.quiet, self.console = trials, metric, quiet, console
        self.total = len(trials) if total is None else total
        self.results: dict[int, TrialResult] = {}
        self.running: dict[int, TrialProgress] = {}
        self.live: Live | None = None
        self.progress = Progress(
            TextColumn("trials"),
            MofNCompleteColumn(),
            BarColumn(bar_width=None),  # as wide as the terminal leaves room for
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("sweep", total=self.total)

    def start(self, finished: Sequence[TrialResult] = ()) -> None:
        for result in finished:
            self.results[result.trial.index] = result
        self.progress.update(self.task, completed=len(self.results))
        if not self.quiet and self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4)
            self.live.start()

    def on_progress(self, event: TrialProgress) -> None:
        """A trial started or finished an epoch."""
        if self.metric is None and event.task in TASKS:
            self.metric = main_metric(event.task)
        if event.trial.index not in self.results:
            self.running[event.trial.index] = event
        if self.live is not None:
            self.live.update(self._render())

    def update(self, result: TrialResult) -> None:
        self.results[result.trial.index] = result
        self.running.pop(result.trial.index, None)
        self.progress.update(self.task, completed=len(self.results))
        if self.live is not None:
            self.live.update(self._render())
        elif not self.quiet:
            trial = result.trial
            self.console.print(
                f"{trial.name} [{len(self.results)}/{self.total}] {trial.label()} "
                f"seed={trial.seed}: {result.status}  {self._score(result)}  "
                f"{result.seconds:.1f}s"
                + (f"  {result.error}" if result.error else "")
                + (f"  {result.extra['reason']}" if result.extra.get("reason") else ""),
                markup=False,
                soft_wrap=True,
            )

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None

    def _score(self, result: TrialResult) -> str:
        val = result.summary.get("metrics", {}).get("val", {})
        return f"val_{self.metric} {number(val[self.metric])}" if self.metric in val else ""

    def _render(self) -> Group:
        table = Table(show_edge=False, header_style="bold")
        score = f"val {self.metric}" if self.metric else "val"
        for column in ("trial", "settings", "seed", "status", "epoch", score, "time"):
            table.add_column(
                column,
                justify="right" if column in ("seed", "epoch", "time") else "left",
                overflow="fold" if column == "settings" else "ellipsis",
            )
        rows = []
        for result in self.results.values():
            epochs = result.summary.get("epochs_run")
            rows.append(
                (
                    result.trial,
                    result.status,
                    str(epochs) if epochs is not None else "",
                    self._score(result).split(" ")[-1],
                    f"{result.seconds:.1f}s",
                )
            )
        for event in self.running.values():
            rows.append((event.trial, "running", f"{event.epoch}/{event.epochs}", "", ""))
        for trial, status, epoch, value, seconds in sorted(rows, key=lambda r: r[0].index)[
            -MAX_ROWS:
        ]:
            style = STATUS_STYLE.get(status, "")
            table.add_row(
                trial.name,
                trial.label(),
                str(trial.seed),
                f"[{style}]{status}[/]",
                epoch,
                value,
                seconds,
            )
        return Group(table, self.progress)

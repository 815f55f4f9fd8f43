"""The live sweep view: a table that fills in as trials finish, with an overall progress bar."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..console import err
from .executor import TrialResult
from .grid import Trial

STATUS_STYLE = {"completed": "green", "failed": "red", "stopped": "yellow", "pending": "dim"}
MAX_ROWS = 30  # a long sweep shows its most recent trials


class SweepView:
    """Rich Live view on a terminal; one plain line per finished trial otherwise."""

    def __init__(
        self, trials: list[Trial], metric: str, quiet: bool = False, console: Console = err
    ) -> None:
        self.trials, self.metric, self.quiet, self.console = trials, metric, quiet, console
        self.results: dict[int, TrialResult] = {}
        self.live: Live | None = None
        self.progress = Progress(
            TextColumn("trials"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("sweep", total=len(trials))

    def start(self, finished: list[TrialResult] = ()) -> None:  # type: ignore[assignment]
        for result in finished:
            self.results[result.trial.index] = result
        self.progress.update(self.task, completed=len(self.results))
        if not self.quiet and self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4)
            self.live.start()

    def update(self, result: TrialResult) -> None:
        self.results[result.trial.index] = result
        self.progress.update(self.task, completed=len(self.results))
        if self.live is not None:
            self.live.update(self._render())
        elif not self.quiet:
            trial = result.trial
            self.console.print(
                f"{trial.name} [{len(self.results)}/{len(self.trials)}] {trial.label()} "
                f"seed={trial.seed}: {result.status}  {self._score(result)}  "
                f"{result.seconds:.1f}s" + (f"  {result.error}" if result.error else ""),
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
        return f"val_{self.metric} {val[self.metric]:.4f}" if self.metric in val else ""

    def _render(self) -> Group:
        table = Table(show_edge=False, header_style="bold")
        for column in ("trial", "settings", "seed", "status", f"val {self.metric}", "time"):
            table.add_column(column, justify="right" if column in ("seed", "time") else "left")
        shown = sorted(self.results.values(), key=lambda r: r.trial.index)[-MAX_ROWS:]
        for result in shown:
            style = STATUS_STYLE.get(result.status, "")
            table.add_row(
                result.trial.name,
                result.trial.label(),
                str(result.trial.seed),
                f"[{style}]{result.status}[/]",
                self._score(result).split(" ")[-1],
                f"{result.seconds:.1f}s",
            )
        return Group(table, self.progress)

"""What the terminal shows: numbers that keep their digits, bars as wide as the terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from mlpcli.console import format_record, metrics_table, number
from mlpcli.training.progress import Progress


def test_small_values_keep_three_significant_digits() -> None:
    assert number(0.9875) == "0.9875"
    assert number(0.0123) == "0.0123"
    assert number(0.0) == "0.0000"
    assert number(3.2e-06) == "3.2e-06"
    assert number(0.00042317) == "0.000423"
    assert number(0.5, 3) == "0.500"
    assert number(0.00123, 3) == "0.00123"
    line = format_record(
        {"train_loss": 1.234e-07, "val_loss": 0.25, "val_accuracy": 1.0}, "accuracy"
    )
    assert line == "train_loss 1.23e-07  val_loss 0.2500  val_accuracy 1.0000"


def test_metrics_table_shows_a_tiny_loss() -> None:
    console = Console(file=io.StringIO(), width=100)
    console.print(metrics_table({"train": {"loss": 4.5e-09, "accuracy": 1.0}}))
    text = console.file.getvalue()
    assert "4.5e-09" in text and "0.0000" not in text


def test_progress_bar_takes_the_terminal_width() -> None:
    for width in (80, 200):
        console = Console(file=io.StringIO(), width=width, force_terminal=True)
        bar = Progress("accuracy", console=console)
        trainer = SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=10)), epoch=0)
        bar.on_train_start(trainer)  # type: ignore[arg-type]
        assert bar.bar is not None
        bar.bar.update(bar.task, completed=3, line="train_loss 0.5000")
        rendered = Console(file=io.StringIO(), width=width, color_system=None)
        rendered.print(bar.bar.get_renderable())
        bar.close()
        line = rendered.file.getvalue().splitlines()[0]
        assert len(line.rstrip()) >= width - 2, (width, line)

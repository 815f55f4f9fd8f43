"""Helpers shared by the test modules (imported as `from conftest import ...`)."""

from __future__ import annotations

from typing import Any

from mlpcli.callbacks import Callback


def assert_exit_2(result: Any, *needles: str) -> None:
    """A CliRunner result refused with exit 2, no traceback, each needle named on stderr."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


class InterruptAt(Callback):
    """Stops training as Ctrl-C does, at the end of the given epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: Any, record: dict[str, float]) -> None:
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt

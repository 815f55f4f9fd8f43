"""The hooks the training loop calls; logging, checkpoints and diagnostics subclass Callback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training.trainer import Trainer


class Callback:
    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...

    def on_step(self, trainer: Trainer, epoch: int, step: int) -> None:
        """Called within an epoch of a stream, every few steps, after `step` of its steps
        (trainer.STEP_HOOK_EVERY): a checkpoint there resumes the epoch at that step."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called when fit() returns or raises."""

"""TensorBoard logs of a run: runs/<name>/tb/, beside the files they mirror.

Every metrics.csv column is a scalar per epoch (the same names); the resolved config is the
run's hparams, written into the same folder so that TensorBoard shows one run per run folder
(SummaryWriter.add_hparams would open a second one); each record of diagnostics.csv is a
scalar per hidden layer and statistic, `diagnostics/layer<N>/<name>`. A sweep's trials are
run folders too, so `tensorboard --logdir runs/<sweep>` compares them, hparams included.
torch.utils.tensorboard needs only the tensorboard package, imported here, once a run asks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..callbacks import Callback
from ..errors import ConfigError
from .folder import TENSORBOARD_FOLDER
from .reading import flat_settings

if TYPE_CHECKING:
    from ..config.schema import Config
    from ..training.trainer import Trainer

EXTRA = 'pip install "mlpcli[tensorboard]"'


def require_tensorboard() -> None:
    """One line naming the extra when the package is missing (found without importing it)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"train.tensorboard: needs the tensorboard package; install it: {EXTRA}")


def flat_hparams(config: Config) -> dict[str, bool | int | float | str]:
    """The resolved config as dotted keys with the scalar values hparams take (lists, mappings
    and nulls as their JSON text)."""
    return flat_settings(config.to_dict())


class TensorBoard(Callback):
    """Writes tb/ as training goes; on resume, what was logged past the checkpoint is purged."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = Path(run_dir) / TENSORBOARD_FOLDER
        self.writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Steps from purge_step on, logged before an interrupt, are hidden by TensorBoard: the
        # resumed run logs them again.
        purge = trainer.epoch + 1 if trainer.epoch else None
        self.writer = SummaryWriter(str(self.folder), purge_step=purge)
        if trainer.epoch == 0:
            self._hparams(trainer)

    def _hparams(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard.summary import hparams

        # The metrics the hparams view shows are the scalars of the same names.
        tags = ["train_loss", *(f"val_{m}" for m in metric_names(trainer)), "lr"]
        experiment, start, end = hparams(flat_hparams(trainer.config), dict.fromkeys(tags, 0.0))
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def add_diagnostics(self, epoch: int, rows: list[dict[str, Any]]) -> None:
        """A diagnostics record (diagnostics.csv's rows of one epoch)."""
        if self.writer is None:
            return
        for row in rows:
            self.writer.add_scalar(
                f"diagnostics/layer{row['layer']}/{row['name']}", row["value"], epoch
            )

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


def metric_names(trainer: Trainer) -> list[str]:
    """loss and the task's metrics, as the validation columns of metrics.csv name them."""
    from ..config.registry import TASKS

    return ["loss", *TASKS[trainer.task][2]] if trainer.val_data is not None else []

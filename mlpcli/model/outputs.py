"""A model's outputs on a split: the split's tensors on the device, raw outputs in large batches,
and the loss and metrics they score, read from the device in one go. Training, eval, predict
and inspect all score through these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .layers import EVAL_BATCH
from .tasks import compute_metrics, wide_dtype

if TYPE_CHECKING:
    from ..data import Preprocessor
    from ..data.columns import Table


@dataclass
class Split:
    """One split's inputs and targets, on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def from_frame(
        cls, prep: Preprocessor, frame: Table, device: torch.device, where: str
    ) -> Split:
        """Apply the fitted preprocessing and move the result to the device once."""
        x = torch.from_numpy(prep.transform(frame, where)).to(device)
        y = torch.from_numpy(prep.encode_targets(frame, where)).to(device)
        return cls(x, y)


def target_scale(prep: Preprocessor, device: torch.device) -> torch.Tensor | None:
    """Regression targets' [mean, std] per output, for metrics in the targets' own units: in
    float64 where the device has it, as predictions are scaled back (float32 would round them,
    and make a scale beyond 3.4e38 infinite)."""
    if prep.task != "regression":
        return None
    return torch.tensor(prep.target_scale, dtype=wide_dtype(device), device=device)


@torch.inference_mode()
def predict_raw(model: nn.Module, x: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Raw model outputs for every row, in large batches, in eval mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train(was_training)
    return out


def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    task: str,
    data: Split,
    target_scale: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Loss and the task's metrics on one split, as device tensors."""
    return score_outputs(predict_raw(model, data.x), loss_fn, task, data.y, target_scale)


@torch.inference_mode()
def score_outputs(
    outputs: torch.Tensor,
    loss_fn: nn.Module,
    task: str,
    targets: torch.Tensor,
    target_scale: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Loss and the task's metrics of raw outputs against their targets, as device tensors."""
    return {
        "loss": loss_fn(outputs, targets),
        **compute_metrics(task, outputs, targets, target_scale),
    }


def read_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """One host read for a whole dict of 0-d tensors."""
    if not values:
        return {}
    wide = wide_dtype(next(iter(values.values())).device)
    numbers = torch.stack([v.detach().to(wide) for v in values.values()]).cpu().tolist()
    return dict(zip(values, numbers))

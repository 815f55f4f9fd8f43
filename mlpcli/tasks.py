"""Tasks: the loss for each, the output transform, and the metrics, computed on the device."""

from __future__ import annotations

import torch
from torch import nn

from .config import Config
from .registry import LOSSES, MAXIMISED_METRICS, TASKS, resolve


def make_loss(config: Config, task: str) -> nn.Module:
    """The configured loss, or the task's default; a loss that does not fit the task is an error."""
    from .plan import loss_name

    return resolve(LOSSES[loss_name(config, task)][0])()


def is_better(metric: str, new: float, old: float | None, min_delta: float = 0.0) -> bool:
    if old is None:
        return new == new  # NaN is never an improvement
    if metric.removeprefix("val_").removeprefix("train_") in MAXIMISED_METRICS:
        return new > old + min_delta
    return new < old - min_delta


def transform(task: str, outputs: torch.Tensor) -> torch.Tensor:
    """Raw scores -> probabilities (sigmoid or softmax) or values (identity)."""
    kind = TASKS[task][1]
    if kind == "sigmoid":
        return torch.sigmoid(outputs)
    if kind == "softmax":
        return torch.softmax(outputs, dim=1)
    return outputs


def wide_dtype(device: torch.device) -> torch.dtype:
    """float64 for metrics, except on MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


def compute_metrics(
    task: str, outputs: torch.Tensor, targets: torch.Tensor, target_scale: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Metrics as 0-d tensors on the outputs' device (read them once, with .item()).

    Regression metrics are in the targets' own units (target_scale holds each [mean, std]).
    They are computed in float64 where the device has it, so they match scikit-learn's digits.
    """
    wide = wide_dtype(outputs.device)
    outputs, targets = (
        outputs.to(wide),
        targets if targets.dtype == torch.int64 else targets.to(wide),
    )
    if target_scale is not None:
        target_scale = target_scale.to(wide)
    if task == "regression":
        pred, true = outputs, targets
        if target_scale is not None:
            pred = pred * target_scale[:, 1] + target_scale[:, 0]
            true = true * target_scale[:, 1] + target_scale[:, 0]
        err = pred - true
        mse = (err**2).mean(dim=0)
        var = ((true - true.mean(dim=0)) ** 2).mean(dim=0)
        r2 = torch.where(var > 0, 1 - mse / var.clamp_min(1e-30), torch.zeros_like(var))
        return {
            "r2": r2.mean(),
            "mse": mse.mean(),
            "rmse": mse.sqrt().mean(),
            "mae": err.abs().mean(),
        }
    if task == "multilabel":
        pred = outputs > 0
        true = targets > 0.5
        tp = (pred & true).sum()
        wrong = (pred ^ true).sum()
        f1 = 2 * tp / (2 * tp + wrong).clamp_min(1)
        return {
            "f1_micro": f1.to(wide),
            "subset_accuracy": (pred == true).all(dim=1).to(wide).mean(),
        }
    if task == "binary":
        pred, true = (outputs[:, 0] > 0).long(), targets[:, 0].long()
        n_classes = 2
    else:
        pred, true = outputs.argmax(dim=1), targets
        n_classes = outputs.shape[1]
    return {"accuracy": (pred == true).to(wide).mean(), "f1_macro": f1_macro(pred, true, n_classes)}


def f1_macro(pred: torch.Tensor, true: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean F1 over the classes present in either predictions or targets (as scikit-learn)."""
    wide = wide_dtype(pred.device)
    tp = torch.bincount(true[pred == true], minlength=n_classes).to(wide)
    predicted = torch.bincount(pred, minlength=n_classes).to(wide)
    actual = torch.bincount(true, minlength=n_classes).to(wide)
    present = (predicted + actual) > 0
    f1 = 2 * tp / (predicted + actual).clamp_min(1)
    return f1[present].mean()

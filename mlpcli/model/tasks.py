"""Tasks: the loss for each, the output transform, and the metrics, computed on the device."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config.registry import LOSSES, MAXIMISED_METRICS, TASKS, resolve
from ..config.schema import Config, loss_name


def make_loss(config: Config, task: str) -> nn.Module:
    """The configured loss, or the task's default; a loss that does not fit the task is an error."""
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
    r2 is NaN for a target that does not vary: it is undefined there.
    """
    wide = wide_dtype(outputs.device)
    outputs, targets = (
        outputs.to(wide),
        targets if targets.dtype == torch.int64 else targets.to(wide),
    )
    if target_scale is not None:
        target_scale = target_scale.to(wide)
    if task == "regression":
        return regression_metrics(outputs, targets, target_scale)
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
    pred, true, n_classes = predicted_classes(task, outputs, targets)
    return {"accuracy": (pred == true).to(wide).mean(), "f1_macro": f1_macro(pred, true, n_classes)}


def predicted_classes(
    task: str, outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(predicted, true, number of classes) as class indices, for binary and classification
    outputs. A binary output of exactly 0 (a probability of 0.5) is the negative class."""
    if task == "binary":
        return (outputs[:, 0] > 0).long(), targets[:, 0].long(), 2
    return outputs.argmax(dim=1), targets, outputs.shape[1]


def regression_metrics(
    outputs: torch.Tensor, targets: torch.Tensor, target_scale: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """r2, mse, rmse and mae in the targets' units, counted in a unit of a power of two near
    their largest standard deviation: squares of errors near 1e308 then do not overflow, nor
    those near 1e-300 vanish, and in binary floating point scaling by a power of two changes
    no digit. Only mse is scaled back by the unit's square, so it is infinite exactly when it
    exceeds float64's range.
    """
    pred, true = outputs, targets
    unit = torch.ones((), dtype=outputs.dtype, device=outputs.device)
    if target_scale is not None:
        std, mean = target_scale[:, 1], target_scale[:, 0]
        largest = std.max()
        mantissa, _ = torch.frexp(largest)  # largest = mantissa x 2**e, mantissa in [0.5, 1)
        unit = largest / (2 * mantissa)  # 2**(e - 1), exactly
        pred = pred * (std / unit) + mean / unit
        true = true * (std / unit) + mean / unit
    err = pred - true
    mse = (err**2).mean(dim=0)
    var = ((true - true.mean(dim=0)) ** 2).mean(dim=0)
    # Equal targets may still show a variance of rounding noise (their mean is rounded).
    varies = (true.amax(dim=0) > true.amin(dim=0)) & (var > 0)
    r2 = torch.where(varies, 1 - mse / var, torch.full_like(var, math.nan))
    return {
        "r2": r2.mean(),
        "mse": mse.mean() * unit * unit,
        "rmse": mse.sqrt().mean() * unit,
        "mae": err.abs().mean() * unit,
    }


def f1_macro(pred: torch.Tensor, true: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean F1 over the classes present in either predictions or targets (as scikit-learn)."""
    wide = wide_dtype(pred.device)
    tp = torch.bincount(true[pred == true], minlength=n_classes).to(wide)
    predicted = torch.bincount(pred, minlength=n_classes).to(wide)
    actual = torch.bincount(true, minlength=n_classes).to(wide)
    present = (predicted + actual) > 0
    f1 = 2 * tp / (predicted + actual).clamp_min(1)
    return f1[present].mean()


def confusion_matrix(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Row counts by [true class, predicted class] (int64, classes in output order), on the
    outputs' device: binary and classification only."""
    pred, true, n = predicted_classes(task, outputs, targets)
    return torch.bincount(true * n + pred, minlength=n * n).reshape(n, n)


def per_class_scores(matrix: list[list[int]]) -> list[dict[str, float | int | None]]:
    """Each class's precision, recall, F1 and support (its true rows) from a confusion matrix.

    A score whose denominator is 0 is None rather than a stand-in 0: precision of a class never
    predicted, recall of a class absent from the rows, F1 of a class that is neither (so F1 is
    defined exactly for the classes f1_macro averages).
    """
    n = len(matrix)
    scores: list[dict[str, float | int | None]] = []
    for k in range(n):
        tp = matrix[k][k]
        predicted = sum(matrix[i][k] for i in range(n))
        actual = sum(matrix[k])
        scores.append(
            {
                "precision": tp / predicted if predicted else None,
                "recall": tp / actual if actual else None,
                "f1": 2 * tp / (predicted + actual) if predicted + actual else None,
                "support": actual,
            }
        )
    return scores

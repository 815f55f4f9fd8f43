"""A model's outputs on a split: the split's tensors on the device, raw outputs in large batches,
and the loss and metrics they score, read from the device in one go. Training, eval, predict
and inspect all score through these."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .factory import linear_layers
from .layers import EVAL_BATCH
from .tasks import compute_metrics, confusion_matrix, wide_dtype

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


class StreamScore:
    """The loss and the task's metrics of outputs that arrive chunk by chunk (a split read in
    row groups), from sufficient statistics kept on the device: equal to score_outputs on all
    the rows at once up to summation order (about 1e-12 relative), the loss to float32's
    rounding (score_outputs averages it in float32, this sums it in float64).

    Across processes, `vector()` is summed elementwise and `extremes()` (each regression
    target's max, then minus its min, so that both merge by one max) is reduced by max; then
    `result(vector, extremes)` gives the same dict on every process. Nothing is read from the
    device until `vector()`.
    """

    def __init__(
        self,
        loss_fn: nn.Module,
        task: str,
        outputs: int,
        target_scale: torch.Tensor | None,
        device: torch.device,
    ) -> None:
        self.loss_fn, self.task, self.k = loss_fn, task, outputs
        self.wide = wide_dtype(device)
        self.scale = None if target_scale is None else target_scale.to(device, self.wide)
        self.unit, self.shift = self._unit(device)
        self.sums = torch.zeros(2 + self._width(), dtype=self.wide, device=device)
        bound = torch.full((self.k if task == "regression" else 0,), -math.inf, dtype=self.wide)
        self.bounds = torch.cat([bound, bound]).to(device)

    def _width(self) -> int:
        # After [loss sum, rows]: confusion counts, or multilabel counts (true positives,
        # wrong labels, rows right on every label), or per target: squared errors, absolute
        # errors, and the targets' sum and sum of squares less the train mean.
        if self.task in ("binary", "classification"):
            n = 2 if self.task == "binary" else self.k
            return n * n
        if self.task == "multilabel":
            return 3
        return 4 * self.k

    def _unit(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """regression_metrics' power-of-two unit, and the train mean in it: targets are
        summed less that mean, so that their variance is not lost to cancellation."""
        if self.scale is None:
            return (
                torch.ones((), dtype=self.wide, device=device),
                torch.zeros((), dtype=self.wide, device=device),
            )
        largest = self.scale[:, 1].max()
        mantissa, _ = torch.frexp(largest)
        unit = largest / (2 * mantissa)
        return unit, self.scale[:, 0] / unit

    @torch.inference_mode()
    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Count one chunk's raw outputs against its targets (as Split.y holds them)."""
        rows = len(outputs)
        if rows == 0:
            return
        # The mean loss times the rows (or elements) it averages over: CrossEntropyLoss
        # averages over rows, the element-wise losses over every output.
        per = outputs.numel() if targets.shape == outputs.shape else rows
        outputs = outputs.to(self.wide)
        targets = targets if targets.dtype == torch.int64 else targets.to(self.wide)
        # In float64: score_outputs' float32 loss is this one rounded to float32.
        loss = self.loss_fn(outputs, targets) * per
        head = torch.stack([loss, torch.tensor(float(rows), dtype=self.wide, device=loss.device)])
        self.sums += torch.cat([head, self._counts(outputs, targets)])

    def _counts(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task in ("binary", "classification"):
            return confusion_matrix(self.task, outputs, targets).flatten().to(self.wide)
        if self.task == "multilabel":
            pred, true = outputs > 0, targets > 0.5
            counts = [(pred & true).sum(), (pred ^ true).sum(), (pred == true).all(dim=1).sum()]
            return torch.stack(counts).to(self.wide)
        pred, true = outputs, targets
        if self.scale is not None:
            std, mean = self.scale[:, 1], self.scale[:, 0]
            pred = pred * (std / self.unit) + mean / self.unit
            true = true * (std / self.unit) + mean / self.unit
        err = pred - true
        centred = true - self.shift
        self.bounds = torch.maximum(self.bounds, torch.cat([true.amax(dim=0), -true.amin(dim=0)]))
        return torch.cat(
            [
                (err**2).sum(dim=0),
                err.abs().sum(dim=0),
                centred.sum(dim=0),
                (centred**2).sum(dim=0),
            ]
        )

    def vector(self) -> np.ndarray:
        """The sums so far (float64), to add up across processes."""
        return self.sums.detach().cpu().double().numpy().copy()

    def extremes(self) -> np.ndarray:
        """Each regression target's max and minus its min (float64), to reduce by max."""
        return self.bounds.detach().cpu().double().numpy().copy()

    def confusion(self, vector: np.ndarray) -> list[list[int]]:
        """The confusion matrix [true class][predicted class] of a binary or multiclass task."""
        n = 2 if self.task == "binary" else self.k
        return np.rint(vector[2 : 2 + n * n]).astype(np.int64).reshape(n, n).tolist()

    def result(
        self, vector: np.ndarray | None = None, extremes: np.ndarray | None = None
    ) -> dict[str, float]:
        """{"loss": ..., metric: ...} as read_floats(score_outputs(...)) gives them."""
        v = self.vector() if vector is None else np.asarray(vector, dtype=np.float64)
        rows = v[1]
        # Cross-entropy averages over rows, every other loss over each output of each row.
        averaged = rows if self.task == "classification" else rows * self.k
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"loss": float(v[0] / averaged), **self._metrics(v[2:], rows, extremes)}

    def _metrics(self, v: np.ndarray, rows: float, extremes: np.ndarray | None) -> dict[str, float]:
        if self.task in ("binary", "classification"):
            n = 2 if self.task == "binary" else self.k
            matrix = v[: n * n].reshape(n, n)
            tp, predicted, actual = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
            present = (predicted + actual) > 0
            f1 = 2 * tp / np.maximum(predicted + actual, 1)
            return {
                "accuracy": float(tp.sum() / rows),
                "f1_macro": float(f1[present].mean()) if present.any() else math.nan,
            }
        if self.task == "multilabel":
            tp, wrong, right = v
            # compute_metrics divides these counts as torch divides integers, in float32.
            f1 = np.float32(2 * tp) / np.float32(max(2 * tp + wrong, 1))
            return {
                "f1_micro": float(f1),
                "subset_accuracy": float(right / rows),
            }
        k = self.k
        squares, absolute, total, total2 = (v[i * k : (i + 1) * k] for i in range(4))
        bounds = self.extremes() if extremes is None else extremes
        mse = squares / rows
        var = total2 / rows - (total / rows) ** 2
        varies = (bounds[:k] > -bounds[k:]) & (var > 0)
        r2 = np.where(varies, 1 - mse / np.where(varies, var, 1), math.nan)
        unit = float(self.unit)
        return {
            "r2": float(r2.mean()),
            "mse": float(mse.mean() * unit * unit),
            "rmse": float(np.sqrt(mse).mean() * unit),
            "mae": float(absolute.sum() / (rows * k) * unit),
        }


def score_chunks(
    model: nn.Module,
    loss_fn: nn.Module,
    task: str,
    chunks: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
    target_scale: torch.Tensor | None,
    device: torch.device,
    reduce: Callable[[np.ndarray], np.ndarray] = lambda v: v,
    reduce_max: Callable[[np.ndarray], np.ndarray] = lambda v: v,
) -> dict[str, float]:
    """The loss and metrics of a model on (inputs, targets) chunks, as evaluate() gives them
    for all the rows at once. Across processes `reduce` sums the statistics' vector and
    `reduce_max` takes the elementwise max of the extremes' (see StreamScore)."""
    score = StreamScore(loss_fn, task, linear_layers(model)[-1].out_features, target_scale, device)
    feed(score, model, chunks, device)
    return score.result(reduce(score.vector()), reduce_max(score.extremes()))


def feed(
    score: StreamScore,
    model: nn.Module,
    chunks: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
    device: torch.device,
) -> StreamScore:
    """Count the model's outputs on every (inputs, targets) chunk in score: the one loop that
    training, eval and a streamed run's splits score chunks by."""
    for x, y in chunks:
        score.add(predict_raw(model, torch.as_tensor(x).to(device)), torch.as_tensor(y).to(device))
    return score

"""The simple gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, appendix A):
the batch size above which larger batches stop cutting the number of steps a run needs.

|G_B|², the squared norm of the whole flattened parameter gradient of a batch's mean loss, has
the expectation |G|² + tr(Σ)/B for B rows drawn independently (with replacement) from the
training rows, where G is their mean gradient and Σ the covariance of one row's gradient. Its
averages at two batch sizes give unbiased estimates of both terms; B_simple is their ratio.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Large batches averaged (each of BIG run-sized ones: 800 of those); enough that seeds differ by
# about 10% on the shipped configs.
BATCHES = 100
BIG = 8  # the larger batch, in multiples of the run's batch size
BIG_CAP = 16384  # rows of the larger batch at most
NEAR = 2.0  # a batch size within this factor of B_simple is "near" it


@dataclass
class NoiseScale:
    """The estimate, what it was measured with, and the verdict."""

    b_simple: float | None  # None where |G|² or tr(Σ) came out not positive
    batch_size: int
    b_big: int
    batches: int  # of b_big rows, each made of b_big / batch_size batches of batch_size
    grad_squared: float  # the estimate of |G|²
    trace: float  # the estimate of tr(Σ)
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "b_simple": self.b_simple,
            "batch_size": self.batch_size,
            "b_big": self.b_big,
            "batches": self.batches,
            "grad_squared": self.grad_squared,
            "trace": self.trace,
            "verdict": self.verdict,
        }


def as_trained(model: nn.Module) -> nn.Module:
    """A copy of the model in training mode but for dropout: batch norm by each batch's own
    statistics (its running ones updated on the copy only), no random masks."""
    copied = copy.deepcopy(model)
    copied.train()
    for module in copied.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    return copied


def squared_norms(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    parts: int,
    batches: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """The mean |g|² of batches of `batch` rows and of batches of parts x batch rows, g the
    flattened gradient of a batch's mean loss with respect to every parameter; rows drawn
    with replacement. Each large batch is `parts` small ones, its gradient their mean (as
    gradient accumulation makes it, each part normalised as training normalises a batch):
    the two sizes are measured on the same rows, so their difference, which both estimates
    rest on, is less noisy than from separate draws."""
    params = [p for p in model.parameters() if p.requires_grad]
    small = big = 0.0
    with torch.enable_grad():
        for _ in range(batches):
            rows = torch.randint(len(x), (parts, batch), generator=generator)
            mean = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
            for part in rows:
                grads = torch.autograd.grad(loss_fn(model(x[part]), y[part]), params)
                flat = torch.cat([g.reshape(-1) for g in grads]).double()
                small += float(flat.square().sum())
                mean += flat / parts
            big += float(mean.square().sum())
    return small / (batches * parts), big / batches


def noise_scale(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    seed: int,
    batches: int = BATCHES,
    parts: int | None = None,
) -> NoiseScale:
    """B_simple at the model's weights on the rows (x, y), from `batches` batches of `parts`
    x batch_size rows (default BIG parts, fewer where that exceeds BIG_CAP rows, at least 2)
    and the batch_size-row parts they are made of, drawn by a generator seeded with `seed`:
    the same seed gives the same number, and the global random state is not touched."""
    small = batch_size
    parts = parts if parts is not None else max(2, min(BIG, BIG_CAP // small))
    big = parts * small
    generator = torch.Generator().manual_seed(seed)
    small_sq, big_sq = squared_norms(
        as_trained(model), loss_fn, x, y, small, parts, batches, generator
    )
    grad_squared, trace, b_simple = estimate(small, big, small_sq, big_sq)
    return NoiseScale(
        b_simple,
        small,
        big,
        batches,
        grad_squared,
        trace,
        noise_verdict(b_simple, small, big, batches, grad_squared),
    )


def estimate(
    small: int, big: int, small_sq: float, big_sq: float
) -> tuple[float, float, float | None]:
    """(|G|², tr(Σ), B_simple) from the mean squared gradient norms at two batch sizes, by the
    unbiased estimators of McCandlish et al. (appendix A.1); B_simple is the ratio of the two
    averaged estimates, None unless both are positive (a ratio of a noisy estimate near 0
    would be a meaningless negative or huge number)."""
    grad_squared = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1 / small - 1 / big)
    return grad_squared, trace, trace / grad_squared if grad_squared > 0 and trace > 0 else None


def noise_verdict(
    b_simple: float | None, batch: int, big: int, batches: int, grad_squared: float
) -> str:
    """How the run's batch size compares with B_simple, in words."""
    if b_simple is None:
        if grad_squared <= 0:
            return (
                f"no noise scale: the mean gradient is too small to tell from its noise with "
                f"batches of {batch} and {big} rows ({batches} of {big}; |G|² estimated at "
                f"{grad_squared:.2g}, not above 0), as at a minimum or on a plateau; batch "
                f"{batch} is below the noise scale, which is beyond what these batches measure"
            )
        return (
            f"no noise scale: batches of {batch} and {big} rows ({batches} of {big}) show no "
            f"gradient noise (tr(Σ) estimated at or below 0); batch {batch} is above the noise "
            f"scale, which is too small to measure"
        )
    scale = f"{b_simple:,.0f}" if b_simple >= 10 else f"{b_simple:.2g}"
    if batch * NEAR < b_simple:
        return (
            f"batch {batch} is well below the noise scale of {scale}: larger batches would "
            f"take about as many epochs with fewer steps"
        )
    if batch > b_simple * NEAR:
        return (
            f"batch {batch} is above the noise scale of {scale}: larger batches mostly waste "
            f"compute; smaller ones would need fewer epochs"
        )
    return (
        f"batch {batch} is near the noise scale of {scale}: the balance of steps and epochs; "
        f"larger batches would save steps at the cost of more epochs"
    )

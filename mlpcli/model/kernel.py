"""The kernel baseline's model: f(x) = offset + sum_i coef_i exp(-gamma |x - c_i|^2) over its
stored centres c_i (training rows). A one-hidden-layer network whose hidden units, one per
centre, are fixed and whose output weights are the coefficients; training.kernel fits it.
"""

from __future__ import annotations

import torch
from torch import nn

# The key of a model file's metadata that marks a kernel machine (its value: the fit).
KERNEL_KEY = "kernel"
# Rows x centres of one block of kernel values in a forward pass (float64: 32 MB): a large
# split is scored in pieces rather than as one rows x centres matrix.
BLOCK_VALUES = 1 << 22


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """|x_i - c_j|^2 for every row i and centre j, in the centres' dtype."""
    x = x.to(centres.dtype)
    squared = (x * x).sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)
    return squared.clamp_min(0)  # rounding can make a distance of 0 slightly negative


def rbf(x: torch.Tensor, centres: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """exp(-gamma |x_i - c_j|^2) for every row i and centre j, in the centres' dtype."""
    return torch.exp(-gamma * squared_distances(x, centres))


class KernelMachine(nn.Module):
    """RBF kernel ridge regression's predictor; every tensor a buffer (nothing is trained by
    gradient), in float64 as it was solved: the coefficients of a nearly singular system are
    large and cancel, which float32 would not keep."""

    centres: torch.Tensor  # centres x inputs
    coef: torch.Tensor  # centres x outputs
    offset: torch.Tensor  # outputs: the training targets' mean
    gamma: torch.Tensor  # 0-d

    def __init__(
        self, centres: torch.Tensor, coef: torch.Tensor, offset: torch.Tensor, gamma: torch.Tensor
    ) -> None:
        super().__init__()
        # Contiguous: a solve's result is column-major, which a model file cannot store.
        self.register_buffer("centres", centres.contiguous())
        self.register_buffer("coef", coef.contiguous())
        self.register_buffer("offset", offset.contiguous())
        self.register_buffer("gamma", gamma.contiguous())

    @classmethod
    def empty(cls, centres: int, inputs: int, outputs: int) -> KernelMachine:
        """A machine of that shape (zeros), for a model file's tensors to be loaded into."""
        wide = torch.float64
        return cls(
            torch.zeros(centres, inputs, dtype=wide),
            torch.zeros(centres, outputs, dtype=wide),
            torch.zeros(outputs, dtype=wide),
            torch.zeros((), dtype=wide),
        )

    def stored_numbers(self) -> int:
        """The numbers it keeps to predict: centres x inputs, the coefficients, the offset and
        gamma."""
        return sum(int(t.numel()) for t in (self.centres, self.coef, self.offset, self.gamma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = max(1, BLOCK_VALUES // max(1, len(self.centres)))
        out = [
            self.offset + rbf(x[i : i + step], self.centres, self.gamma) @ self.coef
            for i in range(0, len(x), step)
        ]
        # Outputs in the inputs' dtype, as the MLP's are.
        return torch.cat(out).to(x.dtype) if out else x.new_zeros(0, len(self.offset))

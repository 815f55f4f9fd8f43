"""One look inside a network on a batch: per layer, what went in and out and the gradients.

Diagnostics and `mlp inspect` read these; each engine offers `probe(x, y)`, and any model can be
probed by autograd with probe_model(). A probe sees the network as a training step does, less
the noise: batch norm normalises by the probed rows' own mean and variance (an untrained
layer's running variance of 1 would hide what it does), dropout is off. It updates no running
statistics, reads the gradients without storing them in any parameter's .grad, and draws no
random numbers, so it leaves training exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model.factory import layer_groups

# Batch norm as build_mlp makes it, and as a run of several CUDA processes converts it.
BATCH_NORMS = (nn.BatchNorm1d, nn.SyncBatchNorm)


@dataclass
class LayerProbe:
    """One Linear layer of the network and what follows it up to the next Linear."""

    weight: torch.Tensor  # the Linear's weight (out x in)
    pre: torch.Tensor  # z: the Linear's output, rows x units
    post: torch.Tensor  # a: the layer's activation output (z itself for the output layer)
    grad_pre: torch.Tensor  # dL/dz of the batch-mean loss, rows x units
    grad_weight: torch.Tensor  # dL/dW of the batch-mean loss


def probe_model(
    model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> list[LayerProbe]:
    """One LayerProbe per Linear layer for the batch-mean loss, by autograd."""
    if not isinstance(model, nn.Sequential):
        raise TypeError("probing needs an nn.Sequential")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            pres: list[torch.Tensor] = []
            posts: list[torch.Tensor] = []
            weights: list[torch.Tensor] = []
            a = x
            for group in layer_groups(model):
                linear = group[0]
                if not isinstance(linear, nn.Linear):
                    raise TypeError("probing needs a model that starts with a Linear layer")
                z = linear(a)
                a = z
                post = z
                for module in group[1:]:
                    a = _as_in_training(module, a)
                    if not isinstance(module, (nn.Dropout, nn.LayerNorm, *BATCH_NORMS)):
                        post = a
                pres.append(z)
                posts.append(post)
                weights.append(linear.weight)
            loss = loss_fn(a, y)
            grads = torch.autograd.grad(loss, [*pres, *weights])
    finally:
        model.train(was_training)
    n = len(pres)
    return [
        LayerProbe(w.detach(), z.detach(), p.detach(), gz, gw)
        for w, z, p, gz, gw in zip(weights, pres, posts, grads[:n], grads[n:])
    ]


def _as_in_training(module: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """The module on a batch as in a training step, less dropout (the model is in eval mode):
    batch norm by the batch's own statistics, its running ones left as they were."""
    if isinstance(module, BATCH_NORMS):
        if len(a) < 2:
            raise ValueError("batch norm's statistics need at least 2 rows to probe")
        return F.batch_norm(
            a, None, None, module.weight, module.bias, training=True, eps=module.eps
        )
    return module(a)

"""Backpropagation written out for the common MLP: Linear layers, elementwise activations, dropout.

The contract with the model: an nn.Sequential whose children follow the grammar

    (Linear [activation] [Dropout])* Linear

that is, blocks of one Linear, then at most one activation (a parameter-free module listed in
ACTIVATION_GRADS, not in place), then at most one Dropout, in that order, and a final Linear
that gives the raw outputs; each module appears once. unsupported() checks exactly this and
names the first layer outside it; the engine then falls back to autograd (train.engine auto)
or refuses (train.engine backprop). Models with norm layers or a learnable Swish beta, for
instance, use autograd.

For the blocks z_k = a_{k-1} W_k^T + b_k, a_k = m_k * g_k(z_k) (m_k the dropout mask, or 1),
with d_k = dL/dz_k, the chain rule gives, from the loss's gradient at the output backwards:

    dL/dW_k = d_k^T a_{k-1}        dL/db_k = sum over rows of d_k
    d_{k-1} = g'_{k-1}(z_{k-1}) * (m_{k-1} * (d_k W_k))

The forward pass is the modules' own: each block calls its Linear, activation and Dropout
modules in the model's order, keeping z, a and the mask (the Dropout module applied to ones,
so the masks are the very ones the model would draw). On a small model PyTorch's autograd
spends more time building and walking its graph than on the arithmetic; written out, a step is
a dozen tensor operations. Every parameter also lives in one flat buffer, so the optimiser
updates the whole model in one fused call. Each derivative is ATen's own backward kernel where
one exists, so the gradients match autograd's (the tests check every activation and loss, and
random stacks, against it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..model.factory import Swish
from .distributed import SOLO, World
from .optimizers import Optimizer
from .probe import LayerProbe

aten = torch.ops.aten

# activation class -> dL/dz from (dL/da, z, a, the module)
ActivationGrad = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def _swish_grad(d: torch.Tensor, z: torch.Tensor, a: torch.Tensor, m: Swish) -> torch.Tensor:
    s = torch.sigmoid(m.beta * z)  # d/dz z*s(bz) = s + b*z*s*(1-s)
    return d * s * (1 + m.beta * z * (1 - s))


ACTIVATION_GRADS: dict[type[nn.Module], ActivationGrad] = {
    nn.Identity: lambda d, z, a, m: d,
    nn.ReLU: lambda d, z, a, m: aten.threshold_backward(d, a, 0),
    nn.LeakyReLU: lambda d, z, a, m: aten.leaky_relu_backward(d, z, m.negative_slope, False),
    nn.Tanh: lambda d, z, a, m: aten.tanh_backward(d, a),
    nn.Sigmoid: lambda d, z, a, m: aten.sigmoid_backward(d, a),
    nn.ELU: lambda d, z, a, m: aten.elu_backward(d, m.alpha, 1.0, 1.0, False, z),
    nn.GELU: lambda d, z, a, m: aten.gelu_backward(d, z, approximate=m.approximate),
    nn.SiLU: lambda d, z, a, m: aten.silu_backward(d, z),
    nn.Softplus: lambda d, z, a, m: aten.softplus_backward(d, z, m.beta, m.threshold),
    Swish: _swish_grad,
}


LossAndGrad = Callable[[torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, torch.Tensor]]


def _cross_entropy(
    z: torch.Tensor, y: torch.Tensor, m: nn.CrossEntropyLoss
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and its gradient softmax(z) - one_hot(y), from one log-softmax."""
    log_p = torch.log_softmax(z, dim=1)
    loss = torch.nn.functional.nll_loss(log_p, y)
    grad = log_p.exp_()
    grad.scatter_add_(1, y.unsqueeze(1), torch.full_like(grad[:, :1], -1.0))
    return loss, grad.div_(len(z))


def _with_grad(
    grad: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
) -> LossAndGrad:
    return lambda z, y, m: (m(z, y), grad(z, y, m))


# loss class -> (the batch-mean loss, dL/dz) from (raw outputs z, targets y, the module)
LOSS_GRADS: dict[type[nn.Module], LossAndGrad] = {
    nn.BCEWithLogitsLoss: _with_grad(lambda z, y, m: torch.sigmoid(z).sub_(y).div_(z.numel())),
    nn.CrossEntropyLoss: _cross_entropy,
    # max(1, ...): a process of a multi-process run may get no row of a short last batch.
    nn.MSELoss: _with_grad(lambda z, y, m: (z - y).mul_(2.0 / max(1, z.numel()))),
    nn.L1Loss: _with_grad(lambda z, y, m: torch.sign(z - y).div_(z.numel())),
    nn.HuberLoss: _with_grad(lambda z, y, m: (z - y).clamp_(-m.delta, m.delta).div_(z.numel())),
}


@dataclass
class Block:
    """One Linear, then at most one activation, then at most one Dropout."""

    name: str  # the Linear's name in the Sequential, e.g. "0"
    linear: nn.Linear
    activation: nn.Module | None = None
    dropout: nn.Dropout | None = None


class OutsideGrammar(ValueError):
    """The model's layers do not follow (Linear [activation] [Dropout])* Linear."""


def _activation_problem(module: nn.Module) -> str | None:
    if type(module) not in ACTIVATION_GRADS:
        return "needs autograd"
    if any(True for _ in module.parameters()):
        return "has trainable parameters"
    if getattr(module, "inplace", False):
        return "works in place"
    return None


def blocks(model: nn.Module) -> list[Block]:
    """The model's children as blocks; raises OutsideGrammar naming the first layer that does
    not fit (Linear [activation] [Dropout])* Linear.
    """
    if not isinstance(model, nn.Sequential):
        raise OutsideGrammar("the model is not an nn.Sequential")
    children = list(model.named_children())
    if len({id(m) for _, m in children}) != len(children):
        raise OutsideGrammar("a layer appears twice in the model")
    found: list[Block] = []
    for name, module in children:
        kind = type(module).__name__
        where = f"layer {name} ({kind})"
        last = found[-1] if found else None
        if type(module) is nn.Linear:
            found.append(Block(name, module))
        elif last is None:
            raise OutsideGrammar(f"{where} comes before the first Linear layer")
        elif type(module) is nn.Dropout:
            if last.dropout is not None:
                raise OutsideGrammar(f"{where} follows another Dropout")
            last.dropout = module
        elif last.dropout is not None:
            raise OutsideGrammar(f"{where} follows a Dropout; the activation comes first")
        elif last.activation is not None:
            raise OutsideGrammar(f"{where} is a second activation after one Linear layer")
        else:
            problem = _activation_problem(module)
            if problem is not None:
                raise OutsideGrammar(f"{where} {problem}")
            last.activation = module
    if not found or found[-1].activation is not None or found[-1].dropout is not None:
        raise OutsideGrammar("the model does not end in a Linear layer")
    return found


def unsupported(model: nn.Module, loss_fn: nn.Module) -> str | None:
    """Why a model and loss cannot take the written-out path, or None when they can."""
    if type(loss_fn) not in LOSS_GRADS:
        return f"no written-out gradient for {type(loss_fn).__name__}"
    if getattr(loss_fn, "reduction", "mean") != "mean":
        return "the loss is not a batch mean"
    if any(getattr(loss_fn, k, None) is not None for k in ("weight", "pos_weight")):
        return "the loss weighs its terms"
    if isinstance(loss_fn, nn.CrossEntropyLoss) and (
        loss_fn.label_smoothing or loss_fn.ignore_index != -100
    ):
        return "the loss smooths labels or ignores a class"
    try:
        blocks(model)
    except OutsideGrammar as exc:
        return f"{exc}; it trains only (Linear [activation] [Dropout])* Linear"
    return None


def flatten_parameters(model: nn.Module) -> tuple[nn.Parameter, dict[str, torch.Tensor]]:
    """Move every parameter of the model into one flat buffer, with a gradient buffer of the
    same layout; the model's parameters become views of the first, so a step on the flat
    parameter updates the model in place. Returns it and each parameter's gradient view.
    """
    params = list(model.named_parameters())
    first = params[0][1]
    flat = torch.empty(sum(p.numel() for _, p in params), device=first.device, dtype=first.dtype)
    grad = torch.zeros_like(flat)
    grads, offset = {}, 0
    for name, param in params:
        part = slice(offset, offset + param.numel())
        view = flat[part].view_as(param)
        view.copy_(param.detach())
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, nn.Parameter(view))
        grads[name] = grad[part].view_as(param)
        offset += param.numel()
    flat = nn.Parameter(flat)
    flat.grad = grad
    return flat, grads


class Backprop:
    """One training step by the written-out chain rule: loss(x, y), then update(optimizer).

    Both calls expect autograd to be off (the training loop runs them under no_grad()).
    """

    name = "backprop"

    def __init__(self, model: nn.Module, loss_fn: nn.Module, world: World = SOLO) -> None:
        reason = unsupported(model, loss_fn)
        if reason is not None:
            raise ValueError(f"the written-out backprop cannot train this model: {reason}")
        self.model, self.loss_fn, self.world = model, loss_fn, world
        self.blocks = blocks(model)
        self.flat, grads = flatten_parameters(model)
        self.flat_grad: torch.Tensor = self.flat.grad  # type: ignore[assignment]  # set by flatten_parameters
        self.parameters: list[torch.Tensor] = [self.flat]
        # The modules' own forward methods and views into the flat buffers, fetched once: the
        # views stay valid as the optimiser updates the buffer in place, and a step no longer
        # pays nn.Module's call and attribute lookups.
        self.linears = [block.linear.forward for block in self.blocks]
        self.activations = [
            block.activation.forward if block.activation is not None else None
            for block in self.blocks
        ]
        self.dropouts = [
            block.dropout.forward if block.dropout is not None else None for block in self.blocks
        ]
        self.weights = [block.linear.weight.detach() for block in self.blocks]
        self.weight_grads = [grads[f"{block.name}.weight"] for block in self.blocks]
        self.bias_grads = [grads.get(f"{block.name}.bias") for block in self.blocks]
        self.activation_grads = [
            (ACTIVATION_GRADS[type(block.activation)], block.activation)
            if block.activation is not None
            else None
            for block in self.blocks
        ]
        self.loss_and_grad = LOSS_GRADS[type(loss_fn)]

    def context(self) -> contextlib.AbstractContextManager[None]:
        return torch.no_grad()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's forward pass, block by block in training mode, keeping what backward()
        needs: each block's input, pre-activation z, activation a and dropout mask.
        """
        # A training step's entry point, which wrappers may count or time; probe() runs the
        # same forward pass without being one.
        return self._forward(x, y)

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.inputs: list[torch.Tensor] = []
        self.pre: list[torch.Tensor] = []
        self.post: list[torch.Tensor] = []
        self.masks: list[torch.Tensor | None] = []
        a = x
        for linear, activation, dropout in zip(self.linears, self.activations, self.dropouts):
            self.inputs.append(a)
            z = linear(a)
            a = activation(z) if activation is not None else z
            self.pre.append(z)
            self.post.append(a)
            mask = dropout(torch.ones_like(a)) if dropout is not None else None
            if mask is not None:
                a = a * mask
            self.masks.append(mask)
        loss, self.output_grad = self.loss_and_grad(a, y, self.loss_fn)
        return loss

    def backward(self, deltas: list[torch.Tensor] | None = None) -> None:
        """Gradients of the last loss() into the flat parameter's .grad; each block's dL/dz is
        also put into `deltas` (output block first) when a list is given.
        """
        d = self.output_grad
        for k in range(len(self.blocks) - 1, -1, -1):
            if deltas is not None:
                deltas.append(d)
            torch.mm(d.t(), self.inputs[k], out=self.weight_grads[k])
            if self.bias_grads[k] is not None:
                torch.sum(d, dim=0, out=self.bias_grads[k])
            if k == 0:
                break
            d = d @ self.weights[k]
            below = k - 1
            mask = self.masks[below]
            if mask is not None:
                d = d * mask
            activation = self.activation_grads[below]
            if activation is not None:
                grad, module = activation
                d = grad(d, self.pre[below], self.post[below], module)

    def update(self, optimizer: Optimizer, grad_clip: float | None, share: float = 1.0) -> None:
        self.backward()
        # In a run of several processes: the whole batch's gradient, in one all-reduce of the
        # flat buffer (no-op in one process).
        self.world.average_gradients(self.flat_grad, share)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters, grad_clip)
        optimizer.step()

    def probe(self, x: torch.Tensor, y: torch.Tensor) -> list[LayerProbe]:
        """Every block's z, a, dL/dz and dL/dW for the batch-mean loss, dropout off. The
        gradients pass through the flat .grad buffer, which the next update() overwrites whole.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self._forward(x, y)
                deltas: list[torch.Tensor] = []
                self.backward(deltas)
        finally:
            self.model.train(was_training)
        deltas.reverse()
        return [
            LayerProbe(w, z, a, d, g.clone())
            for w, z, a, d, g in zip(self.weights, self.pre, self.post, deltas, self.weight_grads)
        ]

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing beyond the model and the optimiser

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

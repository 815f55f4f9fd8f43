"""Backpropagation written out for the common MLP: Linear layers, elementwise activations, dropout.

For a stack of layers z_k = a_{k-1} W_k^T + b_k, a_k = g_k(z_k), with d_k = dL/dz_k, the chain
rule gives, from the loss's gradient at the output d_L backwards, layer by layer:

    dL/dW_k = d_k^T a_{k-1}        dL/db_k = sum over rows of d_k
    d_{k-1} = (d_k W_k) * g'_{k-1}(z_{k-1})

On a small model PyTorch's autograd spends more time building and walking its graph than on the
arithmetic; written out, a step is a dozen tensor operations. Every parameter also lives in one
flat buffer, so the optimiser updates the whole model in one fused call. Each derivative is
ATen's own backward kernel where one exists, so the gradients match autograd's (the tests check
every activation and loss against it). Models with norm layers or a learnable Swish beta use
autograd instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .model import Swish
from .optim_step import functional_step

aten = torch.ops.aten

# activation class -> dL/dz from (dL/da, z, a, the module)
ActivationGrad = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, nn.Module], torch.Tensor]


def _swish_grad(d: torch.Tensor, z: torch.Tensor, a: torch.Tensor, m: nn.Module) -> torch.Tensor:
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


LossAndGrad = Callable[[torch.Tensor, torch.Tensor, nn.Module], tuple[torch.Tensor, torch.Tensor]]


def _cross_entropy(z: torch.Tensor, y: torch.Tensor, m: nn.Module) -> tuple[torch.Tensor, ...]:
    """Mean cross-entropy and its gradient softmax(z) - one_hot(y), from one log-softmax."""
    log_p = torch.log_softmax(z, dim=1)
    loss = torch.nn.functional.nll_loss(log_p, y)
    grad = log_p.exp_()
    grad.scatter_add_(1, y.unsqueeze(1), torch.full_like(grad[:, :1], -1.0))
    return loss, grad.div_(len(z))


def _with_grad(
    grad: Callable[[torch.Tensor, torch.Tensor, nn.Module], torch.Tensor],
) -> LossAndGrad:
    return lambda z, y, m: (m(z, y), grad(z, y, m))


# loss class -> (the batch-mean loss, dL/dz) from (raw outputs z, targets y, the module)
LOSS_GRADS: dict[type[nn.Module], LossAndGrad] = {
    nn.BCEWithLogitsLoss: _with_grad(lambda z, y, m: torch.sigmoid(z).sub_(y).div_(z.numel())),
    nn.CrossEntropyLoss: _cross_entropy,
    nn.MSELoss: _with_grad(lambda z, y, m: (z - y).mul_(2.0 / z.numel())),
    nn.L1Loss: _with_grad(lambda z, y, m: torch.sign(z - y).div_(z.numel())),
    nn.HuberLoss: _with_grad(lambda z, y, m: (z - y).clamp_(-m.delta, m.delta).div_(z.numel())),
}


@dataclass
class Layer:
    name: str  # the Linear's name in the Sequential, e.g. "0"
    linear: nn.Linear
    activation: nn.Module | None  # None for the output layer
    dropout: float = 0.0


def unsupported(model: nn.Module, loss_fn: nn.Module) -> str | None:
    """Why a model cannot take the written-out path, or None when it can."""
    if not isinstance(model, nn.Sequential):
        return "the model is not an nn.Sequential"
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
    for module in model:
        if isinstance(module, nn.Linear | nn.Dropout):
            continue
        if type(module) not in ACTIVATION_GRADS:
            return f"{type(module).__name__} layers need autograd"
        if any(True for _ in module.parameters()):
            return f"{type(module).__name__} has trainable parameters"
    if not isinstance(model[-1], nn.Linear):
        return "the model does not end in a Linear layer"
    return None


def _layers(model: nn.Sequential) -> list[Layer]:
    layers: list[Layer] = []
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            layers.append(Layer(name, module, None))
        elif isinstance(module, nn.Dropout):
            layers[-1].dropout = module.p
        else:
            layers[-1].activation = module
    return layers


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

    def __init__(self, model: nn.Sequential, loss_fn: nn.Module) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.layers = _layers(model)
        self.flat, grads = flatten_parameters(model)
        self.parameters = [self.flat]
        # Views into the flat buffers, fetched once: they stay valid as the optimiser updates
        # the buffer in place, and a step no longer pays nn.Module's attribute lookups.
        self.weights = [layer.linear.weight.detach() for layer in self.layers]
        self.weights_t = [w.t() for w in self.weights]
        self.biases = [
            layer.linear.bias.detach() if layer.linear.bias is not None else None
            for layer in self.layers
        ]
        self.weight_grads = [grads[f"{layer.name}.weight"] for layer in self.layers]
        self.bias_grads = [grads.get(f"{layer.name}.bias") for layer in self.layers]
        self.activations = [
            layer.activation.forward if layer.activation is not None else None
            for layer in self.layers
        ]
        self.activation_grads = [
            ACTIVATION_GRADS[type(layer.activation)] if layer.activation is not None else None
            for layer in self.layers
        ]
        self.dropouts = [layer.dropout for layer in self.layers]
        self.loss_and_grad = LOSS_GRADS[type(loss_fn)]
        self.stepping: tuple[torch.optim.Optimizer, Callable[[], None]] | None = None

    def context(self) -> contextlib.AbstractContextManager[None]:
        return torch.no_grad()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward pass in training mode, keeping what backward() needs."""
        self.inputs, self.pre, self.post, self.masks = [], [], [], []
        a = x
        for k in range(len(self.layers)):
            self.inputs.append(a)
            bias = self.biases[k]
            z = (
                torch.addmm(bias, a, self.weights_t[k])
                if bias is not None
                else a @ self.weights_t[k]
            )
            forward = self.activations[k]
            a = forward(z) if forward is not None else z
            self.pre.append(z)
            self.post.append(a)
            mask = None
            if self.dropouts[k] > 0:
                keep = 1.0 - self.dropouts[k]
                mask = torch.empty_like(a).bernoulli_(keep).div_(keep)
                a = a * mask
            self.masks.append(mask)
        loss, self.output_grad = self.loss_and_grad(a, y, self.loss_fn)
        return loss

    def backward(self) -> None:
        """Gradients of the last loss() into the flat parameter's .grad."""
        d = self.output_grad
        for k in range(len(self.layers) - 1, -1, -1):
            torch.mm(d.t(), self.inputs[k], out=self.weight_grads[k])
            if self.bias_grads[k] is not None:
                torch.sum(d, dim=0, out=self.bias_grads[k])
            if k == 0:
                break
            d = d @ self.weights[k]
            below = k - 1
            if self.masks[below] is not None:
                d = d * self.masks[below]
            activation = self.layers[below].activation
            d = self.activation_grads[below](d, self.pre[below], self.post[below], activation)

    def update(self, optimizer: torch.optim.Optimizer, grad_clip: float | None) -> None:
        self.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters, grad_clip)
        if self.stepping is None or self.stepping[0] is not optimizer:
            self.stepping = (optimizer, functional_step(optimizer) or optimizer.step)
        self.stepping[1]()

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing beyond the model and the optimiser

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

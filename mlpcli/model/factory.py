"""The model factory: one function from a model config and layer sizes to an nn.Sequential."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config.registry import ACTIVATIONS, resolve
from ..config.schema import ModelConfig
from ..errors import ConfigError


class Swish(nn.Module):
    """x * sigmoid(beta * x); beta = 1 is SiLU. With learnable=True, beta is trained per layer."""

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        value = torch.tensor(float(beta))
        if learnable:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={float(self.beta):g}, learnable={isinstance(self.beta, nn.Parameter)}"


def make_activation(spec: dict[str, Any]) -> nn.Module:
    """An activation layer from {name: ..., parameter: value}; defaults from the registry."""
    path, defaults = ACTIVATIONS[spec["name"]][:2]
    params = {**defaults, **{k: v for k, v in spec.items() if k != "name"}}
    return resolve(path)(**params)


def _init_linear(layer: nn.Linear, init: str, activation: dict[str, Any] | None) -> None:
    if init == "default":
        return  # PyTorch's own: kaiming_uniform with a=sqrt(5)
    if init.startswith("xavier"):
        getattr(nn.init, f"{init}_")(layer.weight)
    else:
        slope = activation.get("negative_slope", 0.01) if activation else 0.0
        nonlinearity = ACTIVATIONS[activation["name"]].kaiming if activation else "linear"
        getattr(nn.init, f"{init}_")(layer.weight, a=slope, nonlinearity=nonlinearity)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def build_mlp(config: ModelConfig, in_dim: int, out_dim: int) -> nn.Sequential:
    """Per hidden layer: Linear, optional norm, activation, optional dropout; then a final Linear.

    The network returns raw scores (logits); the task's output transform is applied at prediction.
    """
    if in_dim <= 0 or out_dim <= 0:
        raise ConfigError(
            f"model: needs at least one input and one output (got {in_dim}, {out_dim})"
        )
    layers: list[nn.Module] = []
    sizes = [in_dim, *config.hidden]
    for width_in, width_out, act in zip(sizes, sizes[1:], config.activations()):
        linear = nn.Linear(width_in, width_out, bias=config.bias)
        _init_linear(linear, config.init, act)
        layers.append(linear)
        if config.norm == "batch":
            layers.append(nn.BatchNorm1d(width_out))
        elif config.norm == "layer":
            layers.append(nn.LayerNorm(width_out))
        layers.append(make_activation(act))
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
    head = nn.Linear(sizes[-1], out_dim, bias=config.bias)
    _init_linear(head, config.init, None)
    layers.append(head)
    return nn.Sequential(*layers)


def layer_groups(model: nn.Sequential) -> list[list[nn.Module]]:
    """The model's children cut before each Linear: [Linear, norm?, activation?, dropout?]."""
    groups: list[list[nn.Module]] = []
    for module in model.children():
        if isinstance(module, nn.Linear) or not groups:
            groups.append([module])
        else:
            groups[-1].append(module)
    return groups


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers build_mlp made, input side first (inside a wrapper such as
    DistributedDataParallel too); the last is the output layer."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then MPS, then CPU; asking for a device that is absent is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    available = ["auto", "cpu"] + (["cuda"] if cuda else []) + (["mps"] if mps else [])
    if name.startswith("cuda"):
        if not cuda:
            raise ConfigError(
                f"train.device: '{name}' asked for, but this torch sees no CUDA GPU; "
                f"available: {', '.join(available)}"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: '{name}' does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..)"
            )
    if name == "mps" and not mps:
        raise ConfigError(
            f"train.device: 'mps' asked for, but MPS is not available here; "
            f"available: {', '.join(available)}"
        )
    return torch.device(name)

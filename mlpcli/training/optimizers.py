"""Optimisers over torch's functional updates, without torch.optim.Optimizer's object layer.

torch.optim.Optimizer imports torch._dynamo (about 1.5 s, most of a small run's start-up) the
first time any of its methods is called, and wraps each step in hooks, a profiler record and
grad-mode switches: tens of microseconds a call, a quarter of a small model's whole step. The
update itself is torch's documented functional API (torch.optim.adam.adam, sgd.sgd,
rmsprop.rmsprop), which imports nothing more. These classes call it with the same arguments and
the same state tensors as torch's optimisers do, so that:

- parameters and state are bitwise equal to torch.optim's after any number of steps;
- state_dict() has torch's layout (param_groups with the same keys, state keyed by parameter
  index), so a checkpoint loads into either, and a checkpoint written by torch.optim resumes here;
- torch.amp.GradScaler drives a fused one as it drives torch's (grad_scale and found_inf).

The tests hold each class to its torch.optim counterpart as the oracle.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from typing import Any, ClassVar

import torch
from torch.optim.adam import adam
from torch.optim.rmsprop import rmsprop
from torch.optim.sgd import sgd

Group = dict[str, Any]
State = dict[str, torch.Tensor]
Tensors = list[torch.Tensor]


def scalar_dtype(fused: bool) -> torch.dtype:
    """The dtype of a `step` counter, as torch.optim chooses it."""
    if not fused and torch.get_default_dtype() == torch.float64:
        return torch.float64
    return torch.float32


class Optimizer:
    """The part of torch.optim.Optimizer that training uses: param_groups (a schedule changes
    their lr), state, step(), state_dict() and load_state_dict() (the engines clear gradients
    themselves).
    """

    # Each subclass's hyperparameters besides lr and weight_decay, as torch.optim stores them.
    defaults: ClassVar[Group] = {}

    def __init__(self, params: Iterable[torch.Tensor], lr: float, **options: Any) -> None:
        group = {"lr": lr, **self.defaults, **options, "params": list(params)}
        if unknown := set(group) - set(self.defaults) - {"lr", "params"}:
            raise TypeError(f"{type(self).__name__} takes no {', '.join(sorted(unknown))}")
        self.param_groups: list[Group] = [group]
        self.state: dict[torch.Tensor, State] = {}
        # GradScaler hands a fused update its scale and inf flag instead of unscaling first.
        self._step_supports_amp_scaling = bool(group.get("fused"))

    def step(self) -> None:
        if torch.is_grad_enabled():  # updates are not for autograd to record
            with torch.no_grad():
                self._step()
        else:  # the written-out engine steps under no_grad already: spares a switch per step
            self._step()

    def _step(self) -> None:
        for group in self.param_groups:
            params, grads = [], []
            for p in group["params"]:
                if p.grad is not None:
                    params.append(p)
                    grads.append(p.grad)
            if params:
                states = (
                    [self.state_of(p, group) for p in params] if self.keeps_state(group) else []
                )
                self.update(group, params, grads, states)

    def keeps_state(self, group: Group) -> bool:
        return True

    def state_of(self, p: torch.Tensor, group: Group) -> State:
        if p not in self.state:
            self.state[p] = self.new_state(p, group)
        return self.state[p]

    def new_state(self, p: torch.Tensor, group: Group) -> State:
        return {}

    def update(self, group: Group, params: Tensors, grads: Tensors, states: list[State]) -> None:
        raise NotImplementedError

    def amp_arguments(self) -> dict[str, Any]:
        """What GradScaler set for this step (torch.optim reads the same attributes)."""
        return {
            "grad_scale": getattr(self, "grad_scale", None),
            "found_inf": getattr(self, "found_inf", None),
        }

    # ------------------------------------------------------------ torch's state_dict layout

    def state_dict(self) -> dict[str, Any]:
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = deepcopy(state_dict["param_groups"])
        if len(saved) != len(self.param_groups) or any(
            len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)
        ):
            raise ValueError("the saved optimizer state has other parameter groups than the model")
        by_index: dict[int, torch.Tensor] = {}
        for group, old in zip(self.param_groups, saved):
            by_index.update(zip(old["params"], group["params"]))
            group.update({k: v for k, v in old.items() if k != "params"})
        self.state = {}
        for key, values in state_dict["state"].items():
            if key in by_index:
                p = by_index[key]
                self.state[p] = {k: self.cast(p, k, v) for k, v in values.items()}

    def cast(self, p: torch.Tensor, key: str, value: torch.Tensor) -> torch.Tensor:
        """A loaded state tensor on the parameter's device, as torch.optim places it: the step
        counter stays a float (on the CPU, unless the update is fused), the rest takes the
        parameter's dtype.
        """
        fused = bool(self.param_groups[0].get("fused"))
        if key == "step":
            return value.to(dtype=torch.float32, device=p.device) if fused else value
        return value.to(dtype=p.dtype, device=p.device) if p.is_floating_point() else value


class SGD(Optimizer):
    defaults: ClassVar[Group] = {
        "momentum": 0.0,
        "dampening": 0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": None,
    }

    def keeps_state(self, group: Group) -> bool:
        return group["momentum"] != 0  # plain SGD has none, and torch's lists no entry

    def update(self, group: Group, params: Tensors, grads: Tensors, states: list[State]) -> None:
        buffers = [s.get("momentum_buffer") for s in states]
        sgd(
            params,
            grads,
            buffers,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            foreach=group["foreach"],
            fused=group["fused"],
            **self.amp_arguments(),
        )
        # The functional update creates a momentum buffer on the first step.
        for state, buffer in zip(states, buffers):
            if buffer is not None:
                state["momentum_buffer"] = buffer


class Adam(Optimizer):
    defaults: ClassVar[Group] = {
        "betas": (0.9, 0.999),
        "eps": 1e-08,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    }

    def new_state(self, p: torch.Tensor, group: Group) -> State:
        fused = bool(group["fused"])
        return {
            "step": torch.zeros((), dtype=scalar_dtype(fused), device=p.device if fused else "cpu"),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }

    def update(self, group: Group, params: Tensors, grads: Tensors, states: list[State]) -> None:
        beta1, beta2 = group["betas"]
        adam(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            foreach=group["foreach"],
            fused=group["fused"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            **self.amp_arguments(),
        )


class AdamW(Adam):
    """Adam with weight decay decoupled from the gradient, as torch.optim.AdamW."""

    defaults: ClassVar[Group] = {
        **Adam.defaults,
        "weight_decay": 0.01,
        "decoupled_weight_decay": True,
    }


class RMSprop(Optimizer):
    defaults: ClassVar[Group] = {
        "momentum": 0.0,
        "alpha": 0.99,
        "eps": 1e-08,
        "centered": False,
        "weight_decay": 0.0,
        "capturable": False,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
    }

    def new_state(self, p: torch.Tensor, group: Group) -> State:
        state = {
            "step": torch.zeros((), dtype=scalar_dtype(False)),
            "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        }
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def update(self, group: Group, params: Tensors, grads: Tensors, states: list[State]) -> None:
        rmsprop(
            params,
            grads,
            [s["square_avg"] for s in states],
            [],
            [s["momentum_buffer"] for s in states] if group["momentum"] > 0 else [],
            [s["step"] for s in states],
            foreach=group["foreach"],
            maximize=group["maximize"],
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=False,
        )

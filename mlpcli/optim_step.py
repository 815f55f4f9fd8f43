"""A cheaper optimizer.step() for the written-out engine's single flat parameter.

Optimizer.step() wraps the update in hooks, a profiler record, grad-mode switches and a state
walk: tens of microseconds a call, a quarter of a small model's whole step. For fused Adam and
AdamW over one parameter, torch's documented functional API (torch.optim.adam.adam) performs
the same update on the optimizer's own state tensors without that bookkeeping.

The Optimizer object still owns the hyperparameters (a schedule changes its lr), the state and
state_dict(); the first step goes through optimizer.step() so that torch lays out its own state.
The tests check that both paths leave bitwise identical parameters and state.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.adam import adam

ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}


def functional_step(optimizer: torch.optim.Optimizer) -> Callable[[], None] | None:
    """An equivalent of optimizer.step() for a fused Adam or AdamW with a single parameter, or
    None when the optimizer is anything else (the caller then uses optimizer.step()).
    """
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return None
    if len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    plain = not any(group.get(k) for k in ("amsgrad", "maximize", "differentiable", "capturable"))
    if len(group["params"]) != 1 or not group.get("fused") or not plain:
        return None
    return FunctionalAdam(optimizer)


class FunctionalAdam:
    """optimizer.step() for one parameter, through torch.optim.adam.adam."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.usable = True

    def __call__(self) -> None:
        # Read afresh each time: load_state_dict() replaces the group and the state.
        group = self.optimizer.param_groups[0]
        (param,) = group["params"]
        state = self.optimizer.state.get(param)
        if not self.usable or not state or set(state) != ADAM_STATE or param.grad is None:
            self.optimizer.step()  # the first step lays out the state as torch does
            return
        decoupled = group.get("decoupled_weight_decay", type(self.optimizer) is torch.optim.AdamW)
        beta1, beta2 = group["betas"]
        try:
            adam(
                [param],
                [param.grad],
                [state["exp_avg"]],
                [state["exp_avg_sq"]],
                [],
                [state["step"]],
                fused=True,
                decoupled_weight_decay=decoupled,
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )
        except TypeError:  # another torch's signature: raised before anything is updated
            self.usable = False
            self.optimizer.step()

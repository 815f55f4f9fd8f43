"""Learning-rate schedules, stepped once per epoch, with torch.optim.lr_scheduler's arithmetic.

torch's schedulers accept only a torch.optim.Optimizer (whose methods import torch._dynamo; see
optimizers.py). These set a group's lr by the same recursive formulas, so the lr of every epoch
is bitwise equal to torch's, and their state_dict() has the keys torch's has: a checkpoint
written by either resumes in the other. The tests hold each to its torch counterpart.
"""

from __future__ import annotations

import math
from typing import Any, Protocol


class HasParamGroups(Protocol):
    param_groups: list[dict[str, Any]]


class Schedule:
    """What the trainer calls: step() after each epoch, and state_dict()/load_state_dict() as
    torch's schedulers have them (every attribute but the optimiser)."""

    optimizer: HasParamGroups

    def step(self, metric: float | None = None) -> None:
        """Move to the next epoch; `metric` is read by the schedules that watch one."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Only the keys this schedule keeps: a checkpoint cannot add attributes."""
        known = self.state_dict()
        vars(self).update({k: v for k, v in state.items() if k in known})

    def retarget(self, epochs: int) -> None:
        """Follow a run's new train.epochs (a run continued to more epochs); only a schedule
        whose shape depends on the run's length changes."""


class EpochSchedule(Schedule):
    """An lr that is a function of the epoch and the previous lr; the state is torch's
    LRScheduler's, in its names."""

    def __init__(self, optimizer: HasParamGroups) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # torch records it in the optimiser's groups
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._step_count = 1
        self._is_initial = False
        self._get_lr_called_within_step = False
        self._last_lr = list(self.base_lrs)

    def step(self, metric: float | None = None) -> None:
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.next_lrs()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def next_lrs(self) -> list[float]:
        raise NotImplementedError


class StepLR(EpochSchedule):
    """lr times gamma every step_size epochs."""

    def __init__(self, optimizer: HasParamGroups, step_size: int, gamma: float) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def next_lrs(self) -> list[float]:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineAnnealingLR(EpochSchedule):
    """Half a cosine from the initial lr down to eta_min over T_max epochs, computed from the
    previous epoch's lr as torch does (the closed form differs in the last bits).
    """

    def __init__(self, optimizer: HasParamGroups, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def retarget(self, epochs: int) -> None:
        """Stretch the half cosine over `epochs`: the lr of the epochs still to run is the
        closed form of a cosine of that length at each epoch (from the current one on, as
        torch computes it step by step), so a run that had reached eta_min rises again to where
        the longer cosine stands."""
        if epochs == self.T_max:
            return
        self.T_max = epochs
        t, low = self.last_epoch, self.eta_min
        for base, group in zip(self.base_lrs, self.optimizer.param_groups):
            group["lr"] = low + (base - low) * (1 + math.cos(math.pi * t / epochs)) / 2
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def next_lrs(self) -> list[float]:
        t, t_max, low = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return [
                g["lr"] + (base - low) * (1 - math.cos(math.pi / t_max)) / 2
                for base, g in zip(self.base_lrs, groups)
            ]
        return [
            (1 + math.cos(math.pi * t / t_max))
            / (1 + math.cos(math.pi * (t - 1) / t_max))
            * (g["lr"] - low)
            + low
            for g in groups
        ]


class ReduceLROnPlateau(Schedule):
    """lr times factor once the metric (minimised) has not improved by a relative 1e-4 for more
    than `patience` epochs, never below min_lr; torch's defaults for everything else.
    """

    def __init__(
        self, optimizer: HasParamGroups, factor: float, patience: int, min_lr: float
    ) -> None:
        self.optimizer = optimizer
        self.factor = factor
        self.default_min_lr = min_lr
        self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = 0
        self.eps = 1e-08
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        self.mode_worse = math.inf
        self.mode = "min"
        self.threshold = 1e-4
        self.threshold_mode = "rel"
        self.best = math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metric: float | None = None) -> None:
        if metric is None:
            raise TypeError("ReduceLROnPlateau.step needs the watched metric")
        current = float(metric)
        self.last_epoch += 1
        if current < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

"""The training loop: one epoch, evaluation, early stopping, and the callbacks that hang off it.

Data lives on the device as tensors; each epoch draws one permutation on the device and slices
batches from it. An engine (engine.py) computes each step's gradients. Only on the CPU, where it
costs no device sync, is each step's loss read as it comes, so that a NaN stops the run at once.
In a run of several processes (distributed.py) each takes its part of every batch, and the losses
and metrics the loop decides on are the whole batch's and process 0's, the same everywhere.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from ..callbacks import Callback
from ..config.registry import OPTIMIZERS, SCHEDULES, resolve
from ..config.schema import Config, OptimConfig, ScheduleConfig
from ..errors import TrainingError
from ..model.outputs import Split, evaluate, read_floats
from ..model.tasks import is_better
from . import schedules
from .distributed import SOLO, World
from .engine import Engine, choose_threads, cpu_threads, make_engine
from .optimizers import Optimizer


def make_optimizer(config: OptimConfig, params: Any, device: torch.device) -> Optimizer:
    entry = OPTIMIZERS[config.name]
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    kwargs.update({key: getattr(config, key) for key in entry.takes})
    if entry.fused and device.type in ("cpu", "cuda"):
        # One kernel over all parameters, instead of a Python loop of small operations.
        kwargs["fused"] = True
    return resolve(entry.path)(params, **kwargs)


def make_scheduler(
    config: ScheduleConfig, optimizer: Optimizer, epochs: int
) -> schedules.Schedule | None:
    """The schedule.name's class from its registry entry, given the keys it takes; None for none."""
    entry = SCHEDULES[config.name]
    if entry.path is None:
        return None
    kwargs = {
        arg: epochs if key == "epochs" else getattr(config, key) for arg, key in entry.takes.items()
    }
    schedule: schedules.Schedule = resolve(entry.path)(optimizer, **kwargs)
    return schedule


class NonFiniteLoss(Exception):
    """A training step's loss was NaN or infinite; raised before that step changes the weights."""

    def __init__(self, step: int, steps: int, value: float) -> None:
        super().__init__(f"loss {value} at step {step} of {steps}")
        self.step, self.steps, self.value = step, steps, value


def reads_each_step(device: torch.device) -> bool:
    """Whether a step's loss is read as soon as it is computed: free on the CPU, a stall of the
    queue on an accelerator.
    """
    return device.type == "cpu"


def train_epoch(
    engine: Engine,
    optimizer: Optimizer,
    data: Split,
    batch_size: int,
    generator: torch.Generator,
    grad_clip: float | None,
    world: World = SOLO,
) -> tuple[float, float]:
    """One pass over shuffled batches; returns the mean training loss and the first step's.

    A non-finite loss raises NonFiniteLoss naming its step. On the CPU every step's loss is read
    as it comes (a read there costs no device sync), so training stops at that step, before it
    changes the weights. On an accelerator a per-step read would stall the queue, so the losses
    stay on the device and are read once at the end of the epoch; the first bad step is still
    the one named.

    With several processes, each draws the same permutation and trains on its contiguous part of
    every batch; the losses returned and checked are the whole batch's, so every process stops at
    the same step.
    """
    engine.model.train()
    n = len(data)
    device = data.x.device
    order = torch.randperm(n, device=device, generator=generator)
    # A trailing batch of one row breaks batch norm and adds only noise: fold it away.
    stop = n - 1 if n % batch_size == 1 and n > 1 else n
    starts = range(0, stop, batch_size)
    on_host = reads_each_step(device)
    losses = torch.empty(0 if on_host else len(starts), device=device)
    rows_here: list[int] = []  # this process's rows in each step, for the accelerator's tally
    total = first = 0.0
    with engine.context():
        for step, start in enumerate(starts):
            rows = min(batch_size, stop - start)
            low, high = world.part(rows)
            index = order[start + low : start + high]
            loss = engine.loss(data.x.index_select(0, index), data.y.index_select(0, index))
            if on_host:
                value = world.step_loss(loss.item(), len(index), rows)
                if not math.isfinite(value):
                    raise NonFiniteLoss(step + 1, len(starts), value)
                total += value * rows
                first = first if step else value
            else:
                losses[step] = loss.detach()
                rows_here.append(len(index))
            engine.update(optimizer, grad_clip, len(index) / rows)
    if not on_host:
        sizes = torch.full_like(losses, batch_size)
        sizes[-1] = stop - starts[-1]
        losses = world.mean_losses(losses, rows_here, sizes)
        finite = torch.isfinite(losses)
        total, bad, first = torch.stack(
            [(losses * sizes).sum(), (~finite).sum(), losses[0]]
        ).tolist()
        if bad:
            at = int((~finite).nonzero()[0])
            raise NonFiniteLoss(at + 1, len(starts), float(losses[at]))
    return total / stop, first


class Trainer:
    """Owns the model, optimiser, schedule, RNG and best-so-far state; fit() runs the epochs."""

    def __init__(
        self,
        config: Config,
        model: nn.Module,
        loss_fn: nn.Module,
        task: str,
        train: Split,
        val: Split | None,
        target_scale: torch.Tensor | None,
        world: World = SOLO,
    ) -> None:
        self.config, self.model, self.loss_fn, self.task = config, model, loss_fn, task
        self.train_data, self.val_data, self.target_scale = train, val, target_scale
        self.world = world  # the processes training this run; one, unless under torchrun
        self.callbacks: list[Callback] = []  # set by the caller: logging, checkpoints, ...
        self.device = train.x.device
        with world.guard():  # DistributedDataParallel broadcasts process 0's weights
            self.engine = make_engine(config.train, model, loss_fn, self.device, world)
        self.threads = choose_threads(config.train, model, self.device, len(train))
        self.optimizer = make_optimizer(config.optim, self.engine.parameters, self.device)
        self.scheduler = make_scheduler(config.schedule, self.optimizer, config.train.epochs)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        stop = config.train.early_stopping
        self.monitor = stop.monitor if stop else ("val_loss" if val is not None else "train_loss")
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.initial_loss: float | None = None  # the first step's, on the untrained weights
        self.restored = False  # whether the model holds the best epoch's weights
        self.stopped_early = False
        self.stopped_by: str | None = None  # why the caller ended training early (stop())
        self.train_seconds = 0.0

    # ------------------------------------------------------------ the loop

    def fit(self) -> None:
        """Train from the current epoch to the last (or an early stop); keeps the best weights."""
        cfg = self.config.train
        # The callbacks' work too runs on the training's threads: a probe on more threads
        # would wake a thread pool that then competes with the training steps.
        with cpu_threads(self.threads):
            for cb in self.callbacks:
                cb.on_train_start(self)
        try:
            with cpu_threads(self.threads):
                while self.epoch < cfg.epochs and not self.stopped_early and not self.stopped_by:
                    record = self._run_epoch(self.epoch + 1)
                    self.epoch += 1
                    self.history.append(record)
                    self._track_best(record)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, record)
            if self.config.train.restore_best:
                self.restore_best()
        except BaseException:
            # The error that stopped training is the one to report, not a later one.
            self._end_callbacks(raise_errors=False)
            raise
        self._end_callbacks(raise_errors=True)

    def stop(self, reason: str) -> None:
        """End training after the current epoch, as a normal end: its callbacks still run,
        the best weights are restored per train.restore_best, and the run completes with
        `reason` in its summary (a sweep pruning a hopeless trial, say)."""
        self.stopped_by = reason

    def _end_callbacks(self, raise_errors: bool) -> None:
        """Every callback's on_train_end runs, also after an interrupt or a failure, and also
        when one of them fails: a full disk must not leave the progress bar open.
        """
        failure: BaseException | None = None
        for cb in self.callbacks:
            try:
                cb.on_train_end(self)
            except BaseException as exc:  # re-raised below
                failure = failure or exc
        if failure is not None and raise_errors:
            raise failure

    def _run_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config.train
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        self.world.seed_epoch(self.config.seed, epoch)
        try:
            with self.world.guard():  # DistributedDataParallel's all-reduce in backward()
                loss, first = train_epoch(
                    self.engine,
                    self.optimizer,
                    self.train_data,
                    cfg.batch_size,
                    self.generator,
                    cfg.grad_clip,
                    self.world,
                )
        except NonFiniteLoss as bad:
            self.train_seconds += time.perf_counter() - start
            raise TrainingError(
                f"the training loss became {bad.value} at epoch {epoch}, step {bad.step} of "
                f"{bad.steps} (optim.lr {lr:g}); try a smaller optim.lr, train.grad_clip, or "
                f"model.norm"
            ) from None
        if self.initial_loss is None:
            self.initial_loss = first
        self._check_divergence(epoch, loss, lr, start)
        values: dict[str, torch.Tensor] = {}
        if self.val_data is not None:
            val = evaluate(self.model, self.loss_fn, self.task, self.val_data, self.target_scale)
            values.update({f"val_{k}": v for k, v in val.items()})
        # Every process holds the same weights; process 0's numbers make sure that early
        # stopping, the schedule and the best epoch are decided alike everywhere.
        record = {"epoch": epoch, "train_loss": loss, **self.world.agree(read_floats(values))}
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        if self.scheduler is not None:  # a plateau schedule watches the validation loss
            self.scheduler.step(record.get("val_loss", record["train_loss"]))
        record.update(lr=lr, seconds=round(seconds, 4))
        return record

    def _check_divergence(self, epoch: int, loss: float, lr: float, start: float) -> None:
        """An epoch's mean loss past train.diverge_factor times the untrained model's (the loss of
        the first step) fails the run as a NaN does: a run that ends there has not learned,
        whatever its status says. The reference is the first step's rather than the first
        epoch's mean, which a large learning rate can already have blown up. Both numbers are
        already on the host: no extra device sync.
        """
        factor, first = self.config.train.diverge_factor, self.initial_loss
        if first is None and self.history:  # a checkpoint written before it was kept
            first = self.history[0]["train_loss"]
        if factor is None or first is None or not first > 0 or loss <= factor * first:
            return
        self.train_seconds += time.perf_counter() - start
        raise TrainingError(
            f"the training loss diverged: {loss:.4g} at epoch {epoch} is more than "
            f"train.diverge_factor {factor:g} times the untrained model's {first:.4g} (the "
            f"first step's) (optim.lr {lr:g}); try a smaller optim.lr, train.grad_clip, or "
            f"model.norm"
        )

    def _track_best(self, record: dict[str, float]) -> None:
        stop = self.config.train.early_stopping
        score = record[self.monitor]
        if is_better(self.monitor, score, self.best_score, stop.min_delta if stop else 0.0):
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped_early = stop is not None and self.bad_epochs >= stop.patience

    @property
    def saved_epoch(self) -> int:
        """The epoch whose weights the model holds: the best one once restore_best() has run
        (train.restore_best, or a failed run), else the last one trained.
        """
        return self.best_epoch if self.restored else self.epoch

    def train_on(self) -> None:
        """Let a run that stopped early train again (it is continued to more epochs): its
        patience counter restarts, while its best epoch and score stay the ones to beat."""
        if self.stopped_early:
            self.stopped_early, self.bad_epochs = False, 0

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.restored = True

    # ------------------------------------------------------------ resume state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bitwise-identically from the end of this epoch."""
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "engine": self.engine.state_dict(),
            "rng": rng,
            "history": self.history,
            "best": {"epoch": self.best_epoch, "score": self.best_score, "state": self.best_state},
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "initial_loss": self.initial_loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            # A run continued to more epochs: the checkpoint's schedule was for fewer.
            self.scheduler.retarget(self.config.train.epochs)
        self.engine.load_state_dict(state.get("engine", {}))
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        best = state["best"]
        self.best_epoch, self.best_score = best["epoch"], best["score"]
        self.best_state = best["state"]
        self.bad_epochs = state["bad_epochs"]
        self.stopped_early = state["stopped_early"]
        self.train_seconds = state["train_seconds"]
        self.initial_loss = state.get("initial_loss")

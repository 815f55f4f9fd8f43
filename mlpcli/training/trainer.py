"""The training loop: one epoch, evaluation, early stopping, and the callbacks that hang off it.

Data lives on the device as tensors; each epoch draws one permutation on the device and slices
batches from it. An engine (engine.py) computes each step's gradients. Only on the CPU, where it
costs no device sync, is each step's loss read as it comes, so that a NaN stops the run at once.
In a run of several processes (distributed.py) each takes its part of every batch, and the losses
and metrics the loop decides on are the whole batch's and process 0's, the same everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..callbacks import Callback
from ..config.registry import OPTIMIZERS, SCHEDULES, resolve
from ..config.schema import Config, OptimConfig, ScheduleConfig
from ..errors import CheckpointError, TrainingError
from ..model.factory import linear_layers
from ..model.outputs import (
    Split,
    StreamScore,
    evaluate,
    predict_raw,
    read_floats,
    score_chunks,
)
from ..model.tasks import is_better
from . import schedules
from .distributed import SOLO, World
from .engine import Engine, choose_threads, cpu_threads, make_engine
from .optimizers import Optimizer

if TYPE_CHECKING:
    from ..data.stream.reader import TrainStream
    from ..data.stream.stats import StreamFit

# Steps of a streamed epoch between calls of Callback.on_step (a mid-epoch checkpoint, say); on an
# accelerator the losses of those steps are read from the device there, in one go.
STEP_HOOK_EVERY = 64


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
            x, y = data.x.index_select(0, index), data.y.index_select(0, index)
            loss = train_step(
                engine, optimizer, x, y, rows, grad_clip, world, on_host, step, len(starts)
            )
            if on_host:
                total += loss * rows
                first = first if step else loss
            else:
                losses[step] = loss
                rows_here.append(len(index))
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


def train_step(
    engine: Engine,
    optimizer: Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    rows: int,
    grad_clip: float | None,
    world: World,
    on_host: bool,
    step: int,
    steps: int,
) -> Any:
    """One step on this process's rows (x, y) of a global batch of `rows` rows: its loss, then
    the update. On the host the global batch's loss is read first and returned as a float (a
    non-finite one raises NonFiniteLoss naming step + 1 of steps, before the weights change);
    on an accelerator this process's loss is returned as a device tensor, unread.
    """
    loss = engine.loss(x, y)
    if on_host:
        value = world.step_loss(loss.item(), len(x), rows)
        if not math.isfinite(value):
            raise NonFiniteLoss(step + 1, steps, value)
        engine.update(optimizer, grad_clip, len(x) / rows)
        return value
    engine.update(optimizer, grad_clip, len(x) / rows)
    return loss.detach()


@dataclass
class StreamAt:
    """How far a streamed epoch has come: its steps done, and the sums its mean loss needs."""

    epoch: int
    step: int = 0
    loss_total: float = 0.0  # sum over the steps done of the global batch's mean loss x its rows
    rows: int = 0  # global rows of the steps done
    first: float = 0.0  # the epoch's first step's loss

    def to_dict(self, digest: str, plan: dict[str, Any]) -> dict[str, Any]:
        return {**self.__dict__, "digest": digest, "plan": plan}


def train_stream_epoch(
    engine: Engine,
    optimizer: Optimizer,
    stream: TrainStream,
    at: StreamAt,
    grad_clip: float | None,
    world: World,
    device: torch.device,
    on_step: Callable[[], None],
) -> tuple[float, float]:
    """The steps at.step.. of a streamed epoch; returns its mean training loss and first step's.

    `at` is updated as the steps go, so that on_step (called every STEP_HOOK_EVERY steps, not
    after the last) sees a state a resume continues from bitwise: the stream replays the epoch's
    reads and draws up to at.step. Losses are checked as train_epoch checks them: each step's on
    the CPU; on an accelerator those since the last hook, read in one go at the next.
    """
    engine.model.train()
    steps = stream.steps(at.epoch)
    # Several processes take their share of every batch of batch_size rows; one takes them all.
    batch = stream.batch_size if world.size > 1 else None
    on_host = reads_each_step(device)
    pending: list[tuple[torch.Tensor, int, int]] = []  # unread losses, this process's rows, rows

    def read_pending() -> None:
        if not pending:
            return
        losses = torch.stack([loss for loss, _, _ in pending])
        sizes = torch.tensor([rows for _, _, rows in pending], device=device)
        values = world.mean_losses(losses, [here for _, here, _ in pending], sizes).tolist()
        base = at.step - len(pending)
        for i, (value, (_, _, rows)) in enumerate(zip(values, pending)):
            if not math.isfinite(value):
                raise NonFiniteLoss(base + i + 1, steps, value)
            at.first = at.first if base + i else value
            at.loss_total += value * rows
            at.rows += rows
        pending.clear()

    batches: Iterator[tuple[np.ndarray, np.ndarray]] = stream.batches(at.epoch, at.step)
    try:
        with engine.context():
            for x_rows, y_rows in batches:
                x = torch.from_numpy(x_rows).to(device)
                y = torch.from_numpy(y_rows).to(device)
                rows = batch or len(x)
                loss = train_step(
                    engine, optimizer, x, y, rows, grad_clip, world, on_host, at.step, steps
                )
                if on_host:
                    at.first = at.first if at.step else loss
                    at.loss_total += loss * rows
                    at.rows += rows
                else:
                    pending.append((loss, len(x), rows))
                at.step += 1
                if at.step % STEP_HOOK_EVERY == 0 and at.step < steps:
                    read_pending()
                    on_step()
        read_pending()
    finally:
        batches.close()  # type: ignore[attr-defined]  # a generator: joins the read-ahead
    return at.loss_total / max(at.rows, 1), at.first


@dataclass
class StreamSplit:
    """One split of a stream (train, val or test rows by their hash), read again in chunks each
    time it is scored; len() is its rows over the whole data."""

    fit: StreamFit
    name: str

    def __len__(self) -> int:
        return int(self.fit.counts[self.name])

    def chunks(self, rank: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Imported here: an in-memory run's start-up does not pay for the streaming modules.
        from ..data.stream.rows import split_chunks

        fit = self.fit
        return split_chunks(fit.source, fit.prep, fit.rule, self.name, rank, size)


def score(
    model: nn.Module,
    loss_fn: nn.Module,
    task: str,
    data: Split | StreamSplit,
    target_scale: torch.Tensor | None,
    device: torch.device,
    world: World = SOLO,
) -> dict[str, float]:
    """Loss and metrics of a split: one in memory as evaluate() scores it; a stream's in chunks
    of the row groups of each process, summed over the processes (every process must call)."""
    if isinstance(data, Split):
        return read_floats(evaluate(model, loss_fn, task, data, target_scale))
    chunks = data.chunks(world.rank, world.size)
    return score_chunks(
        model, loss_fn, task, chunks, target_scale, device, reduce=world.sum, reduce_max=world.max
    )


def score_stream(
    model: nn.Module,
    loss_fn: nn.Module,
    task: str,
    splits: list[StreamSplit],
    target_scale: torch.Tensor | None,
    device: torch.device,
    world: World = SOLO,
) -> dict[str, dict[str, float]]:
    """score() of several splits of one stream in one read of its row groups (the final
    metrics): each row's outputs go to its split's sums by the row's split code; the sums of
    every split travel in one all-reduce (every process must call)."""
    from ..data.stream.hashsplit import SPLITS
    from ..data.stream.rows import coded_chunks

    if not splits:
        return {}
    fit = splits[0].fit
    width = linear_layers(model)[-1].out_features
    scores = {s.name: StreamScore(loss_fn, task, width, target_scale, device) for s in splits}
    by_code = {SPLITS.index(name): part for name, part in scores.items()}
    chunks = coded_chunks(fit.source, fit.prep, fit.rule, world.rank, world.size)
    for codes, x_rows, y_rows in chunks:
        outputs = predict_raw(model, torch.from_numpy(x_rows).to(device))
        targets = torch.from_numpy(y_rows).to(device)
        for code, part in by_code.items():
            rows = np.flatnonzero(codes == code)
            if len(rows):
                index = torch.from_numpy(rows).to(device)
                part.add(outputs.index_select(0, index), targets.index_select(0, index))
    sums = np.split(world.sum(np.concatenate([p.vector() for p in scores.values()])), len(scores))
    bounds = world.max(np.concatenate([p.extremes() for p in scores.values()]))
    return {
        name: part.result(vector, bound)
        for (name, part), vector, bound in zip(scores.items(), sums, np.split(bounds, len(scores)))
    }


class Trainer:
    """Owns the model, optimiser, schedule, RNG and best-so-far state; fit() runs the epochs.

    The training rows are a Split in memory, or a TrainStream read as the epochs go; for a
    stream, `sample` (a Split of its training rows, on the device) stands in for the training
    rows where all of them are not needed (diagnostics).
    """

    def __init__(
        self,
        config: Config,
        model: nn.Module,
        loss_fn: nn.Module,
        task: str,
        train: Split | TrainStream,
        val: Split | StreamSplit | None,
        target_scale: torch.Tensor | None,
        world: World = SOLO,
        device: torch.device | None = None,
        sample: Split | None = None,
    ) -> None:
        self.config, self.model, self.loss_fn, self.task = config, model, loss_fn, task
        self.stream = None if isinstance(train, Split) else train
        data = train if isinstance(train, Split) else sample
        if data is None:
            raise ValueError("a Trainer over a stream needs a sample of its training rows")
        self.train_data, self.val_data, self.target_scale = data, val, target_scale
        self.world = world  # the processes training this run; one, unless under torchrun
        self.callbacks: list[Callback] = []  # set by the caller: logging, checkpoints, ...
        self.device = device if device is not None else data.x.device
        with world.guard():  # DistributedDataParallel broadcasts process 0's weights
            self.engine = make_engine(config.train, model, loss_fn, self.device, world)
        rows = len(train) if isinstance(train, Split) else train.rows
        self.threads = choose_threads(config.train, model, self.device, rows)
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
        self.at: StreamAt | None = None  # a streamed epoch under way, or one to resume
        self._stream_plan: dict[str, Any] | None = None

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
        resuming = self.at is not None and self.at.epoch == epoch and self.at.step > 0
        # A resumed epoch's random state is the checkpoint's; or, with several processes, that
        # of the step it resumes at.
        self.world.seed_epoch(self.config.seed, epoch, self.at.step if resuming and self.at else 0)
        try:
            with self.world.guard():  # DistributedDataParallel's all-reduce in backward()
                if self.stream is None:
                    loss, first = train_epoch(
                        self.engine,
                        self.optimizer,
                        self.train_data,
                        cfg.batch_size,
                        self.generator,
                        cfg.grad_clip,
                        self.world,
                    )
                else:
                    loss, first = self._stream_epoch(epoch, resuming)
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
        values: dict[str, float] = {}
        if self.val_data is not None:
            val = score(
                self.model,
                self.loss_fn,
                self.task,
                self.val_data,
                self.target_scale,
                self.device,
                self.world,
            )
            values.update({f"val_{k}": v for k, v in val.items()})
        # Every process holds the same weights; process 0's numbers make sure that early
        # stopping, the schedule and the best epoch are decided alike everywhere.
        record = {"epoch": epoch, "train_loss": loss, **self.world.agree(values)}
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        if self.scheduler is not None:  # a plateau schedule watches the validation loss
            self.scheduler.step(record.get("val_loss", record["train_loss"]))
        record.update(lr=lr, seconds=round(seconds, 4))
        return record

    def _stream_epoch(self, epoch: int, resuming: bool) -> tuple[float, float]:
        """One epoch of the stream, from the step a checkpoint recorded when resuming."""
        assert self.stream is not None
        at = self.at if resuming and self.at is not None else StreamAt(epoch)
        self.at = at

        def on_step() -> None:
            for cb in self.callbacks:
                cb.on_step(self, at.epoch, at.step)
            # Each process's dropout masks from here on are drawn again by a resume from here.
            self.world.seed_epoch(self.config.seed, at.epoch, at.step)

        result = train_stream_epoch(
            self.engine,
            self.optimizer,
            self.stream,
            at,
            self.config.train.grad_clip,
            self.world,
            self.device,
            on_step,
        )
        self.at = None
        return result

    def stream_plan(self) -> dict[str, Any]:
        """What a stream's batches depend on besides the seed, in words a resume can compare:
        its files (their names, and their footers, which change when a file is rewritten),
        row groups, training rows, buffer, batch size and processes. Computed once."""
        assert self.stream is not None
        if self._stream_plan is None:
            fit = self.stream.fit
            names = "\n".join(fit.source.names).encode()
            footers = json.dumps(fit.source.fingerprint(), sort_keys=True).encode()
            self._stream_plan = {
                "files": len(fit.source.names),
                "file names (sha256)": hashlib.sha256(names).hexdigest()[:16],
                "footers (sha256)": hashlib.sha256(footers).hexdigest()[:16],
                "row groups": len(fit.source.groups),
                "training rows": self.stream.rows,
                "data.shuffle_buffer": self.stream.buffer_rows,
                "train.batch_size": self.stream.batch_size,
                "processes": self.stream.size,
            }
        return self._stream_plan

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
            **({"stream": self._stream_state()} if self.stream is not None else {}),
        }

    def _stream_state(self) -> dict[str, Any]:
        """Where in the stream the state stands: within an epoch (mid-epoch checkpoints), or
        at the start of the next one (step 0)."""
        assert self.stream is not None
        at = self.at if self.at is not None else StreamAt(self.epoch + 1)
        return at.to_dict(self.stream.plan_digest(), self.stream_plan())

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
        if self.stream is not None:
            self._load_stream_state(state.get("stream"))

    def _load_stream_state(self, saved: dict[str, Any] | None) -> None:
        """Continue a streamed epoch at the checkpoint's step; refused when the stream's
        batches would differ from those the checkpoint's run drew."""
        assert self.stream is not None
        if saved is None:
            raise CheckpointError("the checkpoint was not written by a run on a stream")
        now = self.stream_plan()
        if saved["digest"] != self.stream.plan_digest() or saved["plan"] != now:
            then = saved["plan"]
            changed = [
                f"{key} {then.get(key)} then, {value} now"
                for key, value in now.items()
                if then.get(key) != value
            ]
            raise CheckpointError(
                f"the stream's batches would differ from those of the checkpoint's run "
                f"({'; '.join(changed) or 'its row groups hold other training rows'}); a "
                f"stream resumes only on the same files, unchanged, with the same shuffle "
                f"buffer, batch size and processes"
            )
        step = saved["step"]
        self.at = None
        if step > 0 and saved["epoch"] == self.epoch + 1:
            self.at = StreamAt(
                saved["epoch"], step, saved["loss_total"], saved["rows"], saved["first"]
            )

"""How a training step gets its gradients: autograd for any model, or backprop written out.

Both engines offer the same two calls, so the loop does not care which one runs:
    loss = engine.loss(x, y)            # forward pass, training mode
    engine.update(optimizer, clip, share)   # gradients, clipping, one optimiser step
(share: this process's part of the batch's rows; in a run of several processes the gradients are
averaged over them, weighted by it, before clipping),
and a look inside for the diagnostics, changing nothing:
    layers = engine.probe(x, y)         # per Linear layer: z, a, dL/dz, dL/dW
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol, cast

import torch
from torch import nn

from ..config.schema import TrainConfig
from ..errors import ConfigError, first_line
from ..model.factory import linear_layers
from .backprop import Backprop, unsupported
from .distributed import SOLO, World
from .optimizers import Optimizer
from .probe import LayerProbe, probe_model

# Models below this many parameters are launch-bound on a GPU: CUDA graphs replay a whole step.
CUDA_GRAPH_PARAMS = 1_000_000

# Below this many floating-point operations per step, a second CPU thread only adds waiting: the
# operations are too small to split, and a thread pool that spins on every one of them turns
# any other busy process on the machine into a 10x slowdown.
SMALL_STEP_FLOPS = 16e6

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Engine(Protocol):
    """What the training loop needs from an engine."""

    name: str
    model: nn.Module
    parameters: list[torch.Tensor]  # what the optimiser updates

    def context(self) -> contextlib.AbstractContextManager[None]:
        """Entered around each epoch's steps."""
        ...

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def update(self, optimizer: Optimizer, grad_clip: float | None, share: float = 1.0) -> None:
        """Gradients of the last loss() (averaged over the run's processes, this one's weighted
        by `share`, its part of the batch's rows), clipping, and one optimiser step."""
        ...

    def probe(self, x: torch.Tensor, y: torch.Tensor) -> list[LayerProbe]:
        """Each Linear layer's z, a, dL/dz and dL/dW on a batch as a training step sees it
        (batch norm on the batch's statistics, dropout off), leaving the parameters, their
        gradients, running statistics and every random state untouched."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Autograd:
    """Any model: PyTorch's autograd, with optional mixed precision and torch.compile; in a run
    of several processes, through DistributedDataParallel."""

    name = "autograd"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        train: TrainConfig,
        device: torch.device,
        world: World = SOLO,
    ) -> None:
        self.model, self.loss_fn, self.device = model, loss_fn, device
        self.processes = world.size
        self.parameters: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        # DistributedDataParallel averages the gradients over the processes during backward().
        self.forward: Any = world.wrap(model)
        self.compiling = train.compile
        self.graphs = False
        if train.compile:
            small = sum(p.numel() for p in self.parameters) < CUDA_GRAPH_PARAMS
            self.graphs = device.type == "cuda" and small
            mode = "reduce-overhead" if self.graphs else None
            self.forward = torch.compile(self.forward, mode=mode)
        self.autocast = AUTOCAST_DTYPES.get(train.precision)
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type) if train.precision == "fp16" else None

    def context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.compiling:  # compiling happens at the first call, and can fail there
            try:
                return self._loss_of(x, y)
            except Exception as exc:
                first = first_line(str(exc), 160) or exc.__class__.__name__
                raise ConfigError(
                    f"train.compile: torch.compile failed here ({first}); set train.compile: false"
                ) from None
            finally:
                self.compiling = False
        return self._loss_of(x, y)

    def _loss_of(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graphs:  # a new training step: the graphs may reuse the last step's buffers
            torch.compiler.cudagraph_mark_step_begin()
        if self.autocast is None:
            self._loss = self.loss_fn(self.forward(x), y)
        else:
            with torch.autocast(self.device.type, dtype=self.autocast):
                outputs = self.forward(x)
            self._loss = self.loss_fn(outputs.float(), y)  # the loss itself in fp32
        return self._loss

    def update(self, optimizer: Optimizer, grad_clip: float | None, share: float = 1.0) -> None:
        for p in self.parameters:
            p.grad = None
        loss = self._loss
        # DistributedDataParallel divides the sum of the gradients by the processes: weighting
        # each by share x processes makes that the whole batch's mean (1 for equal parts).
        weight = share * self.processes
        if weight != 1.0:
            loss = loss * weight
        if self.scaler is None:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(self.parameters, grad_clip)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        # GradScaler reads only param_groups and step(), which mlpcli's optimisers have.
        scaled = cast("torch.optim.Optimizer", optimizer)
        if grad_clip is not None:
            self.scaler.unscale_(scaled)
            nn.utils.clip_grad_norm_(self.parameters, grad_clip)
        self.scaler.step(scaled)
        self.scaler.update()

    def probe(self, x: torch.Tensor, y: torch.Tensor) -> list[LayerProbe]:
        # The eager fp32 model: diagnostics describe the network, not the kernels that train it.
        return probe_model(self.model, self.loss_fn, x, y)

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def step_flops(model: nn.Module, batch_size: int) -> float:
    """Floating-point operations of one training step, forward and backward: about
    6 x batch x weights (a multiply-add is two, and backward costs twice forward).
    """
    weights = sum(m.weight.numel() for m in linear_layers(model))
    return 6.0 * batch_size * weights


def choose_threads(
    train: TrainConfig, model: nn.Module, device: torch.device, rows: int
) -> int | None:
    """CPU threads for training on `rows` training rows: train.threads, else one for small steps
    and torch's own count (every core, or a sweep worker's share) for large ones; None leaves the
    count alone. A step's size is that of the batches really drawn: at most `rows` rows.
    """
    if train.threads is not None:
        return train.threads
    if device.type != "cpu":
        return None
    batch = min(train.batch_size, rows)
    return 1 if step_flops(model, batch) < SMALL_STEP_FLOPS else None


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count for a block, restored afterwards (it is process-wide)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_precision(train: TrainConfig, device: torch.device) -> None:
    if train.precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.precision: fp16 needs a CUDA GPU (training on {device.type}); "
            f"use fp32, or bf16 on this device"
        )
    if train.precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise ConfigError(f"train.precision: bf16 is not supported on {device.type}; use fp32")


def make_engine(
    train: TrainConfig,
    model: nn.Module,
    loss_fn: nn.Module,
    device: torch.device,
    world: World = SOLO,
) -> Engine:
    """train.engine auto takes the written-out backprop whenever the model and settings allow."""
    check_precision(train, device)
    reason = unsupported(model, loss_fn)
    if train.engine == "backprop" and reason is not None:
        raise ConfigError(
            f"train.engine: backprop cannot train this model ({reason}); use auto or autograd"
        )
    plain = train.precision == "fp32" and not train.compile
    if train.engine == "autograd" or reason is not None or not plain:
        return Autograd(model, loss_fn, train, device, world)
    return Backprop(model, loss_fn, world)

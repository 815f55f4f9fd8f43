"""One run trained by several processes (data parallel): which process this is, its part of each
batch, and the few collectives the training loop and the engines need.

`torchrun --nproc_per_node N -m mlpcli train CONFIG`, or `mlp train CONFIG --nproc N` (which starts
torch's own launcher, launch() below), gives each process RANK, LOCAL_RANK and WORLD_SIZE. Every
process loads the same data and model and draws the same permutation; each trains on its
contiguous part of every global batch, and the gradients are averaged over the processes in one
all-reduce per step, so `train.batch_size` keeps its meaning. Process 0 alone writes the run
folder and prints.

A one-process run gets SOLO, whose methods do nothing: it imports nothing of torch.distributed
beyond what `import torch` itself loads. This module imports torch only in the functions that
need it, so that the CLI can read RANK and WORLD_SIZE from it at no cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, MlpError, TrainingError, first_line

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from ..config.schema import Config

# What torchrun (and torch's launcher) sets in each process it starts.
RANK, LOCAL_RANK, WORLD_SIZE = "RANK", "LOCAL_RANK", "WORLD_SIZE"


class PeerLost(TrainingError):
    """Another process of the run stopped (killed, crashed, interrupted): this one cannot go on.

    The run is resumable from its last checkpoint, as after an interrupt.
    """


class ProcessError(MlpError):
    """A user's error that one process of several met alone (in a row group only it reads, say):
    the others stop with PeerLost, which cannot say why, so the process that met it reports it,
    naming itself. It exits with the code of the error it stands for."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def own_errors(world: World) -> Iterator[None]:
    """Around the work of a process other than 0 on rows only it reads: a user's error raised
    there becomes a ProcessError naming this process. A TrainingError (a NaN, a divergence) is
    met by every process at the same step, and process 0 reports it."""
    try:
        yield
    except TrainingError:
        raise
    except MlpError as exc:
        if world.size == 1:
            raise
        message = f"process {world.rank} of {world.size}: {exc}"
        raise ProcessError(message, exc.exit_code) from None


def launched_size() -> int:
    """How many processes train this run, as the launcher says (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get(WORLD_SIZE, "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's rank within the run (0 outside torchrun)."""
    if launched_size() == 1:
        return 0
    try:
        return int(os.environ.get(RANK, "0"))
    except ValueError:
        return 0


def check_processes(config: Config, processes: int, device: str) -> None:
    """What several processes cannot train, refused before any of them starts (exit 2)."""
    if processes <= 1:
        return
    if config.model.norm == "batch" and device != "cuda":
        raise ConfigError(
            f"model.norm: batch cannot train in {processes} processes on {device}: each "
            f"process would normalise its own part of the batch, and torch's SyncBatchNorm, "
            f"which shares the statistics, runs on CUDA only; use model.norm: layer or null, "
            f"or train in one process"
        )
    if config.train.batch_size < processes:
        raise ConfigError(
            f"train.batch_size: {config.train.batch_size} is smaller than the {processes} "
            f"processes; each needs at least one row of every batch (train.batch_size is the "
            f"global batch, split between them)"
        )


class World(Protocol):
    """The processes that train one run, as the trainer and the engines see them."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder and prints."""
        ...

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on, given the one the config asks for."""
        ...

    def part(self, rows: int) -> tuple[int, int]:
        """This process's contiguous [start, stop) of a global batch of `rows` rows."""
        ...

    def step_loss(self, value: float, rows_here: int, rows: int) -> float:
        """The global batch's mean loss from this process's mean over its rows_here rows; not
        finite when any process's loss is not."""
        ...

    def mean_losses(
        self, losses: torch.Tensor, rows_here: list[int], rows: torch.Tensor
    ) -> torch.Tensor:
        """step_loss for a whole epoch of per-step losses kept on the device."""
        ...

    def average_gradients(self, grad: torch.Tensor, share: float) -> None:
        """Replace this process's gradient by the global batch's: the sum over processes of each
        one's gradient times its share of the batch's rows, in one all-reduce."""
        ...

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module autograd trains: DistributedDataParallel over the model."""
        ...

    def agree(self, values: dict[str, float]) -> dict[str, float]:
        """Process 0's values on every process, so that all of them decide alike."""
        ...

    def share_text(self, text: str | None) -> str:
        """Process 0's text on every process."""
        ...

    def gather_text(self, text: str) -> list[str]:
        """Every process's text, in rank order, on every process."""
        ...

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The elementwise sum of a float64 vector over the processes, on every process."""
        ...

    def max(self, values: np.ndarray) -> np.ndarray:
        """The elementwise maximum of a float64 vector over the processes, on every process."""
        ...

    def seed_epoch(self, seed: int, epoch: int, step: int = 0) -> None:
        """Seed this process's own random stream (dropout masks) for an epoch, or for its
        steps from `step` on (a stream's epoch, at the steps a checkpoint may be taken)."""
        ...

    def guard(self) -> contextlib.AbstractContextManager[None]:
        """Around collectives that torch makes on its own (DistributedDataParallel's): another
        process's end becomes PeerLost rather than a traceback. This World's own methods
        raise PeerLost already."""
        ...

    def wait_for_main(self) -> None:
        """Every process waits here until all have arrived; never raises."""
        ...


class Solo:
    """A run in one process: every method leaves its input as it is."""

    rank, size, is_main = 0, 1, True

    def place(self, device: torch.device) -> torch.device:
        return device

    def part(self, rows: int) -> tuple[int, int]:
        return 0, rows

    def step_loss(self, value: float, rows_here: int, rows: int) -> float:
        return value

    def mean_losses(
        self, losses: torch.Tensor, rows_here: list[int], rows: torch.Tensor
    ) -> torch.Tensor:
        return losses

    def average_gradients(self, grad: torch.Tensor, share: float) -> None:
        pass

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def agree(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def share_text(self, text: str | None) -> str:
        assert text is not None
        return text

    def gather_text(self, text: str) -> list[str]:
        return [text]

    def sum(self, values: np.ndarray) -> np.ndarray:
        return values

    def max(self, values: np.ndarray) -> np.ndarray:
        return values

    def seed_epoch(self, seed: int, epoch: int, step: int = 0) -> None:
        pass

    def guard(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def wait_for_main(self) -> None:
        pass


SOLO = Solo()


class Group:
    """This process's place in a torch.distributed process group (gloo on CPU, NCCL on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.device = device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        return self.device

    def part(self, rows: int) -> tuple[int, int]:
        # Here, not at the top: importing the data layer loads numpy, which this module avoids.
        from ..data.splits import batch_part

        return batch_part(rows, self.rank, self.size)

    def step_loss(self, value: float, rows_here: int, rows: int) -> float:
        import torch

        # The sum carries a NaN or an infinity from any process: no separate flag is needed.
        part = value * rows_here if rows_here else 0.0
        total = torch.tensor([part], dtype=torch.float64, device=self.device)
        with self.guard():
            self.dist.all_reduce(total)
        return float(total) / rows

    def mean_losses(
        self, losses: torch.Tensor, rows_here: list[int], rows: torch.Tensor
    ) -> torch.Tensor:
        import torch

        here = torch.tensor(rows_here, dtype=losses.dtype, device=losses.device)
        # A process with no row in a step has a mean loss of NaN over nothing: it adds 0.
        weighted = torch.where(here > 0, losses * here, torch.zeros_like(losses))
        with self.guard():
            self.dist.all_reduce(weighted)
        return weighted / rows

    def average_gradients(self, grad: torch.Tensor, share: float) -> None:
        grad.mul_(share)
        with self.guard():
            self.dist.all_reduce(grad)

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type != "cuda":
            return DistributedDataParallel(model)
        # Batch statistics over the global batch rather than each process's part of it; the
        # modules are replaced in place, so the model keeps its parameters and state-dict keys.
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[self.device.index])

    def agree(self, values: dict[str, float]) -> dict[str, float]:
        import torch

        if not values:
            return values
        numbers = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        with self.guard():
            self.dist.broadcast(numbers, src=0)
        return dict(zip(values, numbers.tolist()))

    def share_text(self, text: str | None) -> str:
        box = [text]
        with self.guard():
            self.dist.broadcast_object_list(box, src=0, device=self.device)
        return str(box[0])

    def gather_text(self, text: str) -> list[str]:
        texts: list[Any] = [None] * self.size
        with self.guard():
            self.dist.all_gather_object(texts, text)
        return [str(t) for t in texts]

    def sum(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self.dist.ReduceOp.SUM)

    def max(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self.dist.ReduceOp.MAX)

    def _reduce(self, values: np.ndarray, op: Any) -> np.ndarray:
        import numpy as np
        import torch

        # On the group's device (NCCL reduces GPU tensors only); one all-reduce gives every
        # process the same result, bit for bit.
        total = torch.from_numpy(np.array(values, dtype=np.float64)).to(self.device)
        with self.guard():
            self.dist.all_reduce(total, op=op)
        result: np.ndarray = total.cpu().numpy()
        return result

    def seed_epoch(self, seed: int, epoch: int, step: int = 0) -> None:
        import torch

        # A stream of its own per process and epoch: two processes never draw the same masks,
        # and a resumed run draws what it would have drawn, whatever the state it saved (which
        # is process 0's alone).
        at = f"{epoch}:{step}" if step else f"{epoch}"
        digest = hashlib.blake2b(f"{seed}:{at}:{self.rank}".encode(), digest_size=8)
        torch.manual_seed(int.from_bytes(digest.digest(), "little") >> 1)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except RuntimeError as exc:
            if not _communication_failed(self.dist, exc):
                raise
            raise PeerLost(
                f"another process of this {self.size}-process run stopped ({_first_line(exc)})"
            ) from None

    def wait_for_main(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.dist.barrier()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.dist.destroy_process_group()


def _communication_failed(dist: Any, exc: RuntimeError) -> bool:
    """Whether a collective failed because a peer went away (gloo reports a closed connection as
    a plain RuntimeError)."""
    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        word in text for word in ("gloo", "NCCL", "Connection", "connection")
    )


def _first_line(exc: BaseException) -> str:
    line = first_line(str(exc)) or exc.__class__.__name__
    # gloo's messages open with the C++ source position: "[.../pair.cc:537] Read error ...".
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line[:160]


@contextlib.contextmanager
def join(device_name: str, config: Config) -> Iterator[World]:
    """This process's World for the run: SOLO outside torchrun, else a process group joined for
    the duration of the block (NCCL on CUDA, each process on the GPU of its local rank; gloo
    on the CPU).
    """
    processes = launched_size()
    if processes == 1:
        yield SOLO
        return
    import torch
    import torch.distributed as dist

    from ..model.factory import resolve_device

    device = resolve_device(device_name)
    check_processes(config, processes, device.type)
    if device.type == "cuda":
        local, gpus = int(os.environ.get(LOCAL_RANK, "0")), torch.cuda.device_count()
        if local >= gpus:  # each process of a machine takes the GPU of its local rank
            raise ConfigError(
                f"train.device: cuda: this machine runs more processes of the run than it has "
                f"GPUs ({gpus}); start at most {gpus} per machine, or train.device: cpu"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(
            f"train.device: {device.type} cannot train in several processes; use cpu or cuda"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    group = Group(device)
    try:
        yield group
    finally:
        group.close()


# ------------------------------------------------------------ mlp train --nproc N


def launch(args: list[str], processes: int) -> int:
    """`python -m mlpcli train ARGS` in `processes` processes of this machine, through torch's
    elastic launcher (what torchrun runs), rendezvousing on 127.0.0.1. Returns the exit code:
    process 0's when it failed, else the first failure's (1 for one ended by a signal).
    """
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # As torchrun does: the processes share the cores rather than each taking all of them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    loopback = _loopback_interface()
    if loopback is not None:  # gloo's connections between the processes stay on this machine
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
    # Process 0 reports the run's outcome itself; the agent's own log lines would repeat it.
    # Each of torch's elastic modules sets its logger's level itself, so each is set here.
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        local_addr="127.0.0.1",
    )
    try:
        elastic_launch(config, sys.executable)("-m", "mlpcli", "train", *args)
    except ChildFailedError as exc:
        codes = {rank: failure.exitcode for rank, failure in exc.failures.items()}
        if codes.get(0, 0) > 0:
            return codes[0]
        return next((code for code in codes.values() if code > 0), 1)
    except SignalException:
        return 130
    return 0


def _loopback_interface() -> str | None:
    """The loopback network interface's name (lo on Linux, lo0 on macOS), if there is one."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((name for name in ("lo", "lo0") if name in names), None)

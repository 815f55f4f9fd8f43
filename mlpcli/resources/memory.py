"""The memory a config needs, estimated before anything large is allocated.

A config asking for more than the machine has would otherwise fail deep inside numpy or torch
with a traceback, or push the machine into swap, after minutes of work. The estimate counts
what a run holds at once, in float32 (4 bytes a value):

- parameters x (weights, gradients, the optimiser's state, the best epoch's weights, and the
  checkpoint's snapshot of the weights and the optimiser's state): each optimiser's registry
  entry says how many values a parameter it keeps (adam and adamw 2, sgd with momentum and
  rmsprop 1, rmsprop with momentum 2);
- the data as tensors, rows x (inputs + outputs); before a synthetic set is drawn, also the
  table it is drawn into (float64, held with its splits);
- the largest activation buffers: a batch (at most the rows there are) x the widest layer x the
  layers, a few values each for the forward and backward passes.

A stream (data.stream: true) holds no table: its data is the shuffle window, the row groups
being read, a scoring chunk and a training sample, whatever its rows (stream_estimate).

It is a lower bound of the peak: the check refuses only what cannot fit.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.registry import OPTIMIZERS, SYNTHETIC_SOURCES, shown
from ..config.schema import Config, DataConfig, stream_buffer
from ..errors import ConfigError
from ..model.layers import EVAL_BATCH, layer_rows
from . import cgroup

if TYPE_CHECKING:
    import torch

FLOAT = 4  # bytes of a float32
TABLE_FLOAT = 8  # bytes of a float64 in a drawn table
INDEX = 8  # bytes of an int64 row number
TABLE_COPIES = 2  # the table and its train / val / test splits
ACTIVATION_VALUES = 3  # kept per unit and row: pre-activation, activation, gradient
PROBE_VALUES = 4  # a diagnostics probe keeps those for every layer at once, and a mask
# weights, gradients, the best epoch's weights, the checkpoint's snapshot of the weights; the
# snapshot also holds a copy of the optimiser's state
PARAMETER_COPIES = 4


@dataclass(frozen=True)
class Estimate:
    parameters: int
    model_bytes: int  # parameters and every copy of them the run keeps
    tensor_bytes: int  # the data as float32 tensors
    table_bytes: int  # the table a synthetic set is drawn into, before it is converted
    activation_bytes: int
    rows: int

    @property
    def data_bytes(self) -> int:
        return self.tensor_bytes + self.table_bytes

    def data_only(self) -> Estimate:
        """The part held in host memory while a data set is drawn or read."""
        return replace(self, model_bytes=0, activation_bytes=0)

    @property
    def total(self) -> int:
        return self.model_bytes + self.data_bytes + self.activation_bytes


def count_parameters(config: Config, in_dim: int, out_dim: int) -> int:
    """The parameters build_mlp makes for these sizes, without building it."""
    return sum(row.params for row in layer_rows(config.model, in_dim, out_dim))


def optimizer_state(config: Config) -> int:
    """Values the optimiser keeps per parameter (its registry entry's, one more with momentum)."""
    optim = config.optim
    return OPTIMIZERS[optim.name].state + (1 if optim.momentum > 0 else 0)


def estimate(
    config: Config, rows: int, in_dim: int, out_dim: int, table_columns: int = 0
) -> Estimate:
    """Bytes a run of config on rows rows of in_dim inputs and out_dim outputs needs at once;
    table_columns > 0 adds the table those rows are first drawn into.
    """
    parameters = count_parameters(config, in_dim, out_dim)
    copies = PARAMETER_COPIES + 2 * optimizer_state(config)
    widest = max([in_dim, out_dim, *config.model.hidden])
    layers = len(config.model.hidden) + 1
    batch = min(config.train.batch_size, rows) if rows else config.train.batch_size
    training = batch * widest * layers * ACTIVATION_VALUES * FLOAT
    evaluation = min(EVAL_BATCH, rows) * widest * 2 * FLOAT  # one layer's input and output
    sample = config.train.diagnostics.rows if config.train.diagnostics else 0
    probe = min(sample, rows) * (sum(config.model.hidden) + out_dim) * PROBE_VALUES * FLOAT
    return Estimate(
        parameters=parameters,
        model_bytes=parameters * FLOAT * copies,
        tensor_bytes=rows * (in_dim + out_dim) * FLOAT,
        table_bytes=rows * table_columns * TABLE_FLOAT * TABLE_COPIES,
        activation_bytes=max(training, evaluation, probe),
        rows=rows,
    )


def stream_estimate(
    config: Config,
    in_dim: int,
    out_dim: int,
    columns: int,
    group_bytes: int,
    rows: int,
    sample_rows: int,
    chunk_rows: int,
) -> Estimate:
    """Bytes a run on a stream needs at once, whatever its rows: the model as estimate() counts
    it; the shuffle window 1.5 times (the window and the half it keeps while it refills, float32
    in_dim + out_dim a row) and each draw's order of its rows (int64); two decoded row groups
    of group_bytes (the one in use and the one read ahead); a scoring chunk of chunk_rows rows;
    and the training sample diagnostics use (sample_rows raw rows of `columns` float64 columns,
    and as tensors). `rows` is only named.
    """
    buffer = stream_buffer(config)
    base = estimate(config, min(buffer, rows) if rows else buffer, in_dim, out_dim)
    row = (in_dim + out_dim) * FLOAT
    window = (buffer + buffer // 2) * row + buffer * INDEX  # data.stream.buffer.Window
    return replace(
        base,
        tensor_bytes=window + (chunk_rows + sample_rows) * row,
        table_bytes=2 * group_bytes + sample_rows * columns * TABLE_FLOAT,
        rows=rows,
    )


def before_loading(config: Config) -> Estimate | None:
    """The estimate for a synthetic source, whose size is known before a row is drawn; None for
    sources whose size is known only once they are read.
    """
    source = SYNTHETIC_SOURCES.get(config.data.source)
    if source is None:
        return None
    features, outputs = source.features, source.outputs
    rows = config.data.n_samples
    return estimate(config, rows, features, outputs, table_columns=features + outputs)


def available_memory(proc: Path | None = None) -> tuple[int, str]:
    """Bytes this process may still allocate, and what limits it: the smallest of the memory
    the system has available, the tightest limit of its cgroup and their parents' (v1 or v2;
    proc: the /proc/self to read them from), and the address-space limit (ulimit -v).
    """
    limits = [_system_available()]
    tightest = cgroup.tightest(proc)
    if tightest is not None:
        limits.append((tightest.free, f"the cgroup memory limit in {tightest.file}"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _status_bytes("VmSize") or 0
        limits.append((max(soft - used, 0), "the address-space limit (ulimit -v)"))
    return min(limits)


def _system_available() -> tuple[int, str]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages, "physical memory"
    except (OSError, ValueError, AttributeError):
        return 2**63 - 1, "unknown"


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check(estimate: Estimate, config: Config, available: tuple[int, str] | None = None) -> None:
    """Raise a ConfigError naming the estimate, the memory available and the keys that drive
    it, when the estimate exceeds the memory available (default: available_memory()).
    """
    free, source = available if available is not None else available_memory()
    if estimate.total <= free:
        return
    data = config.data
    rows = (
        f"data.n_samples {data.n_samples}"
        if data.source in SYNTHETIC_SOURCES
        else f"data.path {shown(data.path or data.source)} ({estimate.rows:,} rows)"
    )
    if data.stream:  # what a stream holds does not grow with its rows
        rows = (
            f"data.shuffle_buffer {stream_buffer(config)} rows 1.5 times, two row "
            f"groups of {shown(data.path)} and a sample"
        )
    parts = [
        (
            estimate.model_bytes,
            f"model.hidden {shown(config.model.hidden)}: {estimate.parameters:,} parameters, "
            f"{_gb(estimate.model_bytes)} with gradients, {config.optim.name}'s state, the best "
            f"epoch's copy and the checkpoint's",
        ),
        (estimate.data_bytes, f"{rows}: {_gb(estimate.data_bytes)} of data"),
        (
            estimate.activation_bytes,
            f"train.batch_size {config.train.batch_size} x the widest layer: "
            f"{_gb(estimate.activation_bytes)} of activations",
        ),
    ]
    parts.sort(key=lambda part: -part[0])
    drivers = "; ".join(text for size, text in parts if size >= estimate.total / 10)
    remedy = stream_remedy(data) if estimate.data_bytes >= estimate.total / 10 else ""
    raise ConfigError(
        f"this config needs about {_gb(estimate.total)} of memory, more than the {_gb(free)} "
        f"available ({source}); {drivers}{remedy}"
    )


def stream_remedy(data: DataConfig) -> str:
    """What a refusal for data that does not fit adds: the way to train on it anyway, where
    there is one (a stream reads Parquet only)."""
    if data.stream:
        return ""
    if data.source == "parquet":
        return "; or set data.stream: true to read it a row group at a time"
    if data.source == "csv":
        return "; or convert it to Parquet and set data.stream: true"
    return ""


def check_for(estimate: Estimate | None, config: Config, device: torch.device) -> None:
    """check() against the memory each part will live in: everything in host memory on the CPU
    (and on MPS, whose memory is the host's); on a CUDA device the model, the tensors and the
    activations in its free memory, the data (read, then copied over) in the host's.
    """
    if estimate is None:
        return
    if device.type != "cuda":
        check(estimate, config)
        return
    import torch

    check(replace(estimate, model_bytes=0, activation_bytes=0), config)
    free, _ = torch.cuda.mem_get_info(device)
    on_device = replace(estimate, table_bytes=0)
    check(on_device, config, available=(free, f"free memory on {device}"))

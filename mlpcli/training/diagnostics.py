"""Per-layer health of a network while it trains: gradients, weights, dead and saturated units.

Every `train.diagnostics.every` epochs (and once before training), the engine probes a fixed
sample of training rows and each hidden layer's statistics (STATISTICS below) go to
diagnostics.csv in long form, `epoch,layer,name,value`, layer 1 being the first hidden layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..callbacks import Callback
from ..config.registry import ACTIVATIONS
from ..model.factory import linear_layers
from ..runs.atomic import append_line, write_text_atomic
from ..runs.folder import read_rows
from .probe import LayerProbe

if TYPE_CHECKING:
    from .trainer import Trainer


class Statistic(NamedTuple):
    """One per-layer statistic: what its value is, and where mlp inspect draws it."""

    meaning: str
    figure: str | None = None  # "gradients" (plots/gradients.png) or "units" (plots/units.png)
    panel: str | None = None  # its panel's title there


# The registry of diagnostics: what layer_stats writes (diagnostics.csv's `name`), in its order.
STATISTICS: dict[str, Statistic] = {
    "grad_rms": Statistic(
        "RMS of dL/dz, the gradient at the layer's pre-activations, per row",
        "gradients",
        "dL/dz per row (RMS)",
    ),
    "weight_grad_rms": Statistic(
        "RMS of dL/dW for the batch-mean loss (what the optimiser sees)", "gradients", "dL/dW (RMS)"
    ),
    "weight_rms": Statistic("RMS of the layer's weights"),
    "update_ratio": Statistic(
        "RMS of the weights' change per epoch since the last record / weight_rms"
    ),
    "act_mean": Statistic("mean of the layer's activation outputs"),
    "act_std": Statistic("their standard deviation"),
    "dead": Statistic(
        "units that can die (relu): fraction whose output is 0 on every row",
        "units",
        "dead units (fraction)",
    ),
    "saturated": Statistic(
        "bounded units (sigmoid, tanh): fraction within 3% of a bound on most rows",
        "units",
        "saturated units (fraction)",
    ),
}


def panels(figure: str) -> dict[str, str]:
    """The statistics drawn in one figure ("gradients" or "units"), each with its panel title."""
    return {n: s.panel or n for n, s in STATISTICS.items() if s.figure == figure}


DIAGNOSTICS_FILE = "diagnostics.csv"
FIELDS = ("epoch", "layer", "name", "value")

# The activations whose units can die, and the bounded ones with their bounds (the registry's).
DYING = frozenset(name for name, entry in ACTIVATIONS.items() if entry.dies)
BOUNDS = {name: entry.bounds for name, entry in ACTIVATIONS.items() if entry.bounds is not None}
# Share of the training time that diagnostics with every: auto may take.
AUTO_BUDGET = 0.03
SATURATION_MARGIN = 0.03  # of the bound's magnitude: |tanh| > 0.97, sigmoid < 0.03 or > 0.97


def sample_rows(n: int, rows: int, seed: int) -> torch.Tensor:
    """A fixed, seeded choice of up to `rows` of n row indices, drawn from a generator of its
    own so that training's random numbers are not touched."""
    if n <= rows:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:rows].sort().values


def unit_counts(probe: LayerProbe, activation: str) -> dict[str, torch.Tensor]:
    """How many of a hidden layer's units are dead or saturated, where the activation can be.

    Both are read from the activation's outputs (a norm layer may sit between z and the
    activation): a ReLU unit is dead when its output is 0 on every row; a sigmoid or tanh unit
    is saturated when its output is within the margin of a bound on most rows.
    """
    if activation in DYING:
        return {"dead": (probe.post.amax(dim=0) <= 0).sum()}
    if activation in BOUNDS:
        low, high = BOUNDS[activation]
        middle = (low + high) / 2
        edge = (high - low) / 2 - SATURATION_MARGIN * max(abs(low), abs(high))
        offset = probe.post - middle if middle else probe.post
        near = offset.abs() >= edge
        return {"saturated": (near.sum(dim=0) * 2 > len(near)).sum()}
    return {}


def layer_stats(
    probes: Sequence[LayerProbe],
    activations: Sequence[str],
    previous: Sequence[torch.Tensor] | None = None,
    epochs: int = 1,
) -> list[dict[str, float]]:
    """Each hidden layer's statistics (see the module's docstring), one per activation name;
    `previous` holds the weights at the last record, `epochs` ago, for the update ratio.

    Built to be cheap enough for every epoch: one fused norm over every tensor, a few
    reductions per layer, and one host read for all of it.
    """
    norm_keys: list[tuple[int, str]] = []
    norm_inputs: list[torch.Tensor] = []
    value_keys: list[tuple[int, str]] = []
    values: list[torch.Tensor] = []
    for k, (probe, activation) in enumerate(zip(probes, activations)):
        mean = probe.post.mean()
        norms = {
            "grad_pre": probe.grad_pre,
            "grad_weight": probe.grad_weight,
            "weight": probe.weight,
            "centred": probe.post - mean,
        }
        if previous is not None:
            norms["change"] = probe.weight - previous[k]
        norm_keys += [(k, name) for name in norms]
        norm_inputs += norms.values()
        counts = {"act_mean": mean, **unit_counts(probe, activation)}
        value_keys += [(k, name) for name in counts]
        values += counts.values()
    if not norm_inputs:
        return []
    norms_out = torch._foreach_norm(norm_inputs)  # one kernel launch, as clip_grad_norm_ does
    numbers = torch.stack([v.float() for v in [*norms_out, *values]]).tolist()
    got = dict(zip([*norm_keys, *value_keys], numbers))
    stats = []
    for k, probe in enumerate(probes[: len(activations)]):
        rows, units = probe.pre.shape
        size = probe.weight.numel()
        weight = got[k, "weight"]
        layer = {
            # per row: the batch-mean loss divides each row's gradient by the rows
            "grad_rms": got[k, "grad_pre"] / math.sqrt(rows * units) * rows,
            "weight_grad_rms": got[k, "grad_weight"] / math.sqrt(size),
            "weight_rms": weight / math.sqrt(size),
        }
        if previous is not None:
            change = got[k, "change"] / math.sqrt(size) / epochs
            layer["update_ratio"] = change / layer["weight_rms"] if weight > 0 else math.inf
        layer["act_mean"] = got[k, "act_mean"]
        layer["act_std"] = got[k, "centred"] / math.sqrt(rows * units)
        for name in ("dead", "saturated"):
            if (k, name) in got:
                layer[name] = got[k, name] / units
        stats.append(layer)
    return stats


def hidden_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weights of every Linear layer but the output layer, input side first."""
    return [m.weight.detach() for m in linear_layers(model)[:-1]]


def activation_names(config_model: Any) -> list[str]:
    """One activation name per hidden layer, from a model config."""
    return [spec["name"] for spec in config_model.activations()]


class Diagnostics(Callback):
    """diagnostics.csv: at epoch 0 (the untrained network), then every `every` epochs and at
    the last; with every "auto", as often as keeps its cost within AUTO_BUDGET of the training
    time so far, and always at the first and the last epoch.

    On resume the rows after the checkpoint's epoch (written before an interrupt) are dropped.
    """

    def __init__(
        self,
        path: Path,
        every: int | str,
        rows: int,
        listener: Callable[[int, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.path, self.every, self.rows = Path(path), every, rows
        self.listener = listener  # also handed each record's rows (TensorBoard logs them)
        self.previous: list[torch.Tensor] | None = None
        self.last_epoch = 0
        self.spent = self.cost = 0.0  # seconds: all records so far, and the last one

    def on_train_start(self, trainer: Trainer) -> None:
        data = trainer.train_data
        index = sample_rows(len(data), self.rows, trainer.config.seed).to(data.x.device)
        self.x, self.y = data.x.index_select(0, index), data.y.index_select(0, index)
        self.activations = activation_names(trainer.config.model)
        if self.path.exists():  # a resumed run's: rows past its checkpoint are dropped
            # (all of them for a run stopped in its first epoch, which starts afresh)
            rows = read_rows(self.path) if trainer.epoch else []
            kept = [r for r in rows if r["epoch"] <= trainer.epoch]
            write_text_atomic(self.path, rows_text(kept, header=True))
            if trainer.epoch and any(r["epoch"] == trainer.epoch for r in kept):
                # The weights of that record are the checkpoint's: the next update ratio is
                # the one an uninterrupted run writes.
                self.previous = [w.clone() for w in hidden_weights(trainer.model)]
                self.last_epoch = trainer.epoch
        else:
            append_line(self.path, rows_text([], header=True))
        if trainer.epoch == 0:
            self.record(trainer, 0)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        epoch = trainer.epoch
        last = epoch >= trainer.config.train.epochs or trainer.stopped_early
        if self.every == "auto":
            # The records at epochs 0, 1 and the last are always made; the others while all
            # records since epoch 0 fit in the budget.
            affordable = self.spent + self.cost <= AUTO_BUDGET * trainer.train_seconds
            due = epoch == 1 or last or affordable
        else:
            due = epoch % int(self.every) == 0 or last
        if due:
            self.record(trainer, epoch)

    def record(self, trainer: Trainer, epoch: int) -> None:
        if not self.activations:
            return  # a linear model has no hidden layer to describe
        start = time.perf_counter()
        probes = trainer.engine.probe(self.x, self.y)
        stats = layer_stats(probes, self.activations, self.previous, epoch - self.last_epoch)
        self.previous = [p.weight.clone() for p in probes[: len(self.activations)]]
        self.last_epoch = epoch
        rows = [
            {"epoch": epoch, "layer": layer, "name": name, "value": value}
            for layer, values in enumerate(stats, start=1)
            for name, value in values.items()
        ]
        append_line(self.path, rows_text(rows, header=False))
        if self.listener is not None:
            self.listener(epoch, rows)
        self.cost = time.perf_counter() - start
        if epoch > 0:  # the untrained network's record also pays for warming up: not counted
            self.spent += self.cost


def rows_text(rows: list[dict[str, Any]], header: bool) -> str:
    """CSV lines for diagnostics.csv; the header first when asked for."""
    lines = [",".join(FIELDS)] if header else []
    lines += [f"{r['epoch']},{r['layer']},{r['name']},{r['value']:.6g}" for r in rows]
    return "".join(f"{line}\n" for line in lines)

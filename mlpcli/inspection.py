"""`mlp inspect`: why a network learns or fails, layer by layer, in numbers and in words.

The run's network (as initialised, at its best epoch or at its last) is probed on the same fixed
sample of training rows the diagnostics use. Each hidden layer gets its gradient's size relative
to the last hidden layer's (the chain rule multiplies one factor per layer, so a ratio far from 1
means the factors shrink or grow), and its dead and saturated fractions. Flags name what is
wrong; the advice names the config keys that fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import Config
from .diagnostics import DIAGNOSTICS_FILE, DYING, layer_stats, read_rows, sample_rows
from .errors import CheckpointError, RunError
from .evaluate import Predictor, expected_layout, load
from .file_schemas import check_tensors, tensor_layout
from .model import build_mlp
from .probe import probe_model
from .runs import CHECKPOINT, check_run_folder, write_json
from .summary import activation_text
from .tasks import make_loss
from .trainer import Split

INSPECT_FILE = "inspect.json"
AT = ("init", "best", "last")
DEFAULT_ROWS = 1024

# Gradient ratio to the last hidden layer below / above which a layer's gradients vanish or
# explode; fraction of a layer's units above which the layer is called dead or saturated.
VANISHING, EXPLODING, MOSTLY = 1e-2, 1e2, 0.5


@dataclass
class Inspection:
    """What `mlp inspect` reports (see to_dict for the JSON form)."""

    at: str
    epoch: int
    layers: list[dict[str, Any]]
    flags: list[str]
    advice: list[str]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "epoch": self.epoch,
            "layers": self.layers,
            "flags": self.flags,
            "advice": self.advice,
            "verdict": self.verdict,
        }


def diagnose(
    model: nn.Module, config: Config, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per hidden layer: width, activation, params, grad_ratio, dead, saturated and flags
    (dead and saturated are None where the activation has no such state); and the flags of
    the whole network, in the order they first appear."""
    specs = config.model.activations()
    names = [spec["name"] for spec in specs]
    _, probes = probe_model(model, loss_fn, x, y)
    stats = layer_stats(probes, names)
    last = stats[-1]["grad_rms"] if stats else 0.0
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    layers: list[dict[str, Any]] = []
    for k, (layer, spec, linear) in enumerate(zip(stats, specs, linears), start=1):
        ratio = layer["grad_rms"] / last if last > 0 else None
        dead, saturated = layer.get("dead"), layer.get("saturated")
        flags = [
            flag
            for flag, raised in (
                ("vanishing", ratio is not None and ratio < VANISHING),
                ("exploding", ratio is not None and ratio > EXPLODING),
                ("dead", dead is not None and dead > MOSTLY),
                ("saturated", saturated is not None and saturated > MOSTLY),
            )
            if raised
        ]
        layers.append(
            {
                "layer": k,
                "width": linear.out_features,
                "activation": activation_text(spec),
                "params": sum(p.numel() for p in linear.parameters()),
                "grad_ratio": ratio,
                "grad_rms": layer["grad_rms"],
                "dead": dead,
                "saturated": saturated,
                "flags": flags,
            }
        )
    found = list(dict.fromkeys(f for layer in layers for f in layer["flags"]))
    return layers, found


def advice_for(flag: str, layers: list[dict[str, Any]], config: Config) -> str:
    """One sentence per flag, with the numbers that raised it and the keys that fix it."""
    hit = [layer for layer in layers if flag in layer["flags"]]
    where = ", ".join(str(layer["layer"]) for layer in hit)
    last = layers[-1]["layer"]
    names = {layer["activation"].split()[0] for layer in hit}
    if flag in ("vanishing", "exploding"):
        worst = min if flag == "vanishing" else max
        layer = worst(hit, key=lambda layer: layer["grad_ratio"])
        head = (
            f"{flag}: layer {layer['layer']}'s gradients are {layer['grad_ratio']:.1g} of layer "
            f"{last}'s"
        )
        if flag == "exploding":
            return (
                f"{head}; use model.init xavier_normal (tanh, sigmoid) or kaiming_normal (relu), "
                f"model.norm batch, train.grad_clip, or a smaller optim.lr"
            )
        fix = "model.init kaiming_normal" if names <= DYING else "model.activation relu"
        return (
            f"{head}: the layers below learn slowly; use {fix} with model.init kaiming_normal "
            f"(or tanh with xavier_normal), model.norm batch, or fewer layers"
        )
    fractions = ", ".join(f"{layer[flag]:.0%} in layer {layer['layer']}" for layer in hit)
    if flag == "dead":
        return (
            f"dead: {fractions} of the units never fire on the sample, so they get no "
            f"gradient; use a smaller optim.lr, model.activation leaky_relu or elu, or "
            f"model.init kaiming_normal"
        )
    return (
        f"saturated: {fractions} of the units sit at a bound of their {'/'.join(sorted(names))} "
        f"on most rows, where its slope is nearly 0; keep data.standardize true, use model.init "
        f"xavier_normal, a smaller optim.lr, model.norm batch, or model.activation relu (layers "
        f"{where})"
    )


def verdict_text(layers: list[dict[str, Any]], flags: list[str]) -> str:
    if not layers:
        return "a linear model (model.hidden []): no hidden layer to diagnose"
    if flags:
        return f"problems: {', '.join(flags)}"
    ratios = [layer["grad_ratio"] for layer in layers if layer["grad_ratio"] is not None]
    spread = f" (gradient ratios {min(ratios):.2g} to {max(ratios):.2g})" if ratios else ""
    return f"healthy: gradients reach every layer{spread}; no layer mostly dead or saturated"


def weights_at(run_dir: Path, predictor: Predictor, at: str) -> tuple[nn.Module, int]:
    """The run's network as initialised (rebuilt from its seed), at its best or last epoch
    (from the resume checkpoint, else the saved model), and that epoch's number."""
    config, prep = predictor.config, predictor.preprocessor
    if at == "init":
        torch.manual_seed(config.seed)  # as training built it: the seed, then build_mlp
        return build_mlp(config.model, prep.in_dim, prep.out_dim), 0
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.exists():
        if at == "last":
            raise CheckpointError(
                f"{checkpoint}: missing; --at last reads the run's resume checkpoint; "
                f"use --at best or --at init"
            )
        return predictor.model, int(predictor.metadata.get("epoch", 0))
    state = load_checkpoint(checkpoint)
    best = state["best"]["state"]
    weights, epoch = (
        (state["model"], state["epoch"])
        if at == "last" or best is None
        else (best, state["best"]["epoch"])
    )
    check_tensors(checkpoint, tensor_layout(weights), expected_layout(config, prep), "its weights")
    model = build_mlp(config.model, prep.in_dim, prep.out_dim)
    model.load_state_dict(weights)
    return model, int(epoch)


def inspect_run(run: str | Path, at: str = "best") -> tuple[Inspection, list[Path]]:
    """Diagnose a run's network at init, best or last; write inspect.json and, from the
    run's diagnostics.csv, plots/gradients.png and plots/units.png. Returns the report and
    the files written."""
    run_dir = Path(run)
    if at not in AT:
        raise RunError(f"--at: '{at}'; accepted: {', '.join(AT)}")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run folder; mlp inspect reads a run folder")
    check_run_folder(run_dir)
    predictor = load(run_dir)
    config = predictor.config
    model, epoch = weights_at(run_dir, predictor, at)
    frame = predictor.split("train")
    data = Split.from_frame(predictor.preprocessor, frame, torch.device("cpu"), "train split")
    diagnostics = config.train.diagnostics
    rows = diagnostics.rows if diagnostics is not None else DEFAULT_ROWS
    index = sample_rows(len(data), rows, config.seed)
    loss_fn = make_loss(config, predictor.task)
    layers, flags = diagnose(model, config, loss_fn, data.x[index], data.y[index])
    report = Inspection(
        at,
        epoch,
        layers,
        flags,
        [advice_for(flag, layers, config) for flag in flags],
        verdict_text(layers, flags),
    )
    write_json(run_dir / INSPECT_FILE, report.to_dict())
    written = [run_dir / INSPECT_FILE]
    history = read_rows(run_dir / DIAGNOSTICS_FILE)
    if history:
        from .diagnostic_plots import gradient_curves, unit_curves

        hidden = config.model.hidden
        shape = f"{hidden}" if len(str(hidden)) <= 30 else f"{len(hidden)} layers"
        title, mark = f"{run_dir.name} · hidden {shape}", (epoch, f"{at}: epoch {epoch}")
        written.append(gradient_curves(history, run_dir / "plots" / "gradients.png", title, mark))
        if any(r["name"] in ("dead", "saturated") for r in history):
            written.append(unit_curves(history, run_dir / "plots" / "units.png", title, mark))
    return report, written

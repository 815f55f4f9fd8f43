"""`mlp inspect`: why a network learns or fails, layer by layer, in numbers and in words.

The run's network (as initialised, at its best epoch or at its last) is probed as a training step
sees it (batch norm on the rows' own statistics, dropout off) on the same fixed sample of training
rows the diagnostics use, or of the rows of a file given instead. Each hidden layer gets its
gradient's size relative to the last hidden layer's (the chain rule multiplies one factor per
layer, so a ratio far from 1 means the factors shrink or grow), and its dead and saturated
fractions. Flags name what is wrong; the advice names the config settings that fix it, never one
the run already has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config.registry import FILE_SOURCES
from ..config.schema import Config, DataConfig, DiagnosticsConfig, load_config
from ..data import Preprocessor
from ..data.columns import as_frame
from ..data.splits import split_indices
from ..errors import CheckpointError, DataError, RunError
from ..model.factory import build_mlp, linear_layers
from ..model.layers import LayerRow, layer_rows
from ..model.outputs import Split
from ..model.tasks import make_loss
from ..runs.checkpoint import load_checkpoint
from ..runs.file_schemas import check_tensors, tensor_layout
from ..runs.folder import (
    CHECKPOINT,
    CONFIG_FILE,
    MODEL_FILE,
    check_run_folder,
    read_rows,
    write_json,
)
from ..serving.evaluate import (
    expected_layout,
    labelled_rows,
    load,
    require_network,
    with_data_hint,
)
from ..training.diagnostics import (
    BOUNDS,
    DIAGNOSTICS_FILE,
    DYING,
    activation_names,
    layer_stats,
    sample_rows,
)
from ..training.engine import choose_threads, cpu_threads
from ..training.plan import plan_table
from ..training.probe import probe_model
from .noise import NoiseScale, noise_scale
from .probes import HELD_OUT, LBFGS_STEPS, PENALTY, ProbeReport, probe_run

INSPECT_FILE = "inspect.json"
AT = ("init", "best", "last")

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
    notes: list[str]  # what the report could not check, for the user to read
    probes: ProbeReport | None = None  # with --probes
    noise: NoiseScale | None = None  # with --noise

    def to_dict(self) -> dict[str, Any]:
        report = {
            "at": self.at,
            "epoch": self.epoch,
            "layers": self.layers,
            "flags": self.flags,
            "advice": self.advice,
            "verdict": self.verdict,
            "notes": self.notes,
        }
        if self.probes is not None:
            report["probes"] = [probe.to_dict() for probe in self.probes.probes]
            report["probe_rows"] = self.probes.rows
            report["probe_verdict"] = self.probes.verdict
        if self.noise is not None:
            report["noise_scale"] = self.noise.to_dict()
        return report


def diagnose(
    model: nn.Module,
    config: Config,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per hidden layer: width, activation, params, grad_ratio, dead, saturated and flags
    (dead and saturated are None where the activation has no such state); and the flags of
    the whole network, in the order they first appear."""
    stats = layer_stats(probe_model(model, loss_fn, x, y), activation_names(config.model))
    linears = linear_layers(model)
    # Parameters as mlp summary counts them: with a norm layer's and a learnable Swish's.
    rows = layer_rows(config.model, linears[0].in_features, linears[-1].out_features)
    return layer_findings(stats, rows)


def layer_findings(
    stats: Sequence[dict[str, float]], rows: Sequence[LayerRow]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The per-layer table and flags from each hidden layer's statistics (grad_rms, and dead or
    saturated where the activation has them; diagnostics.csv's names) and its row as mlp summary
    counts it: the rules of `mlp inspect`, whether the statistics come from a probe of the
    weights or from a record of diagnostics.csv."""
    last = stats[-1]["grad_rms"] if stats else 0.0
    layers: list[dict[str, Any]] = []
    for layer, row in zip(stats, rows):
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
                "layer": int(row.layer),
                "width": row.width,
                "activation": row.activation,
                "norm": row.norm,
                "params": row.params,
                "grad_ratio": ratio,
                "grad_rms": layer["grad_rms"],
                "dead": dead,
                "saturated": saturated,
                "flags": flags,
            }
        )
    found = list(dict.fromkeys(f for layer in layers for f in layer["flags"]))
    return layers, found


# A remedy: the settings it makes, together ({"model.activation": "relu", "model.init":
# "kaiming_normal"} reads "model.activation relu with model.init kaiming_normal"), or words for
# one that no setting names ("a smaller optim.lr"). Settings the config already has are left
# out, and a remedy with none left is not advised.
Remedy = dict[str, Any] | str
NORM: Remedy = {"model.norm": "batch"}


def advice_for(flag: str, layers: list[dict[str, Any]], config: Config) -> str:
    """One sentence per flag, with the numbers that raised it and the settings that fix it,
    leaving out every setting the config already has."""
    hit = [layer for layer in layers if flag in layer["flags"]]
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
            return f"{head}; use {_remedies(config, _exploding(config, names))}"
        return f"{head}: the layers below learn slowly; use {_remedies(config, _vanishing(names))}"
    fractions = ", ".join(f"{layer[flag]:.0%} in layer {layer['layer']}" for layer in hit)
    if flag == "dead":
        dead: list[Remedy] = [
            "a smaller optim.lr",
            {"model.activation": "leaky_relu"},
            {"model.activation": "elu"},
            {"model.init": "kaiming_normal"},
        ]
        return (
            f"dead: {fractions} of the ReLU units output 0 on every row of the sample, so they "
            f"get no gradient; use {_remedies(config, dead)}"
        )
    saturated: list[Remedy] = [
        {"data.standardize": True},
        {"model.init": "xavier_normal"},
        "a smaller optim.lr",
        NORM,
        {"model.activation": "relu"},
    ]
    return (
        f"saturated: {fractions} of the units sit at a bound of their {'/'.join(sorted(names))} "
        f"on most rows, where its slope is nearly 0; use {_remedies(config, saturated)}"
    )


def _vanishing(names: set[str]) -> list[Remedy]:
    if names <= DYING:
        return [{"model.init": "kaiming_normal"}, NORM, "fewer layers"]
    return [
        {"model.activation": "relu", "model.init": "kaiming_normal"},
        {"model.activation": "tanh", "model.init": "xavier_normal"},
        NORM,
        "fewer layers",
    ]


def _exploding(config: Config, names: set[str]) -> list[Remedy]:
    init = "xavier_normal" if names <= set(BOUNDS) else "kaiming_normal"  # as each one's slope
    clip = config.train.grad_clip
    return [
        {"model.init": init},
        NORM,
        "train.grad_clip" if clip is None else f"a train.grad_clip below {clip:g}",
        "a smaller optim.lr",
    ]


def _remedies(config: Config, remedies: list[Remedy]) -> str:
    """'a, b, or c': the remedies, each without the settings this config already has."""
    kept = []
    for remedy in remedies:
        if isinstance(remedy, str):
            kept.append(remedy)
            continue
        changes = [f"{k} {_shown(v)}" for k, v in remedy.items() if not _has(config, k, v)]
        if changes:
            kept.append(" with ".join(changes))
    return kept[0] if len(kept) == 1 else f"{', '.join(kept[:-1])}, or {kept[-1]}"


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _has(config: Config, key: str, value: Any) -> bool:
    """Whether the config already sets a dotted key to the value (model.activation: every
    hidden layer's activation has that name)."""
    if key == "model.activation":
        return {spec["name"] for spec in config.model.activations()} == {value}
    section, name = key.split(".")
    return bool(getattr(getattr(config, section), name) == value)


def verdict_text(layers: list[dict[str, Any]], flags: list[str]) -> str:
    if not layers:
        return "a linear model (model.hidden []): no hidden layer to diagnose"
    if flags:
        return f"problems: {', '.join(flags)}"
    ratios = [layer["grad_ratio"] for layer in layers if layer["grad_ratio"] is not None]
    spread = f" (gradient ratios {min(ratios):.2g} to {max(ratios):.2g})" if ratios else ""
    return f"healthy: gradients reach every layer{spread}; no layer mostly dead or saturated"


@dataclass
class RunNetwork:
    """What inspecting a run needs besides its weights: config, preprocessing, the rows."""

    config: Config
    prep: Preprocessor
    train: Any  # the training split's rows, or those of the file given (a DataFrame)
    saved: nn.Module | None  # model.safetensors's network, when the run saved one
    saved_epoch: int
    notes: list[str]
    # Another split of the run's own data by name (val, test); None for the rows of --data.
    split: Callable[[str], Any] | None = None


def read_run(run_dir: Path, data: Path | None = None) -> RunNetwork:
    """The run's config and preprocessing from its model file (checking that the data is still
    what it was trained on) or, for a run that saved no model yet (stopped or failed early),
    from config.yaml, fitting the preprocessing again as training did. With `data`, the rows
    are that labelled file's rather than the run's training split."""
    if (run_dir / MODEL_FILE).exists():
        predictor = load(run_dir)
        require_network(predictor, run_dir, "mlp inspect")
        epoch = int(predictor.metadata.get("epoch", 0))
        prep = predictor.preprocessor
        if data is not None:
            frame = labelled_rows(data, prep, "inspecting")
        else:
            try:
                frame = predictor.split("train")
            except (DataError, CheckpointError) as exc:
                raise with_data_hint(exc) from None
        split = predictor.split if data is None else None
        return RunNetwork(predictor.config, prep, frame, predictor.model, epoch, [], split)
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / CHECKPOINT).is_file():
        load(run_dir)  # raises the error eval gives for a folder without a model
    config = load_config(run_dir / CONFIG_FILE)
    try:
        plan = plan_table(config, what="mlp inspect of a run without a model file")
    except DataError as exc:
        raise DataError(
            f"{run_dir}: this run saved no {MODEL_FILE} (it did not finish), which would record "
            f"its preprocessing, so that is fitted again from the training data, which cannot "
            f"be read: {exc}"
        ) from None
    notes = []
    if config.data.source in FILE_SOURCES:
        notes.append(
            f"this run saved no {MODEL_FILE}, which records the sha256 of its data, so "
            f"{config.data.path} was read without checking that it is the file it trained on"
        )
    frame = (
        labelled_rows(data, plan.prep, "inspecting")
        if data is not None
        else as_frame(plan.dataset.train)
    )
    dataset = plan.dataset
    split = (lambda name: as_frame(dataset.split(name))) if data is None else None
    return RunNetwork(config, plan.prep, frame, None, 0, notes, split)


def weights_at(run_dir: Path, run: RunNetwork, at: str) -> tuple[nn.Module, int]:
    """The run's network as initialised (rebuilt from its seed), at its best or last epoch
    (from the resume checkpoint, else the saved model), and that epoch's number."""
    config, prep = run.config, run.prep
    if at == "init":
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(config.seed)  # as training built it: the seed, then build_mlp
            return build_mlp(config.model, prep.in_dim, prep.out_dim), 0
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.exists():
        if at == "last" or run.saved is None:
            raise CheckpointError(
                f"{checkpoint}: missing; --at {at} reads the run's resume checkpoint; "
                f"use --at {'best' if run.saved is not None else 'init'}"
            )
        return run.saved, run.saved_epoch
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


def inspect_run(
    run: str | Path,
    at: str = "best",
    data: str | Path | None = None,
    probes: bool = False,
    noise: bool = False,
) -> tuple[Inspection, list[Path]]:
    """Diagnose a run's network at init, best or last, on its training rows or on the rows of
    the labelled file `data`; write inspect.json and, from the run's diagnostics.csv,
    plots/gradients.png and plots/units.png. With `probes`, linear probes per layer and
    plots/representations.png; with `noise`, the gradient noise scale. Returns the report
    and the files written."""
    run_dir = Path(run)
    if at not in AT:
        raise RunError(f"--at: '{at}'; accepted: {', '.join(AT)}")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run folder; mlp inspect reads a run folder")
    check_run_folder(run_dir)
    network = read_run(run_dir, Path(data) if data is not None else None)
    config = network.config
    model, epoch = weights_at(run_dir, network, at)
    rows = (config.train.diagnostics or DiagnosticsConfig()).rows
    # The rows diagnostics.csv was computed on: the same seeded sample of the training split
    # (with `data`, of that file's rows, drawn the same way).
    index = sample_rows(len(network.train), rows, config.seed).numpy()
    sample = network.train.iloc[index]
    where = str(data) if data is not None else "train split"
    notes = [*network.notes, *_probe_notes(config, len(sample), data)]
    if config.model.norm == "batch" and len(sample) < 2:
        raise DataError(
            f"{where}: 1 row; model.norm batch normalises by the statistics of the rows probed, "
            f"which needs at least 2"
        )
    tensors = Split.from_frame(network.prep, sample, torch.device("cpu"), where)
    loss_fn = make_loss(config, network.prep.task)
    layers, flags = diagnose(model, config, loss_fn, tensors.x, tensors.y)
    report = Inspection(
        at,
        epoch,
        layers,
        flags,
        [advice_for(flag, layers, config) for flag in flags],
        verdict_text(layers, flags),
        notes,
    )
    drawn = draw_history(run_dir, config.model.hidden, (epoch, f"{at}: epoch {epoch}"))
    if probes:
        report.probes = _probes(network, model, sample, data)
        notes.append(_probes_note(report.probes, data, network.prep.task))
        drawn.append(_draw_representations(run_dir, network, report.probes, at, epoch))
    if noise:
        report.noise = _noise(network, model, loss_fn, where)
        notes.append(_noise_note(report.noise, config))
    write_json(run_dir / INSPECT_FILE, report.to_dict())
    return report, [run_dir / INSPECT_FILE, *drawn]


def _has_split(data: DataConfig, name: str) -> bool:
    return bool(getattr(data, f"{name}_path") or getattr(data, f"{name}_split") > 0)


def _probes(
    network: RunNetwork, model: nn.Module, sample: Any, data: str | Path | None
) -> ProbeReport:
    """Probes fitted on the inspected sample and scored on as many rows at most of the run's
    validation split, else its test split, else (no such split, or rows from --data) on a
    held-out quarter of the sample."""
    config = network.config
    named = [n for n in ("val", "test") if _has_split(config.data, n)]
    if network.split is not None and named:
        try:
            rows = network.split(named[0])
        except (DataError, CheckpointError) as exc:
            raise with_data_hint(exc) from None
        held = rows.iloc[sample_rows(len(rows), len(sample), config.seed).numpy()]
        return probe_run(model, config, network.prep, sample, held, named[0])
    if len(sample) < 4:
        raise DataError(
            f"--probes: {len(sample)} rows to fit and score the probes on; at least 4 are needed"
        )
    fit, held = split_indices(len(sample), HELD_OUT, config.seed)
    fit_rows, held_rows = sample.iloc[sorted(fit)], sample.iloc[sorted(held)]
    return probe_run(model, config, network.prep, fit_rows, held_rows, "held-out")


def _probes_note(report: ProbeReport, data: str | Path | None, task: str) -> str:
    rows = report.rows
    why = "the rows are --data's" if data is not None else "the run has no val or test split"
    held = (
        f"a held-out {HELD_OUT:.0%} of the sample, as {why}"
        if rows["held_out"] == "held-out"
        else f"a seeded sample of the {rows['held_out']} split"
    )
    return (
        f"linear probes fitted on {rows['train']:,} training rows and scored on {rows['val']:,} "
        f"rows ({held}); features standardised by the training rows' mean and std; L2 penalty "
        f"{PENALTY:g}/2·|W|² on the mean loss; "
        + (
            "least squares in closed form"
            if task == "regression"
            else f"logistic fits by L-BFGS, at most {LBFGS_STEPS} iterations"
        )
    )


def _draw_representations(
    run_dir: Path, network: RunNetwork, report: ProbeReport, at: str, epoch: int
) -> Path:
    """plots/representations.png: each layer's held-out rows by PCA, coloured by target."""
    from .probe_plots import representation_panels

    prep = network.prep
    target, classes, label = report.target, None, prep.targets[0]
    if prep.task in ("binary", "classification"):
        target = target.reshape(len(target), -1)[:, 0].long()
        classes = [f"{label} = {v}" for v in prep.labels]
    elif prep.task == "multilabel":
        target, classes = target[:, 0].long(), [f"{prep.labels[0]} = 0", f"{prep.labels[0]} = 1"]
    else:
        mean, std = prep.target_scale[0]
        target = target[:, 0].double() * std + mean
    titles = [
        f"{p.name}\n{report.rows['held_out']} {p.metric} "
        + ("-" if p.val is None else f"{p.val:.2f}")
        for p in report.probes
    ]
    projections = [(points.numpy(), share.numpy()) for points, share in report.projections]
    return representation_panels(
        projections,
        titles,
        target.numpy(),
        classes,
        label,
        run_dir / "plots" / "representations.png",
        f"{run_dir.name} at {at} (epoch {epoch}) · {report.rows['val']:,} {report.rows['held_out']} "
        f"rows by PCA, coloured by {label}",
    )


def _noise(network: RunNetwork, model: nn.Module, loss_fn: nn.Module, where: str) -> NoiseScale:
    """The noise scale on every training row (or the rows of --data) at training's batch size
    (no larger than the rows)."""
    config = network.config
    rows = Split.from_frame(network.prep, network.train, torch.device("cpu"), where)
    batch = min(config.train.batch_size, len(rows))
    if config.model.norm == "batch" and batch < 2:
        raise DataError(f"--noise: batches of {batch} row; model.norm batch needs at least 2")
    # As training runs its steps: one thread for a small model, where more only wait.
    with cpu_threads(choose_threads(config.train, model, torch.device("cpu"), len(rows))):
        return noise_scale(model, loss_fn, rows.x, rows.y, batch, config.seed)


def _noise_note(noise: NoiseScale, config: Config) -> str:
    parts = noise.b_big // noise.batch_size
    return (
        f"noise scale from {noise.batches} batches of {noise.b_big:,} training rows, each the "
        f"mean gradient of {parts} batches of {noise.batch_size:,} ({noise.batches * parts:,} "
        f"in all), rows drawn with replacement (seed {config.seed}); the model as a training "
        f"step runs it, with dropout off"
    )


def _probe_notes(config: Config, rows: int, data: str | Path | None) -> list[str]:
    """What differs from a training step, and which rows were probed when not the run's own."""
    notes = []
    if data is not None:
        notes.append(f"probed on {rows} rows of {data} (--data), not on the run's training rows")
    model = config.model
    as_trained = []
    if model.norm == "batch":
        as_trained.append(
            f"batch norm normalises by the {rows} probed rows' own mean and variance, as in a "
            f"training step (not by its running statistics)"
        )
    if model.dropout > 0:
        as_trained.append(f"dropout (model.dropout {model.dropout:g}) is off")
    if as_trained:
        notes.append(f"probed as training runs: {'; '.join(as_trained)}")
    return notes


def draw_history(
    run_dir: Path, hidden: Sequence[int], mark: tuple[int, str] | None = None
) -> list[Path]:
    """plots/gradients.png and plots/units.png from diagnostics.csv, where it has their rows;
    `mark` is an epoch to draw a dashed line at, and its label (the inspected or kept one)."""
    from .diagnostic_plots import GRADIENT_PANELS, UNIT_PANELS, gradient_curves, unit_curves

    history = read_rows(run_dir / DIAGNOSTICS_FILE)
    shape = f"{list(hidden)}" if len(str(list(hidden))) <= 30 else f"{len(hidden)} layers"
    title = f"{run_dir.name} · hidden {shape}"
    names = {row["name"] for row in history}
    written = []
    if names & set(GRADIENT_PANELS):
        written.append(gradient_curves(history, run_dir / "plots" / "gradients.png", title, mark))
    if names & set(UNIT_PANELS):
        written.append(unit_curves(history, run_dir / "plots" / "units.png", title, mark))
    return written

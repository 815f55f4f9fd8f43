"""Each registry entry has every piece CONTRIBUTING.md's recipes name: a missed step fails here,
with a message naming the missing piece and the recipe."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mlpcli.config.registry import (
    ACTIVATIONS,
    EXECUTORS,
    FILE_SOURCES,
    OPTIMIZERS,
    SCHEDULES,
    SYNTHETIC_SOURCES,
    TASKS,
    resolve,
)
from mlpcli.config.schema import OptimConfig, build_config

RECIPE = "see CONTRIBUTING.md#{}"

# Activations that the written-out backprop engine leaves to autograd on purpose (engine: auto
# trains them with autograd; docs/architecture.md, "Two engines").
AUTOGRAD_ONLY = {"swish": "its beta may be learnable, a parameter the written-out engine lacks"}


def test_every_recipe_named_here_is_a_heading_of_contributing():
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    headings = {h.lower().replace(" ", "-") for h in re.findall(r"^## (.+)$", text, re.M)}
    named = set(re.findall(r"RECIPE\.format\(\"([\w-]+)\"\)", Path(__file__).read_text()))
    assert named and named <= headings, f"CONTRIBUTING.md has no recipe {sorted(named - headings)}"


def resolves(dotted: str) -> bool:
    module, _, attr = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_has_its_class_and_backprop_derivative(name):
    from mlpcli.training.backprop import ACTIVATION_GRADS

    recipe = RECIPE.format("add-an-activation")
    path = ACTIVATIONS[name].path
    assert resolves(path), f"activation {name!r}: its class {path} does not exist; {recipe}"
    if name in AUTOGRAD_ONLY:
        return
    assert resolve(path) in ACTIVATION_GRADS, (
        f"activation {name!r} is in ACTIVATIONS but training/backprop.py has no derivative for "
        f"it in ACTIVATION_GRADS; {recipe}"
    )


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_what_each_activation_entry_says_of_its_units_is_true(name):
    """`dies`, `bounds` and `kaiming` are what mlp inspect and the init read: checked on the
    module itself, so that a new entry cannot claim a fact its activation does not have."""
    import torch

    from mlpcli.model.factory import make_activation

    entry = ACTIVATIONS[name]
    recipe = RECIPE.format("add-an-activation")
    module = make_activation({"name": name, **entry.defaults})
    below = torch.full((4,), -3.0, requires_grad=True)
    module(below).sum().backward()
    dead = bool((module(below) == 0).all()) and bool((below.grad == 0).all())
    assert dead == entry.dies, f"activation {name!r}: dies={entry.dies} is not so; {recipe}"
    far = module(torch.tensor([-50.0, 50.0])).detach()
    if entry.bounds is None:
        assert far.abs().max() >= 10, f"activation {name!r} is bounded: give its bounds; {recipe}"
    else:
        assert torch.allclose(far, torch.tensor(entry.bounds), atol=1e-6), (
            f"activation {name!r}: its outputs at -50 and 50 are {far.tolist()}, not the bounds "
            f"{entry.bounds} its entry gives; {recipe}"
        )
    torch.nn.init.calculate_gain(entry.kaiming, 0.01)  # a name init accepts


# ---------------------------------------------------------------- data sources


@pytest.mark.parametrize("name", list(SYNTHETIC_SOURCES))
def test_every_synthetic_source_has_a_generator_a_task_and_a_shape(name):
    import mlpcli.data.synthetic as synthetic

    recipe = RECIPE.format("add-a-data-source")
    entry = SYNTHETIC_SOURCES[name]
    assert hasattr(synthetic, name), (
        f"data source {name!r} is in SYNTHETIC_SOURCES but data/synthetic.py has no function "
        f"{name}(n_samples, noise, rng); {recipe}"
    )
    assert entry.task in TASKS, f"data source {name!r}: task {entry.task!r} is not in TASKS"
    columns = synthetic.__dict__[name](40, 0.1, np.random.default_rng(0))
    features = [c for c in columns.columns if c not in entry.targets]
    assert list(columns.columns[-len(entry.targets) :]) == list(entry.targets), (
        f"data source {name!r}: its registry entry names targets {entry.targets}, the generator "
        f"makes columns {list(columns.columns)}; {recipe}"
    )
    assert len(features) == entry.features, (
        f"data source {name!r}: its registry entry says {entry.features} features, the "
        f"generator makes {len(features)}; {recipe}"
    )
    if entry.task == "multilabel":
        assert entry.outputs == len(entry.targets)


# ---------------------------------------------------------------- file formats


def write_sample(fmt: str, path, frame: pd.DataFrame) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "npz":
        np.savez(path, X=frame[["a", "b"]].to_numpy(), y=frame["y"].to_numpy())


SAMPLE_WRITTEN = {"csv", "parquet", "npz"}  # the formats write_sample above writes


@pytest.mark.parametrize("fmt", list(FILE_SOURCES))
def test_every_file_format_has_a_suffix_and_a_reader(fmt, tmp_path):
    from mlpcli.data.files import FORMATS_BY_SUFFIX, read_table

    recipe = RECIPE.format("add-a-file-format")
    suffixes = [s for s, f in FORMATS_BY_SUFFIX.items() if f == fmt]
    assert suffixes, (
        f"file format {fmt!r} is in FILE_SOURCES but data/files.py's FORMATS_BY_SUFFIX has no "
        f"suffix for it; {recipe}"
    )
    assert fmt in SAMPLE_WRITTEN, (
        f"file format {fmt!r}: tests/test_registries.py's write_sample cannot write one; {recipe}"
    )
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.25, 0.125], "y": [0, 1, 0]})
    path = tmp_path / f"sample{suffixes[0]}"
    write_sample(fmt, path, frame)
    read = read_table(path)
    assert read.to_numpy().tolist() == frame.to_numpy().tolist(), (
        f"file format {fmt!r}: data/files.py's read_table does not read back what was written; "
        f"{recipe}"
    )


def test_every_suffix_names_a_registered_format():
    from mlpcli.data.files import FORMATS_BY_SUFFIX

    for suffix, fmt in FORMATS_BY_SUFFIX.items():
        assert fmt in FILE_SOURCES, (
            f"data/files.py maps {suffix} to {fmt!r}, which is not in FILE_SOURCES; "
            f"{RECIPE.format('add-a-file-format')}"
        )


# ---------------------------------------------------------------- optimisers and schedules


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_resolves_and_takes_config_keys(name):
    entry = OPTIMIZERS[name]
    assert resolves(entry.path), f"optimizer {name!r}: {entry.path} does not exist"
    assert entry.state >= 0
    assert set(entry.takes) <= set(OptimConfig.model_fields), (
        f"optimizer {name!r} takes keys the optim section has not: {entry.takes}"
    )


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_is_made_from_its_entry_with_the_config_values(name):
    from mlpcli.training import optimizers, schedules
    from mlpcli.training.trainer import make_scheduler

    config = build_config({"schedule": {"name": name}, "train": {"epochs": 17}})
    optimizer = optimizers.Adam([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    made = make_scheduler(config.schedule, optimizer, config.train.epochs)
    entry = SCHEDULES[name]
    if entry.path is None:
        assert made is None
        return
    assert type(made) is resolve(entry.path)
    assert isinstance(made, schedules.Schedule)
    for arg, key in entry.takes.items():
        expected = 17 if key == "epochs" else getattr(config.schedule, key)
        assert getattr(made, arg, expected) == expected  # the value the class keeps


# ---------------------------------------------------------------- diagnostics


def test_every_diagnostic_is_registered_and_every_panel_draws_one():
    from mlpcli.insight.diagnostic_plots import GRADIENT_PANELS, UNIT_PANELS
    from mlpcli.training import diagnostics
    from mlpcli.training.probe import LayerProbe

    recipe = RECIPE.format("add-a-diagnostic")
    gen = torch.Generator().manual_seed(0)

    def probe() -> LayerProbe:
        z = torch.randn(8, 3, generator=gen)
        return LayerProbe(torch.randn(3, 2, generator=gen), z, z.sigmoid(), z, z)

    probes = [probe(), probe()]
    previous = [p.weight + 0.1 for p in probes]
    written = set()
    for layer in diagnostics.layer_stats(probes, ["relu", "sigmoid"], previous):
        written |= set(layer)
    for name in written:
        assert name in diagnostics.STATISTICS, (
            f"diagnostic {name!r} is written by layer_stats but has no entry in "
            f"training/diagnostics.py's STATISTICS; {recipe}"
        )
    for name in diagnostics.STATISTICS:
        assert name in written, (
            f"training/diagnostics.py's STATISTICS has {name!r}, which layer_stats does not "
            f"write; {recipe}"
        )
    for name in [*GRADIENT_PANELS, *UNIT_PANELS]:
        assert name in written, (
            f"insight/diagnostic_plots.py draws a panel of {name!r}, which layer_stats does not "
            f"write; {recipe}"
        )


# ---------------------------------------------------------------- executors


@pytest.mark.parametrize("name", list(EXECUTORS))
def test_every_executor_has_its_implementation_and_cli_options(name):
    from typer.main import get_command

    from mlpcli.cli import app

    recipe = RECIPE.format("add-an-executor")
    entry = EXECUTORS[name]
    assert resolves(entry.path), (
        f"executor {name!r} is in EXECUTORS but {entry.path} does not exist "
        f"(sweeps/executors/); {recipe}"
    )
    sweep = get_command(app).commands["sweep"]  # type: ignore[attr-defined]
    options = {p.name for p in sweep.params}
    for option in entry.options:
        assert option in options, (
            f"executor {name!r} takes --{option.replace('_', '-')}, which mlp sweep does not "
            f"offer (cli.py); {recipe}"
        )

"""The memory a config needs, estimated before anything large is allocated, and refused (exit 2)
when it exceeds what the machine has.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
import yaml

from mlpcli import memory
from mlpcli.config import build_config
from mlpcli.errors import ConfigError

GIB = 1024**3


def config(**sections):
    raw = {"data": {"source": "moons", "n_samples": 100}, "model": {"hidden": [10]}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return build_config(raw)


@pytest.mark.parametrize(
    "optim, copies",
    [
        # weights, gradients, the best weights, the checkpoint's weights, and the optimiser's
        # state twice: live and in the checkpoint
        ({"name": "adam"}, 8),
        ({"name": "adamw"}, 8),
        ({"name": "sgd"}, 4),
        ({"name": "sgd", "momentum": 0.9}, 6),
        ({"name": "rmsprop"}, 6),
        ({"name": "rmsprop", "momentum": 0.9}, 8),
    ],
)
def test_parameters_count_once_per_copy_the_run_keeps(optim, copies):
    estimate = memory.estimate(config(optim=optim), rows=0, in_dim=3, out_dim=2)
    assert estimate.parameters == 3 * 10 + 10 + 10 * 2 + 2
    assert estimate.model_bytes == 62 * 4 * copies


def test_no_bias_and_norm_layers_change_the_parameter_count():
    assert memory.estimate(config(model={"bias": False}), 0, 3, 2).parameters == 30 + 20
    assert memory.estimate(config(model={"norm": "batch"}), 0, 3, 2).parameters == 62 + 20


@pytest.mark.parametrize(
    "model",
    [
        {"hidden": [8, 8]},
        {"hidden": [8, 8], "bias": False},
        {"hidden": [8, 8], "norm": "layer"},
        {"hidden": [8, 8], "activation": {"name": "swish", "learnable": True}},
        {"hidden": [5], "activation": [{"name": "swish", "learnable": True}], "norm": "batch"},
        {"hidden": []},
    ],
)
def test_the_parameter_count_is_build_mlps(model):
    from mlpcli.model import build_mlp, count_parameters

    cfg = config(model=model)
    built = count_parameters(build_mlp(cfg.model, 3, 2))
    assert memory.count_parameters(cfg, 3, 2) == built


def test_data_and_activations_scale_with_rows_and_batch():
    cfg = config(train={"batch_size": 50})
    loaded = memory.estimate(cfg, rows=1000, in_dim=3, out_dim=2)
    assert loaded.data_bytes == 1000 * (3 + 2) * 4  # float32 tensors
    before = memory.estimate(cfg, rows=1000, in_dim=3, out_dim=2, table_columns=4)
    assert before.data_bytes > loaded.data_bytes  # the table itself, not yet read
    assert loaded.activation_bytes >= 50 * 10 * 4
    small = memory.estimate(config(train={"batch_size": 100_000}), rows=300, in_dim=3, out_dim=2)
    assert small.activation_bytes < 100_000 * 10 * 4  # a batch holds at most the rows there are


def test_a_config_that_fits_passes_and_one_that_does_not_names_its_keys():
    cfg = config(model={"hidden": [50_000, 50_000]})
    estimate = memory.estimate(cfg, rows=1000, in_dim=2, out_dim=1)
    memory.check(estimate, cfg, available=(estimate.total * 2, "test"))
    with pytest.raises(ConfigError) as caught:
        memory.check(estimate, cfg, available=(4 * GIB, "MemAvailable"))
    message = str(caught.value)
    assert "model.hidden" in message and "[50000, 50000]" in message
    assert f"{estimate.total / 1e9:.1f} GB" in message and "4.3 GB available" in message
    assert "MemAvailable" in message


def test_synthetic_rows_are_estimated_from_the_source_before_they_exist():
    cfg = config(data={"n_samples": 400_000_000}, model={"hidden": [8]})
    estimate = memory.before_loading(cfg)
    assert estimate is not None and estimate.data_bytes > 400_000_000 * 3 * 4
    with pytest.raises(ConfigError, match=r"data.n_samples 400000000"):
        memory.check(estimate, cfg, available=(8 * GIB, "MemAvailable"))
    assert memory.before_loading(config(data={"source": "iris"})) is None  # read, not drawn


@pytest.mark.parametrize("source", sorted(memory.SYNTHETIC_SHAPES))
def test_the_source_shapes_match_the_generated_data(source):
    from mlpcli.api import prepare

    cfg = config(data={"source": source, "n_samples": 60}, model={"hidden": [4]})
    session = prepare(cfg)
    features, outputs = memory.SYNTHETIC_SHAPES[source]
    assert (session.prep.in_dim, session.prep.out_dim) == (features, outputs)


def test_every_synthetic_source_and_optimizer_is_known():
    from mlpcli.registry import OPTIMIZERS, SYNTHETIC_SOURCES
    from mlpcli.trainer import EVAL_BATCH

    assert set(memory.SYNTHETIC_SHAPES) == set(SYNTHETIC_SOURCES)
    assert set(memory.OPTIMIZER_STATE) == set(OPTIMIZERS)
    assert memory.EVAL_BATCH == EVAL_BATCH


def test_available_memory_is_positive_and_says_what_limits_it():
    total, source = memory.available_memory()
    assert total > 0 and source


def limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, key",
    [
        ("model.hidden=[50000,50000]", "model.hidden"),
        ("data.n_samples=400000000", "data.n_samples"),
    ],
)
def test_oversized_configs_are_refused_before_allocating(tmp_path, override, key):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "moons"}, "train": {"epochs": 1}}))
    run = subprocess.run(
        [sys.executable, "-m", "mlpcli", "train", str(path), override, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited(4 * GIB),
    )
    assert run.returncode == 2, run.stderr
    message = " ".join(run.stderr.split())
    assert key in message and "GB" in message and "available" in message
    assert "Traceback" not in run.stderr
    assert not any(tmp_path.glob("c-*")), "no run folder for a refused config"

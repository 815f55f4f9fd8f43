"""Every bad input answered: broken configs, data files and command lines each exit 2 with a
message that names the key, file, line or column at fault and what would be accepted, print no
traceback, and leave no run folder behind.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config import shaped
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.config.registry import (
    ACTIVATIONS,
    INITS,
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    SYNTHETIC_SOURCES,
    TASKS,
)
from mlpcli.config.schema import Config

runner = CliRunner()

GOOD = "data: {source: moons, n_samples: 200}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n"
TABLE = (
    "data: {source: csv, path: d.csv, target: label}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n"
)


def rows(**columns) -> str:
    return pd.DataFrame(columns).to_csv(index=False)


CLEAN = rows(
    x=[0.1, 0.4, 0.9, 0.3, 0.5, 0.8, 0.2, 0.7, 0.6, 1.0] * 4,
    colour=["red", "blue"] * 20,
    label=["a", "b"] * 20,
)

# id: (files to write, command line after `mlp`, what the message must contain)
# In command lines, {dir} is the test's folder and {out} the --out folder that must stay empty.
CASES: dict[str, tuple[dict[str, str], str, list[str]]] = {
    # ---- config keys and values
    "unknown key": ({"c.yaml": "modle: {}\n"}, "train c.yaml", ["modle", "model"]),
    "unknown nested key": (
        {"c.yaml": "model: {hiden: [8]}\n"},
        "train c.yaml",
        ["model.hiden", "hidden"],
    ),
    "wrong type": (
        {"c.yaml": "train: {epochs: ten}\n"},
        "train c.yaml",
        ["train.epochs", "integer"],
    ),
    "float for an integer": (
        {"c.yaml": "train: {batch_size: 2.5}\n"},
        "train c.yaml",
        ["train.batch_size", "integer"],
    ),
    "zero epochs": (
        {"c.yaml": "train: {epochs: 0}\n"},
        "train c.yaml",
        ["train.epochs", "greater than 0"],
    ),
    "negative lr": (
        {"c.yaml": "optim: {lr: -0.1}\n"},
        "train c.yaml",
        ["optim.lr", "greater than 0"],
    ),
    "infinite lr": ({"c.yaml": "optim: {lr: .inf}\n"}, "train c.yaml", ["optim.lr", "finite"]),
    "split out of range": (
        {"c.yaml": "data: {val_split: 1.5}\n"},
        "train c.yaml",
        ["data.val_split", "less than"],
    ),
    "zero width": (
        {"c.yaml": "model: {hidden: [8, 0]}\n"},
        "train c.yaml",
        ["model.hidden", "positive"],
    ),
    "every problem at once": (
        {"c.yaml": "model: {dropout: 2}\ntrain: {epochs: -1}\n"},
        "train c.yaml",
        ["model.dropout", "train.epochs"],
    ),
    # ---- YAML
    "yaml syntax error": ({"c.yaml": "model:\n  hidden: [8\n"}, "train c.yaml", ["c.yaml", "line"]),
    "yaml bad indentation": (
        {"c.yaml": "model:\n  hidden: [8]\n bias: true\n"},
        "train c.yaml",
        ["c.yaml", "line 3"],
    ),
    "yaml not a mapping": ({"c.yaml": "- 1\n- 2\n"}, "train c.yaml", ["c.yaml", "mapping"]),
    "yaml python tag": (
        {"c.yaml": "name: !!python/object/apply:os.system ['touch {dir}/marker']\n"},
        "train c.yaml",
        ["c.yaml", "line 1"],
    ),
    "missing config file": ({}, "train none.yaml", ["none.yaml", "no such"]),
    "yaml duplicate key": (
        {"c.yaml": GOOD + "train: {epochs: 3}\n"},
        "train c.yaml",
        ["c.yaml", "line 4", "duplicate key 'train'"],
    ),
    "yaml nested too deep": (
        {"c.yaml": "name: " + "[" * 100 + "]" * 100 + "\n"},
        "train c.yaml",
        ["c.yaml", "deeper than 50"],
    ),
    # ---- names from the registries
    "unknown activation": (
        {"c.yaml": "model: {activation: relu6}\n"},
        "train c.yaml",
        ["model.activation", "relu6", "leaky_relu"],
    ),
    "unknown activation parameter": (
        {"c.yaml": "model: {activation: {name: swish, slope: 2}}\n"},
        "train c.yaml",
        ["slope", "beta"],
    ),
    "unknown loss": (
        {"c.yaml": "loss: hinge\n"},
        "train c.yaml",
        ["loss", "hinge", "cross_entropy"],
    ),
    "loss that does not fit the task": (
        {"c.yaml": "data: {source: sine}\nloss: cross_entropy\n"},
        "train c.yaml",
        ["loss", "cross_entropy", "regression", "mse"],
    ),
    "unknown optimiser": (
        {"c.yaml": "optim: {name: adamax}\n"},
        "train c.yaml",
        ["optim.name", "adamax", "adamw"],
    ),
    "unknown source": (
        {"c.yaml": "data: {source: moon}\n"},
        "train c.yaml",
        ["data.source", "moons"],
    ),
    "unknown task": (
        {"c.yaml": "task: ranking\n"},
        "train c.yaml",
        ["task", "ranking", "regression"],
    ),
    "monitor not measured": (
        {"c.yaml": "train: {early_stopping: {monitor: val_r2}}\n"},
        "train c.yaml",
        ["val_r2", "val_accuracy"],
    ),
    # ---- data files
    "missing data file": (
        {"c.yaml": TABLE},
        "train c.yaml",
        ["d.csv", "no such data file"],
    ),
    "missing target column": (
        {"c.yaml": TABLE.replace("label", "lable"), "d.csv": CLEAN},
        "train c.yaml",
        ["lable", "label"],
    ),
    "no target named": (
        {"c.yaml": "data: {source: csv, path: d.csv}\n", "d.csv": CLEAN},
        "train c.yaml",
        ["data.target", "label"],
    ),
    "empty file": ({"c.yaml": TABLE, "d.csv": ""}, "train c.yaml", ["d.csv", "empty"]),
    "header only": (
        {"c.yaml": TABLE, "d.csv": "x,colour,label\n"},
        "train c.yaml",
        ["d.csv", "no rows"],
    ),
    "text in a numeric column": (
        {"c.yaml": TABLE, "d.csv": CLEAN.replace("0.9,", "0.9x,", 1)},
        "train c.yaml",
        ["d.csv", "'x'", "0.9x"],
    ),
    "missing values": (
        {"c.yaml": TABLE, "d.csv": CLEAN.replace("0.9,", ",", 2)},
        "train c.yaml",
        ["d.csv", "missing values in 'x' (2 rows)"],
    ),
    "csv given as parquet": (
        {"c.yaml": TABLE.replace("source: csv", "source: parquet"), "d.csv": CLEAN},
        "train c.yaml",
        ["d.csv", "parquet"],
    ),
    "classes for several targets": (
        {
            "c.yaml": TABLE.replace("label}", "[x, label]}") + "task: classification\n",
            "d.csv": CLEAN,
        },
        "train c.yaml",
        ["task: classification", "one target"],
    ),
    # ---- command lines
    "override without =": (
        {"c.yaml": GOOD},
        "train c.yaml model.hidden",
        ["model.hidden", "KEY=VALUE"],
    ),
    "override of an unknown key": (
        {"c.yaml": GOOD},
        "train c.yaml modl.hidden=[4]",
        ["modl", "model"],
    ),
    "override with a bad value": (
        {"c.yaml": GOOD},
        "train c.yaml optim.lr=fast",
        ["optim.lr", "number"],
    ),
    "too many threads": (
        {"c.yaml": GOOD},
        "train c.yaml train.threads=99999999999",
        ["train.threads", "less than or equal to 1024"],
    ),
    "seed out of range": (
        {"c.yaml": GOOD},
        "train c.yaml seed=-1",
        ["override 'seed=-1'", "seed", "4294967295"],
    ),
    "name that is a path": (
        {"c.yaml": GOOD},
        "train c.yaml --name ../escape",
        ["--name", "'../escape'", "one folder name"],
    ),
    "unavailable device": (
        {"c.yaml": GOOD},
        "train c.yaml --device cuda:7",
        ["train.device", "cuda:7", "no CUDA GPU", "cpu"],
    ),
    "unknown device": (
        {"c.yaml": GOOD},
        "train c.yaml --device gpu",
        ["train.device", "gpu", "cuda"],
    ),
    "resume of a missing folder": (
        {"c.yaml": GOOD},
        "train c.yaml --resume {dir}/gone",
        ["gone", "no such run folder"],
    ),
    "sweep of an unknown key": (
        {"c.yaml": GOOD},
        "sweep c.yaml --grid model.hiden=[4],[8]",
        ["model.hiden", "did you mean 'hidden'"],
    ),
    "sweep with a bad value": (
        {"c.yaml": GOOD},
        "sweep c.yaml --hidden 4,-8",
        ["--hidden", "positive integers", "-8"],
    ),
    # ---- eval and predict (against the model trained by the fixture)
    "eval of a file that is not a model": (
        {"notes.txt": "hello\n"},
        "eval notes.txt",
        ["notes.txt", "not a model file"],
    ),
    "eval of a missing run": ({}, "eval {dir}/nowhere", ["nowhere", "no such run folder"]),
    "eval of an unknown split": ({}, "eval {model} --split dev", ["--split", "dev", "val"]),
    "eval data without the target": (
        {"e.csv": rows(x=[0.5], colour=["red"])},
        "eval {model} --data e.csv",
        ["e.csv", "'label'"],
    ),
    "predict input missing a feature column": (
        {"p.csv": rows(x=[0.5])},
        "predict {model} p.csv",
        ["p.csv", "'colour'"],
    ),
    "predict input with an unseen category": (
        {"p.csv": rows(x=[0.5, 0.1], colour=["red", "green"])},
        "predict {model} p.csv",
        ["p.csv", "'colour'", "green", "blue"],
    ),
    "predict into an existing file": (
        {"p.csv": rows(x=[0.5], colour=["red"]), "o.csv": "keep me\n"},
        "predict {model} p.csv -o o.csv",
        ["o.csv", "already exists"],
    ),
    "predict of a missing file": (
        {},
        "predict {model} nothing.csv",
        ["nothing.csv", "no such data file"],
    ),
    # ---- a config, a data file or a sweep folder where a run belongs
    "eval of a config": (
        {"c.yaml": GOOD},
        "eval c.yaml",
        ["c.yaml: a config file, not a trained model", "mlp train c.yaml"],
    ),
    "predict with a config": (
        {"c.yml": GOOD, "p.csv": rows(x=[0.5], colour=["red"])},
        "predict c.yml p.csv",
        ["c.yml: a config file", "mlp train c.yml"],
    ),
    "export of a config": (
        {"c.yaml": GOOD},
        "export c.yaml",
        ["c.yaml: a config file", "mlp train c.yaml"],
    ),
    "eval of a data file": (
        {"d.csv": CLEAN},
        "eval d.csv",
        ["d.csv: a data file, not a trained model", "--data"],
    ),
    "eval of a sweep folder": (
        {"s/sweep.yaml": GOOD, "s/results.csv": "trial\n"},
        "eval s",
        ["s: a sweep folder, not a run", "trials"],
    ),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A model trained on CLEAN: a numeric and a categorical feature, string labels."""
    folder = tmp_path_factory.mktemp("model")
    (folder / "d.csv").write_text(CLEAN)
    (folder / "c.yaml").write_text(TABLE)
    result = runner.invoke(
        app, ["train", str(folder / "c.yaml"), "--out", str(folder), "--name", "m"]
    )
    assert result.exit_code == 0, result.output
    return folder / "m"


def test_the_table_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_answered_cleanly(case, tmp_path, model, monkeypatch):
    files, command, expected = CASES[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text.replace("{dir}", str(tmp_path)))
    monkeypatch.chdir(tmp_path)  # relative names in the table are in the test's folder
    argv = command.format(dir=tmp_path, model=model).split()
    out = tmp_path / "runs"
    if argv[0] in ("train", "sweep"):
        argv += ["--out", str(out)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    message = result.stderr
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir()), "a run folder was left behind"
    assert not (tmp_path / "marker").exists()
    if case == "predict into an existing file":
        assert (tmp_path / "o.csv").read_text() == "keep me\n"


# ---------------------------------------------------------------- property


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False)


# Configs a user might plausibly write: known names and values in or near their ranges, mixed
# so that tasks meet unfitting losses, batch norm meets batches of one, and so on.
PLAUSIBLE = st.fixed_dictionaries(
    {},
    optional={
        "task": st.sampled_from(["auto", *TASKS]),
        "loss": st.sampled_from(list(LOSSES)),
        "data": st.fixed_dictionaries(
            {"source": st.sampled_from([*SYNTHETIC_SOURCES, "iris", "diabetes"])},
            optional={
                "noise": floats(0, 2),
                "val_split": floats(0, 0.6),
                "test_split": floats(0, 0.6),
                "standardize": st.booleans(),
            },
        ),
        "model": st.fixed_dictionaries(
            {},
            optional={
                "hidden": st.lists(st.integers(1, 16), max_size=3),
                "activation": st.sampled_from(list(ACTIVATIONS)),
                "bias": st.booleans(),
                "dropout": floats(0, 0.95),
                "norm": st.sampled_from([None, "batch", "layer"]),
                "init": st.sampled_from(list(INITS)),
            },
        ),
        "optim": st.fixed_dictionaries(
            {"name": st.sampled_from(list(OPTIMIZERS))},
            optional={
                "lr": floats(1e-6, 1e6),
                "weight_decay": floats(0, 1),
                "momentum": floats(0, 0.99),
                "nesterov": st.booleans(),
            },
        ),
        "schedule": st.fixed_dictionaries({"name": st.sampled_from(list(SCHEDULES))}),
        "train": st.fixed_dictionaries(
            {},
            optional={
                "batch_size": st.integers(1, 64),
                "grad_clip": st.none() | floats(0.01, 10),
                "restore_best": st.booleans(),
                "early_stopping": st.none()
                | st.fixed_dictionaries(
                    {"patience": st.integers(1, 3)},
                    optional={"monitor": st.sampled_from(["val_loss", "val_accuracy", "val_r2"])},
                ),
            },
        ),
    },
)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=shaped(Config) | PLAUSIBLE)
def test_any_config_trains_or_fails_cleanly(raw, tmp_path_factory):
    """A random config through the whole `mlp train`: a finished run folder or a clean error."""
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    # Keep each run short; the overrides apply on top of whatever the random config holds.
    small = ["train.epochs=2", "data.n_samples=120"]
    result = runner.invoke(app, ["train", str(path), *small, "--out", str(folder / "runs"), "-q"])
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output
    runs = list((folder / "runs").iterdir()) if (folder / "runs").exists() else []
    if result.exit_code == 0:
        assert len(runs) == 1 and (runs[0] / "model.safetensors").is_file()
    elif result.exit_code == 2:
        assert result.stderr.startswith("error: ") and not runs
    else:  # a NaN at a step, or a finite loss past train.diverge_factor
        message = " ".join(result.stderr.split())
        assert "training loss became" in message or "training loss diverged" in message

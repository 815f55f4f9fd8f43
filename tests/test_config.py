"""The config schema: defaults, unknown keys, types, YAML quirks, overrides and cross-key rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mlpcli.config.registry import ACTIVATIONS, LOSSES, SOURCES
from mlpcli.config.schema import Config, apply_overrides, build_config, load_config
from mlpcli.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def config_error(raw: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(raw, **kwargs)
    return str(info.value)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_empty_config_fills_the_documented_defaults():
    d = build_config({}).to_dict()
    assert d["task"] == "auto" and d["loss"] == "auto" and d["seed"] == 0
    assert d["data"]["source"] == "moons"
    assert d["data"]["n_samples"] == 1000
    assert d["data"]["val_split"] == 0.2 and d["data"]["test_split"] == 0.2
    assert d["data"]["standardize"] is True
    assert d["model"]["hidden"] == [64, 64]
    assert d["model"]["activation"] == "relu"
    assert d["model"]["norm"] is None and d["model"]["init"] == "default"
    assert d["optim"] == {
        "name": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "nesterov": False,
    }
    assert d["schedule"]["name"] == "none"
    assert d["train"]["epochs"] == 100 and d["train"]["batch_size"] == 64
    assert d["train"]["early_stopping"] is None and d["train"]["device"] == "auto"


def test_resolved_config_lists_every_declared_key():
    def keys(model: type[BaseModel]) -> set[str]:
        return set(model.model_fields)

    d = build_config({"train": {"early_stopping": {}}}).to_dict()
    assert set(d) == keys(Config)
    for section in ("data", "model", "optim", "schedule", "train"):
        assert set(d[section]) == keys(type(getattr(Config(), section))), section
    assert d["train"]["early_stopping"] == {"patience": 10, "monitor": "val_loss", "min_delta": 0.0}


def test_resolved_config_round_trips_through_yaml():
    config = build_config({"model": {"hidden": [8], "activation": {"name": "swish", "beta": 2.0}}})
    again = build_config(yaml.safe_load(config.to_yaml()))
    assert again == config


def test_name_defaults_to_the_file_stem(tmp_path):
    assert load_config(write(tmp_path / "my-exp.yaml", "")).name == "my-exp"
    assert load_config(write(tmp_path / "b.yaml", "name: given\n")).name == "given"


# ---------------------------------------------------------------- unknown keys and types


@pytest.mark.parametrize(
    "raw, key, nearest",
    [
        ({"modle": {}}, "modle", "model"),
        ({"model": {"hiden": [8]}}, "model.hiden", "hidden"),
        (
            {"train": {"early_stopping": {"patiense": 3}}},
            "train.early_stopping.patiense",
            "patience",
        ),
        ({"optim": {"momentun": 0.9}}, "optim.momentun", "momentum"),
    ],
)
def test_unknown_key_names_the_dotted_key_and_the_nearest_one(raw, key, nearest):
    message = config_error(raw)
    assert re.search(rf"^\s+{re.escape(key)}: unknown key", message, re.M), message
    assert f"did you mean '{nearest}'" in message


def test_unknown_key_lists_what_the_section_accepts():
    message = config_error({"schedule": {"zzz": 1}})
    assert "schedule.zzz" in message
    for name in ("step_size", "gamma", "min_lr", "factor", "patience"):
        assert name in message


def test_every_problem_is_reported_in_one_error():
    message = config_error(
        {
            "modle": {},
            "model": {"hidden": "wide"},
            "optim": {"lr": "fast"},
            "train": {"epochs": -1},
        },
        source="exp.yaml",
    )
    lines = message.splitlines()
    assert lines[0] == "exp.yaml: 4 problems"
    assert len(lines) == 5
    for key in ("modle", "model.hidden", "optim.lr", "train.epochs"):
        assert any(line.strip().startswith(f"{key}:") for line in lines[1:]), key


@pytest.mark.parametrize(
    "raw, key, value",
    [
        ({"optim": {"lr": "fast"}}, "optim.lr", "'fast'"),
        ({"train": {"epochs": "many"}}, "train.epochs", "'many'"),
        ({"model": {"hidden": [16, "x"]}}, "model.hidden[1]", "'x'"),
        ({"model": {"dropout": 1.5}}, "model.dropout", "1.5"),
        ({"data": {"source": ["moons"]}}, "data.source", "['moons']"),
        ({"seed": 1.5}, "seed", "1.5"),
    ],
)
def test_wrong_type_names_the_key_and_the_value(raw, key, value):
    message = config_error(raw)
    assert "1 problem" in message
    line = message.splitlines()[1].strip()
    assert line.startswith(f"{key}:"), message
    assert value in line


def test_wrong_target_type_is_one_problem_naming_the_key():
    message = config_error({"data": {"source": "csv", "path": "d.csv", "target": 5}})
    assert "1 problem" in message
    assert "data.target:" in message and "got 5" in message
    assert "data.target.str" not in message


@pytest.mark.parametrize("name", ["relu ", "Relu", ["relu"], {"a": 1}, 3])
def test_activation_name_of_any_type_is_refused_as_a_config_error(name):
    message = config_error({"model": {"activation": {"name": name}}})
    assert "model.activation" in message


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"data": {"source": "moonz"}}, "did you mean 'moons'"),
        ({"optim": {"name": "adamm"}}, "did you mean 'adam'"),
        ({"model": {"init": "xavier"}}, "xavier_uniform"),
        ({"loss": "cross_entropyy"}, "did you mean 'cross_entropy'"),
        ({"train": {"device": "gpu"}}, "cuda:N"),
        ({"train": {"early_stopping": {"monitor": "val_acc"}}}, "val_accuracy"),
        ({"schedule": {"name": "cosin"}}, "did you mean 'cosine'"),
    ],
)
def test_unknown_registry_names_suggest_the_valid_ones(raw, fragment):
    assert fragment in config_error(raw)


# ---------------------------------------------------------------- YAML files


def test_yaml_11_exponent_without_dot_is_read_as_a_float(tmp_path):
    path = write(tmp_path / "c.yaml", "optim:\n  lr: 1e-3\n  weight_decay: 5e-4\n")
    assert yaml.safe_load(path.read_text())["optim"]["lr"] == "1e-3"  # the quirk itself
    config = load_config(path)
    assert config.optim.lr == pytest.approx(1e-3) and isinstance(config.optim.lr, float)
    assert config.optim.weight_decay == pytest.approx(5e-4)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "name: x\nmodel:\n  hidden: [8, 8\n  bias: true\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml line 4, column \d+: invalid YAML"):
        load_config(path)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")


# ---------------------------------------------------------------- overrides


def test_overrides_take_yaml_values():
    raw = apply_overrides(
        {"model": {"hidden": [8]}},
        [
            "model.hidden=[128,64]",
            "optim.lr=3e-4",
            "model.activation={name: leaky_relu, negative_slope: 0.2}",
            "model.bias=false",
        ],
    )
    config = build_config(raw)
    assert config.model.hidden == [128, 64]
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.model.activation == {"name": "leaky_relu", "negative_slope": 0.2}
    assert config.model.bias is False


def test_override_creates_missing_and_null_sections_without_touching_the_input():
    raw = {"train": {"early_stopping": None}}
    result = apply_overrides(raw, ["schedule.name=step", "train.early_stopping.patience=3"])
    assert result["schedule"] == {"name": "step"}
    assert result["train"]["early_stopping"] == {"patience": 3}
    assert raw == {"train": {"early_stopping": None}}
    assert build_config(result).train.early_stopping.patience == 3


def test_later_override_wins_and_empty_value_is_null():
    raw = apply_overrides({}, ["seed=1", "seed=2", "name="])
    assert raw == {"seed": 2, "name": None}


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("model.hidden", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("model..hidden=3", "expected KEY=VALUE"),
        ("model.=3", "expected KEY=VALUE"),
        ("model hidden=3", "expected KEY=VALUE"),
        ("model.hidden=[8", "not valid YAML"),
        ("seed.x=1", "'seed' is a value, not a section"),
    ],
)
def test_bad_override_is_refused_naming_it(item, fragment):
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 0}, [item])
    assert f"override '{item}'" in str(info.value)
    assert fragment in str(info.value)


def test_load_config_applies_overrides_before_validating(tmp_path):
    path = write(tmp_path / "c.yaml", "model:\n  hidden: [8]\n  activation: [tanh]\n")
    config = load_config(path, ["model.hidden=[4,4]", "model.activation=[relu,tanh]"])
    assert config.model.hidden == [4, 4]
    with pytest.raises(ConfigError, match="model.activation"):
        load_config(path, ["model.hidden=[4,4]"])


# ---------------------------------------------------------------- paths


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    path = write(
        tmp_path / "exp" / "c.yaml",
        "data:\n  source: csv\n  path: data/train.csv\n  test_path: ../held/test.csv\n",
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.data.path == str((tmp_path / "exp" / "data" / "train.csv").resolve())
    assert config.data.test_path == str((tmp_path / "held" / "test.csv").resolve())
    assert config.data.val_path is None


def test_absolute_data_path_is_kept(tmp_path):
    target = tmp_path / "d.parquet"
    path = write(tmp_path / "sub" / "c.yaml", f"data:\n  source: parquet\n  path: {target}\n")
    assert load_config(path).data.path == str(target)


def test_build_config_resolves_against_base_dir_or_cwd(tmp_path, monkeypatch):
    raw = {"data": {"source": "npz", "path": "d.npz"}}
    assert build_config(raw, tmp_path).data.path == str(tmp_path.resolve() / "d.npz")
    monkeypatch.chdir(tmp_path)
    assert build_config(raw).data.path == str(tmp_path.resolve() / "d.npz")


@pytest.mark.parametrize("bad", ["a\x00b.csv", "~no-such-user-mlpcli/d.csv"])
def test_unusable_data_path_is_a_config_error(bad):
    message = config_error({"data": {"source": "csv", "path": bad}})
    assert "data.path" in message


# ---------------------------------------------------------------- rules across keys


def test_activation_list_needs_one_entry_per_hidden_layer():
    ok = build_config({"model": {"hidden": [4, 4], "activation": ["relu", "tanh"]}})
    assert [a["name"] for a in ok.model.activations()] == ["relu", "tanh"]
    message = config_error({"model": {"hidden": [4, 4, 4], "activation": ["relu", "tanh"]}})
    assert "model.activation" in message and "3" in message and "got 2" in message


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"name": "leaky_relu", "negative_slop": 0.2}, "did you mean 'negative_slope'"),
        ({"name": "leaky_relu", "slope": 0.2}, "accepted: negative_slope"),
        ({"name": "relu", "alpha": 1.0}, "relu takes no parameters"),
        ({"name": "swish", "beta": "big"}, "swish.beta must be a finite float"),
        ({"name": "leaky_relu", "negative_slope": float("nan")}, "must be a finite float"),
        ({"name": "elu", "alpha": float("inf")}, "must be a finite float"),
        ({"name": "swish", "learnable": 1}, "swish.learnable must be a bool"),
        ({"negative_slope": 0.2}, "'name' key"),
    ],
)
def test_bad_activation_parameters_are_refused(spec, fragment):
    message = config_error({"model": {"activation": spec}})
    assert "model.activation" in message and fragment in message


def test_every_activation_parameter_in_the_registry_is_accepted():
    for name, (_, defaults, *_facts) in ACTIVATIONS.items():
        config = build_config({"model": {"activation": {"name": name, **defaults}}})
        assert config.model.activations()[0] == {"name": name, **defaults}


@pytest.mark.parametrize(
    "task, loss",
    [
        (t, loss)
        for loss, (_, tasks) in LOSSES.items()
        for t in ("regression", "binary", "classification", "multilabel")
        if t not in tasks
    ],
)
def test_loss_that_does_not_fit_an_explicit_task_is_refused(task, loss):
    message = config_error({"task": task, "loss": loss})
    assert message.splitlines()[1].strip().startswith("loss:")
    assert f"'{loss}' does not fit a {task} task" in message


def test_loss_that_fits_its_task_is_accepted():
    for loss, (_, tasks) in LOSSES.items():
        for task in tasks:
            assert build_config({"task": task, "loss": loss}).loss == loss


@pytest.mark.parametrize("source", ["csv", "parquet", "npz"])
def test_file_source_needs_a_path(source):
    message = config_error({"data": {"source": source}})
    assert "data.path" in message and source in message


def test_path_keys_are_refused_for_a_generated_source():
    message = config_error({"data": {"source": "moons", "target": "y"}})
    assert "data.target" in message and "moons" in message


@pytest.mark.parametrize("val, test", [(0.5, 0.5), (0.7, 0.3), (0.9, 0.6)])
def test_splits_must_leave_rows_for_training(val, test):
    message = config_error({"data": {"val_split": val, "test_split": test}})
    assert "val_split + data.test_split" in message


def test_split_fraction_is_ignored_when_its_file_is_given():
    raw = {
        "data": {
            "source": "csv",
            "path": "a.csv",
            "test_path": "t.csv",
            "val_split": 0.5,
            "test_split": 0.5,
        }
    }
    assert build_config(raw).data.val_split == 0.5


def test_nesterov_needs_sgd_with_momentum():
    assert build_config({"optim": {"name": "sgd", "momentum": 0.9, "nesterov": True}})
    assert "optim.nesterov" in config_error({"optim": {"name": "sgd", "nesterov": True}})
    assert "optim.momentum" in config_error({"optim": {"name": "adam", "momentum": 0.9}})


# ---------------------------------------------------------------- shipped configs


def test_configs_are_shipped():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.name
    assert config.data.source in SOURCES
    # the resolved form is itself a valid config
    assert build_config(config.to_dict()) == config


# ---------------------------------------------------------------- property


def _submodel(annotation: object) -> type[BaseModel] | None:
    for a in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


JUNK = ["hiden", "x", "", "Model", "1"]
PARAMS = sorted({"name", *(k for entry in ACTIVATIONS.values() for k in entry.defaults)})
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([*SOURCES, *ACTIVATIONS, *LOSSES, "auto", "cuda:0", "1e-3", "batch"])
    | st.text(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(PARAMS + JUNK), inner, max_size=4)
    ),
    max_leaves=10,
)


ACTIVATION_SPECS = st.fixed_dictionaries(
    {"name": st.sampled_from(list(ACTIVATIONS)) | st.lists(SCALARS, max_size=2) | VALUES},
    optional={key: VALUES for key in PARAMS if key != "name"},
)
SPECIAL = {"activation": ACTIVATION_SPECS | st.lists(ACTIVATION_SPECS | VALUES, max_size=3)}


def shaped(model: type[BaseModel]) -> st.SearchStrategy[dict]:
    """Mappings that use the section's own keys (and some junk), nesting where the schema does."""
    fields = {}
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        fields[name] = shaped(sub) | VALUES if sub else SPECIAL.get(name, st.nothing()) | VALUES
    junk = st.dictionaries(st.sampled_from(JUNK + PARAMS), VALUES, max_size=1)
    return st.builds(lambda a, b: {**b, **a}, st.fixed_dictionaries({}, optional=fields), junk)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(raw=shaped(Config) | st.dictionaries(st.sampled_from(PARAMS + JUNK), VALUES, max_size=4))
def test_any_nested_mapping_gives_a_config_or_a_config_error(raw, tmp_path_factory):
    try:
        config = build_config(raw, tmp_path_factory.getbasetemp())
    except ConfigError as exc:
        assert str(exc).startswith("config: ")
    else:
        assert isinstance(config, Config)

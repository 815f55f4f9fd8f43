"""`mlp config schema`: the JSON Schema editors check configs with accepts what the loader
accepts and refuses the keys and types it refuses, and the committed file is the command's."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
import yaml
from conftest import assert_exit_2, mlp
from jsonschema import Draft202012Validator
from test_imports import exit_code_and_imports

from mlpcli import api
from mlpcli.config.json_schema import SCHEMA_COMMENT, SCHEMA_FILE, TITLE, config_schema
from mlpcli.config.registry import (
    ACTIVATIONS,
    BASELINES,
    FILE_SOURCES,
    INITS,
    LOSSES,
    OPTIMIZERS,
    PRUNERS,
    SCHEDULES,
    SEARCHES,
    SOURCES,
)
from mlpcli.config.schema import Config, TaskName, apply_overrides, build_config, monitors
from mlpcli.errors import ConfigError, RunError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
MOONS = ROOT / "configs" / "moons.yaml"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(validator: Draft202012Validator, raw: object) -> list[str]:
    """Where the schema refuses raw: dotted paths ('' for the top level)."""
    return sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(raw))


def loader_accepts(raw: dict) -> bool:
    try:
        build_config(raw)
    except ConfigError:
        return False
    return True


def test_the_schema_is_draft_2020_12_and_closed_like_the_loader():
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == TITLE
    # Every section refuses unknown keys, as the loader does, and lists every key it has.
    sections = {"Config": schema, **schema["$defs"]}
    assert set(sections) >= {
        "Config",
        "DataConfig",
        "ModelConfig",
        "OptimConfig",
        "ScheduleConfig",
        "TrainConfig",
        "EarlyStoppingConfig",
        "DiagnosticsConfig",
        "SweepConfig",
    }
    for name, section in sections.items():
        assert section["additionalProperties"] is False, name
    model = Config.model_fields["model"].annotation
    assert list(schema["properties"]) == list(Config.model_fields)
    assert list(sections["ModelConfig"]["properties"]) == list(model.model_fields)


def test_keys_carry_their_defaults_and_descriptions():
    defs = config_schema()["$defs"]
    source = defs["DataConfig"]["properties"]["source"]
    assert source["default"] == "moons"
    assert source["description"].startswith("Synthetic set, bundled real set")
    hidden = defs["ModelConfig"]["properties"]["hidden"]
    assert hidden["default"] == [64, 64]  # from the default factory
    assert "One width per hidden layer" in hidden["description"]
    assert defs["TrainConfig"]["properties"]["epochs"]["default"] == 100
    schema = config_schema()
    for name, section in {"Config": schema, **defs}.items():
        for key, prop in section["properties"].items():
            assert prop.get("description"), f"{name}.{key} has no docstring in schema.py"


def enum_of(prop: dict) -> list:
    return next(p["enum"] for p in [prop, *prop.get("anyOf", [])] if "enum" in p)


def test_allowed_names_are_the_registries():
    schema = config_schema()
    defs = schema["$defs"]
    assert enum_of(defs["DataConfig"]["properties"]["source"]) == list(SOURCES)
    assert enum_of(defs["ModelConfig"]["properties"]["init"]) == list(INITS)
    assert enum_of(defs["OptimConfig"]["properties"]["name"]) == list(OPTIMIZERS)
    assert enum_of(defs["ScheduleConfig"]["properties"]["name"]) == list(SCHEDULES)
    assert enum_of(defs["SweepConfig"]["properties"]["search"]) == list(SEARCHES)
    assert enum_of(defs["SweepConfig"]["properties"]["prune"]) == list(PRUNERS)
    assert enum_of(defs["EarlyStoppingConfig"]["properties"]["monitor"]) == monitors()
    assert enum_of(schema["properties"]["loss"]) == ["auto", *LOSSES]
    assert enum_of(schema["properties"]["task"]) == list(typing.get_args(TaskName))
    activation = defs["ModelConfig"]["properties"]["activation"]["anyOf"]
    assert enum_of(activation[0]) == list(ACTIVATIONS)
    mappings = [a["properties"] for a in activation if a.get("type") == "object"]
    assert [m["name"]["const"] for m in mappings] == list(ACTIVATIONS)
    for spec in mappings:  # each activation's parameters, and no others
        assert set(spec) - {"name"} == set(ACTIVATIONS[spec["name"]["const"]].defaults)
    baseline = defs["TrainConfig"]["properties"]["baseline"]["anyOf"]
    assert enum_of(baseline[2]) == list(BASELINES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_passes_the_schema_and_names_it_first(path, validator):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_COMMENT
    assert SCHEMA_COMMENT.endswith(f"$schema={SCHEMA_FILE}")
    assert schema_errors(validator, yaml.safe_load(text)) == []
    assert loader_accepts(yaml.safe_load(text))


def test_the_configs_in_the_docs_that_load_pass_the_schema(validator):
    blocks = [
        yaml.safe_load(block)
        for page in sorted((ROOT / "docs").glob("*.md"))
        for block in re.findall(r"```ya?ml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    ]
    configs = [raw for raw in blocks if isinstance(raw, dict) and loader_accepts(raw)]
    assert configs
    for raw in configs:
        assert schema_errors(validator, raw) == [], raw


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("modle={hidden: [8]}", ""),  # a misspelt section
        ("seeds=3", ""),
        ("model.hiden=[8]", "model"),  # a misspelt key in a section
        ("train.early_stopping={patience: 3, monitr: val_loss}", "train.early_stopping"),
        ("model.hidden=wide", "model.hidden"),  # a wrong type
        ("optim.lr=fast", "optim.lr"),
        ("train.epochs=ten", "train.epochs"),
    ],
)
def test_misspelt_keys_and_wrong_types_are_refused_by_the_schema_and_the_loader(
    tmp_path, validator, override, where
):
    raw = apply_overrides(yaml.safe_load(MOONS.read_text(encoding="utf-8")), [override])
    assert schema_errors(validator, raw) == [where]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    key = override.split("=")[0]
    named = {"modle": "modle", "train.early_stopping": "train.early_stopping.monitr"}
    assert_exit_2(mlp("config", "show", config), named.get(key.split(".")[0], key).split("=")[0])


# One key changed at a time in configs/moons.yaml, as `KEY=VALUE` overrides (values read as YAML,
# as the loader reads them): the schema and the loader accept and refuse the same ones.
ACCEPTED = [
    *(f"optim.name={name}" for name in OPTIMIZERS),
    *(f"schedule.name={name}" for name in SCHEDULES),
    *(f"model.init={name}" for name in INITS),
    *(f"model.activation={name}" for name in ACTIVATIONS),
    *(f"data.source={name}" for name in SOURCES if name not in FILE_SOURCES),
    *(f"loss={name}" for name in LOSSES),
    *(f"train.early_stopping.monitor={name}" for name in monitors()),
    "model.activation={name: leaky_relu, negative_slope: 0.2}",
    "model.activation=[relu, {name: elu, alpha: 1}]",
    "model.hidden=[]",
    "optim.lr=1e-3",  # YAML 1.1 reads it as the string '1e-3'; the loader takes it
    "optim.lr=auto",
    "optim.lr=2",
    "optim.weight_decay=1e-4",
    "data.noise='0.25'",  # a quoted number
    "data.standardize='on'",  # what YAML 1.2 (editors) reads yes / on / off as
    "train.plots='No'",
    "train.plots=0",
    "train.baseline=true",
    "train.baseline=linear,kernel",
    "train.baseline=[kernel]",
    "train.baseline=null",
    "train.diagnostics=false",
    "train.diagnostics=true",
    "train.diagnostics={every: 2}",
    "train.device=cuda:1",
    "train.grad_clip=null",
    "sweep.params=200",  # one budget for a list of them
    "sweep.params=[200, 800]",
    "seed=4294967295",
    "data.seed=null",
]
REFUSED = [
    "model.activation=rellu",
    "model.activation={name: leaky_relu, slope: 0.1}",
    "model.activation={name: leaky_relu, negative_slope: steep}",
    "model.activation={negative_slope: 0.1}",
    "model.activation=[relu, [tanh]]",
    "model.hidden=[8, wide]",
    "model.hidden=8",
    "model.hidden=[8.5]",
    "model.hidden=[0]",
    "model.dropout=1.5",
    "optim.name=adamm",
    "optim.lr=true",
    "optim.lr=-0.1",
    "schedule.name=cosin",
    "data.source=moon",
    "data.n_samples=1e3",
    "data.n_samples='100'",
    "data.standardize=maybe",
    "loss=mse2",
    "task=classify",
    "model.norm=group",
    "train.epochs=10.5",
    "train.baseline=linear,kernal",
    "train.baseline=[linear, svm]",
    "train.baseline=3",
    "train.diagnostics=sometimes",
    "train.diagnostics=0",  # a switch takes true or false only
    "train.diagnostics={every: 0}",
    "train.device=gpu",
    "train.early_stopping.monitor=val_acc",
    "train.engine=fast",
    "sweep.search=bayes",
    "sweep.params=many",
    "seed=true",
    "seed=-1",
    "name=[a, b]",
    # Rules of one key: a count, a shape, a non-empty unique name list, one folder name.
    "sweep.params=0",
    "sweep.params=[0]",
    "sweep.params=[]",
    "data.image_shape=[8]",
    "data.image_shape=[8, 8, 8]",
    "data.image_shape=[0, 8]",
    "data.target=''",
    "data.target=[]",
    "data.target=[a, '']",
    "data.features=[]",
    "data.features=['']",
    "data.features=[a, a]",
    "name=a/b",
    "name=.",
    "name=..",
    "name=''",
    "sweep.grid={'bad key': [1]}",
    "sweep.grid={sweep.seeds: [1, 2]}",
    "sweep.zip={'bad key': [1]}",
    "sweep.space={sweep.seeds: 'choice([1])'}",
    # Digits of other scripts, and a final newline (Python's $ matches before one).
    "data.noise='１'",
    "data.noise='١'",
    "train.device='cuda:١'",
    'data.standardize="yes\\n"',
    'train.device="cpu\\n"',
]


@pytest.mark.parametrize(
    ("override", "accepted"),
    [(o, True) for o in ACCEPTED] + [(o, False) for o in REFUSED],
)
def test_the_schema_and_the_loader_agree_one_key_at_a_time(validator, override, accepted):
    raw = apply_overrides(yaml.safe_load(MOONS.read_text(encoding="utf-8")), [override])
    assert loader_accepts(raw) is accepted
    errors = schema_errors(validator, raw)
    assert (errors == []) is accepted, errors
    if not accepted:  # and the schema names the key at fault (or an item of it)
        key = override.split("=")[0]
        assert any(key.startswith(e) or e.startswith(f"{key}.") for e in errors), (errors, key)


def test_the_committed_schema_is_the_commands_output():
    result = mlp("config", "schema")
    assert result.exit_code == 0, result.output
    committed = (ROOT / "configs" / SCHEMA_FILE).read_text(encoding="utf-8")
    assert result.stdout == committed, "run: mlp config schema -o configs/mlp-config.schema.json"
    assert json.loads(committed) == config_schema() == api.config_schema()


def test_output_rewrites_a_schema_and_refuses_any_other_file(tmp_path):
    schema = tmp_path / SCHEMA_FILE
    result = mlp("config", "schema", "-o", schema)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(schema.read_text(encoding="utf-8")) == config_schema()
    # An older schema (same title) is regenerated; it is the point of the command.
    schema.write_text(json.dumps({"title": TITLE, "properties": {}}), encoding="utf-8")
    assert mlp("config", "schema", "-o", schema).exit_code == 0
    assert json.loads(schema.read_text(encoding="utf-8")) == config_schema()
    # Anything else is left as it is.
    other = tmp_path / "settings.json"
    other.write_text('{"title": "something else"}', encoding="utf-8")
    assert_exit_2(mlp("config", "schema", "-o", other), str(other), "not a config schema")
    assert other.read_text(encoding="utf-8") == '{"title": "something else"}'
    notes = tmp_path / "notes.txt"
    notes.write_text("not JSON", encoding="utf-8")
    assert_exit_2(mlp("config", "schema", "-o", notes), str(notes))
    assert_exit_2(mlp("config", "schema", "-o", tmp_path), str(tmp_path))
    link = tmp_path / "link.json"
    link.symlink_to(schema)  # written through, a link would change another file
    assert_exit_2(mlp("config", "schema", "-o", link), "-o", "a symbolic link")
    with pytest.raises(RunError, match="settings.json"):
        api.config_schema(other)
    assert api.config_schema(tmp_path / "new.json") == config_schema()


def test_output_over_a_deeply_nested_json_file_is_refused_not_a_traceback(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    assert_exit_2(mlp("config", "schema", "-o", deep), "not a config schema")
    assert deep.read_text(encoding="utf-8").startswith("[[[")


def test_the_command_imports_nothing_heavy(tmp_path):
    code, heavy = exit_code_and_imports(["config", "schema"])
    assert (code, heavy) == (0, set())
    code, heavy = exit_code_and_imports(["config", "schema", "-o", str(tmp_path / SCHEMA_FILE)])
    assert (code, heavy) == (0, set())


# Keywords that mean the same in draft 7, which the VS Code YAML extension's validator
# implements, and in 2020-12 (items as one schema for every item; $defs reached by $ref).
PORTABLE = {
    "$schema", "$defs", "$ref", "title", "description", "default", "type", "properties",
    "additionalProperties", "required", "items", "anyOf", "enum", "const", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "minItems", "maxItems",
    "uniqueItems", "propertyNames",
}  # fmt: skip


def keywords(node: object, inside_properties: bool = False) -> set[str]:
    if isinstance(node, list):
        return {k for item in node for k in keywords(item)}
    if not isinstance(node, dict):
        return set()
    if inside_properties:  # key names, not keywords
        return {k for value in node.values() for k in keywords(value)}
    found = set(node)
    for key, value in node.items():
        if key in ("default", "enum", "const"):
            continue
        found |= keywords(value, inside_properties=key in ("properties", "$defs"))
    return found


def test_the_schema_uses_keywords_editors_implement():
    assert keywords(config_schema()) <= PORTABLE

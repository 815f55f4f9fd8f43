"""The search space: each kind parsed, each refusal naming its key, the space checked against the
config schema before anything runs, and trial settings written as `mlp train` overrides that read
back equal (floats bitwise)."""

from __future__ import annotations

import math
import shlex
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpcli.config.registry import SPACE_KINDS
from mlpcli.config.schema import apply_overrides, build_config
from mlpcli.errors import ConfigError
from mlpcli.sweeps.search.space import (
    Dim,
    check_space,
    override_value,
    override_words,
    parse_space,
    parse_spec,
)

# ---------------------------------------------------------------- parsing each kind


def test_log_reads_yaml_string_exponents_as_floats() -> None:
    # PyYAML reads 1e-4 (no dot) as the string '1e-4'; the bound must still be the float.
    dim = parse_spec("optim.lr", "log(1e-4, 1e-1)")
    assert dim == Dim("optim.lr", "log", 1e-4, 1e-1, log=True)
    assert type(dim.low) is float and type(dim.high) is float


def test_uniform_makes_integer_bounds_floats() -> None:
    dim = parse_spec("model.dropout", "uniform(0, 0.5)")
    assert dim == Dim("model.dropout", "uniform", 0.0, 0.5)
    assert type(dim.low) is float


@pytest.mark.parametrize(
    ("text", "low", "high", "log"),
    [
        ("int(16, 256)", 16, 256, False),
        ("int(16, 256, log)", 16, 256, True),
        ("int(1, 2)", 1, 2, False),
    ],
)
def test_int_ranges(text: str, low: int, high: int, log: bool) -> None:
    dim = parse_spec("train.batch_size", text)
    assert (dim.kind, dim.low, dim.high, dim.log) == ("int", low, high, log)
    assert type(dim.low) is int and type(dim.high) is int


def test_choice_keeps_yaml_values_in_order() -> None:
    dim = parse_spec(
        "model.hidden", "choice([16], [64], [64, 64], {name: swish, beta: 2}, null, true, relu)"
    )
    assert dim.kind == "choice"
    assert dim.choices == ([16], [64], [64, 64], {"name": "swish", "beta": 2}, None, True, "relu")


def test_every_registered_kind_parses() -> None:
    examples = {
        "uniform": "uniform(0, 1)",
        "log": "log(1, 10)",
        "int": "int(1, 10)",
        "choice": "choice(a)",
    }
    assert set(examples) == set(SPACE_KINDS)
    for kind, text in examples.items():
        assert parse_spec("k", text).kind == kind


def test_parse_space_keeps_order() -> None:
    space = {
        "optim.lr": "log(1e-4, 1e-1)",
        "model.dropout": "uniform(0, 0.5)",
        "model.hidden": "choice([8])",
    }
    dims = parse_space(space)
    assert list(dims) == list(space)
    assert [d.key for d in dims.values()] == list(space)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("normal(0, 1)", ["unknown kind 'normal'", "uniform(LOW, HIGH)", "choice(V1, V2, ...)"]),
        ("lg(1e-4, 1)", ["did you mean 'log'"]),
        ("uniform(1)", ["takes 2 values, got 1", "uniform(LOW, HIGH)"]),
        ("log(1, 2, 3)", ["takes 2 values, got 3"]),
        ("int(1, 2, log, 4)", ["takes 2 or 3 values, got 4"]),
        ("uniform(0.5, 0.5)", ["not below HIGH", "LOW < HIGH"]),
        ("int(8, 2)", ["not below HIGH"]),
        ("log(0, 1)", ["a log range must be above 0"]),
        ("log(-1e-3, 1)", ["a log range must be above 0"]),
        ("int(0, 8, log)", ["a log range must be above 0"]),
        ("int(1.5, 8)", ["int bounds are integers", "1.5"]),
        ("int(1, 8, linear)", ["third value may only be log", "'linear'"]),
        ("uniform(true, 2)", ["bounds are numbers", "True"]),
        ("uniform(a, 2)", ["'a' is not a number"]),
        ("uniform([1], 2)", ["bounds are numbers"]),
        ("uniform(.inf, 2)", ["finite"]),
        ("choice()", ["at least one value", "choice(V1, V2, ...)"]),
        ("choice(relu, tanh, relu)", ["relu twice"]),
        ("choice([64, 64], [64,64])", ["[64,64] twice"]),
        ("0.1", ["not a spec", "choice(0.1)"]),
        ("[1, 2]", ["not a spec", "choice("]),
        ("uniform(0, 1", ["not a spec"]),
        ("choice([1, 2)", ["not a comma-separated list of YAML values"]),
    ],
)
def test_refused_specs_name_the_key(text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec("model.dropout", text)
    message = str(caught.value)
    assert message.startswith("sweep.space model.dropout: "), message
    for needle in needles:
        assert needle in message, message


def test_where_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--space optim\.lr: "):
        parse_spec("optim.lr", "log(0, 1)", where="--space")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("seed", "seed"),
        ("name", "named by the sweep"),
        ("train.baseline", "one point per baseline"),
        ("sweep.trials", "sweep's own settings"),
        ("sweep", "sweep's own settings"),
    ],
)
def test_keys_the_search_sets_are_refused(key: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_space({"optim.lr": "log(1e-4, 1e-1)", key: "choice(1, 2)"})
    message = str(caught.value)
    assert message.startswith(f"sweep.space {key}: "), message
    assert why in message


@pytest.mark.parametrize("spec", [0.1, [1, 2], None, {"a": 1}])
def test_a_spec_that_yaml_read_as_a_value_is_refused(spec: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_space({"optim.lr": spec})
    message = str(caught.value)
    assert message.startswith("sweep.space optim.lr: "), message
    assert "log(LOW, HIGH)" in message and "choice(" in message


def test_a_key_that_is_not_dotted_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a dotted config key"):
        parse_space({"optim lr": "log(1e-4, 1e-1)"})


# ---------------------------------------------------------------- Optuna's view


def test_distributions_types_and_bounds() -> None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dims = parse_space(
        {
            "optim.lr": "log(1e-4, 1e-1)",
            "model.dropout": "uniform(0, 0.5)",
            "train.batch_size": "int(16, 256, log)",
            "train.epochs": "int(2, 5)",
            "model.hidden": "choice([16], [64, 64])",
        }
    )
    lr = dims["optim.lr"].distribution()
    assert isinstance(lr, FloatDistribution) and (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
    dropout = dims["model.dropout"].distribution()
    assert isinstance(dropout, FloatDistribution)
    assert (dropout.low, dropout.high, dropout.log) == (0.0, 0.5, False)
    batch = dims["train.batch_size"].distribution()
    assert isinstance(batch, IntDistribution) and (batch.low, batch.high, batch.log) == (
        16,
        256,
        True,
    )
    epochs = dims["train.epochs"].distribution()
    assert isinstance(epochs, IntDistribution) and (epochs.low, epochs.high, epochs.log) == (
        2,
        5,
        False,
    )
    hidden = dims["model.hidden"].distribution()
    assert isinstance(hidden, CategoricalDistribution)
    assert hidden.choices == ("[16]", "[64,64]")


def test_choice_labels_map_back_to_the_yaml_values() -> None:
    values = [[16], [64, 64], {"name": "swish", "beta": 2.0}, "relu", None, 1, 1.0, "1", True]
    dim = parse_spec(
        "model.activation",
        "choice([16], [64, 64], {name: swish, beta: 2.0}, relu, null, 1, 1.0, '1', true)",
    )
    labels = dim.labels()
    assert len(set(labels)) == len(labels) == len(values)
    for label, value in zip(labels, values, strict=True):
        back = dim.value(label)
        assert back == value and type(back) is type(value)
    # Optuna keeps the labels as they are, so they survive its storage.
    assert dim.distribution().choices == tuple(labels)
    # The value handed out is a copy: a trial changing it leaves the space as it was.
    dim.value(labels[1]).append(8)
    assert dim.value(labels[1]) == [64, 64]


def test_value_maps_ranges_to_their_types() -> None:
    assert (
        parse_spec("k", "int(1, 8)").value(3) == 3
        and type(parse_spec("k", "int(1, 8)").value(3)) is int
    )
    assert type(parse_spec("k", "uniform(0, 1)").value(1)) is float
    assert parse_spec("k", "log(1e-4, 1)").value(0.001) == 0.001


def test_value_of_an_unknown_label_names_the_key() -> None:
    with pytest.raises(ConfigError, match="sweep.space model.hidden: '\\[32\\]' is not one of"):
        parse_spec("model.hidden", "choice([16], [64])").value("[32]")


def test_parsing_imports_neither_optuna_nor_torch() -> None:
    code = (
        "import sys\n"
        "from mlpcli.config.schema import build_config\n"
        "from mlpcli.sweeps.search.space import parse_space, check_space, override_words\n"
        "dims = parse_space({'optim.lr': 'log(1e-4, 1e-1)', 'model.hidden': 'choice([8], [8, 8])'})\n"
        "check_space(build_config({}), dims)\n"
        "override_words({'optim.lr': 1e-05})\n"
        "print(sorted(m for m in ('optuna', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- checked against the schema


def test_check_space_accepts_a_good_space() -> None:
    dims = parse_space(
        {
            "optim.lr": "log(1e-4, 1e-1)",
            "model.hidden": "choice([16], [64], [64, 64], [128, 128])",
            "model.dropout": "uniform(0, 0.5)",
            "train.batch_size": "int(16, 256, log)",
            "model.activation": "choice(relu, tanh, {name: swish, beta: 2.0})",
        }
    )
    check_space(build_config({}), dims)


def _refusal(space: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        check_space(build_config({}), parse_space(space))
    return str(caught.value)


def test_check_space_refuses_an_unknown_key_with_the_schemas_suggestion() -> None:
    message = _refusal({"model.dropuot": "uniform(0, 0.5)"})
    assert message.startswith("sweep.space model.dropuot: not a config key")
    assert "did you mean 'dropout'" in message
    assert message.count("unknown key") == 1  # once, not once per end of the range


def test_check_space_refuses_a_key_under_a_value() -> None:
    message = _refusal({"optim.lr.start": "log(1e-4, 1e-1)"})
    assert message.startswith("sweep.space optim.lr.start: ")
    assert "'optim.lr' is a value, not a section" in message


def test_check_space_refuses_a_dropout_range_past_1() -> None:
    message = _refusal({"model.dropout": "uniform(0, 1.5)"})
    assert message.startswith("sweep.space model.dropout: uniform(0, 1.5)")
    assert "1.5: model.dropout:" in message and "less than 1" in message
    assert "0.0:" not in message  # the end the schema accepts is not blamed


def test_check_space_refuses_a_bad_activation_naming_the_valid_ones() -> None:
    message = _refusal({"model.activation": "choice(relu, relu6)"})
    assert message.startswith("sweep.space model.activation: ")
    assert "'relu6'" in message and "did you mean 'relu'" in message and "tanh" in message


def test_check_space_says_an_integer_key_needs_int() -> None:
    message = _refusal({"train.batch_size": "uniform(16, 256)"})
    assert "sweep.space train.batch_size" in message and "int(LOW, HIGH)" in message


def test_check_space_lists_every_bad_key_at_once() -> None:
    message = _refusal(
        {
            "model.dropout": "uniform(0, 1.5)",
            "optim.lr": "log(1e-4, 1e-1)",
            "model.activation": "choice(relu6)",
            "train.epochs": "int(0, 5)",
        }
    )
    heads = [line for line in message.splitlines() if line.startswith("sweep.space")]
    assert [h.split(":")[0] for h in heads] == [
        "sweep.space model.dropout",
        "sweep.space model.activation",
        "sweep.space train.epochs",
    ]


def test_check_space_checks_against_the_base_config() -> None:
    # momentum applies to sgd; the base config's other keys stay as they are in each probe.
    config = build_config({"optim": {"name": "sgd"}, "model": {"hidden": [8]}})
    check_space(config, parse_space({"optim.momentum": "uniform(0, 0.9)"}))


# ---------------------------------------------------------------- overrides for `mlp train`


def _read_back(settings: dict[str, Any]) -> dict[str, Any]:
    """What `mlp train CONFIG <words>` sets: the shell's split, then the override parser."""
    words = shlex.split(override_words(settings))
    assert [w.partition("=")[0] for w in words] == list(settings)
    raw = apply_overrides({}, words)
    return {key: _get(raw, key) for key in settings}


def _get(raw: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        raw = raw[part]
    return raw


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types, floats bitwise (so -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


TRICKY = [
    1e-05,
    0.1,
    1 / 3,
    1e300,
    5e-324,
    2.0,
    -0.0,
    -1.5e-07,
    123456789.0,
    1e16,
    math.inf,
    0,
    -7,
    10**20,
    True,
    False,
    None,
    "relu",
    "1",
    "1.5",
    "1e-4",
    "true",
    "null",
    "~",
    "",
    "a b",
    " lead",
    "x: y",
    "a,b",
    "#hash",
    "it's",
    'say "hi"',
    "tab\there",
    "é",
    "[1]",
    "-",
    "2001-01-01",
    "0x10",
    "yes",
    [64, 64],
    [],
    [1e-05, "a b", None, [True]],
    {"name": "swish", "beta": 2.0},
    {"name": "leaky_relu", "negative_slope": 1e-4},
    {},
    {"a b": {"c": [1, "2"]}},
]


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_override_reads_back_equal(value: Any) -> None:
    text = override_value(value)
    assert " " not in text, text
    back = _read_back({"model.activation": value})["model.activation"]
    assert _same(back, value), (text, back)


def test_override_forms() -> None:
    assert override_value(1e-05) == "1.0e-05"
    assert override_value(1e300) == "1.0e+300"
    assert override_value([64, 64]) == "[64,64]"
    assert override_value({"name": "swish", "beta": 2.0}) == '{"name":swish,"beta":2.0}'
    assert override_value(None) == "null" and override_value(True) == "true"
    assert override_value("1") == '"1"'
    assert override_words({"optim.lr": 0.01, "model.hidden": [64, 64]}) == (
        "optim.lr=0.01 'model.hidden=[64,64]'"
    )


def test_overrides_build_the_same_config() -> None:
    settings = {
        "optim.lr": 3.3e-05,
        "model.hidden": [16, 8],
        "model.activation": {"name": "swish", "beta": 2.0},
    }
    raw: dict[str, Any] = {}
    for key, value in settings.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    assert build_config(apply_overrides({}, shlex.split(override_words(settings)))) == build_config(
        raw
    )


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_values, max_size=4))
def test_override_words_round_trip(values: list[Any]) -> None:
    settings_ = {f"section{i}.key": value for i, value in enumerate(values)}
    back = _read_back(settings_)
    for key, value in settings_.items():
        assert _same(back[key], value), (value, override_words(settings_), back[key])

"""A search space: `sweep.space` keys and their specs, parsed and checked before anything runs.

    optim.lr: log(1e-4, 1e-1)            a float, sampled on a log scale
    model.dropout: uniform(0, 0.5)       a float, sampled uniformly
    train.batch_size: int(16, 256, log)  an integer, uniformly or on a log scale
    model.hidden: choice([16], [64, 64]) one of the listed YAML values

Pure: no torch, no Optuna at import (a Dim makes its Optuna distribution on demand).
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from ...config.bounded_yaml import safe_load
from ...config.registry import SPACE_KINDS, shown, unknown
from ...config.schema import DOTTED_KEY, Config
from ...errors import ConfigError
from ..grid import format_value, parse_values
from ..plan import point_config, sweep_base

# Keys a search may not vary, and why: the search sets them itself, or they are one per sweep.
NOT_SEARCHED = {
    "seed": "each trial's seed is set and recorded by the search; set seed or --seed for the sweep",
    "name": "each trial is named by the sweep (trial-000, ...)",
    "train.baseline": "a sweep trains one point per baseline for all its trials; set "
    "train.baseline in the base config, or pass --baseline",
}

_SPEC = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.DOTALL)


@dataclass(frozen=True)
class Dim:
    """One searched key. `kind` is a SPACE_KINDS name: uniform, log, int, choice."""

    key: str
    kind: str
    low: float | int | None = None  # ranges: the bounds, both included
    high: float | int | None = None
    log: bool = False  # sampled on a log scale: log, int(..., log)
    choices: tuple[Any, ...] = ()  # choice: the YAML values, in the order given
    spec: str = field(default="", compare=False)  # as the user wrote it, for messages

    def labels(self) -> list[str]:
        """A choice's values as the text Optuna stores (it holds only scalars, not [64, 64])."""
        return [format_value(v) for v in self.choices]

    def distribution(self) -> Any:
        """Optuna's distribution for this key (imports optuna)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "choice":
            return CategoricalDistribution(self.labels())
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return FloatDistribution(float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]

    def value(self, param: Any) -> Any:
        """The config value for Optuna's parameter value (a choice's label maps back)."""
        if self.kind == "choice":
            labels = self.labels()
            if param not in labels:
                raise ConfigError(
                    f"sweep.space {self.key}: {shown(param)} is not one of its choices; "
                    f"accepted: {', '.join(labels)}"
                )
            return copy.deepcopy(self.choices[labels.index(param)])
        if self.kind == "int":
            return int(param)
        return float(param)

    def ends(self) -> list[Any]:
        """The values that bound what a trial may get: a range's ends, or every choice."""
        if self.kind == "choice":
            return [copy.deepcopy(v) for v in self.choices]
        return [self.low, self.high]


def kinds_text() -> str:
    """'uniform(LOW, HIGH), log(LOW, HIGH), ...' for messages."""
    return ", ".join(kind.form for kind in SPACE_KINDS.values())


def parse_spec(key: str, text: str, where: str = "sweep.space") -> Dim:
    """'log(1e-4, 1e-1)' -> Dim(key, 'log', 0.0001, 0.1, log=True); a ConfigError names the key."""
    at = f"{where} {key}"
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ConfigError(
            f"{at}: {shown(text)} is not a spec NAME(ARGS); accepted: {kinds_text()} "
            f"(for fixed values such as 0.1 or [1, 2], write choice(0.1) or choice([1, 2]))"
        )
    name, body = match.groups()
    if name not in SPACE_KINDS:
        raise ConfigError(f"{at}: {unknown('kind', name, SPACE_KINDS)}; forms: {kinds_text()}")
    args = parse_values(body, where=at) if body.strip() else []
    form = SPACE_KINDS[name].form
    if name == "choice":
        return _choice(key, args, at, text)
    if name == "int":
        return _int_range(key, args, at, form, text)
    if len(args) != 2:
        raise ConfigError(f"{at}: {name} takes 2 values, got {len(args)}; accepted: {form}")
    low, high = (_number(v, at, form) for v in args)
    _check_order(low, high, at, form)
    if name == "log" and low <= 0:
        raise ConfigError(f"{at}: a log range must be above 0, got LOW {low!r}; accepted: {form}")
    return Dim(key, name, low, high, log=name == "log", spec=text)


def _choice(key: str, args: list[Any], at: str, text: str) -> Dim:
    if not args:
        raise ConfigError(f"{at}: choice needs at least one value; accepted: choice(V1, V2, ...)")
    labels = [format_value(v) for v in args]
    twice = next((label for i, label in enumerate(labels) if label in labels[:i]), None)
    if twice is not None:
        raise ConfigError(f"{at}: choice lists {twice} twice; give each value once")
    return Dim(key, "choice", choices=tuple(args), spec=text)


def _int_range(key: str, args: list[Any], at: str, form: str, text: str) -> Dim:
    if len(args) not in (2, 3):
        raise ConfigError(f"{at}: int takes 2 or 3 values, got {len(args)}; accepted: {form}")
    if len(args) == 3 and args[2] != "log":
        raise ConfigError(
            f"{at}: int's third value may only be log, got {shown(args[2])}; accepted: {form}"
        )
    bounds = []
    for value in args[:2]:
        number = _number(value, at, form)
        if not number.is_integer():
            raise ConfigError(
                f"{at}: int bounds are integers, got {shown(value)}; accepted: {form}"
            )
        bounds.append(int(number))
    low, high = bounds
    _check_order(low, high, at, form)
    log = len(args) == 3
    if log and low < 1:
        raise ConfigError(f"{at}: a log range must be above 0, got LOW {low}; accepted: {form}")
    return Dim(key, "int", low, high, log=log, spec=text)


def _number(value: Any, at: str, form: str) -> float:
    """A bound as a float. YAML reads 1e-4 (no dot, no exponent sign) as a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{at}: bounds are numbers, got {shown(value)}; accepted: {form}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{at}: {shown(value)} is not a number; accepted: {form}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{at}: bounds are finite numbers, got {shown(value)}")
    return number


def _check_order(low: float, high: float, at: str, form: str) -> None:
    if low >= high:
        raise ConfigError(
            f"{at}: LOW {low!r} is not below HIGH {high!r}; accepted: {form} with LOW < HIGH"
        )


def parse_space(space: dict[str, Any], where: str = "sweep.space") -> dict[str, Dim]:
    """Each searched key's Dim, in the order given; keys the search sets itself are refused."""
    dims: dict[str, Dim] = {}
    for key, spec in space.items():
        at = f"{where} {shown(key)}" if not isinstance(key, str) else f"{where} {key}"
        if not isinstance(key, str) or not re.fullmatch(DOTTED_KEY, key):
            raise ConfigError(f"{at}: not a dotted config key such as optim.lr")
        if key == "sweep" or key.startswith("sweep."):
            raise ConfigError(f"{at}: the sweep's own settings cannot be searched")
        if key in NOT_SEARCHED:
            raise ConfigError(f"{at}: cannot be searched: {NOT_SEARCHED[key]}")
        if not isinstance(spec, str):
            raise ConfigError(
                f"{at}: expected a spec such as log(1e-4, 1e-1), got {shown(spec)}; "
                f"accepted: {kinds_text()} (fixed values: choice(V1, V2, ...))"
            )
        dims[key] = parse_spec(key, spec, where)
    return dims


def check_space(config: Config, dims: dict[str, Dim], where: str = "sweep.space") -> None:
    """Refuse, before anything runs, every key whose choices or range ends the config refuses.

    Each choice and each end of a range is built into a config (the other keys at the base
    config's values), so a key gets the schema's own message; all problems are raised at once.
    """
    base = sweep_base(config)
    problems: list[str] = []
    for key, dim in dims.items():
        failures: dict[str, list[str]] = {}  # a problem, once, with the values that have it
        for value in dim.ends():
            shown_value = format_value(value)
            try:
                point_config(base, {key: value}, config.seed, "trial-000", f"{key}={shown_value}")
            except ConfigError as exc:
                header, _, body = str(exc).partition("\n")
                failures.setdefault(body.strip() or header, []).append(shown_value)
        lines = [
            f"  {text}" if dim.kind == "choice" or len(values) > 1 else f"  {values[0]}: {text}"
            for text, values in failures.items()
        ]
        if dim.kind != "choice" and any("valid integer" in text for text in failures):
            lines.append("  (an integer key takes int(LOW, HIGH) or choice(...))")
        if not lines:
            missing = _missing_field(key)
            if missing:
                lines.append(f"  {missing}")
        if lines:
            refused = "has values" if dim.kind == "choice" else "reaches values"
            head = f"{where} {key}: {dim.spec or dim.kind} {refused} the config refuses"
            if any("unknown key" in line or "not a section" in line for line in lines):
                head = f"{where} {key}: not a config key"
            problems.append("\n".join([head, *lines]))
    if problems:
        raise ConfigError("\n".join(problems))


def _missing_field(key: str) -> str:
    """'' when the schema has the dotted key (or a free-form value holds it), else why not."""
    model: type[BaseModel] | None = Config
    for i, part in enumerate(key.split(".")):
        if model is None:
            return ""  # inside a free-form value (an activation's mapping): the schema checks it
        fields = model.model_fields
        if part not in fields:
            path = ".".join(key.split(".")[:i]) or "the config"
            return f"{path}: {unknown('key', part, fields)}"
        model = _section(fields[part].annotation)
    return ""


def _section(annotation: Any) -> type[BaseModel] | None:
    """The Section model a field holds (through `X | None`), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def override_value(value: Any) -> str:
    """A value as the text `mlp train CONFIG KEY=VALUE` reads back equal (floats bitwise), with
    no space inside: 1.0e-05, [64,64], {"name":"swish","beta":2.0}, true, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # A flow mapping's plain key runs on past ':' (`{a:1}` is the key 'a:1'); a quoted one ends.
        items = (
            f"{_quoted(k) if isinstance(k, str) else override_value(k) + ' '}:{override_value(v)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    raise TypeError(f"{shown(value)} is not a YAML value")


def _float_text(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)  # the shortest text that reads back to the same float
    # YAML 1.1 (PyYAML) reads a float only with a dot: 1e-05 would be the string '1e-05'.
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + e + exponent


def _string_text(value: str) -> str:
    """Plain where YAML reads it back as this string in and out of brackets, else double-quoted
    with spaces escaped, so the word holds none."""
    if value and not any(c.isspace() for c in value):
        try:
            plain = safe_load(value) == value and safe_load(f"[{value}]") == [value]
        except yaml.YAMLError:
            plain = False
        if plain:
            return value
    return _quoted(value)


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar of printable ASCII: every other character escaped, spaces
    included. Not JSON's escapes: PyYAML reads a surrogate pair as two characters."""
    return '"' + "".join(_escaped(c) for c in value) + '"'


def _escaped(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if "!" <= char <= "~":
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def override_words(settings: dict[str, Any]) -> str:
    """The settings as shell words `KEY=VALUE ...` that `mlp train CONFIG` takes as they are."""
    return " ".join(shlex.quote(f"{key}={override_value(v)}") for key, v in settings.items())

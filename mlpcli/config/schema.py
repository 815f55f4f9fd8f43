"""The config schema, YAML loading, KEY=VALUE overrides and friendly validation errors.

Every key is declared here with its default; unknown keys are refused with the nearest valid name,
and every problem in a file is reported at once. Imports nothing heavy so that `mlp config show`
stays instant.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import core_schema

from ..errors import ConfigError
from .bounded_yaml import MAX_DEPTH, YamlLimitError, safe_load
from .registry import (
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
    TASKS,
    all_metric_names,
    shown,
    unknown,
)

# A run or sweep name is one folder name, with room left in the file system's 255 bytes for what
# is appended to it: "-sweep" and the date and time, "-YYYYmmdd-HHMMSS[-N]".
NAME_MAX = 255
STAMP_BYTES = len("-20250101-120000-9999")
MAX_NAME_BYTES = NAME_MAX - len("-sweep") - STAMP_BYTES
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and scikit-learn accept 0..2**32-1; torch more
DOTTED_KEY = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
DEVICES = r"auto|cpu|mps|cuda(:[0-9]+)?"  # ASCII digits: Python's \d takes any script's
# A sweep past this many trials is almost surely a typo (a value list pasted twice, a key too
# many); every trial's config is built and checked before the first runs, so the bound also
# keeps that quick.
MAX_TRIALS = 10_000
# Rows a stream holds for shuffling when data.shuffle_buffer is not set: about 8 MB of float32
# per 8 features, enough to mix many row groups' rows at a batch size of a few thousand.
STREAM_BUFFER = 262_144
TaskName = Literal["auto", "regression", "binary", "classification", "multilabel"]


class OneOf:
    """A field check against a registry, naming the nearest valid name and all of them; in the
    JSON Schema, the registry's names as the field's enum (what editors complete)."""

    def __init__(self, what: str, choices: Any) -> None:
        self.what = what
        self.choices = choices

    def check(self, value: str) -> str:
        if value not in self.choices:
            raise ValueError(unknown(self.what, value, self.choices))
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {**handler(schema), "enum": list(self.choices)}


def one_of(what: str, choices: Any) -> OneOf:
    """A field check against a registry (see OneOf)."""
    return OneOf(what, choices)


NAME_RULE = (
    f"a name must be one folder name: no '/' or '\\', not '.' or '..', only printable "
    f"characters, at most {MAX_NAME_BYTES} bytes in UTF-8"
)


def name_problem(name: str, limit: int = MAX_NAME_BYTES) -> str | None:
    """Why name cannot be a run or sweep folder's name, or None when it can."""
    separators = [c for c in "/\\" if c in name]
    if not name.isprintable():
        what = (
            f"contains the unprintable character {next(c for c in name if not c.isprintable())!r}"
        )
    elif separators:
        what = f"contains {separators[0]!r}"
    elif name in ("", ".", ".."):
        what = "is empty" if not name else "is not a folder name"
    elif len(name.encode("utf-8")) > limit:
        what = f"is {len(name.encode('utf-8'))} bytes long"
    else:
        return None
    return f"{shown(name)} {what}; {NAME_RULE}"


def check_run_name(name: str, where: str, limit: int = MAX_NAME_BYTES) -> None:
    """Refuse a run or sweep name that would not make exactly one folder inside --out."""
    problem = name_problem(name, limit)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def _check_seed(value: int) -> int:
    if not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"a seed is an integer from 0 to {MAX_SEED} (what numpy and scikit-learn accept), "
            f"got {shown(value)}"
        )
    return value


Seed = Annotated[
    StrictInt,
    AfterValidator(_check_seed),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_SEED}),
]


class Section(BaseModel):
    # Unknown keys are errors: a typo must never be silently ignored.
    # Booleans are not numbers here, and inf / nan are no setting's value.
    # The docstring under a key is its description in the JSON Schema (mlp config schema,
    # which reads them itself: see config/json_schema.py).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(Section):
    source: Annotated[str, one_of("data source", SOURCES)] = "moons"
    "Synthetic set, bundled real set, or a file format (csv, parquet, npz)."
    path: str | None = None
    "File sources: the data file; relative paths resolve against the config file's folder."
    val_path: str | None = None
    "Optional file holding the validation rows; otherwise val_split of path."
    test_path: str | None = None
    "Optional file holding the test rows; otherwise test_split of path."
    target: str | list[str] | None = Field(
        None, json_schema_extra={"minLength": 1, "minItems": 1, "items": {"minLength": 1}}
    )
    "Target column, or a list of columns for multi-label and multi-output tasks."
    features: list[str] | None = Field(
        None,
        json_schema_extra={"minItems": 1, "uniqueItems": True, "items": {"minLength": 1}},
    )
    "Feature columns; default: every column that is not a target."
    n_samples: StrictInt = Field(1000, gt=0)
    "Rows drawn from a synthetic source."
    noise: float = Field(0.1, ge=0)
    "Noise level of a synthetic source."
    val_split: float = Field(0.2, ge=0, lt=1)
    "Share of the rows held out for validation (unless val_path is given)."
    test_split: float = Field(0.2, ge=0, lt=1)
    "Share of the rows held out for the test (unless test_path is given)."
    standardize: bool = True
    "Scale numeric features to zero mean and unit variance, fitted on the training split only."
    seed: Seed | None = None
    "Seed of the synthetic rows and the splits; default: the top-level seed."
    image_shape: list[StrictInt] | None = Field(
        None, json_schema_extra={"minItems": 2, "maxItems": 2, "items": {"minimum": 1}}
    )
    "Height and width when the features are an image's pixels (digits: [8, 8]); for --detectors."
    stream: bool = False
    "Read Parquet row groups as needed, never the whole table; path may be a folder or a glob."
    shuffle_buffer: StrictInt | None = Field(None, gt=0)
    "Rows held for shuffling a stream; default (stream: true): STREAM_BUFFER."

    @field_validator("image_shape")
    @classmethod
    def _image_shape_form(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or min(value) <= 0):
            raise ValueError(
                f"data.image_shape: expected [height, width], two positive integers, "
                f"got {shown(value)}"
            )
        return value

    @field_validator("target", mode="before")
    @classmethod
    def _target_form(cls, value: Any) -> Any:
        # One message instead of pydantic's one per member of the union.
        if (
            value is None
            or (isinstance(value, str) and value)
            or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        ):
            return value
        raise ValueError(
            f"data.target: expected a column name or a non-empty list of names, got {shown(value)}"
        )

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.source in FILE_SOURCES and not self.path:
            raise ValueError(f"data.path: a file is required when data.source is '{self.source}'")
        if self.source not in FILE_SOURCES:
            for key in ("path", "val_path", "test_path", "target", "features"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"data.{key}: only file sources ({', '.join(FILE_SOURCES)}) read it; "
                        f"data.source is '{self.source}'"
                    )
        splits = (0 if self.val_path else self.val_split) + (
            0 if self.test_path else self.test_split
        )
        if splits >= 1:
            raise ValueError("data.val_split + data.test_split must leave rows for training (< 1)")
        problems = self._stream_problems()
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _stream_problems(self) -> list[str]:
        """Why this section cannot stream as configured: one line per key at fault."""
        if not self.stream:
            if self.shuffle_buffer is not None:
                return ["data.shuffle_buffer: only a stream reads it; set data.stream: true"]
            return []
        problems = []
        if self.source != "parquet":
            problems.append(
                f"data.stream: only Parquet row groups can be streamed; data.source is "
                f"'{self.source}' (accepted: parquet)"
            )
        for key in ("val_path", "test_path"):
            if getattr(self, key) is not None:
                problems.append(
                    f"data.{key}: a stream splits data.path by row hash (data.val_split, "
                    f"data.test_split); remove data.{key} or set data.stream: false"
                )
        return problems


def check_activation(spec: Any) -> None:
    """Raise ValueError unless spec is a name or {name: ..., parameter: value, ...}."""
    if isinstance(spec, str):
        if spec not in ACTIVATIONS:
            raise ValueError(unknown("activation", spec, ACTIVATIONS))
        return
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(
            f"expected an activation name or a mapping with a 'name' key, got {shown(spec)}"
        )
    name = spec["name"]
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(unknown("activation", name, ACTIVATIONS))
    defaults = ACTIVATIONS[name].defaults
    for key, value in spec.items():
        if key == "name":
            continue
        if key not in defaults:
            accepted = ", ".join(defaults) or "none"
            raise ValueError(
                unknown(f"parameter of {name}", key, defaults)
                if defaults
                else f"{name} takes no parameters (got {shown(key)}); accepted: {accepted}"
            )
        want = type(defaults[key])
        ok = (
            isinstance(value, bool)
            if want is bool
            else (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        )
        if not ok:
            kind = want.__name__ if want is bool else f"finite {want.__name__}"
            raise ValueError(f"{name}.{key} must be a {kind}, got {shown(value)}")


def activation_json_schema() -> dict[str, Any]:
    """What check_activation accepts, per hidden layer or for all of them, as JSON Schema."""
    specs: list[dict[str, Any]] = [{"type": "string", "enum": list(ACTIVATIONS)}]
    for name, activation in ACTIVATIONS.items():
        params = {
            key: {"type": "boolean" if isinstance(default, bool) else "number"}
            for key, default in activation.defaults.items()
        }
        specs.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, **params},
                "required": ["name"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": [*specs, {"type": "array", "items": {"anyOf": specs}}]}


class ModelConfig(Section):
    hidden: list[Annotated[StrictInt, WithJsonSchema({"type": "integer", "minimum": 1})]] = Field(
        default_factory=lambda: [64, 64]
    )
    "One width per hidden layer; [] is a linear model."
    activation: Any = Field("relu", json_schema_extra=activation_json_schema())
    "A name, {name: leaky_relu, negative_slope: 0.1}, or a list with one entry per hidden layer."
    bias: bool = True
    "Give every layer a bias."
    dropout: float = Field(0.0, ge=0, lt=1)
    "Dropout probability after each hidden layer's activation; 0: none."
    norm: Literal["batch", "layer"] | None = None
    "Batch or layer normalisation in each hidden layer; null: none."
    init: Annotated[str, one_of("init", INITS)] = "default"
    "How the weights start: PyTorch's default, or a Xavier or Kaiming scheme."

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: list[int]) -> list[int]:
        bad = [w for w in value if w <= 0]
        if bad:
            raise ValueError(f"every width must be a positive integer, got {bad[0]}")
        return value

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: Any) -> Any:
        for spec in value if isinstance(value, list) else [value]:
            check_activation(spec)
        return value

    @model_validator(mode="after")
    def _one_activation_per_layer(self) -> ModelConfig:
        if isinstance(self.activation, list) and len(self.activation) != len(self.hidden):
            raise ValueError(
                f"model.activation: a list needs one entry per hidden layer "
                f"({len(self.hidden)} for hidden {self.hidden}), got {len(self.activation)}"
            )
        return self

    def activations(self) -> list[dict[str, Any]]:
        """One {name: ..., params...} mapping per hidden layer."""
        specs = (
            self.activation
            if isinstance(self.activation, list)
            else [self.activation] * len(self.hidden)
        )
        return [{"name": s} if isinstance(s, str) else dict(s) for s in specs]


class OptimConfig(Section):
    name: Annotated[str, one_of("optimizer", OPTIMIZERS)] = "adam"
    "The optimiser."
    lr: float | Literal["auto"] = 1.0e-3
    "auto: the learning-rate range test (mlp lr-find) picks it before training."
    weight_decay: float = Field(0.0, ge=0)
    "L2 penalty on the weights (decoupled in adamw)."
    momentum: float = Field(0.0, ge=0, lt=1)
    "sgd and rmsprop only."
    nesterov: bool = False
    "sgd only; needs momentum > 0."

    @field_validator(
        "lr", mode="before", json_schema_input_type=Annotated[float, Field(gt=0)] | Literal["auto"]
    )
    @classmethod
    def _lr_form(cls, value: Any) -> Any:
        # One message instead of pydantic's one per member of the union.
        if value == "auto":
            return value
        try:
            lr = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, OverflowError):
            lr = None
        if lr is None:
            raise ValueError(f"optim.lr: expected a number or auto, got {shown(value)}")
        if not math.isfinite(lr):
            raise ValueError(f"optim.lr: expected a finite number or auto, got {shown(value)}")
        if lr <= 0:
            raise ValueError(f"optim.lr: must be greater than 0 (or auto), got {shown(value)}")
        return lr

    @model_validator(mode="after")
    def _options_fit(self) -> OptimConfig:
        takes = OPTIMIZERS[self.name].takes
        if self.momentum and "momentum" not in takes:
            raise ValueError(f"optim.momentum: {self.name} takes no momentum (sgd and rmsprop do)")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("optim.nesterov: needs optim.name sgd and optim.momentum > 0")
        return self


class ScheduleConfig(Section):
    name: Annotated[str, one_of("schedule", SCHEDULES)] = "none"
    "How the learning rate changes over the epochs; none: constant."
    step_size: StrictInt = Field(30, gt=0)
    "step: epochs between decays."
    gamma: float = Field(0.1, gt=0, le=1)
    "step: factor applied every step_size epochs."
    min_lr: float = Field(0.0, ge=0)
    "cosine and plateau: the floor of the learning rate."
    factor: float = Field(0.1, gt=0, lt=1)
    "plateau: factor applied when val_loss stops improving."
    patience: StrictInt = Field(10, ge=0)
    "plateau: epochs without improvement before a decay."


def monitors() -> list[str]:
    """The values train.early_stopping.monitor accepts."""
    return ["train_loss"] + sorted(f"val_{m}" for m in all_metric_names())


def _monitor_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = monitors()


class EarlyStoppingConfig(Section):
    patience: StrictInt = Field(10, gt=0)
    "Epochs without improvement of the monitor before training stops."
    monitor: str = Field("val_loss", json_schema_extra=_monitor_enum)
    "val_loss, train_loss, or val_<metric> (e.g. val_accuracy); its direction follows the metric."
    min_delta: float = Field(0.0, ge=0)
    "The least change of the monitor that counts as an improvement."

    @field_validator("monitor")
    @classmethod
    def _known_monitor(cls, value: str) -> str:
        names = monitors()
        if value not in names:
            raise ValueError(unknown("monitor", value, names))
        return value


class DiagnosticsConfig(Section):
    every: Annotated[StrictInt, Field(gt=0)] | Literal["auto"] = "auto"
    "Epochs between two records (and the last epoch); auto: as often as costs 3% of training."
    rows: StrictInt = Field(1024, gt=0, le=65536)
    "Training rows (a fixed sample) the per-layer statistics are computed on."

    @field_validator("every", mode="before")
    @classmethod
    def _every_form(cls, value: Any) -> Any:
        if value == "auto" or (type(value) is int and value > 0):
            return value
        raise ValueError(
            f"train.diagnostics.every: expected a number of epochs (1 or more) or auto, "
            f"got {shown(value)}"
        )


def baseline_json_schema() -> Any:
    """The forms train.baseline takes (see TrainConfig._baseline_names), as a type whose JSON
    Schema lists them: a switch, a name, names joined by commas, or a list of names."""
    name = "|".join(re.escape(n) for n in BASELINES)
    padded = {"type": "string", "pattern": rf"^\s*({name})\s*$"}
    names = {"type": "string", "pattern": rf"^\s*({name})\s*(,\s*({name})\s*)*$"}
    listed = {"enum": list(BASELINES)}
    return Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "boolean"},
                    {"type": "null"},
                    {"anyOf": [listed, names]},
                    {"type": "array", "items": {"anyOf": [listed, padded]}},
                ]
            }
        ),
    ]


# Settings that change what is written about a run, not its results: a resumed run or sweep
# may set them (the run's config.yaml then records them).
UNRESULTED = ("train.report", "train.mlflow")


class TrainConfig(Section):
    epochs: StrictInt = Field(100, gt=0)
    "Passes over the training rows (fewer with early stopping)."
    batch_size: StrictInt = Field(64, gt=0)
    "Rows per optimisation step."
    early_stopping: EarlyStoppingConfig | None = None
    "Stop when the monitor stops improving: {patience: 10, monitor: val_loss}; null: never."
    grad_clip: float | None = Field(None, gt=0)
    "Largest gradient norm; null for none."
    restore_best: bool = True
    "Keep the best epoch's weights (by the monitor, else val_loss); false keeps the last epoch's."
    diverge_factor: float | None = Field(1.0e4, gt=1)
    "Fail the run when an epoch's training loss exceeds this times the first step's; null: never."
    device: str = Field("auto", json_schema_extra={"pattern": f"^({DEVICES})(?![\\s\\S])"})
    "Where to train: auto, cpu, cuda, cuda:N or mps."
    checkpoint_seconds: float = Field(10.0, ge=0)
    "Write the resume checkpoint at most this often (and whenever training stops); 0: every epoch."
    engine: Literal["auto", "backprop", "autograd"] = "auto"
    "backprop: the chain rule written out (Linear and elementwise layers); auto picks it if it can."
    threads: StrictInt | None = Field(None, gt=0, le=1024)
    "CPU threads; null: one for small models (more only add waiting), every core for large ones."
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    "bf16 or fp16: mixed precision (autocast) on a GPU; weights and optimiser stay in fp32."
    compile: bool = False
    "torch.compile the model (with CUDA graphs for small models on a GPU)."
    diagnostics: DiagnosticsConfig | None = Field(default_factory=DiagnosticsConfig)
    "Per-layer gradients, dead and saturated units in diagnostics.csv; false or null: none."
    baseline: list[str] = Field(default_factory=list)
    "Models to train beside the MLP on the same split: linear, kernel, or a list; true: linear."
    plots: bool = True
    "Draw plots/loss.png when the run ends; false spares importing matplotlib (about 0.6 s)."
    tensorboard: bool = False
    "Log metrics, hparams and diagnostics for TensorBoard in tb/ (needs mlpcli[tensorboard])."
    report: bool = False
    "Write report.html, the run's or sweep's page, in its folder when it ends (mlp report)."
    mlflow: bool = False
    "Log params, metrics and files to MLflow (MLFLOW_TRACKING_URI or MLflow's default; needs mlpcli[mlflow])."

    @field_validator(
        "diagnostics", mode="before", json_schema_input_type=DiagnosticsConfig | StrictBool | None
    )
    @classmethod
    def _diagnostics_switch(cls, value: Any) -> Any:
        # true: the defaults; false: off, written as null like every other switched-off key
        if value is None or isinstance(value, (dict, DiagnosticsConfig)):
            return value
        if isinstance(value, bool):
            return {} if value else None
        raise ValueError(
            f"train.diagnostics: expected true, false or {{every: N, rows: N}}, got {shown(value)}"
        )

    @field_validator("baseline", mode="before", json_schema_input_type=baseline_json_schema())
    @classmethod
    def _baseline_names(cls, value: Any) -> Any:
        # false / true as before the kernel baseline (true: the linear model); a name, a
        # comma-separated string of names (as --baseline takes them) or a list of names.
        if value is None or value is False:
            return []
        if value is True:
            return ["linear"]
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"train.baseline: expected true, false, a name or a list of names "
                f"({', '.join(BASELINES)}), got {shown(value)}"
            )
        names = [n.strip() for n in names]
        for name in names:
            if name not in BASELINES:
                raise ValueError(unknown("baseline", name, BASELINES))
        return [name for name in BASELINES if name in names]  # each once, in one order

    @field_serializer("baseline")
    def _baseline_as_before(self, value: list[str]) -> list[str] | bool:
        # Written as before the kernel baseline where it means the same: false, or true (linear).
        return True if value == ["linear"] else value or False

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        if not re.fullmatch(DEVICES, value):
            raise ValueError(
                f"unknown device {shown(value)}; accepted: auto, cpu, cuda, cuda:N, mps"
            )
        return value

    @model_validator(mode="after")
    def _engine_fits(self) -> TrainConfig:
        if self.engine == "backprop" and (self.precision != "fp32" or self.compile):
            raise ValueError(
                "train.engine: backprop runs in fp32 and is not compiled; use engine auto or "
                "autograd with train.precision or train.compile"
            )
        return self


# The key names _dotted_keys takes, for editors (ASCII letters, as config keys are).
_SWEPT_KEYS: JsonDict = {
    "propertyNames": {
        "pattern": r"^(?!sweep)[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(?![\s\S])"
    }
}


class SweepConfig(Section):
    grid: dict[str, list[Any]] = Field(default_factory=dict, json_schema_extra=_SWEPT_KEYS)
    "Dotted keys and their values; every combination is a trial."
    zip: dict[str, list[Any]] = Field(default_factory=dict, json_schema_extra=_SWEPT_KEYS)
    "Dotted keys whose values vary together: the i-th value of each list makes one point."
    seeds: StrictInt = Field(1, gt=0)
    "Repeat every point with seeds seed, seed+1, ... to see the spread."
    workers: StrictInt | None = Field(None, gt=0)
    "Local worker processes; default: one per CPU core."
    params: list[StrictInt] | None = Field(
        None, json_schema_extra={"minimum": 1, "minItems": 1, "items": {"minimum": 1}}
    )
    "A parameter budget or a list of them; each depth gets the uniform width nearest the budget."
    depth: list[StrictInt] | None = None
    "With sweep.params: the numbers of hidden layers to compare; default: model.hidden's."
    search: Annotated[str, one_of("sweep.search", SEARCHES)] = "grid"
    "grid: every combination of sweep.grid; random or tpe: sweep.trials points of sweep.space."
    trials: StrictInt | None = Field(None, gt=0, le=MAX_TRIALS)
    "A search's number of trials."
    prune: Annotated[str, one_of("sweep.prune", PRUNERS)] = "none"
    "How a search stops hopeless trials early: none, median, asha."
    space: dict[str, str] = Field(default_factory=dict, json_schema_extra=_SWEPT_KEYS)
    "A search's keys and what to draw them from: log(1e-4, 1e-1), choice([16], [64]), ..."

    @field_validator("grid", "zip", "space")
    @classmethod
    def _dotted_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.fullmatch(DOTTED_KEY, key) or key.startswith("sweep"):
                raise ValueError(f"{shown(key)} is not a dotted config key such as model.hidden")
        return value

    @field_validator(
        "params", mode="before", json_schema_input_type=StrictInt | list[StrictInt] | None
    )
    @classmethod
    def _one_budget_or_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("params", "depth")
    @classmethod
    def _positive_counts(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not value:
            raise ValueError("give at least one value")
        bad = [v for v in value or [] if v < 1]
        if bad:
            raise ValueError(f"expected positive integers, got {bad[0]}")
        return value

    @model_validator(mode="after")
    def _budget_sets_the_layers(self) -> SweepConfig:
        if self.depth is not None and self.params is None:
            raise ValueError(
                "sweep.depth: compares depths at one parameter budget, so it needs sweep.params; "
                "to sweep depth at one width, list the layers in sweep.grid model.hidden"
            )
        place = next(
            (p for p, keys in (("grid", self.grid), ("zip", self.zip)) if "model.hidden" in keys),
            None,
        )
        if self.params is not None and place is not None:
            raise ValueError(
                f"sweep.params and sweep.{place} model.hidden both set the hidden layers; "
                f"give the budget's depths in sweep.depth, or drop sweep.params"
            )
        return self

    @model_validator(mode="after")
    def _search_or_grid(self) -> SweepConfig:
        if self.search == "grid":
            given = [f"sweep.{k}" for k in ("trials", "space") if getattr(self, k)]
            given += ["sweep.prune"] if self.prune != "none" else []
            if given:
                raise ValueError(
                    f"{' and '.join(given)}: only for a search; set sweep.search to random or "
                    f"tpe, or drop {'them' if len(given) > 1 else 'it'}"
                )
            return self
        missing = [f"sweep.{k}" for k in ("trials", "space") if not getattr(self, k)]
        if missing:
            raise ValueError(
                f"sweep.search {self.search}: needs {' and '.join(missing)} (how many trials, "
                f"and each searched key with its range, such as optim.lr: log(1e-4, 1e-1))"
            )
        grid_only = [
            name
            for name, value in (
                ("sweep.grid", self.grid),
                ("sweep.zip", self.zip),
                ("sweep.params", self.params),
                ("sweep.depth", self.depth),
            )
            if value
        ] + (["sweep.seeds"] if self.seeds > 1 else [])
        if grid_only:
            raise ValueError(
                f"sweep.search {self.search}: {', '.join(grid_only)}: for a grid only; a search "
                f"draws each trial's settings from sweep.space (put its keys there) and trains "
                f"it once, with the config's seed"
            )
        return self


class Config(Section):
    # One folder name, not . or ..; the byte length is left to the loader. (?![\s\S]) ends
    # the text in every regex dialect ($ also matches before a final newline in Python's).
    name: str | None = Field(
        None, json_schema_extra={"pattern": r"^(?!\.\.?(?![\s\S]))[^/\x00]+(?![\s\S])"}
    )
    "Run name prefix; default: the config file's stem. One folder name (see name_problem)."
    seed: Seed = 0
    "Seeds the weights, dropout and batch order (and the data, unless data.seed is set)."
    task: TaskName = "auto"
    "auto: inferred from the target (regression, binary, classification, multilabel)."
    data: DataConfig = Field(default_factory=DataConfig)
    "Where the rows come from and how they are split."
    model: ModelConfig = Field(default_factory=ModelConfig)
    "The network: hidden layers, activation, normalisation, init."
    loss: Annotated[str, one_of("loss", ["auto", *LOSSES])] = "auto"
    "auto: the task's loss (mse, bce or cross_entropy); the loss must fit the task."
    optim: OptimConfig = Field(default_factory=OptimConfig)
    "The optimiser and its learning rate."
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    "How the learning rate changes over training."
    train: TrainConfig = Field(default_factory=TrainConfig)
    "How to train: epochs, batches, early stopping, device, what to record."
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    "What `mlp sweep` varies; `mlp train` ignores it."

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, value: str | None) -> str | None:
        problem = None if value is None else name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _loss_fits_task(self) -> Config:
        if self.task != "auto" and self.loss != "auto":
            check_loss_fits(self.loss, self.task)
        return self

    @model_validator(mode="after")
    def _stream_fits(self) -> Config:
        if not self.data.stream:
            return self
        problems = []
        if self.train.baseline:
            problems.append(
                "train.baseline: the baselines fit on the whole table in memory, which a stream "
                "never holds; remove train.baseline or set data.stream: false"
            )
        if self.optim.lr == "auto":
            problems.append(
                "optim.lr: auto runs the range test on the table in memory, which a stream never "
                "holds; give a number (mlp lr-find with data.stream=false on one file that fits "
                "suggests one)"
            )
        buffer = stream_buffer(self)
        if buffer < self.train.batch_size:
            problems.append(
                f"data.shuffle_buffer: {buffer} rows hold less than one batch "
                f"(train.batch_size: {self.train.batch_size}); accepted: at least the batch size"
            )
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def check_loss_fits(loss: str, task: str) -> None:
    if task not in LOSSES[loss][1]:
        fitting = [name for name, (_, tasks) in LOSSES.items() if task in tasks]
        raise ValueError(
            f"loss: '{loss}' does not fit a {task} task; accepted: auto, {', '.join(fitting)}"
        )


def stream_buffer(config: Config) -> int:
    """The rows a stream holds for shuffling: data.shuffle_buffer, else STREAM_BUFFER."""
    return config.data.shuffle_buffer or STREAM_BUFFER


def default_loss(task: str) -> str:
    return TASKS[task][0]


# ---------------------------------------------------------------- loading and overrides


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the config file ({exc.__class__.__name__})"
        ) from None
    try:
        raw = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        invalid = "" if isinstance(exc, YamlLimitError) else "invalid YAML: "
        raise ConfigError(f"{path}{where}: {invalid}{problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of raw with each 'dotted.key=YAML value' applied."""
    result = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        where = f"override {shown(item)}"
        if not sep or not re.fullmatch(DOTTED_KEY, key):
            raise ConfigError(
                f"{where}: expected KEY=VALUE with a dotted key, e.g. model.hidden=[128,64]"
            )
        if key.count(".") >= MAX_DEPTH:
            raise ConfigError(f"{where}: keys nest deeper than {MAX_DEPTH} levels")
        try:
            value = safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            invalid = "" if isinstance(exc, YamlLimitError) else "the value is not valid YAML: "
            raise ConfigError(f"{where}: {invalid}{exc.problem}") from None
        set_key(result, key, value, where=where)
    return result


def override_sources(overrides: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The override that last set each dotted key, for naming it in error messages.

    A later override of a section (model={...}) replaces what earlier ones set inside it.
    """
    sources: dict[str, str] = {}
    for item in overrides:
        key = item.partition("=")[0]
        for old in [k for k in sources if k.startswith(f"{key}.")]:
            del sources[old]
        sources[key] = item
    return sources


def _blame(key: str, overrides: dict[str, str], source: str) -> str:
    """The override that set key or a section holding it, else source (the file)."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for i in range(len(parts), 0, -1):
        item = overrides.get(".".join(parts[:i]))
        if item is not None:
            return f"override {shown(item)}"
    return source


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set raw['a']['b'] = value for key 'a.b', creating sections on the way."""
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two raw configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = dict.fromkeys([*a, *b])
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _absolute(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def build_config(
    raw: dict[str, Any],
    base_dir: Path | None = None,
    source: str = "config",
    overrides: list[str] | tuple[str, ...] = (),
) -> Config:
    """Validate a raw mapping; relative data paths resolve against base_dir (default: cwd).

    Problems at keys that overrides set are attributed to those overrides, the rest to source.
    """
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source, overrides)) from None
    base = (base_dir or Path.cwd()).resolve()
    for key in ("path", "val_path", "test_path"):
        try:
            setattr(config.data, key, _absolute(getattr(config.data, key), base))
        except (ValueError, RuntimeError, OSError) as exc:
            # A NUL byte, or '~name' for a user that does not exist.
            where = _blame(f"data.{key}", override_sources(overrides), source)
            raise ConfigError(
                f"{where}: data.{key}: {shown(getattr(config.data, key))} is not a usable path "
                f"({exc})"
            ) from None
    return config


def as_config(config: Config | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A Config from a Config or a config file, with KEY=VALUE overrides applied."""
    if isinstance(config, Config):
        if not overrides:
            return config
        return build_config(apply_overrides(config.to_dict(), overrides), overrides=overrides)
    return load_config(config, overrides)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; every default filled."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    raw.setdefault("name", path.stem)
    return build_config(raw, path.parent, source=str(path), overrides=overrides)


def seed_overrides(
    path: str | Path, overrides: list[str] | tuple[str, ...], seed: int
) -> list[str]:
    """The overrides `--seed N` stands for: N seeds the weights, dropout and batch order, while
    the data (synthetic rows and splits) keeps the seed it had, as a sweep's seeds do; so runs
    that differ only in --seed are scored on the same rows. `seed=N` itself moves both."""
    raw = apply_overrides(read_yaml(Path(path)), overrides)
    data = raw.get("data")
    held = raw.get("seed", Config.model_fields["seed"].default)
    if (isinstance(data, dict) and data.get("seed") is not None) or not isinstance(held, int):
        return [f"seed={seed}"]  # the data's seed is set already (or the seed is refused anyway)
    return [f"seed={seed}", f"data.seed={held}"]


# ---------------------------------------------------------------- error messages


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of loc, for 'did you mean'."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = [
            a
            for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not inner:
            return None
        model = inner[0]
    return model


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        part = str(part)
        # A key is echoed as typed only when it is short and printable.
        part = part if part.isprintable() and len(part) <= 60 else shown(part)
        text += f".{part}" if text else part
    return text


MAX_PROBLEMS = 20  # lines per source: 50,000 bad values in one list are not 50,000 lines


def format_errors(
    exc: ValidationError, source: str, overrides: list[str] | tuple[str, ...] = ()
) -> str:
    """One line per problem: the dotted key, what is wrong, what would be accepted.

    Problems are grouped by where their value came from: an override that set the key (or a
    section holding it), else source.
    """
    setters = override_sources(overrides)
    groups: dict[str, list[str]] = {source: []}  # the file's problems first
    for err in exc.errors():
        # A validator that finds several problems at once joins them with "\n  ".
        for line in _problem_line(err).split("\n  "):
            key = re.match(r"[\w.\[\]]*", line).group(0)  # type: ignore[union-attr]
            groups.setdefault(_blame(key, setters, source), []).append(line)
    blocks = []
    for where, lines in groups.items():
        if not lines:
            continue
        count = f"{len(lines)} problems" if len(lines) > 1 else "1 problem"
        more = [f"... and {len(lines) - MAX_PROBLEMS} more"] if len(lines) > MAX_PROBLEMS else []
        text = "\n".join(f"  {line}" for line in lines[:MAX_PROBLEMS] + more)
        blocks.append(f"{where}: {count}\n{text}")
    return "\n".join(blocks)


def _problem_line(err: Any) -> str:
    # Drop pydantic's internal union/function tags from the location.
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.search(r"[\[\(]", str(p)))
    key = _loc_text(loc)
    if err["type"] == "extra_forbidden":
        section = _section_at(loc)
        names = list(section.model_fields) if section else []
        msg = unknown("key", loc[-1], names) if names else "unknown key"
        return f"{key}: {msg.replace('unknown key ' + shown(str(loc[-1])), 'unknown key')}"
    msg = err["msg"].removeprefix("Value error, ")
    if (
        msg.startswith(f"{key}.")
        or msg.startswith(f"{key}:")
        or (not key and re.match(r"^[\w.]+:", msg))
    ):
        return msg
    if (
        err["type"] not in ("value_error",)
        and "input" in err
        and not isinstance(err["input"], dict)
    ):
        msg += f" (got {shown(err['input'])})"
    return f"{key}: {msg}" if key else msg


def loss_name(config: Config, task: str) -> str:
    """The configured loss, or the task's default; a loss that does not fit the task is an error."""
    name = default_loss(task) if config.loss == "auto" else config.loss
    try:
        check_loss_fits(name, task)
    except ValueError as exc:
        raise ConfigError(f"{exc} (the data makes this a {task} task)") from None
    return name

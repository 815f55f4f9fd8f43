"""What a model file's metadata and a resume checkpoint must hold, checked before either is used.

Both may come from someone else (a shared run, a downloaded model): like a config, each is
validated key by key before anything is built or changed on disk, and an error names the file
and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ..config.messages import cut, listed
from ..errors import CheckpointError

Task = Literal["regression", "binary", "classification", "multilabel"]
Number = StrictFloat | StrictInt


def shown_key(loc: tuple[Any, ...]) -> str:
    """A dotted key from a validation error's location; the keys come from the file, so each
    part is cut short."""
    return ".".join(cut(str(part)) for part in loc) or "(top level)"


Label = StrictStr | StrictBool | StrictInt | StrictFloat
Count = Annotated[StrictInt, Field(ge=0)]


def _finite_pair(pair: tuple[float, float]) -> tuple[float, float]:
    if not all(math.isfinite(v) for v in pair) or pair[1] <= 0:
        raise ValueError("expected [mean, std] with finite values and std > 0")
    return pair


Scale = Annotated[tuple[Number, Number], AfterValidator(_finite_pair)]


def _finite_spread(pair: tuple[float, float]) -> tuple[float, float]:
    if not all(math.isfinite(v) for v in pair) or pair[1] < 0:
        raise ValueError("expected [mean, std] with finite values and std >= 0")
    return pair


Spread = Annotated[tuple[Number, Number], AfterValidator(_finite_spread)]


class PreprocessorState(BaseModel):
    """The fitted preprocessing a model file carries (mlpcli.data.Preprocessor's fields)."""

    model_config = ConfigDict(extra="forbid")

    features: list[StrictStr] = Field(min_length=1)
    targets: list[StrictStr] = Field(min_length=1)
    task: Task
    numeric: dict[str, Scale] = {}
    categorical: dict[str, list[StrictStr]] = {}
    labels: list[Label] = []
    target_scale: list[Scale] = []
    stats: dict[str, Spread] = {}  # absent from models saved before it was recorded
    modes: dict[str, StrictStr] = {}

    @model_validator(mode="after")
    def _columns_agree(self) -> PreprocessorState:
        encoded = [*self.numeric, *self.categorical]
        if sorted(encoded) != sorted(self.features):
            raise ValueError("numeric and categorical must together cover each feature once")
        if not set(self.stats) <= set(self.numeric):
            raise ValueError("stats may only name numeric features")
        if any(mode not in self.categorical.get(c, []) for c, mode in self.modes.items()):
            raise ValueError("modes must name a categorical feature and one of its categories")
        if self.task == "classification" and len(self.labels) < 2:
            raise ValueError("a classification model needs at least two labels")
        return self


class ModelMetadata(BaseModel):
    """The JSON stored in a model file's header. Other keys (say, the data fingerprint eval
    checks) are left to their readers."""

    model_config = ConfigDict(extra="allow")

    config: dict[str, Any]  # validated as a config by build_config
    preprocessor: PreprocessorState
    task: Task
    epoch: Count
    versions: dict[str, StrictStr] = {}

    @model_validator(mode="after")
    def _tasks_agree(self) -> ModelMetadata:
        if self.task != self.preprocessor.task:
            raise ValueError("task differs from preprocessor.task")
        return self


def _rng_state(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
        raise ValueError("expected a random generator state (a 1-d uint8 tensor)")
    return value


def _tensor(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError("expected a tensor")
    return value


RngTensor = Annotated[Any, AfterValidator(_rng_state)]
Tensor = Annotated[Any, AfterValidator(_tensor)]


class RngStates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    torch: RngTensor
    generator: RngTensor
    cuda: RngTensor | None = None


class BestState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: Count
    score: Number | None
    state: dict[str, Tensor] | None


class StreamState(BaseModel):
    """Where a run on a stream stands in its epochs (Trainer._stream_state)."""

    epoch: Count  # the epoch under way, or the next one at step 0
    step: Count  # its steps done
    loss_total: Number
    rows: Count
    first: Number
    digest: StrictStr  # TrainStream.plan_digest(): what the batches depend on
    plan: dict[StrictStr, Any]  # the same in words, to name what changed


class ResumeState(BaseModel):
    """A checkpoints/last.pt as Trainer.state_dict() writes it (its format and version are
    checked first)."""

    model_config = ConfigDict(extra="allow")

    epoch: Count
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    engine: dict[str, Any] = {}
    rng: RngStates
    history: list[dict[StrictStr, Number]]
    best: BestState
    bad_epochs: Count
    stopped_early: StrictBool
    train_seconds: Annotated[Number, Field(ge=0)]
    initial_loss: Number | None = None  # absent from checkpoints written before it was kept
    stream: StreamState | None = None  # runs on a stream only


def check_metadata(path: Path, metadata: Any) -> ModelMetadata:
    return _validate(ModelMetadata, path, metadata, "the model's metadata")


def check_resume_state(path: Path, state: dict[str, Any]) -> None:
    _validate(ResumeState, path, state, "the checkpoint")


def _validate(schema: type[BaseModel], path: Path, data: Any, what: str) -> Any:
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} is not a JSON object; not written by mlp train")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{shown_key(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        ]
        raise CheckpointError(
            f"{path}: {what} is not what mlp train writes; " + "; ".join(problems)
        ) from None
    except RecursionError:
        raise CheckpointError(f"{path}: {what} is nested too deeply") from None


# safetensors' names of torch's dtypes; the floating ones are what weights may be stored as.
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
    torch.complex128: "C128",
}
FLOATING = ("F16", "BF16", "F32", "F64")
Layout = dict[str, tuple[tuple[int, ...], str]]


def tensor_layout(tensors: dict[str, Any]) -> Layout:
    """Name -> (shape, dtype name) of a state dict; anything but a tensor is reported as such."""
    return {
        key: (tuple(t.shape), DTYPE_NAMES.get(t.dtype, str(t.dtype)))
        if isinstance(t, torch.Tensor)
        else ((), type(t).__name__)
        for key, t in tensors.items()
    }


def check_tensors(path: Path, found: Layout, expected: Layout, what: str = "the weights") -> None:
    """Tensors a file holds against those the model it describes has: the same names and
    shapes, and floating point where the model's are (nothing is silently cast)."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if missing or extra:
        raise CheckpointError(
            f"{path}: {what} do not match the model; missing: {listed(missing)}; "
            f"unexpected: {listed(extra)}"
        )
    for key, (shape, dtype) in expected.items():
        got_shape, got_dtype = found[key]
        floating = dtype in FLOATING
        if (got_dtype in FLOATING) != floating or (not floating and got_dtype != dtype):
            kind = f"floating point ({', '.join(FLOATING)})" if floating else dtype
            raise CheckpointError(
                f"{path}: tensor {key} holds {got_dtype}; expected {kind} (never converted)"
            )
        if tuple(got_shape) != tuple(shape):
            raise CheckpointError(
                f"{path}: tensor {key} has shape {tuple(got_shape)}, but the model described "
                f"has {tuple(shape)} there"
            )

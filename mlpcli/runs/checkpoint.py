"""Saving and loading weights and training state: atomically, and without unpickling code.

Model files are safetensors with the metadata eval and predict need stored as JSON in the header;
resume checkpoints use torch's format read back with weights_only=True, never a fallback.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..callbacks import Callback
from ..errors import CheckpointError, RunError
from .atomic import atomic_write, make_folder, open_own
from .file_schemas import check_metadata, check_resume_state

MODEL_FORMAT = "mlpcli-model"
CHECKPOINT_FORMAT = "mlpcli-checkpoint"
# 2: the optimiser state of the written-out engine covers one flat parameter.
FORMAT_VERSION = 2

if TYPE_CHECKING:
    from ..training.trainer import Trainer


# ------------------------------------------------------------ model files


def save_model(path: Path, model: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """Weights as safetensors; the metadata JSON travels in the same file."""
    from safetensors.torch import save

    # Copies: with the written-out backprop every weight is a view of one flat buffer, and
    # safetensors refuses tensors that share memory.
    tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    header = {"format": MODEL_FORMAT, "mlpcli": json.dumps(metadata)}
    atomic_write(path, lambda f: f.write(save(tensors, metadata=header)))


# Real metadata is a few kilobytes (a few megabytes with thousands of categories); a larger
# header is refused before it is parsed.
MAX_HEADER_BYTES = 16 << 20


@dataclass
class ModelFile:
    """A model file whose header has been checked: its metadata, and each tensor's shape and
    dtype name (read from the header alone, before any weights are)."""

    path: Path
    metadata: dict[str, Any]
    shapes: dict[str, tuple[tuple[int, ...], str]]

    def tensors(self) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in self.shapes}


def read_model_file(path: Path) -> ModelFile:
    """The checked header of a model file; anything else is a CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    _check_header_size(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            shapes = {
                key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                for key in handle.keys()  # noqa: SIM118
            }
    except Exception as exc:  # safetensors reports a damaged header in several ways
        raise CheckpointError(
            f"{path}: not a model file (not valid safetensors: {str(exc)[:200]}); "
            f"expected a model.safetensors written by mlp train"
        ) from None
    if header.get("format") != MODEL_FORMAT or "mlpcli" not in header:
        raise CheckpointError(
            f"{path}: a safetensors file, but not one written by mlp train (no mlpcli metadata)"
        )
    try:
        metadata = json.loads(header["mlpcli"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: the model's metadata is damaged (invalid JSON)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: the model's metadata is nested too deeply") from None
    check_metadata(path, metadata)
    return ModelFile(path, metadata, shapes)


def load_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) from a model file, its header checked first."""
    model_file = read_model_file(path)
    return model_file.tensors(), model_file.metadata


def _check_header_size(path: Path) -> None:
    with open(path, "rb") as handle:
        prefix = handle.read(8)
    size = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
    if size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{path}: not a model file written by mlp train: its safetensors header would be "
            f"{size:,} bytes, more than the {MAX_HEADER_BYTES:,} such a file can need; refused unread"
        )


# ------------------------------------------------------------ resume checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **state}, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A resume checkpoint; weights_only=True means a crafted file cannot run code."""
    path = Path(path)
    try:
        handle = open_own(path)  # a run folder's own file, never through a link
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no resume checkpoint here") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        with handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about unusual pickle protocols
            state = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(
                f"{path}: refused: it holds Python objects other than tensors and plain values, "
                f"which could run code when loaded; mlp only loads the checkpoints/last.pt that "
                f"mlp train writes"
            ) from None
        raise _damaged(path) from None
    except Exception:  # truncation, random bytes: torch's reader fails in many ways
        raise _damaged(path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an mlpcli checkpoint (written by another program)")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: a checkpoint of format {state.get('version')}, written by another version "
            f"of mlpcli; this one resumes format {FORMAT_VERSION} only (train the run again)"
        )
    check_resume_state(path, state)
    return state


def _damaged(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path}: damaged or not a checkpoint (truncated, or not written by mlp train); "
        f"expected the checkpoints/last.pt of a run folder"
    )


class CheckpointSaver(Callback):
    """Keeps the resume state of the last finished epoch, and writes it to disk at most every
    `every` seconds and whenever training ends, also by an interrupt or a failure.

    A synced write costs tens of milliseconds, far more than an epoch of a small model, while an
    in-memory copy costs a fraction of one; a kill -9 loses at most `every` seconds of work.
    Within the long epochs of a stream the state is also taken at the trainer's step hooks once
    `every` seconds have passed, and written at once: a resume continues that epoch at that step.
    """

    def __init__(self, path: Path, every: float) -> None:
        self.path, self.every = Path(path), every
        self.snapshot: dict[str, Any] | None = None
        self.last_write = time.monotonic()
        self.saved_epoch = 0  # the finished epochs the file on disk holds, once written here

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self._take(trainer)
        if time.monotonic() - self.last_write >= self.every:
            self.flush()

    def on_step(self, trainer: Trainer, epoch: int, step: int) -> None:
        if time.monotonic() - self.last_write >= self.every:
            self._take(trainer)
            self.flush()

    def _take(self, trainer: Trainer) -> None:
        state = trainer.state_dict()
        # History only grows and the best weights are replaced, never changed in place, so
        # only the live weights, optimiser, schedule and RNG states need copying.
        history, best = state.pop("history"), state.pop("best")
        self.snapshot = {**copy.deepcopy(state), "history": list(history), "best": best}

    def on_train_end(self, trainer: Trainer) -> None:
        self.flush()

    def flush(self) -> None:
        if self.snapshot is None:
            return
        make_folder(self.path.parent)
        save_checkpoint(self.path, self.snapshot)
        self.saved_epoch = self.snapshot["epoch"]
        self.snapshot, self.last_write = None, time.monotonic()

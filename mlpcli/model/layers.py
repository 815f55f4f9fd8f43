"""The layers build_mlp makes, counted from a model config alone (no torch): widths,
activations, norm layers, parameters and multiply-adds per row. The one description of the
layer structure that summary, memory and inspect read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config.registry import TASKS
from ..config.schema import ModelConfig

# Rows a model scores at a time outside training (outputs.predict_raw, inspect, export), and so
# the rows whose activations the memory estimate counts for evaluation.
EVAL_BATCH = 65536


@dataclass(frozen=True)
class LayerRow:
    layer: str  # "1", "2", ... for hidden layers, "output" for the last
    width: int  # output units
    activation: str  # the hidden layer's activation, or the output transform at prediction
    params: int
    multiply_adds: int  # per input row: the Linear's in x out
    norm: str | None = None  # a hidden layer's model.norm (batch, layer), after its Linear


def activation_text(spec: dict[str, Any]) -> str:
    """'relu', 'leaky_relu negative_slope=0.1', 'swish beta=2.0 learnable=True'."""
    extra = " ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']} {extra}".strip()


def layer_rows(
    model: ModelConfig, in_dim: int, out_dim: int, task: str | None = None
) -> list[LayerRow]:
    """The layers build_mlp makes for these sizes, counted from the config alone.

    A hidden layer holds its Linear, a norm layer's scale and shift per unit (its kind in
    `norm`), and a learnable Swish beta; the output layer is a Linear whose scores the task's
    transform turns into predictions.
    """
    rows = []
    sizes = [in_dim, *model.hidden]
    for k, (width_in, width, spec) in enumerate(
        zip(sizes, sizes[1:], model.activations()), start=1
    ):
        params = width_in * width + (width if model.bias else 0)
        params += 2 * width if model.norm is not None else 0
        params += 1 if spec["name"] == "swish" and spec.get("learnable") else 0
        rows.append(
            LayerRow(str(k), width, activation_text(spec), params, width_in * width, model.norm)
        )
    last = sizes[-1]
    head = last * out_dim + (out_dim if model.bias else 0)
    transform = TASKS[task][1] if task else "identity"
    shown = transform if transform == "identity" else f"({transform} at prediction)"
    rows.append(LayerRow("output", out_dim, shown, head, last * out_dim))
    return rows

"""`mlp summary`: the network a config or a run describes, layer by layer, without building it.

For each layer: its output width, norm layer (model.norm), activation, parameters and
multiply-adds per input row (the Linear's in x out), then the totals and the parameters per
training row, the number that says how freely a model can memorise its data. A config is
summarised without importing torch: the sizes come from the data (read and split as training
would) and the model section alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Config, ModelConfig, load_config
from .registry import TASKS


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


def summarize_sizes(
    config: Config, in_dim: int, out_dim: int, task: str, train_rows: int
) -> dict[str, Any]:
    """The summary's JSON form: layers, totals, and parameters per training row."""
    rows = layer_rows(config.model, in_dim, out_dim, task)
    params = sum(r.params for r in rows)
    return {
        "task": task,
        "inputs": in_dim,
        "outputs": out_dim,
        "layers": [asdict(r) for r in rows],
        "params": params,
        "multiply_adds": sum(r.multiply_adds for r in rows),
        "train_rows": train_rows,
        "params_per_train_row": round(params / train_rows, 3) if train_rows else None,
    }


def summarize(target: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Summary of a config file (with overrides), a run folder or a model file."""
    path = Path(target)
    if path.is_dir() or path.suffix == ".safetensors":
        if overrides:
            from .errors import ConfigError

            raise ConfigError(f"{path}: overrides apply to a config file, not to a trained model")
        return _of_model(path)
    return _of_config(load_config(path, overrides))


def _of_config(config: Config) -> dict[str, Any]:
    """Sizes from the data as training reads and splits it (pandas, no torch)."""
    from .data import fit_preprocessor, load_dataset

    dataset = load_dataset(config)
    prep = fit_preprocessor(config, dataset)
    summary = summarize_sizes(config, prep.in_dim, prep.out_dim, dataset.task, len(dataset.train))
    return {"config": config.name, **summary}


def _of_model(path: Path) -> dict[str, Any]:
    """Sizes from a trained model's metadata, read and checked as eval reads it."""
    from .checkpoint import read_model_file
    from .config import build_config
    from .data import Preprocessor
    from .evaluate import model_path
    from .runs import SUMMARY_FILE, read_json

    file = model_path(path)
    metadata = read_model_file(file).metadata
    config = build_config(metadata["config"])
    prep = Preprocessor.from_dict(metadata["preprocessor"])
    rows = 0
    if (file.parent / SUMMARY_FILE).is_file():  # a run folder's: how many rows it trained on
        counts = read_json(file.parent / SUMMARY_FILE).get("rows")
        train = counts.get("train") if isinstance(counts, dict) else None
        rows = train if isinstance(train, int) and not isinstance(train, bool) else 0
    summary = summarize_sizes(config, prep.in_dim, prep.out_dim, prep.task, rows)
    return {"model": str(file), **summary}

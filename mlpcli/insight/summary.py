"""`mlp summary`: the network a config or a run describes, layer by layer, without building it.

For each layer: its output width, norm layer (model.norm), activation, parameters and
multiply-adds per input row (the Linear's in x out), then the totals and the parameters per
training row, the number that says how freely a model can memorise its data. A config is
summarised without importing torch: the sizes come from the data (read and split as training
would) and the model section alone.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config.schema import Config, load_config
from ..model.layers import layer_rows


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
            from ..errors import ConfigError

            raise ConfigError(f"{path}: overrides apply to a config file, not to a trained model")
        return _of_model(path)
    return _of_config(load_config(path, overrides))


def _of_config(config: Config) -> dict[str, Any]:
    """Sizes from the data as training reads and splits it (pandas, no torch); a stream's from
    its statistics pass, which reads every row group once."""
    if config.data.stream:
        from ..data.stream.stats import fit_stream, open_stream

        fit = fit_stream(config, open_stream(config))
        sizes = summarize_sizes(
            config, fit.prep.in_dim, fit.prep.out_dim, fit.task, fit.counts["train"]
        )
        return {"config": config.name, **sizes}
    from ..data import fit_preprocessor, load_dataset

    dataset = load_dataset(config)
    prep = fit_preprocessor(config, dataset)
    summary = summarize_sizes(config, prep.in_dim, prep.out_dim, dataset.task, len(dataset.train))
    return {"config": config.name, **summary}


def _of_model(path: Path) -> dict[str, Any]:
    """Sizes from a trained model's metadata, read and checked as eval reads it."""
    from ..runs.checkpoint import read_model_file
    from ..runs.folder import SUMMARY_FILE, read_json
    from ..serving.evaluate import model_path, require_network_file

    file = model_path(path)
    metadata = read_model_file(file).metadata
    require_network_file(metadata, path, "mlp summary")
    rows = 0
    if (file.parent / SUMMARY_FILE).is_file():  # a run folder's: how many rows it trained on
        counts = read_json(file.parent / SUMMARY_FILE).get("rows")
        train = counts.get("train") if isinstance(counts, dict) else None
        rows = train if isinstance(train, int) and not isinstance(train, bool) else 0
    return {"model": str(file), **summarize_metadata(metadata, rows)}


def summarize_metadata(metadata: dict[str, Any], train_rows: int) -> dict[str, Any]:
    """Sizes from a network's model-file metadata (its config and preprocessing), without
    torch: what a run's page shows from the header alone."""
    from ..config.schema import build_config
    from ..data import Preprocessor

    config = build_config(metadata["config"])
    prep = Preprocessor.from_dict(metadata["preprocessor"])
    return summarize_sizes(config, prep.in_dim, prep.out_dim, prep.task, train_rows)

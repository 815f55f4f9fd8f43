"""A sweep's kernel point: the config's data fitted by the kernel baseline into a run folder of
its own, which a sweep reads as it reads a trained trial's: config.yaml, summary.json (status,
metrics, and the fit) and model.safetensors (the kernel machine, with the metadata that
serving.evaluate.load needs to score it and draw its decision regions).
"""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ...config.registry import main_metric
from ...config.schema import Config
from ...data import Dataset
from ...model.kernel import KERNEL_KEY
from ...model.outputs import Split, target_scale
from ...runs.atomic import write_text_atomic
from ...runs.checkpoint import save_model
from ...runs.folder import (
    CONFIG_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    check_run_folder,
    create_run_dir,
    run_lock,
    write_json,
)
from ...version import __version__
from ..plan import plan_table
from .fit import predict_ms_per_1k_rows
from .kernel import fit_kernel, kernel_metrics


def fit_kernel_run(config: Config, run_dir: Path, dataset: Dataset | None = None) -> dict[str, Any]:
    """Fit the kernel baseline on the config's splits into `run_dir` (made, or an unfinished
    one reused: the fit has nothing to resume); its summary."""
    started = time.perf_counter()
    plan = plan_table(config.model_copy(update={"train": _with_kernel(config)}), dataset)
    if run_dir.is_dir():
        check_run_folder(run_dir)
    else:
        run_dir = create_run_dir(run_dir.parent, run_dir.name, explicit=True)
    with run_lock(run_dir):
        write_text_atomic(run_dir / CONFIG_FILE, config.to_yaml())
        dataset, prep, task = plan.dataset, plan.prep, plan.dataset.task
        cpu = torch.device("cpu")
        where = config.data.path or config.data.source
        splits = {
            name: Split.from_frame(prep, dataset.split(name), cpu, f"{where} ({name} split)")
            for name in ("train", "val", "test")
            if len(dataset.split(name))
        }
        scale = target_scale(prep, cpu)
        fit = fit_kernel(splits["train"], splits.get("val"), task, prep.out_dim, scale, config.seed)
        machine = fit.model
        metadata = {
            "config": config.to_dict(),
            "preprocessor": prep.to_dict(),
            "task": task,
            "epoch": 0,
            "versions": {"mlpcli": __version__, "torch": torch.__version__},
            "data": dataset.fingerprint(),
            KERNEL_KEY: fit.block(),
        }
        save_model(run_dir / MODEL_FILE, machine, metadata)
        stored = machine.stored_numbers()
        summary = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "name": run_dir.name,
            "status": "completed",
            "model": "kernel",
            "task": task,
            "main_metric": main_metric(task),
            "params": stored,  # what a sweep's params column shows: the numbers it stores
            "stored_numbers": stored,
            "metrics": kernel_metrics(machine, splits, task, scale),
            "predict_ms_per_1k_rows": predict_ms_per_1k_rows(machine, splits["train"].x),
            "kernel": fit.block(),
            "rows": {name: len(split) for name, split in splits.items()},
            "versions": {
                "mlpcli": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def _with_kernel(config: Config) -> Any:
    """The config's train section asking for the kernel baseline, so that planning checks the
    memory its fit needs."""
    return config.train.model_copy(update={"baseline": ["kernel"]})

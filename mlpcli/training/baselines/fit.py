"""The baselines of `train.baseline`, trained after the MLP on the same split tensors, and the
`baselines` block of summary.json that sets them beside the MLP: metrics, the numbers each
stores to predict, and what a prediction costs.

The linear baseline is the run's own config with no hidden layer (`model.hidden: []`), trained
with the same optimiser, schedule, epochs, early stopping and seed, so that the two are compared
on equal terms; the kernel baseline is fitted by kernel.py. torch is imported only to
train them: a sweep plans its baseline points with linear_raw() alone.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config.registry import BASELINES
from ...config.schema import Config, build_config
from ...console import BASELINE_LABEL, err
from ...errors import MlpError
from ...resources import memory
from ...runs.folder import SUMMARY_FILE, write_json

if TYPE_CHECKING:
    from torch import nn

    from ..run import Session

# predict_ms_per_1k_rows: the best of REPEATS timed predictions of TIMED_ROWS preprocessed
# training rows (repeated if there are fewer), on the CPU, one thread, after WARMUP untimed ones.
TIMED_ROWS = 1000
WARMUP = 2
REPEATS = 7


def linear_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """A raw config mapping made linear: no hidden layer, and no baseline of its own.

    An activation list has one entry per hidden layer, so with none it becomes the (unused)
    default; dropout and norm sit between hidden layers and have no effect here.
    """
    model = {**raw["model"], "hidden": []}
    if isinstance(model.get("activation"), list):
        model["activation"] = "relu"
    return {**raw, "model": model, "train": {**raw["train"], "baseline": False}}


def linear_config(config: Config) -> Config:
    """The same config with `model.hidden: []`."""
    return build_config(linear_raw(config.to_dict()), source=f"the {BASELINE_LABEL} of the config")


def add_baselines(
    session: Session, run_dir: Path, summary: dict[str, Any], quiet: bool = False
) -> dict[str, Any]:
    """The completed run's summary with its `baselines` block, also written to summary.json:
    `{mlp: entry, linear: entry, kernel: entry}` for the baselines asked for, each entry
    `{metrics: {train, val, test}, stored_numbers, predict_ms_per_1k_rows}` (and the kernel's
    fit), or `{stored_numbers, failed: reason}` for a baseline whose fit fails. With linear,
    also the `baseline` block: `{params, metrics, saved_epoch, epochs_run}` or `{params,
    failed}`.

    A failed baseline never fails the run: the MLP's run is complete by then and must not be
    lost to its baseline. An interrupt is recorded the same way before it is passed on, as the
    completed run cannot be resumed.
    """
    try:
        cost = predict_ms_per_1k_rows(session.trainer.model, session.splits["train"].x)
    except (RuntimeError, TypeError):  # e.g. a compiled model that cannot be copied to the CPU
        cost = None
    mlp = {
        "metrics": summary.get("metrics", {}),
        "stored_numbers": summary.get("params"),
        "predict_ms_per_1k_rows": cost,
    }
    summary = {**summary, "baselines": {"mlp": mlp}}
    for name in session.config.train.baseline:
        summary = _add(name, session, run_dir, summary, quiet)
    return summary


def _add(
    name: str, session: Session, run_dir: Path, summary: dict[str, Any], quiet: bool
) -> dict[str, Any]:
    """The summary with one more baseline's entry, written to summary.json."""
    fit = _linear if name == "linear" else _kernel
    entry: dict[str, Any] = {}
    extra: dict[str, Any] = {}  # the linear model's `baseline` block
    try:
        fit(session, entry, extra, quiet)
    except KeyboardInterrupt as exc:
        _failed(entry, extra, f"interrupted by {exc.args[0] if exc.args else 'SIGINT'}")
        write_json(run_dir / SUMMARY_FILE, _with(summary, name, entry, extra))
        raise
    except (MlpError, RuntimeError) as exc:  # RuntimeError: torch's, e.g. out of memory
        _failed(entry, extra, str(exc))
    summary = _with(summary, name, entry, extra)
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def _failed(entry: dict[str, Any], extra: dict[str, Any], reason: str) -> None:
    for block in (entry, extra):
        for key in ("metrics", "predict_ms_per_1k_rows", "saved_epoch", "epochs_run"):
            block.pop(key, None)
    entry["failed"] = reason
    if "params" in extra:
        extra["failed"] = reason


def _with(
    summary: dict[str, Any], name: str, entry: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    summary = {**summary, "baselines": {**summary["baselines"], name: entry}}
    if extra:
        summary["baseline"] = extra
    return summary


def _linear(session: Session, entry: dict[str, Any], block: dict[str, Any], quiet: bool) -> None:
    """Train the linear model; `block` gets the `baseline` block, `entry` its `baselines` one."""
    config = linear_config(session.config)
    params = memory.count_parameters(config, session.prep.in_dim, session.prep.out_dim)
    block["params"] = entry["stored_numbers"] = params
    if not quiet:
        err.print(f"training the {BASELINE_LABEL} (model.hidden: [], {params:,} parameters)")
    scores, model = _fit_and_score(session, config)
    block.update(scores)
    entry["metrics"] = scores["metrics"]
    entry["predict_ms_per_1k_rows"] = predict_ms_per_1k_rows(model, session.splits["train"].x)


def _kernel(session: Session, entry: dict[str, Any], block: dict[str, Any], quiet: bool) -> None:
    """Fit the kernel machine; `entry` gets its metrics, stored numbers, cost and fit."""
    from .kernel import LANDMARKS, MAX_EXACT_ROWS, fit_kernel, kernel_metrics

    splits, task = session.splits, session.dataset.task
    rows = len(splits["train"])
    if not quiet:
        how = "exact" if rows <= MAX_EXACT_ROWS else f"Nystroem, {LANDMARKS:,} landmarks"
        err.print(
            f"fitting the {BASELINES['kernel'].label} (RBF kernel ridge on {rows:,} rows, {how})"
        )
    started = time.perf_counter()
    fit = fit_kernel(
        splits["train"],
        splits.get("val"),
        task,
        session.prep.out_dim,
        session.trainer.target_scale,
        session.config.seed,
    )
    entry["fit_seconds"] = round(time.perf_counter() - started, 3)
    entry["metrics"] = kernel_metrics(fit.model, splits, task, session.trainer.target_scale)
    entry["stored_numbers"] = fit.model.stored_numbers()
    entry["predict_ms_per_1k_rows"] = predict_ms_per_1k_rows(fit.model, splits["train"].x)
    entry.update(fit.block())


def predict_ms_per_1k_rows(model: nn.Module, x: Any) -> float:
    """Milliseconds a model takes to predict 1,000 preprocessed rows (see TIMED_ROWS)."""
    import torch

    from ...model.outputs import predict_raw

    rows = x[torch.arange(TIMED_ROWS, device=x.device) % len(x)].detach().to("cpu")
    on_cpu = all(t.device.type == "cpu" for t in model.state_dict().values())
    model = model if on_cpu else copy.deepcopy(model).to("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _best_ms(lambda: predict_raw(model, rows))
    finally:
        torch.set_num_threads(threads)


def _best_ms(call: Callable[[], Any]) -> float:
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(min(times) * 1000 * 1000 / TIMED_ROWS, 4)


def _fit_and_score(session: Session, config: Config) -> tuple[dict[str, Any], nn.Module]:
    """Train the linear model on the session's split tensors; its metrics on every split, and
    the model."""
    import torch

    from ...model.factory import build_mlp
    from ...model.outputs import evaluate, read_floats
    from ...model.tasks import make_loss
    from ..trainer import Trainer

    splits, task = session.splits, session.dataset.task
    torch.manual_seed(config.seed)  # the MLP's seed, as prepare() uses it
    model = build_mlp(config.model, session.prep.in_dim, session.prep.out_dim)
    trainer = Trainer(
        config,
        model.to(session.trainer.device),
        make_loss(config, task),
        task,
        splits["train"],
        splits.get("val"),
        session.trainer.target_scale,
    )
    trainer.fit()  # no callbacks: no progress bar, no files
    metrics = {
        name: read_floats(
            evaluate(trainer.model, trainer.loss_fn, task, split, trainer.target_scale)
        )
        for name, split in splits.items()
    }
    scores = {"metrics": metrics, "saved_epoch": trainer.saved_epoch, "epochs_run": trainer.epoch}
    return scores, trainer.model

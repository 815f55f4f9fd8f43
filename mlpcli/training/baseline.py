"""The linear baseline: the run's own config with no hidden layer (`model.hidden: []`), trained
after the MLP on the same split tensors, with the same optimiser, schedule, epochs, early
stopping and seed, so that the two are compared on equal terms. torch is imported only to train
it: a sweep plans its baseline point with linear_raw() alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.schema import Config, build_config
from ..console import BASELINE_LABEL, err
from ..errors import MlpError
from ..resources import memory
from ..runs.folder import SUMMARY_FILE, write_json

if TYPE_CHECKING:
    from .run import Session


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


def add_baseline(
    session: Session, run_dir: Path, summary: dict[str, Any], quiet: bool = False
) -> dict[str, Any]:
    """The completed run's summary with its `baseline` block, also written to summary.json.

    The block is `{params, metrics: {train, val, test}, saved_epoch, epochs_run}`, or
    `{params, failed: reason}` when the baseline's training fails (a NaN or a diverging loss):
    the MLP's run is complete by then and must not be lost to its baseline. An interrupt is
    recorded the same way before it is passed on, as the completed run cannot be resumed.
    """
    config = linear_config(session.config)
    block: dict[str, Any] = {
        "params": memory.count_parameters(config, session.prep.in_dim, session.prep.out_dim)
    }
    if not quiet:
        err.print(
            f"training the {BASELINE_LABEL} (model.hidden: [], {block['params']:,} parameters)"
        )
    try:
        block.update(_fit_and_score(session, config))
    except MlpError as exc:
        block["failed"] = str(exc)
    except KeyboardInterrupt as exc:
        block["failed"] = f"interrupted by {exc.args[0] if exc.args else 'SIGINT'}"
        write_json(run_dir / SUMMARY_FILE, {**summary, "baseline": block})
        raise
    summary = {**summary, "baseline": block}
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def _fit_and_score(session: Session, config: Config) -> dict[str, Any]:
    """Train the linear model on the session's split tensors; its metrics on every split."""
    import torch

    from ..model.factory import build_mlp
    from ..model.outputs import evaluate, read_floats
    from ..model.tasks import make_loss
    from .trainer import Trainer

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
    return {"metrics": metrics, "saved_epoch": trainer.saved_epoch, "epochs_run": trainer.epoch}

"""Training one run into its run folder: a new run, a resumed one, or one continued to more
epochs; the folder's files, the final scores and the baseline. mlpcli.api.train calls it.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ..callbacks import Callback
from ..config.registry import main_metric
from ..config.schema import (
    UNRESULTED,
    Config,
    as_config,
    differences,
    load_config,
    stream_buffer,
)
from ..console import err
from ..data import Dataset, Preprocessor
from ..errors import (
    CheckpointError,
    ConfigError,
    Interrupted,
    MlpError,
    RunError,
    TrainingError,
    WriteError,
)
from ..model.factory import build_mlp, count_parameters, resolve_device
from ..model.outputs import Split, evaluate, read_floats, target_scale
from ..model.tasks import make_loss
from ..plots import loss_curve
from ..resources import memory
from ..runs.atomic import sweep_temporaries, write_text_atomic
from ..runs.checkpoint import CheckpointSaver, load_checkpoint, save_model
from ..runs.file_schemas import check_tensors, tensor_layout
from ..runs.folder import (
    CHECKPOINT,
    CONFIG_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    MetricsCsv,
    check_name_free,
    check_run_folder,
    completed_run,
    create_run_dir,
    read_json,
    run_lock,
    write_json,
)
from ..runs.mlflow_log import MlflowTracker
from ..runs.tracking import TensorBoard
from ..version import __version__
from .baselines.fit import add_baselines
from .diagnostics import DIAGNOSTICS_FILE, Diagnostics
from .distributed import SOLO, PeerLost, World, own_errors
from .engine import cpu_threads
from .lr_find import (
    AUTO,
    END,
    FIGURE,
    START,
    STEPS,
    LrFind,
    check_free,
    check_out,
    check_range,
    draw,
    draw_reserved,
    fresh_path,
    range_test,
    reserve,
    with_lr,
)
from .plan import RunPlan, StreamPlan, check_stream, plan_run, plan_table
from .progress import Progress
from .trainer import StreamSplit, Trainer, score_stream

if TYPE_CHECKING:
    from ..data.stream.stats import StreamFit

# The one setting a resumed run may change: more epochs continue it (see _more_epochs).
EPOCHS = "train.epochs"


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was asked for but not done, and why
    report: Path | None = None  # the page written with train.report


@dataclass
class Session:
    """Everything a run needs in memory, built before any folder is made."""

    config: Config  # optim.lr: auto resolved to the range test's rate
    dataset: Dataset | StreamFit  # the rows in memory, or a stream's statistics
    prep: Preprocessor
    trainer: Trainer
    splits: dict[str, Split]  # in memory; none for a stream
    lr_find: LrFind | None = None  # the range test that chose optim.lr, for optim.lr: auto
    streamed: dict[str, StreamSplit] = field(default_factory=dict)  # a stream's splits

    @property
    def scored(self) -> dict[str, Split | StreamSplit]:
        """The splits with rows, in memory or streamed: what the final metrics score."""
        return {**self.splits, **self.streamed}


def prepare(
    config: Config,
    dataset: Dataset | None = None,
    plan: RunPlan | StreamPlan | None = None,
    world: World = SOLO,
) -> Session:
    """Data, preprocessing, model, loss and trainer; every user error surfaces here, those that
    need no torch first (plan.plan_run, which a caller may have run already). With optim.lr:
    auto, the range test runs first, and the session's config holds the rate it chose.

    A dataset already loaded for this config's data section and seed may be passed in (a sweep
    worker reuses one across trials).
    """
    owned = dataset is None
    plan = plan or plan_run(config, dataset)
    if isinstance(plan, StreamPlan):
        return _prepare_stream(config, plan, world)
    dataset, prep = plan.dataset, plan.prep
    device = world.place(resolve_device(config.train.device))
    memory.check_for(plan.needs, config, device)
    splits = _splits(config, dataset, prep, device, ("train", "val", "test"))
    found = None
    if config.optim.lr == AUTO:
        found = _range_test(config, dataset, prep, splits, device) if world.is_main else None
        # Every process trains with process 0's rate.
        lr = float(world.share_text(repr(found.suggested_lr) if found is not None else None))
        config = with_lr(config, lr)
    trainer = _trainer(config, dataset, prep, splits, device, world)
    if owned:  # a sweep worker's data set serves its next trials too
        dataset.release_rows()
    return Session(config, dataset, prep, trainer, splits, found)


def _prepare_stream(config: Config, plan: StreamPlan, world: World) -> Session:
    """prepare() of a stream: the statistics pass over each process's row groups, merged across
    the processes; the model and a trainer over the stream, its val rows scored in chunks."""
    # Imported here: an in-memory run's start-up does not pay for the streaming modules.
    from ..data.stream.reader import TrainStream
    from ..data.stream.stats import fit_stream

    fit = fit_stream(config, plan.source, world.rank, world.size, world.gather_text)
    needs = check_stream(config, fit, world.size)
    device = world.place(resolve_device(config.train.device))
    memory.check_for(needs, config, device)
    where = f"{config.data.path} (training sample)"
    sample = Split.from_frame(fit.prep, fit.sample, device, where)
    streamed = {
        name: StreamSplit(fit, name) for name in ("train", "val", "test") if fit.counts[name]
    }
    stream = TrainStream(
        fit, config.seed, config.train.batch_size, stream_buffer(config), world.rank, world.size
    )
    torch.manual_seed(config.seed)
    model = build_mlp(config.model, fit.prep.in_dim, fit.prep.out_dim).to(device)
    trainer = Trainer(
        config,
        model,
        make_loss(config, fit.task),
        fit.task,
        stream,
        streamed.get("val"),
        target_scale(fit.prep, device),
        world,
        device=device,
        sample=sample,
    )
    return Session(config, fit, fit.prep, trainer, {}, streamed=streamed)


def _splits(
    config: Config, dataset: Dataset, prep: Preprocessor, device: torch.device, names: Sequence[str]
) -> dict[str, Split]:
    """The named splits that have rows, preprocessed, on the device."""
    where = config.data.path or config.data.source
    return {
        name: Split.from_frame(prep, dataset.split(name), device, f"{where} ({name} split)")
        for name in names
        if len(dataset.split(name))
    }


def _trainer(
    config: Config,
    dataset: Dataset,
    prep: Preprocessor,
    splits: dict[str, Split],
    device: torch.device,
    world: World,
) -> Trainer:
    """The model, seeded from the config, and its trainer."""
    torch.manual_seed(config.seed)
    model = build_mlp(config.model, prep.in_dim, prep.out_dim).to(device)
    return Trainer(
        config,
        model,
        make_loss(config, dataset.task),
        dataset.task,
        splits["train"],
        splits.get("val"),
        target_scale(prep, device),
        world,
    )


def _range_test(
    config: Config,
    dataset: Dataset,
    prep: Preprocessor,
    splits: dict[str, Split],
    device: torch.device,
    start: float = START,
    end: float = END,
    steps: int = STEPS,
) -> LrFind:
    """The range test on a model and trainer built as training builds them, in one process."""

    def build(lr: float) -> Trainer:
        return _trainer(with_lr(config, lr), dataset, prep, splits, device, SOLO)

    return range_test(build, start, end, steps, device)


def find_lr(
    config: Config | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    start: float = START,
    end: float = END,
    steps: int = STEPS,
    out: str | Path = "runs",
    output: str | Path | None = None,
    plot: bool = True,
    plan: RunPlan | None = None,
) -> LrFind:
    """The learning-rate range test of a config (`mlp lr-find`) on its training split, model and
    optimiser, with lr_find.png at `output`, else a fresh OUT/NAME-lr_find.png; no run folder
    is made, and the config and the caller's random state are left as they were."""
    check_range(start, end, steps)
    if output is not None:  # before the work, not after it
        check_free(Path(output))
    elif plot:
        check_out(Path(out))
    config = as_config(config, overrides)
    plan = plan or plan_table(config, what="mlp lr-find")
    device = resolve_device(config.train.device)
    memory.check_for(plan.needs, config, device)
    splits = _splits(config, plan.dataset, plan.prep, device, ("train",))
    found = _range_test(config, plan.dataset, plan.prep, splits, device, start, end, steps)
    if plot:
        name = config.name or "run"
        path = reserve(Path(output)) if output is not None else fresh_path(Path(out), name)
        own = config.optim.lr if isinstance(config.optim.lr, float) else None
        found.figure = draw_reserved(found, path, name, own)
    return found


def train(
    config: Config | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out: str | Path = "runs",
    name: str | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
    dataset: Dataset | None = None,
    plan: RunPlan | StreamPlan | None = None,
    world: World = SOLO,
    command: str | None = None,
    mlflow_run: dict[str, str] | None = None,
) -> TrainResult:
    """Train a config (a file path or a Config) and write its run folder.

    With resume, continue the run folder from its last checkpoint; the config must match the
    run's own config.yaml, but for a larger train.epochs, which continues the run (completed
    or not) to that many epochs and is recorded in its config.yaml and summary.json. A plan
    (plan.plan_run of the same config) spares checking again.

    In a run of several processes (a world from distributed.join, under torchrun) every process
    calls this with the same arguments: process 0 alone makes and writes the run folder, the
    others train alongside it, write nothing, and return the same run folder with an empty
    summary. `command`, the command line that started the run, is recorded in its summary.json.
    With train.mlflow, `mlflow_run` is the MLflow run to log into (a sweep's nested trial run;
    empty: none, the sweep could not reach MLflow), else the folder's own.
    """
    started = time.perf_counter()
    config = as_config(config, overrides)
    if resume is None:
        if name is not None and world.is_main:
            check_name_free(Path(out), name)
        session = prepare(config, dataset, plan, world)
        if not world.is_main:
            return _follow(session, Path(world.share_text(None)))
        run_dir = create_run_dir(Path(out), name or config.name or "run", explicit=name is not None)
        write_text_atomic(run_dir / CONFIG_FILE, session.config.to_yaml())  # optim.lr chosen
        world.share_text(str(run_dir))
        with run_lock(run_dir):
            summary = {**_started(command), **_record_lr_find(session, run_dir, quiet)}
            return _run(session, run_dir, summary, started, quiet, callbacks, mlflow_run)
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise RunError(f"--resume {run_dir}: no such run folder")
    check_run_folder(run_dir)  # a shared folder may hold links planted to redirect writes
    if not world.is_main:  # reads the same checkpoint; process 0 holds the folder's lock
        return _follow(_resumed(run_dir, config, dataset, plan, world)[0], run_dir)
    with run_lock(run_dir):
        session, more = _resumed(run_dir, config, dataset, plan, world)
        # A kill -9 leaves temporary files (never a final name) and may come before summary.json.
        sweep_temporaries(run_dir)
        summary_path = run_dir / SUMMARY_FILE
        summary = read_json(summary_path) if summary_path.exists() else _started(command)
        if more is not None or _sets_unresulted(run_dir, session.config):
            write_text_atomic(run_dir / CONFIG_FILE, session.config.to_yaml())
        if more is not None:
            summary["continued"] = [*summary.get("continued", []), more]
        return _run(session, run_dir, summary, started, quiet, callbacks, mlflow_run)


def _sets_unresulted(run_dir: Path, config: Config) -> bool:
    """True when a resume sets a setting that changes no result (train.mlflow, say) to other
    than the run's config.yaml says: config.yaml is written again, the record of the run from
    now on, so that it and what MLflow is sent agree."""
    saved = load_config(run_dir / CONFIG_FILE).to_dict()
    return any(key in UNRESULTED for key in differences(saved, config.to_dict()))


def _record_lr_find(session: Session, run_dir: Path, quiet: bool) -> dict[str, Any]:
    """For optim.lr: auto, the range test's figure in the run folder, a line on stderr, and
    what summary.json records of it; nothing otherwise."""
    found = session.lr_find
    if found is None:
        return {}
    figure = ""
    if session.config.train.plots:
        draw(found, run_dir / "plots" / FIGURE, run_dir.name)
        figure = f"; plots/{FIGURE}"
    if not quiet:
        stop = ", stopped early" if found.stopped_early else ""
        err.print(
            f"optim.lr auto: {found.suggested_lr:.3g}, suggested by a range test of "
            f"{len(found.lrs)} steps{stop} ({found.seconds:.2f} s{figure})",
            soft_wrap=True,
        )
    return {"lr_find": found.summary()}


def _resumed(
    run_dir: Path,
    config: Config,
    dataset: Dataset | None,
    plan: RunPlan | StreamPlan | None,
    world: World,
) -> tuple[Session, dict[str, Any] | None]:
    """The session of a run folder, its trainer at the state of the folder's checkpoint; and,
    for a run continued to more epochs, what summary.json records of that (else None)."""
    saved, config = _check_resume(run_dir, config)
    # Stopped before the first epoch ended: nothing to load, start the run afresh in place.
    checkpoint = run_dir / CHECKPOINT
    state = load_checkpoint(checkpoint) if checkpoint.exists() else None
    more = None
    if config.train.epochs != saved.train.epochs:
        more = _more_epochs(run_dir, saved, config, state)
    same = plan is not None and plan.config.to_dict() == config.to_dict()
    session = prepare(config, dataset, plan if same else None, world)
    if state is not None:
        # load_state_dict would silently cast int or bool weights: compare kinds first.
        expected = tensor_layout(session.trainer.model.state_dict())
        for weights in (state["model"], state["best"]["state"] or state["model"]):
            check_tensors(checkpoint, tensor_layout(weights), expected, "its weights")
        try:
            session.trainer.load_state_dict(state)
        except (
            KeyError,
            ValueError,
            RuntimeError,
            TypeError,
            AttributeError,
            IndexError,
        ) as exc:
            raise CheckpointError(
                f"{checkpoint}: does not fit this run's model and settings "
                f"({exc.__class__.__name__}: {str(exc)[:120]})"
            ) from None
        if more is not None:
            session.trainer.train_on()
    return session, more


def _more_epochs(
    run_dir: Path, saved: Config, config: Config, state: dict[str, Any] | None
) -> dict[str, Any]:
    """What a resume with another train.epochs continues, as summary.json records it; refused
    unless there are more epochs to run than the checkpoint has run."""
    run = state["epoch"] if state is not None else 0
    if state is None and completed_run(run_dir):
        raise CheckpointError(
            f"--resume {run_dir}: train.epochs={config.train.epochs}: the run has no "
            f"{CHECKPOINT} to continue from"
        )
    if config.train.epochs <= run:
        raise ConfigError(
            f"train.epochs={config.train.epochs}: --resume {run_dir} has already run {run} "
            f"epochs; to train it further, give train.epochs above {run}"
        )
    return {
        "after_epoch": run,
        "epochs_from": saved.train.epochs,
        "epochs_to": config.train.epochs,
        "stopped_early": bool(state is not None and state["stopped_early"]),
    }


def _follow(session: Session, run_dir: Path) -> TrainResult:
    """A process other than 0 trains alongside process 0 and writes nothing.

    A failure that stops every process at the same step (a NaN, a diverging loss) makes it score
    a stream's best weights with process 0, as after completing, then wait for process 0 to
    record the failure: the launcher stops the remaining processes as soon as one ends with an
    error, and would otherwise cut process 0 short as it writes. An error in rows only this
    process reads is reported by this process (process 0 sees only that it stopped).
    """
    trainer = session.trainer
    with own_errors(trainer.world):  # a row group of this process's alone: it says which
        try:
            trainer.fit()
        except PeerLost:
            raise
        except TrainingError:
            if session.streamed and trainer.best_state is not None:
                trainer.restore_best()  # as process 0's _finish does
                _final_metrics(session)
            trainer.world.wait_for_main()
            raise
        if session.streamed and trainer.best_state is not None:
            _final_metrics(session)  # process 0 scores the same rows with this one's share
    return TrainResult(run_dir, {})


def _started(command: str | None = None) -> dict[str, Any]:
    """A new run's first entries in summary.json: when it started, and the command that did."""
    started = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return {**started, "command": command} if command is not None else started


def _run(
    session: Session,
    run_dir: Path,
    summary: dict[str, Any],
    started: float,
    quiet: bool,
    callbacks: Sequence[Callback],
    mlflow_run: dict[str, str] | None = None,
) -> TrainResult:
    """Fit with the run folder's callbacks and finish the folder however fitting ends; with
    train.mlflow, the MLflow run ends too, FINISHED, FAILED or KILLED."""
    trainer = session.trainer
    diagnostics = session.config.train.diagnostics
    board = TensorBoard(run_dir) if session.config.train.tensorboard else None
    saver = CheckpointSaver(run_dir / CHECKPOINT, every=session.config.train.checkpoint_seconds)
    tracker = MlflowTracker(run_dir, saver, mlflow_run) if session.config.train.mlflow else None
    trainer.callbacks = [
        MetricsCsv(run_dir / "metrics.csv"),
        *([board] if board is not None else []),  # before diagnostics: it logs their records
        *(
            [
                Diagnostics(
                    run_dir / DIAGNOSTICS_FILE,
                    diagnostics.every,
                    diagnostics.rows,
                    board.add_diagnostics if board is not None else None,
                )
            ]
            if diagnostics is not None
            else []
        ),
        saver,
        *([tracker] if tracker is not None else []),  # after the saver: it sends what is saved
        Progress(main_metric(session.dataset.task), quiet=quiet),
        *callbacks,
    ]
    resume_hint = f"mlp train {run_dir / 'config.yaml'} --resume {run_dir}"
    if trainer.world.size > 1:  # the same processes draw the same batches again
        resume_hint += f" --nproc {trainer.world.size}"
    try:
        try:
            write_json(run_dir / SUMMARY_FILE, {**summary, **_summary(session, run_dir, "running")})
            _fit(session, run_dir, started, resume_hint)
            summary = _finish(session, run_dir, "completed", started)
        except WriteError as exc:  # a full or read-only disk: the last checkpoint is intact
            raise WriteError(
                f"{exc}; once it can be written, continue with: {resume_hint}"
            ) from None
        if session.config.train.baseline:  # once the MLP is saved, so that it cannot change it
            summary = add_baselines(session, run_dir, summary, quiet)
    except BaseException as exc:
        if tracker is not None:
            stopped = isinstance(exc, (Interrupted, PeerLost, KeyboardInterrupt))
            tracker.end("KILLED" if stopped else "FAILED")
        raise
    if tracker is not None:
        tracker.finish(summary)
    return TrainResult(run_dir, summary)


def _fit(session: Session, run_dir: Path, started: float, resume_hint: str) -> None:
    """trainer.fit(), recording in the run folder how it ended when it did not complete."""
    trainer = session.trainer
    try:
        trainer.fit()
    except PeerLost as exc:  # killed or crashed elsewhere: resumable, as after an interrupt
        _finish(session, run_dir, "stopped", started, final=False, error=exc)
        raise _left(PeerLost(f"{exc}; continue with: {resume_hint}"), run_dir) from None
    except TrainingError as exc:
        _finish(session, run_dir, "failed", started, error=exc)
        trainer.world.wait_for_main()  # the other processes stopped at the same step
        where = f"run folder: {run_dir}"
        if trainer.best_state is not None:
            where = (
                f"the model from epoch {trainer.best_epoch} is kept; {where}; `mlp inspect "
                f"{run_dir} --at last` shows each layer's gradients before it failed"
            )
        raise _left(TrainingError(f"{exc} ({where})"), run_dir) from None
    except KeyboardInterrupt as exc:
        _finish(session, run_dir, "stopped", started, final=False, error="interrupted")
        raise _left(Interrupted(*exc.args, resume_hint=resume_hint), run_dir) from None
    except WriteError as exc:
        # Recording the failure would most likely fail the same way.
        with contextlib.suppress(MlpError):
            _finish(session, run_dir, "failed", started, final=False, error=exc)
        raise
    except BaseException as exc:
        _finish(session, run_dir, "failed", started, final=False, error=exc)
        raise


def _first_line(error: BaseException | str) -> str:
    """What ended a run, in one line: an error's own words (its type's name when it has none,
    or for an error that is not one of mlp's)."""
    if isinstance(error, str):
        return error
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, MlpError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


E = TypeVar("E", MlpError, Interrupted)


def _left(exc: E, run_dir: Path) -> E:
    """An error that ended training once the run folder recorded it: the folder it left, for
    what is written after a run ends (its page, with train.report) to be written for it too."""
    exc.run_dir = run_dir
    return exc


def _check_resume(run_dir: Path, config: Config) -> tuple[Config, Config]:
    """(the run's own config, the config to resume with): the run's own, or with another
    train.epochs to continue it; any other difference is refused, key by key, as is a
    completed run with nothing to add."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"--resume {run_dir}: not a run folder (no config.yaml)")
    saved = load_config(run_dir / CONFIG_FILE)
    if config.optim.lr == AUTO:  # the rate the run's own range test chose
        config = with_lr(config, saved.optim.lr)
    differ = [
        key
        for key in differences(saved.to_dict(), config.to_dict())
        if key != EPOCHS and key not in UNRESULTED
    ]
    if differ:
        raise ConfigError(
            f"--resume {run_dir}: the config differs from the run's config.yaml at "
            f"{', '.join(differ[:5])}; a resumed run keeps its own settings (only {EPOCHS} "
            f"may change, to train it for more epochs)"
        )
    epochs = saved.train.epochs
    if completed_run(run_dir) and config.train.epochs == epochs:
        run = read_json(run_dir / SUMMARY_FILE).get("epochs_run")
        early = f", stopped early after {run}" if isinstance(run, int) and run < epochs else ""
        raise RunError(
            f"--resume {run_dir}: this run has already completed ({EPOCHS} {epochs}{early}); "
            f"to train it for more epochs, add {EPOCHS}=N with N above {epochs}"
        )
    if config.train.epochs == epochs:  # the run's own, with this resume's report and mlflow
        saved = saved.model_copy(deep=True)
        saved.train.report, saved.train.mlflow = config.train.report, config.train.mlflow
        return saved, saved
    return saved, config


def _summary(session: Session, run_dir: Path, status: str) -> dict[str, Any]:
    trainer = session.trainer
    return {
        "name": run_dir.name,
        "status": status,
        "task": session.dataset.task,
        "main_metric": main_metric(session.dataset.task),
        "monitor": trainer.monitor,
        "best_epoch": trainer.best_epoch,
        "saved_epoch": trainer.saved_epoch,
        "epochs_run": trainer.epoch,
        "stopped_early": trainer.stopped_early,
        **({"stopped_by": trainer.stopped_by} if trainer.stopped_by else {}),
        "params": count_parameters(trainer.model),
        "device": str(trainer.device),
        "engine": trainer.engine.name,
        "threads": trainer.threads or torch.get_num_threads(),
        "processes": trainer.world.size,
        "rows": {name: len(split) for name, split in session.scored.items()},
        "versions": {
            "mlpcli": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def _finish(
    session: Session,
    run_dir: Path,
    status: str,
    started: float,
    final: bool = True,
    error: BaseException | str | None = None,
) -> dict[str, Any]:
    """Score the best weights on every split, save the model, plot, and write summary.json
    (with `error`'s first line as its `error` when the run did not complete)."""
    trainer = session.trainer
    if status != "completed":
        trainer.restore_best()  # never keep the weights of a failed or half-done epoch
    summary = {**read_json(run_dir / SUMMARY_FILE), **_summary(session, run_dir, status)}
    summary.pop("error", None)  # an earlier attempt's, before a resume
    if error is not None:
        summary["error"] = _first_line(error)
    unscored: list[str] = []  # the final metrics that are not finite
    if final and trainer.best_state is not None:
        # A stream is scored by every process together: they complete or fail at the same step.
        metrics = _final_metrics(session)
        summary["metrics"] = metrics
        save_model(run_dir / MODEL_FILE, trainer.model, _model_metadata(session))
        unscored = [
            f"{split} {key} {value}"
            for split, values in metrics.items()
            for key, value in values.items()
            if not math.isfinite(value)
        ]
        if status == "completed" and unscored:  # a completed run reports every metric
            summary["status"] = "failed"
            summary["error"] = f"the final metrics are not finite ({', '.join(unscored)})"
    if trainer.history and session.config.train.plots:
        loss_curve(
            trainer.history,
            run_dir / "plots" / "loss.png",
            main_metric(session.dataset.task),
            run_dir.name,
            trainer.saved_epoch,
            trainer.best_epoch,
            trainer.monitor,
        )
    n_train = len(session.scored["train"])
    summary.update(
        # A resumed run adds this process's time to the earlier ones'.
        seconds=round(summary.get("seconds", 0.0) + time.perf_counter() - started, 3),
        train_seconds=round(trainer.train_seconds, 3),
        samples_per_second=round(trainer.epoch * n_train / max(trainer.train_seconds, 1e-9), 1),
    )
    write_json(run_dir / SUMMARY_FILE, summary)
    if status == "completed" and unscored:
        raise TrainingError(
            f"the final metrics are not finite ({', '.join(unscored)}): the predictions are too "
            f"far from the targets to score in float64, so the run is marked failed (the model "
            f"is kept; run folder: {run_dir})"
        )
    return summary


def _final_metrics(session: Session) -> dict[str, dict[str, float]]:
    """Loss and metrics of the trainer's model on every split. A stream's splits are scored in
    one read of its row groups, summed over the processes, each reading its own (every process
    calls this, after a completed run and after a failure alike)."""
    trainer = session.trainer
    metrics = {
        name: read_floats(
            evaluate(trainer.model, trainer.loss_fn, trainer.task, split, trainer.target_scale)
        )
        for name, split in session.splits.items()
    }
    if session.streamed:
        # On the training's threads, as each epoch's validation: a small model's chunks on
        # every core wait on each other and on the reading thread (ten times slower here).
        with cpu_threads(trainer.threads):
            metrics.update(
                score_stream(
                    trainer.model,
                    trainer.loss_fn,
                    trainer.task,
                    list(session.streamed.values()),
                    trainer.target_scale,
                    trainer.device,
                    trainer.world,
                )
            )
    return metrics


def _data_fingerprint(session: Session) -> dict[str, Any]:
    """What eval checks before it reads a split again: the files read and each split's rows;
    for a stream, its files' footers and each split's row count."""
    data = session.dataset
    if isinstance(data, Dataset):
        return data.fingerprint()
    return {"stream": data.source.fingerprint(), "counts": dict(data.counts)}


def _model_metadata(session: Session) -> dict[str, Any]:
    return {
        "config": session.config.to_dict(),
        "preprocessor": session.prep.to_dict(),
        "task": session.dataset.task,
        "epoch": session.trainer.saved_epoch,
        "versions": {"mlpcli": __version__, "torch": torch.__version__},
        "data": _data_fingerprint(session),  # what eval checks before drawing a split again
    }

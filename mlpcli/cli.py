"""The `mlp` command: parses arguments, calls one library function per command, renders the result.

Imports nothing heavy at module level, so `mlp --help` and `mlp config show` stay instant; each
command imports the library it calls. Only this module turns errors into exit codes.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import json
import os
import re
import signal
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperCommand

from .config.registry import BASELINES, PRUNERS, SEARCHES, executors_text, names_text
from .console import (
    baselines_table,
    columns_table,
    confusion_table,
    err,
    inspect_table,
    kept_epoch,
    metrics_table,
    number,
    out,
    per_class_table,
    printable,
    probe_table,
    search_table,
    settings_text,
    summary_table,
    sweep_table,
)
from .errors import Interrupted, MlpError

if TYPE_CHECKING:
    from .config.schema import Config

app = typer.Typer(
    name="mlp",
    help="Train, evaluate and use multi-layer perceptrons described in YAML files.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130  # a refused input exits with its MlpError's code, 2
_debug = False

F = TypeVar("F", bound=Callable[..., Any])


# A --baseline value: names (linear, kernel) and commas (spaces beside them allowed), nothing
# a path or override holds.
BASELINE_VALUE = re.compile(r"[A-Za-z_][\w-]*(\s*,\s*[A-Za-z_][\w-]*)*")


class BaselineCommand(TyperCommand):
    """A command whose --baseline takes an optional value: alone it means linear; `--baseline
    kernel` or `--baseline linear,kernel` names the models (typer offers no optional values,
    so the arguments are rewritten before click parses them). An argument after --baseline
    that is not a list of names (KEY=VALUE, a path, an option) keeps its own meaning."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, baseline_args(args))


def baseline_args(args: list[str]) -> list[str]:
    """The arguments with each bare `--baseline [NAMES]` written as `--baseline=NAMES`."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # what follows is positional
            return out + args[i:]
        if arg != "--baseline":
            out.append(arg)
            i += 1
            continue
        value = args[i + 1] if i + 1 < len(args) else ""
        named = BASELINE_VALUE.fullmatch(value) is not None
        out.append(f"--baseline={value if named else 'linear'}")
        i += 2 if named else 1
    return out


BASELINE_HELP = (
    "Also train baselines on the same split: "
    + "; ".join(f"{name} ({entry.about})" for name, entry in BASELINES.items())
    + "; or a list (linear,kernel); alone: linear."
)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback for errors."),
) -> None:
    global _debug
    _debug = debug


def handle_errors(command: F) -> F:
    """Turn library errors into one message and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _sigterm_as_interrupt():
                return command(*args, **kwargs)
        except MlpError as exc:
            if _debug:
                err.print_exception()
            if not _other_process() or _met_alone(exc):
                err.print(f"[bold red]error:[/] {escape(terminal_safe(str(exc)))}", soft_wrap=True)
            _keep_exit_code()
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            _keep_exit_code()
            if _other_process():
                raise typer.Exit(EXIT_INTERRUPTED) from None
            hint = exc.resume_hint if isinstance(exc, Interrupted) else None
            how = f" by {exc.args[0]}" if exc.args else ""
            err.print(
                f"[yellow]interrupted{how}[/]"
                + (f"; continue with: {escape(terminal_safe(hint))}" if hint else ""),
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _other_process() -> bool:
    """Whether this is a process other than 0 of a run under torchrun: process 0 reports the
    run's errors (every process meets a config or training error alike), the others stay quiet."""
    from .training.distributed import launched_rank

    return launched_rank() != 0


def _met_alone(exc: MlpError) -> bool:
    """Whether this process of several met the error alone (in rows only it reads): then it
    reports it, as process 0 sees only that it stopped."""
    from .training.distributed import ProcessError

    return isinstance(exc, ProcessError)


def _keep_exit_code() -> None:
    """In one of several processes: torch's launcher stops the others as soon as one ends with
    an error, so a process that has settled on its exit code (every process stops at the same
    step on a NaN) ignores that stop while it exits, rather than end by the signal."""
    from .training.distributed import launched_size

    if launched_size() > 1 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def terminal_safe(text: str) -> str:
    """Control characters other than newline and tab written as escapes (\\x1b, \\x07): a
    label or a path in a message must not retitle, clear or otherwise drive the terminal."""
    return "".join(
        f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" and c not in "\n\t" else c
        for c in text
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (`kill`, a job scheduler's stop) like Ctrl-C: a run saves its checkpoint,
    says how to resume, and exits 130. Ctrl-C reaches a sweep's worker processes through the
    terminal; a SIGTERM sent to this process does not, so it is passed on to them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: Any) -> None:
        import multiprocessing

        for worker in multiprocessing.active_children():
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop) or signal.SIG_DFL  # None: set from C
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@app.command(cls=BaselineCommand)
@handle_errors
def train(
    context: typer.Context,
    config: Path = typer.Argument(
        None,
        metavar="CONFIG",
        help="The experiment's YAML file (with --resume: the run's config.yaml if left out).",
    ),
    overrides: list[str] = typer.Argument(None, help="KEY=VALUE overrides, e.g. optim.lr=3e-4"),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Folder for run folders."),
    name: str = typer.Option(None, "--name", help="Run folder name (default: config name + time)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Seed of the weights, dropout and batch order; the data keeps its split "
        "(data.seed; seed=N moves both).",
    ),
    resume: Path = typer.Option(None, "--resume", help="Continue this run from its checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    baseline: str = typer.Option(None, "--baseline", metavar="[NAMES]", help=BASELINE_HELP),
    tensorboard: bool = typer.Option(
        False, "--tensorboard", help="Log to RUN/tb/ for TensorBoard (needs mlpcli[tensorboard])."
    ),
    mlflow: bool = typer.Option(
        False, "--mlflow", help="Log to MLflow (MLFLOW_TRACKING_URI; needs mlpcli[mlflow])."
    ),
    report: bool = typer.Option(
        False, "--report", help="Write the run's page, RUN/report.html, when it ends."
    ),
    nproc: int = typer.Option(
        None,
        "--nproc",
        min=1,
        help="Train in N processes of this machine, data parallel, through torch's launcher.",
    ),
) -> None:
    """Train the model a config describes and write a run folder."""
    from .config.schema import load_config, seed_overrides

    config, overrides = _train_config(config, list(overrides or []), resume)
    extra = list(overrides or [])
    if device is not None:
        extra.append(f"train.device={device}")
    if seed is not None:
        extra += seed_overrides(config, list(overrides or []), seed)
    if baseline is not None:
        extra.append(f"train.baseline={baseline}")  # so the run's config.yaml records it
    if tensorboard:
        extra.append("train.tensorboard=true")
    if report:
        extra.append("train.report=true")
    if mlflow:
        extra.append("train.mlflow=true")
    # Every mistake in the config or its data is reported before torch is imported; one in
    # the config alone, before pandas too.
    checked = load_config(config, extra)
    from .training.plan import plan_run

    plan = plan_run(checked)
    command = _typed_command(context)
    if nproc is not None and nproc > 1:
        os.environ[COMMAND_ENV] = command  # the processes record the command as typed
        try:
            code = _launch(plan.config, _command_line(context, leave_out={"nproc"}), nproc)
        finally:
            del os.environ[COMMAND_ENV]
        if code:
            raise typer.Exit(code)
        return
    from .api import train as run_training
    from .training.distributed import join

    with join(plan.config.train.device, plan.config) as world:
        result = run_training(
            plan.config,
            out=out_dir,
            name=name,
            resume=resume,
            quiet=quiet,
            plan=plan,
            world=world,
            command=command,
        )
    if not world.is_main:
        return
    for note in result.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    _wrote_page(result.report)
    summary = result.summary
    baselines = summary.get("baselines", {})
    for key, entry in baselines.items():
        if "failed" in entry:
            reason = escape(terminal_safe(entry["failed"]))
            label = BASELINES[key].label if key in BASELINES else key
            err.print(f"[yellow]note:[/] the {label} failed: {reason}", soft_wrap=True)
    if as_json:
        _print_json({"run_dir": str(result.run_dir), **summary})
        return
    title = f"run {result.run_dir}"
    if baselines:
        labels = {"mlp": "MLP", **{name: entry.label for name, entry in BASELINES.items()}}
        out.print(baselines_table(baselines, labels, title=title))
    else:
        out.print(metrics_table(summary.get("metrics", {}), title=title))
    out.print(
        f"{kept_epoch(summary)}{' (stopped early)' if summary['stopped_early'] else ''} · "
        f"{summary['params']:,} parameters · {summary['device']} · "
        f"{summary['train_seconds']:.1f} s training"
    )


def _train_config(
    config: Path | None, overrides: list[str], resume: Path | None
) -> tuple[Path, list[str]]:
    """CONFIG and the overrides as given; with --resume and no CONFIG (`mlp train --resume RUN
    train.epochs=N`, where the first override lands in CONFIG's place), the run's config.yaml."""
    from .runs.folder import CONFIG_FILE

    if resume is not None and (config is None or ("=" in str(config) and not config.exists())):
        return resume / CONFIG_FILE, [str(config)] * (config is not None) + overrides
    if config is None:
        raise typer.BadParameter(
            "missing: give the experiment's YAML file (or --resume RUN)", param_hint="CONFIG"
        )
    return config, overrides


def _command_line(context: typer.Context, leave_out: set[str]) -> list[str]:
    """The arguments of the running command as its parameters parsed them, less `leave_out`:
    what each process of `--nproc` is started with. Read from the command's own parameters, so
    an option added to the command travels without being listed here."""
    args: list[str] = []
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if param.name in leave_out or value is None or value == param.default:
            continue
        if param.param_type_name == "argument":
            args += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


# How the processes of `mlp train --nproc N` learn the command line their parent was given.
COMMAND_ENV = "MLPCLI_COMMAND"


def _typed_command(context: typer.Context) -> str:
    """The command line that started this command, for summary.json: the arguments as typed
    when run as `mlp` or `python -m mlpcli`, the parent's under `--nproc`, and otherwise (the
    app called from Python, as by typer's CliRunner) as its parameters parsed them."""
    import shlex

    from .training.distributed import launched_size

    if launched_size() > 1 and COMMAND_ENV in os.environ:
        return os.environ[COMMAND_ENV]
    program = Path(sys.argv[0])
    if program.name == "mlp" or program.parent.name == "mlpcli":
        return shlex.join(["mlp", *sys.argv[1:]])
    return shlex.join(["mlp", context.info_name or "", *_command_line(context, leave_out=set())])


def _launch(config: Config, args: list[str], nproc: int) -> int:
    """`mlp train ARGS` in nproc processes through torch's launcher; their exit code."""
    from .model.factory import resolve_device
    from .training.distributed import check_processes, launch, launched_size

    if launched_size() > 1:
        raise typer.BadParameter(
            "this process is already one of several that torchrun started; leave --nproc out",
            param_hint="--nproc",
        )
    check_processes(config, nproc, resolve_device(config.train.device).type)
    return launch(args, nproc)


@app.command("eval")
@handle_errors
def eval_(
    run: Path = typer.Argument(..., help="A run folder or a model.safetensors file."),
    data: Path = typer.Option(
        None, "--data", help="A labelled CSV, Parquet or NPZ file, or a folder of Parquet files."
    ),
    split: str = typer.Option("test", "--split", help="test, val or train (without --data)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the metrics as JSON (flat; a classifier's classes added)."
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Classifiers: draw the confusion matrix to plots/confusion.png."
    ),
) -> None:
    """Score a trained model on its test split or on a labelled file; a classifier's confusion
    matrix and per-class precision, recall and F1 too."""
    if split not in ("test", "val", "train"):
        raise typer.BadParameter(f"'{split}'; accepted: test, val, train", param_hint="--split")
    from .api import evaluate as score_run

    result = score_run(run, data, split, plot=plot)
    if as_json:
        _print_json(result.to_dict())
    else:
        title = escape(terminal_safe(f"{run.name} on {result.scored}"))  # the user's text
        metrics = {"data" if data is not None else split: result.metrics}
        out.print(metrics_table(metrics, title=title))
        if result.labels is not None and result.confusion and result.per_class:
            labels = [terminal_safe(str(label)) for label in result.labels]
            out.print()
            out.print(per_class_table(labels, result.per_class))
            matrix = confusion_table(labels, result.confusion)
            out.print()
            out.print(matrix if matrix is not None else _matrix_elsewhere(len(labels)))
    if result.figure is not None:
        err.print(f"wrote {escape(terminal_safe(str(result.figure)))}", soft_wrap=True)


def _matrix_elsewhere(classes: int) -> str:
    return f"the confusion matrix of {classes} classes is in --json and --plot"


@app.command()
@handle_errors
def predict(
    run: Path = typer.Argument(..., help="A run folder or a model.safetensors file."),
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="CSV, Parquet or NPZ rows, or a folder of Parquet files."
    ),
    output: Path = typer.Option(None, "-o", "--output", help="Write .csv or .parquet here."),
    proba: bool = typer.Option(False, "--proba", help="Add class probability columns."),
) -> None:
    """Predict the target for every row of a file, or of a folder of Parquet files (a chunk of
    rows at a time when it would not fit in memory); prints CSV unless -o is given."""
    from .api import predict_to

    if output is not None:
        rows = predict_to(run, input_path, output, proba=proba)
        err.print(f"wrote {rows:,} rows to {escape(terminal_safe(str(output)))}")
        return
    sys.stdout.flush()
    # A pipe or a file gets the exact bytes; a terminal, escapes.
    stream = _TerminalBytes() if sys.stdout.isatty() else sys.stdout.buffer
    predict_to(run, input_path, stream, proba=proba)
    sys.stdout.buffer.flush()


class _TerminalBytes(io.RawIOBase):
    """stdout for bytes of UTF-8 text, control characters written as escapes (terminal_safe),
    a character cut between two writes decoded whole."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        text = terminal_safe(self.decoder.decode(bytes(data)))
        sys.stdout.buffer.write(text.encode("utf-8"))
        return len(data)


@app.command(cls=BaselineCommand)
@handle_errors
def sweep(
    context: typer.Context,
    config: Path = typer.Argument(..., help="The base experiment's YAML file."),
    overrides: list[str] = typer.Argument(None, help="KEY=VALUE overrides of the base config."),
    hidden: str = typer.Option(None, "--hidden", help="Hidden widths to try, e.g. 8,16,32,64."),
    depth: str = typer.Option(None, "--depth", help="Numbers of hidden layers, e.g. 1,2,3."),
    params: str = typer.Option(
        None, "--params", help="Parameter budgets, e.g. 2000: each --depth gets the nearest width."
    ),
    grid: list[str] = typer.Option(None, "--grid", help="KEY=V1,V2,... (repeatable)."),
    seeds: int = typer.Option(None, "--seeds", min=1, help="Repeat every point with N seeds."),
    search: str = typer.Option(
        None, "--search", help=f"How trials are chosen: {names_text(SEARCHES)} [grid]."
    ),
    trials: int = typer.Option(None, "--trials", min=1, help="A search's number of trials."),
    prune: str = typer.Option(
        None, "--prune", help=f"Stop hopeless trials of a search: {names_text(PRUNERS)} [none]."
    ),
    space: list[str] = typer.Option(
        None,
        "--space",
        help="KEY=SPEC searched, e.g. optim.lr=log(1e-4,1e-1), model.dropout=uniform(0,0.5), "
        "train.batch_size=int(16,256,log), model.hidden=choice([16],[64,64]) (repeatable).",
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Seed of the trials' training and of the search's sampler; the data keeps its split.",
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Worker processes (default: cores)."
    ),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Folder for the sweep folder."),
    name: str = typer.Option(None, "--name", help="Sweep folder name."),
    resume: Path = typer.Option(
        None, "--resume", help="Continue this sweep: finished trials are kept."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    baseline: str = typer.Option(
        None, "--baseline", metavar="[NAMES]", help=BASELINE_HELP + " Each is one more point."
    ),
    executor: str = typer.Option(
        "local", "--executor", help=f"Where trials run: {executors_text()}."
    ),
    address: str = typer.Option(
        None, "--address", help="Ray: the cluster's HOST:PORT (default: Ray on this machine)."
    ),
    cpus_per_trial: int = typer.Option(
        None, "--cpus-per-trial", min=1, help="Ray: CPUs (and torch threads) per trial [1]."
    ),
    gpus_per_trial: float = typer.Option(
        None, "--gpus-per-trial", min=0, help="Ray: GPUs per trial [0]."
    ),
    retries: int = typer.Option(
        None, "--retries", min=0, help="Ray: reruns of a trial whose worker died [2]."
    ),
    shared_dir: bool = typer.Option(
        False, "--shared-dir", help="Ray: trials write in the sweep folder (seen by all nodes)."
    ),
    mlflow: bool = typer.Option(
        False, "--mlflow", help="Log to MLflow: the sweep's run, each trial nested under it."
    ),
    report: bool = typer.Option(
        False, "--report", help="Write the sweep's page, SWEEP/report.html, when it ends."
    ),
) -> None:
    """Train a grid of variations of a config, or search a space of them, and compare them."""
    from .api import sweep as run_sweep
    from .config.schema import seed_overrides
    from .sweeps.executors.local import ray_options_of
    from .sweeps.grid import parse_values

    ray = ray_options_of(
        executor,
        workers,
        address=address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        retries=retries,
        shared_dir=shared_dir,
    )
    extra = list(overrides or [])
    if seed is not None:
        extra += seed_overrides(config, list(overrides or []), seed)
    if mlflow:
        extra.append("train.mlflow=true")
    if report:
        extra.append("train.report=true")
    try:
        result = run_sweep(
            config,
            extra + ([f"train.baseline={baseline}"] if baseline is not None else []),
            hidden=parse_values(hidden, "--hidden") if hidden else None,
            depth=parse_values(depth, "--depth") if depth else None,
            params=parse_values(params, "--params") if params else None,
            grid=list(grid or []),
            seeds=seeds,
            search=search,
            trials=trials,
            prune=prune,
            space=list(space or []),
            workers=workers,
            out=out_dir,
            name=name,
            resume=resume,
            quiet=quiet,
            ray=ray,
            command=_typed_command(context),
        )
    except Interrupted as exc:
        if as_json:  # how the result is shown is the command line's, not the sweep's
            exc.resume_hint += " --json"
        raise
    summary = result.summary
    if as_json:
        _print_json({"sweep_dir": str(result.sweep_dir), **summary})
    elif "search" in summary:
        out.print(search_table(summary))
        _search_lines(summary, result.sweep_dir)
    else:
        out.print(sweep_table(summary))
        best = summary["best"]
        if best:
            metric = summary["main_metric"]
            out.print(
                f"best: {settings_text(best['settings'])}  val {metric} "
                f"{number(best[f'val_{metric}_mean'])}"
            )
        out.print(
            f"{summary['completed']} of {summary['trials']} trials completed, "
            f"{summary['failed']} failed · {result.sweep_dir}"
        )
    for note in result.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    _wrote_page(result.report)
    if summary["failed"]:
        for trial, reason in summary["failures"].items():
            err.print(f"[red]{trial} failed:[/] {escape(reason)}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)


def _search_lines(summary: dict[str, Any], sweep_dir: Path) -> None:
    """A search's best trial with the command that trains it again, and what pruning saved."""
    import shlex

    from .runs.folder import SWEEP_FILE

    metric, best = summary["main_metric"], summary["best"]
    if best:
        command = shlex.join(["mlp", "train", str(sweep_dir / SWEEP_FILE)])
        out.print(
            f"best: {summary['best_trial']}  val {metric} {number(best[f'val_{metric}_mean'])}"
            f"  ·  {escape(command)} {escape(summary['overrides'] or '')}",
            soft_wrap=True,
        )
    ran, full = summary["epochs"], summary["epochs_without_pruning"]
    share = f" ({100 * ran / full:.0f}%)" if full else ""
    out.print(
        f"{summary['completed']} completed, {summary['pruned']} pruned, {summary['failed']} "
        f"failed of {summary['trials']} trials · {ran} of {full} epochs{share} · {sweep_dir}"
    )


@app.command()
@handle_errors
def summary(
    target: Path = typer.Argument(
        ..., metavar="CONFIG|RUN", help="A config file, a run folder or a model file."
    ),
    overrides: list[str] = typer.Argument(None, help="KEY=VALUE overrides of a config."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The network layer by layer: widths, activations, parameters, multiply-adds per row."""
    from .api import summary as summarize

    result = summarize(target, list(overrides or []))
    if as_json:
        _print_json(result)
        return
    out.print(summary_table(result))
    per_row = result["params_per_train_row"]
    out.print(
        f"{result['params']:,} parameters · {result['multiply_adds']:,} multiply-adds per row"
        + (f" · {per_row:g} parameters per training row" if per_row is not None else "")
    )


@app.command()
@handle_errors
def init(
    table: Path = typer.Argument(..., help="A CSV, Parquet or NPZ file."),
    target: list[str] = typer.Option(
        None, "--target", "-t", help="The column to predict; repeat for several."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="The config to write (default: TABLE's stem .yaml, here)."
    ),
    name: str = typer.Option(None, "--name", help="The config's name (run folders' prefix)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write a commented starter config for a table; without --target, list its columns."""
    from .api import init_config

    result = init_config(table, list(target or []), output, name=name, force=force)
    if as_json:
        _print_json(result.to_dict())
        return
    columns = [c.to_dict() for c in result.columns]
    read = f"{result.rows_read:,} of {result.rows:,} rows read ({result.sampled})"
    out.print(columns_table(columns, title=escape(terminal_safe(str(table)))))
    err.print(escape(read), soft_wrap=True)
    if result.path is None:
        guess = result.likely_target
        hint = ""
        if guess:
            hint = f"; a likely target ({printable(guess[1])}): {_target_hint(guess[0])}"
        err.print(
            f"nothing written: add --target COL to write a config{escape(hint)}", soft_wrap=True
        )
        return
    err.print(
        f"task {result.task} ({escape(terminal_safe(result.task_reason or ''))}); "
        f"wrote {escape(terminal_safe(str(result.path)))}; train it: "
        f"{escape(terminal_safe(result.command or ''))}",
        soft_wrap=True,
    )


def _target_hint(column: str) -> str:
    """--target COL to copy, or, for a name a terminal cannot show as written (a newline, an
    escape byte, a bidi control), a pointer to the table: a copied escape would name another
    column."""
    import shlex

    if printable(column) != column:
        return f"column {printable(column)} in the table above (its name is not printable)"
    return f"--target {shlex.quote(column)}"


@app.command()
@handle_errors
def plot(
    target: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder, a model file, or a sweep folder (--boundary)."
    ),
    boundary: bool = typer.Option(
        False, "--boundary", help="Decision regions or output surface over two features."
    ),
    features: str = typer.Option(
        None,
        "--features",
        help="The two numeric features, e.g. x1,x2; a name may hold a comma (default: the "
        "first two).",
    ),
    neurons: bool = typer.Option(
        False, "--neurons", help="With --boundary: each first-layer unit over the same grid."
    ),
    detectors: bool = typer.Option(
        False, "--detectors", help="First-layer weights as images (image inputs)."
    ),
    data: Path = typer.Option(
        None,
        "--data",
        help="A labelled CSV, Parquet or NPZ file whose rows are drawn instead of the run's.",
    ),
) -> None:
    """Draw what a trained network learned into the run's plots/ folder."""
    if (features is not None or neurons) and not boundary:
        flag = "--features" if features is not None else "--neurons"
        raise typer.BadParameter("applies to --boundary; add --boundary", param_hint=flag)
    if not (boundary or detectors):
        hint = "--boundary / --detectors"
        raise typer.BadParameter("give one of them, or both", param_hint=hint)
    from .api import plot as plot_run

    result = plot_run(
        target,
        boundary=boundary,
        detectors=detectors,
        features=features,
        neurons=neurons,
        data=data,
    )
    for note in result.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    for path in result.paths:
        err.print(f"wrote {escape(terminal_safe(str(path)))}")


@app.command()
@handle_errors
def inspect(
    run: Path = typer.Argument(..., help="A run folder."),
    at: str = typer.Option("best", "--at", help="init, best or last: which weights to inspect."),
    data: Path = typer.Option(
        None,
        "--data",
        help="A labelled CSV, Parquet or NPZ file whose rows are probed instead of the run's.",
    ),
    probes: bool = typer.Option(
        False, "--probes", help="Fit a linear probe on each layer's representation."
    ),
    noise: bool = typer.Option(
        False, "--noise", help="Estimate the gradient noise scale against the batch size."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Why the network learns or fails: gradients, dead and saturated units, layer by layer."""
    from .api import inspect as inspect_run
    from .insight.inspection import AT

    if at not in AT:
        raise typer.BadParameter(f"'{at}'; accepted: {', '.join(AT)}", param_hint="--at")

    report, written = inspect_run(run, at, data, probes=probes, noise=noise)
    if as_json:
        _print_json(report.to_dict())
        return
    title = escape(terminal_safe(f"{run} at {at} (epoch {report.epoch})"))
    out.print(inspect_table(report.layers, title=title))
    out.print(report.verdict)
    for line in report.advice:
        out.print(f"  - {escape(line)}", soft_wrap=True)
    if report.probes is not None:
        rows = report.probes.rows
        table = probe_table([p.to_dict() for p in report.probes.probes], rows["held_out"])
        out.print(table)
        out.print(f"linear probes: {escape(report.probes.verdict)}", soft_wrap=True)
    if report.noise is not None:
        out.print(f"gradient noise scale: {escape(report.noise.verdict)}", soft_wrap=True)
    for note in report.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    err.print(f"wrote {', '.join(escape(terminal_safe(str(p))) for p in written)}", soft_wrap=True)


def _wrote_page(path: Path | None) -> None:
    """Where --report wrote the page, and its size, on stderr (stdout stays the result's)."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        size = f" ({path.stat().st_size / 1024:,.0f} KB)"
        err.print(f"wrote {escape(terminal_safe(str(path)))}{size}", soft_wrap=True)


@app.command()
@handle_errors
def report(
    target: Path = typer.Argument(..., metavar="RUN|SWEEP", help="A run folder or a sweep folder."),
    output: Path = typer.Option(
        None, "-o", "--output", help="The .html file to write (default: RUN/report.html)."
    ),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    no_draw: bool = typer.Option(
        False, "--no-draw", help="Draw no missing figure; show what the folder holds."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write one self-contained HTML page of a run or a sweep: figures, tables, config."""
    from .api import report as write_page

    page = write_page(target, output, draw=not no_draw)
    for note in page.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    if as_json:
        _print_json(
            {"path": str(page.path), "kind": page.kind, "bytes": page.bytes, "notes": page.notes}
        )
    else:
        size = f"{page.bytes / 1024:,.0f} KB"
        out.print(f"wrote {escape(terminal_safe(str(page.path)))} ({size})", soft_wrap=True)
    if open_page:
        import webbrowser

        webbrowser.open(page.path.resolve().as_uri())


@app.command()
@handle_errors
def export(
    run: Path = typer.Argument(..., help="A run folder or a model.safetensors file."),
    fmt: str = typer.Option("onnx", "--format", help="onnx: one self-contained .onnx file."),
    output: Path = typer.Option(
        None, "-o", "--output", help="The .onnx file to write (default: RUN/model.onnx)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export the model with its preprocessing and output transform, checked by onnxruntime."""
    from .api import export as export_run

    exported = export_run(run, fmt, output)
    if as_json:
        _print_json(exported.to_dict())
        return
    size = exported.path.stat().st_size
    err.print(
        f"wrote {escape(terminal_safe(str(exported.path)))} ({size / 1024:.1f} KiB) and "
        f"{escape(terminal_safe(exported.sidecar.name))}; onnxruntime on "
        f"{escape(exported.checked_on)} ({exported.rows_checked:,} rows): largest difference "
        f"from mlp predict {exported.max_difference:.2g}",
        soft_wrap=True,
    )


@app.command("lr-find")
@handle_errors
def lr_find(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The experiment's YAML file."),
    overrides: list[str] = typer.Argument(None, help="KEY=VALUE overrides, e.g. optim.name=sgd"),
    start: float = typer.Option(1e-7, "--start", help="The first step's learning rate."),
    end: float = typer.Option(10.0, "--end", help="The last step's learning rate."),
    steps: int = typer.Option(100, "--steps", help="Training steps, each rate one factor up."),
    out_dir: Path = typer.Option(
        Path("runs"), "--out", help="Folder for the figure, NAME-lr_find.png (a fresh name)."
    ),
    output: Path = typer.Option(
        None, "-o", "--output", help="The figure's file instead (never overwritten)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rates and losses as JSON."),
) -> None:
    """The learning-rate range test: the rate grows from --start to --end over --steps training
    steps; suggests optim.lr and draws the loss against it. No run folder is made."""
    from .config.schema import load_config
    from .training.lr_find import check_free, check_out, check_range

    # The options, the config and its data are checked before torch is imported.
    check_range(start, end, steps)
    if output is not None:
        check_free(output)
    else:
        check_out(out_dir)
    checked = load_config(config, list(overrides or []))
    from .training.plan import plan_table

    plan = plan_table(checked, what="mlp lr-find")
    from .api import lr_find as find_lr

    found = find_lr(
        plan.config, start=start, end=end, steps=steps, out=out_dir, output=output, plan=plan
    )
    if as_json:
        _print_json(found.to_dict())
    else:
        stop = (
            f"; stopped at {found.lrs[-1]:.2g}, the smoothed loss past 4x its best"
            if found.stopped_early
            else ""
        )
        out.print(
            f"suggested optim.lr {found.suggested_lr:.3g} (valley rule; steepest descent of the "
            f"smoothed loss at {found.steepest_lr:.3g})",
            soft_wrap=True,
        )
        out.print(
            f"{len(found.lrs)} steps from {start:g} to {end:g} in {found.seconds:.2f} s{stop}",
            soft_wrap=True,
        )
    if found.figure is not None:
        err.print(f"wrote {escape(terminal_safe(str(found.figure)))}", soft_wrap=True)


@app.command("runs")
@handle_errors
def runs_command(
    folder: Path = typer.Argument(
        Path("runs"), metavar="[DIR]", help="The folder holding run and sweep folders [runs]."
    ),
    sort: str = typer.Option(
        None,
        "--sort",
        help="Best first by a metric: val_accuracy, test_loss, ...; a bare name (accuracy) is "
        "its validation value. Default: newest first.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list."),
) -> None:
    """List every run and sweep under DIR: status, start, epochs, main metric, parameters and
    the settings that differ. Reads only each run's summary.json, config.yaml and lock."""
    # The API's list_runs itself, imported from its module: mlpcli.api loads pydantic, which
    # would double this command's start-up.
    from .runs.listing import list_runs

    rows = list_runs(folder, sort)
    if as_json:
        _print_json([r.to_dict() for r in rows])
        return
    if not rows:
        err.print(f"no runs in {escape(terminal_safe(str(folder)))}", soft_wrap=True)
        return
    sys.stdout.write(_runs_table(rows))


def _runs_table(rows: list[Any]) -> str:
    """Aligned plain-text columns, the last one as long as it needs: a rich Table of a hundred
    rows takes longer to lay out than the whole listing takes to read."""
    metrics = {r.main_metric for r in rows if r.main_metric}
    shared = metrics.pop() if len(metrics) == 1 else ""  # one main metric: said once, above
    header = ["name", "status", "started", "epochs", "val", "test", "params", "settings / notes"]
    right = {3, 4, 5, 6}
    lines: list[list[str]] = []
    for row in rows:
        shown = {
            _clipped(k): _clipped(str(v))
            for k, v in list(row.settings.items())[:RUN_SETTINGS_SHOWN]
        }
        notes = settings_text(shown) if shown else ""
        if row.kind == "sweep":
            best = f", best {row.best_trial}" if row.best_trial else ""
            notes = f"sweep: {row.trials} trials{best}"
        if row.problem:
            notes = (notes + "; " if notes else "") + row.problem
        scores = [
            "" if v is None else (f"{_clipped(row.main_metric)} " if not shared else "") + number(v)
            for v in (row.val, row.test)
        ]
        lines.append(
            [
                printable(row.name),
                row.status,
                _local_time(row.started),
                "" if row.epochs is None else str(row.epochs),
                *scores,
                "" if row.params is None else f"{row.params:,}",
                printable(notes),
            ]
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]

    def text(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join([*padded, cells[-1]]).rstrip() + "\n"

    title = f"val and test: {_clipped(shared)}\n" if shared else ""
    return title + "".join(text(cells) for cells in [header, *lines])


def _local_time(stamp: str | None) -> str:
    """summary.json's `started` (UTC) in this machine's time, to the minute."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def _fact(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return escape(_clipped(str(value)))


def _clipped(text: str) -> str:
    """A value from a run's own files as one printable line of at most CELL_CHARS characters
    (a hand-edited config can hold a megabyte in one key; --json has it whole)."""
    text = printable(text)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


CELL_CHARS = 60
RUN_SETTINGS_SHOWN = 4  # settings per row in `mlp runs`' table; --json holds them all


@app.command()
@handle_errors
def compare(
    runs: list[Path] = typer.Argument(..., metavar="RUN_A RUN_B [RUN ...]", help="Run folders."),
    output: Path = typer.Option(
        None, "-o", "--output", help="A PNG of every run's loss curves (never overwritten)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Runs side by side: the settings that differ, the metrics of every split, epochs,
    parameters and times; with -o, their loss curves in one figure."""
    from .api import compare as compare_runs

    result = compare_runs(list(runs), output)
    if as_json:
        _print_json(result.to_dict())
    else:
        for table in _compare_tables(result):
            out.print(table)
    for note in result.notes:
        err.print(f"note: {escape(terminal_safe(note))}", soft_wrap=True)
    if result.figure is not None:
        err.print(f"wrote {escape(terminal_safe(str(result.figure)))}", soft_wrap=True)


def _compare_tables(result: Any) -> list[Any]:
    from rich.table import Table

    names = [escape(_clipped(r.name)) for r in result.runs]

    def table(title: str, first: str) -> Any:
        made = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
        made.add_column(first)
        for name in names:
            made.add_column(name, justify="right", overflow="fold")
        return made

    settings = table("settings that differ", "key")
    for key, values in result.settings.items():
        shown = [escape(_clipped(str(v))) for v in values]
        settings.add_row(escape(_clipped(key)), *shown)
    if not result.settings:
        settings.add_row("(none: the configs are the same)", *[""] * len(names))
    metrics = table("metrics", "metric")
    groups = [("", result.metrics)] + [(f"{b} ", m) for b, m in result.baselines.items()]
    for prefix, block in groups:
        for split, values in block.items():
            for name, row in values.items():
                cells = ["-" if v is None else number(v) for v in row]
                metrics.add_row(escape(_clipped(f"{prefix}{split} {name}")), *cells)
    facts = table("run", "")
    for label, attr in (
        ("status", "status"),
        ("epochs run", "epochs"),
        ("kept epoch", "kept_epoch"),
        ("best epoch", "best_epoch"),
        ("parameters", "params"),
        ("seconds", "seconds"),
        ("training seconds", "train_seconds"),
    ):
        facts.add_row(label, *(_fact(getattr(r, attr)) for r in result.runs))
    facts.add_row("started", *(_local_time(r.started) for r in result.runs))
    return [settings, metrics, facts]


@config_app.command("show")
@handle_errors
def config_show(
    config: Path = typer.Argument(..., help="The experiment's YAML file."),
    overrides: list[str] = typer.Argument(None, help="KEY=VALUE overrides."),
) -> None:
    """Print the resolved config, every default filled."""
    from .config.schema import load_config

    sys.stdout.write(load_config(config, list(overrides or [])).to_yaml())


@config_app.command("schema")
@handle_errors
def config_schema(
    output: Path = typer.Option(
        None,
        "-o",
        "--output",
        help="Write the schema to this file instead of stdout (a schema written before is "
        "rewritten; any other existing file is refused).",
    ),
) -> None:
    """Print the JSON Schema of a config: every key, type, default, allowed name and
    description, for editors (the `# yaml-language-server: $schema=...` comment) and validators."""
    from .api import config_schema as make_schema
    from .config.json_schema import schema_text

    schema = make_schema(output)
    if output is None:
        sys.stdout.write(schema_text(schema))
    else:
        err.print(f"wrote {escape(terminal_safe(str(output)))}", soft_wrap=True)

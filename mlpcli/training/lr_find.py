"""The learning-rate range test (`mlp lr-find`, `optim.lr: auto`): a short run whose rate grows
exponentially from step to step, its loss smoothed, and a rate read off the curve.

It follows fastai's lr_find and torch-lr-finder: rates from 1e-7 to 10 over 100 steps, the loss
smoothed exponentially (beta 0.98, bias-corrected), stopped once the smoothed loss passes 4x its
best; the suggestion is fastai's valley rule (halfway down the longest descent), and the
steepest descent of the smoothed loss is reported beside it. Importing this module imports no
torch, so that the options are checked before it is paid for.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..config.schema import Config
from ..errors import ConfigError, RunError, TrainingError
from ..plots import literal, pyplot, save_figure

if TYPE_CHECKING:
    import torch

    from .trainer import Trainer

AUTO = "auto"  # optim.lr: auto
START, END, STEPS = 1e-7, 10.0, 100
MIN_STEPS = 20  # fewer leave no curve to read once the first and last points are skipped
MAX_STEPS = 2000  # the valley rule takes steps**2 / 2 comparisons
BETA = 0.98  # the smoothing of the loss
STOP_FACTOR = 4.0  # stop once the smoothed loss passes this times its best
SKIP_END = 5  # the last points, where the loss turns upwards, are no candidates
MIN_CURVE = 5  # points a suggestion needs: fewer would only echo --start
FIGURE = "lr_find.png"


@dataclass
class LrFind:
    """A range test: each step's rate and smoothed loss (and raw loss, for the figure), the
    suggested rate, and whether the loss blew up before the last step."""

    suggested_lr: float
    lrs: list[float]
    losses: list[float]
    stopped_early: bool
    steepest_lr: float  # the smoothed loss's steepest descent, drawn beside the suggestion
    raw_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """What `mlp lr-find --json` prints."""
        found: dict[str, Any] = {
            "suggested_lr": self.suggested_lr,
            "lrs": self.lrs,
            "losses": self.losses,
            "stopped_early": self.stopped_early,
        }
        if self.figure is not None:
            found["figure"] = str(self.figure)
        return found

    def summary(self) -> dict[str, Any]:
        """What summary.json records of the test that chose a run's optim.lr."""
        return {
            "suggested_lr": self.suggested_lr,
            "stopped_early": self.stopped_early,
            "steps": len(self.lrs),
            "seconds": round(self.seconds, 3),
        }


def check_range(start: float = START, end: float = END, steps: int = STEPS) -> None:
    """Refuse a range that cannot make a curve, naming the option."""
    for option, value in (("--start", start), ("--end", end)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"{option} {value}: a learning rate is a positive number")
        if not math.isfinite(value):
            raise ConfigError(f"{option} {value}: a learning rate is a finite number")
    if start >= end:
        raise ConfigError(f"--start {start:g} --end {end:g}: --start must be below --end")
    if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_STEPS <= steps <= MAX_STEPS:
        raise ConfigError(
            f"--steps {steps}: expected {MIN_STEPS} to {MAX_STEPS} steps (default {STEPS}); "
            f"fewer make no curve to read"
        )


def rates(start: float, end: float, steps: int) -> list[float]:
    """Step i's rate, start * (end / start) ** (i / (steps - 1)): from start to end exactly,
    each rate the previous times one constant factor."""
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


class Smoother:
    """An exponential moving average of the losses, bias-corrected as fastai's AvgSmoothLoss:
    avg = beta * avg + (1 - beta) * loss, reported as avg / (1 - beta ** count)."""

    def __init__(self, beta: float = BETA) -> None:
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta**self.count)


def window(count: int, steps: int) -> tuple[int, int]:
    """The points a suggestion reads, [low, high): all but the first steps // 10 and the last
    SKIP_END, as fastai and torch-lr-finder leave them out (the first are noise around the
    untrained loss, the last the blow-up); a curve too short for that is read whole."""
    low, high = steps // 10, count - SKIP_END
    if high - low < MIN_CURVE:
        low, high = 0, count
    if high - low < MIN_CURVE:
        raise TrainingError(
            f"the range test's loss passed {STOP_FACTOR:g}x its best within {count + 1} steps: "
            f"no curve to read; a range test from a lower rate draws one"
        )
    return low, high


def steepest(lrs: list[float], losses: list[float]) -> int:
    """The index of the most negative slope of loss against log10(lr): central differences,
    one-sided at the ends, as numpy.gradient takes them."""
    x = [math.log10(lr) for lr in lrs]
    last = len(x) - 1
    slopes = [
        (losses[min(i + 1, last)] - losses[max(i - 1, 0)])
        / (x[min(i + 1, last)] - x[max(i - 1, 0)])
        for i in range(len(x))
    ]
    return min(range(len(slopes)), key=slopes.__getitem__)


def valley(losses: list[float]) -> int:
    """fastai's valley rule: the longest run of ever lower losses (a decreasing subsequence,
    taken to span from `length` points before its last one), and the point halfway down it."""
    longest = [1] * len(losses)  # the longest decreasing subsequence that ends at each point
    end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end = i
    start = end - longest[end]
    third = (end - start) / 3
    return min(max(start + int(third) + int(third / 2), 0), len(losses) - 1)


def suggest(lrs: list[float], losses: list[float], steps: int) -> tuple[float, float]:
    """(the suggested rate, the steepest descent's rate) of a smoothed curve, each read in
    window(): the suggestion by the valley rule, which fastai's lr_find suggests by default;
    the steepest descent lies to the right of the loss's real steepest fall, since the
    smoothing averages the losses of the steps before it."""
    low, high = window(len(lrs), steps)
    lrs, losses = lrs[low:high], losses[low:high]
    return lrs[valley(losses)], lrs[steepest(lrs, losses)]


def with_lr(config: Config, lr: float | Literal["auto"]) -> Config:
    """A copy of the config with optim.lr set to lr (a number, or auto); the config itself is
    left as it is."""
    copy = config.model_copy(deep=True)
    copy.optim.lr = lr
    return copy


def range_test(
    build: Callable[[float], Trainer],
    start: float = START,
    end: float = END,
    steps: int = STEPS,
    device: torch.device | None = None,
) -> LrFind:
    """Run the test on the trainer that build(start) makes (the config's model, seeded as for
    training, with its optimiser at rate start) on `device`, from its training split in its
    batch size, an epoch after another if the split is short. The random state of the CPU and
    of that device is the caller's again afterwards; the trainer is the test's own, and is
    thrown away."""
    import torch

    began = time.perf_counter()
    # Only the device in use: forking every GPU's state would start CUDA for a CPU run.
    cuda = []
    if device is not None and device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        trainer = build(start)
        lrs, raw, smoothed, stopped = _steps(trainer, rates(start, end, steps))
    suggested, steep = suggest(lrs, smoothed, steps)
    return LrFind(suggested, lrs, smoothed, stopped, steep, raw, time.perf_counter() - began)


def _steps(
    trainer: Trainer, schedule: list[float]
) -> tuple[list[float], list[float], list[float], bool]:
    """One training step per rate; the rates and losses seen, and whether it stopped early."""
    from .engine import cpu_threads

    engine, optimizer, data = trainer.engine, trainer.optimizer, trainer.train_data
    grad_clip = trainer.config.train.grad_clip
    smoother, best = Smoother(), math.inf
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    engine.model.train()
    with cpu_threads(trainer.threads), engine.context():
        batches = _batches(len(data), trainer.config.train.batch_size, trainer.generator)
        for lr, index in zip(schedule, batches):
            for group in optimizer.param_groups:
                group["lr"] = lr
            # One read per step: the test decides at every step whether to go on.
            loss = engine.loss(data.x.index_select(0, index), data.y.index_select(0, index))
            value = float(loss.item())
            if not math.isfinite(value):
                return lrs, raw, smoothed, True
            average = smoother.add(value)
            lrs.append(lr)
            raw.append(value)
            smoothed.append(average)
            if average > STOP_FACTOR * best:
                return lrs, raw, smoothed, True
            best = min(best, average)
            engine.update(optimizer, grad_clip)
    return lrs, raw, smoothed, False


def _batches(rows: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of shuffled epochs, one after another, as training draws them (a trailing
    batch of one row folded away)."""
    import torch

    stop = rows - 1 if rows % batch_size == 1 and rows > 1 else rows
    while True:
        order = torch.randperm(rows, device=generator.device, generator=generator)
        for start in range(0, stop, batch_size):
            yield order[start : min(start + batch_size, stop)]


# ---------------------------------------------------------------- the figure


def check_free(path: Path) -> None:
    """Refuse to overwrite a file given by -o: checked before the test, and again as the name
    is reserved."""
    if os.path.lexists(path):
        raise RunError(f"-o {path}: already exists; give another file name or remove it")


def check_out(out: Path) -> None:
    """Refuse an --out that is not a folder (or a folder to be made): checked before the test."""
    if os.path.lexists(out) and not out.is_dir():
        raise RunError(f"--out {out}: not a folder; give the folder the figure goes in")


def reserve(path: Path) -> Path:
    """The file -o names, created empty here so that nothing else takes it meanwhile."""
    if not _reserve(path):
        check_free(path)
    return path


def fresh_path(out: Path, name: str) -> Path:
    """OUT/NAME-lr_find.png, or NAME-lr_find-2.png, -3, ... when taken: the name is reserved
    by creating the file, so two tests at once never share one."""
    stem = f"{name}-{Path(FIGURE).stem}"
    for attempt in range(1, 10_000):
        path = out / (f"{stem}-{attempt}.png" if attempt > 1 else f"{stem}.png")
        if _reserve(path):
            return path
    raise RunError(f"--out {out}: no free name for {stem}.png; remove some of them")


def _reserve(path: Path) -> bool:
    """Create the file if no entry has its name (a link included); whether it did."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder should be
        raise RunError(f"{path.parent}: not a folder; the figure goes in a folder") from None
    except OSError as exc:
        raise RunError(f"{path.parent}: cannot be made ({exc.strerror})") from None
    try:
        with open(path, "x"):
            return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise RunError(f"{path}: cannot be written ({exc.strerror})") from None


def draw_reserved(found: LrFind, path: Path, title: str, config_lr: float | None = None) -> Path:
    """draw() into a name reserve() or fresh_path() made; a failure leaves no empty file."""
    try:
        return draw(found, path, title, config_lr)
    except BaseException:
        if path.is_file() and not path.stat().st_size:
            path.unlink()
        raise


def draw(found: LrFind, path: Path, title: str, config_lr: float | None = None) -> Path:
    """The smoothed loss against the rate on a log axis (each step's own loss faint behind it),
    the suggestion marked, and the config's own rate where it has one."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if found.raw_losses:
        ax.plot(
            found.lrs,
            found.raw_losses,
            color="tab:blue",
            alpha=0.25,
            linewidth=0.8,
            label="loss of each step",
        )
    ax.plot(found.lrs, found.losses, color="tab:blue", label=f"smoothed (beta {BETA})")
    for lr, colour, style, what in (
        (found.steepest_lr, "tab:orange", ":", "steepest descent of the smoothed loss"),
        (found.suggested_lr, "tab:red", "--", "suggested (valley)"),
    ):
        at = found.lrs.index(lr)
        ax.plot(
            [lr], [found.losses[at]], "o", color=colour, markersize=7, label=f"{what}: {lr:.2g}"
        )
        ax.axvline(lr, color=colour, linestyle=style, linewidth=1)
    if config_lr is not None:
        ax.axvline(
            config_lr,
            color="grey",
            linestyle=":",
            linewidth=1.2,
            label=f"the config's optim.lr: {config_lr:g}",
        )
    ax.set_xscale("log")
    low = min(found.losses + found.raw_losses)
    # Up to half again the untrained loss: the blow-up at the end would flatten the curve.
    top = max(found.losses[0], low) * 1.5 or 1.0
    ax.set_ylim(low - 0.05 * (top - low), top)
    ax.set(xlabel="learning rate", ylabel="training loss")
    stop = "; stopped once the loss passed 4x its best" if found.stopped_early else ""
    ax.set_title(literal(f"{title}: range test, {len(found.lrs)} steps{stop}"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)

"""Helpers shared by the test modules (imported as `from conftest import ...`)."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlpcli.callbacks import Callback


def assert_exit_2(result: Any, *needles: str) -> None:
    """A CliRunner result refused with exit 2, no traceback, each needle named on stderr."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


def resume_hint(stderr: str) -> list[str]:
    """The arguments of the command an interrupted `mlp` printed to continue with."""
    found = re.search(r"continue with: (.+)", stderr)
    assert found, stderr
    return shlex.split(found[1])


class InterruptAt(Callback):
    """Stops training as Ctrl-C does, at the end of the given epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: Any, record: dict[str, float]) -> None:
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def saved_figures(monkeypatch: Any) -> dict[str, Any]:
    """Every figure a command saves from now on, by file name ('gradients.png'), written as
    usual: plots.save_figure is replaced, where it is and where modules imported it."""
    import mlpcli.plots as plots

    # A module first imported while an earlier test had replaced it holds that replacement:
    # each one names the original, so that it is found and replaced again.
    original = getattr(plots.save_figure, "__wrapped__", plots.save_figure)
    figures: dict[str, Any] = {}

    def keep(fig: Any, path: Path) -> Path:
        figures[Path(path).name] = fig
        return original(fig, path)

    keep.__wrapped__ = original  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):
        found = getattr(module, "save_figure", None) if name.startswith("mlpcli") else None
        if found is not None and getattr(found, "__wrapped__", found) is original:
            monkeypatch.setattr(module, "save_figure", keep)
    return figures


def drawn_text(text: Any) -> str | None:
    """What a matplotlib Text draws: its string as written, or None where it is read as
    mathtext (an even number of `$` not escaped as `\\$`)."""
    string = text.get_text()
    dollars = string.count("$") - string.count("\\$")
    if text.get_parse_math() and dollars and dollars % 2 == 0:
        return None
    return string.replace("\\$", "$") if text.get_parse_math() else string


# matplotlib's log tick labels: $\mathdefault{10^{-2}}$, $\mathdefault{2\times10^{-1}}$
TICK_POWER = re.compile(
    r"^\$\\mathdefault\{(?:([0-9.]+)\\times ?)?([0-9]+)\^\{([-\u2212]?[0-9]+)\}\}\$$"
)


def tick_value(label: Any) -> float:
    """The number a tick label shows: plain ('20', '0.01') or a power that matplotlib writes
    as mathtext ('$\\mathdefault{2\\times10^{-1}}$'), which must then be drawn as mathtext
    (never as the raw string)."""
    text = label.get_text()
    power = TICK_POWER.match(text)
    if power is not None:
        assert drawn_text(label) is None, f"{text!r} is drawn as written, not as a number"
        mantissa, base, exponent = power.groups()
        return float(mantissa or 1) * float(base) ** int(exponent.replace("\u2212", "-"))
    assert "$" not in text and "mathdefault" not in text, text
    return float(text.replace("\u2212", "-"))


def log_tick_labels(fig: Any) -> list[tuple[float, float]]:
    """(place, value shown) of every labelled tick in view on the figure's log axes, once
    drawn; each label is checked to be a number (tick_value)."""
    fig.canvas.draw()
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            low, high = sorted(axis.get_view_interval())
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                label, place = tick.label1, tick.get_loc()
                if label.get_visible() and label.get_text() and low <= place <= high:
                    found.append((place, tick_value(label)))
    return found


@contextmanager
def pruning_trials(trials: Collection[int], step: int = 2) -> Iterator[None]:
    """Within it, a search's pruner prunes the trials numbered `trials` at epoch `step` and no
    other, whatever their values: pruned trials a test can count on."""
    import optuna

    import mlpcli.sweeps.search.driver as driver

    class PruneSome(optuna.pruners.BasePruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return trial.last_step == step and trial.user_attrs.get("mlp_trial") in trials

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "make_pruner", lambda optuna, name: PruneSome())
        yield


def mlp(*args: Any) -> Any:
    """`mlp ARGS` in this process through typer's CliRunner (paths and numbers as text); the
    result's exit_code, stdout and stderr."""
    from typer.testing import CliRunner

    from mlpcli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


# torch's rendezvous store (a TCPStore) listens on every interface: torch gives it no address
# to bind. Launches of several processes therefore run in a network namespace of their own
# whose only interface is the loopback, where nothing is reachable but from 127.0.0.1.
NETNS = ("unshare", "--net", "--map-root-user", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")


def netns_works() -> bool:
    """Whether this machine lets a test make such a namespace (unshare and ip, as a user)."""
    import subprocess

    try:
        return subprocess.run([*NETNS, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def parquet_folder(tmp_path: Path) -> Callable[..., Path]:
    """A factory of Parquet folders for streaming: `make(files=3, groups=5, rows=200,
    task="regression", text=False, name="events", seed=0)` writes files part-000.parquet ...
    under tmp_path/name, each `groups` row groups of `rows` rows, and returns the folder.
    Columns: x1..x4 (float64, standard normal), `color` (text: red, green, blue) when text, then
    y: a noisy linear function (regression), x1 + x2 > 0 (binary, int64) or three classes 0..2
    by x1's terciles (classification)."""

    def make(
        files: int = 3,
        groups: int = 5,
        rows: int = 200,
        task: str = "regression",
        text: bool = False,
        name: str = "events",
        seed: int = 0,
    ) -> Path:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for i in range(files):
            n = groups * rows
            x = rng.standard_normal((n, 4))
            data: dict[str, Any] = {f"x{j + 1}": x[:, j] for j in range(4)}
            if text:
                data["color"] = rng.choice(["red", "green", "blue"], n).tolist()
            if task == "regression":
                data["y"] = x @ [1.0, -2.0, 0.5, 0.0] + 0.1 * rng.standard_normal(n)
            elif task == "binary":
                data["y"] = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
            else:
                data["y"] = np.digitize(x[:, 0], [-0.43, 0.43]).astype(np.int64)
            pq.write_table(pa.table(data), folder / f"part-{i:03d}.parquet", row_group_size=rows)
        return folder

    return make

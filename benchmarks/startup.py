"""Start-up cost of whole `mlp` processes, each paired with `python -c "import torch"`.

What it measures
    CPU seconds (user + system of the child process and anything it waited for, from
    resource.getrusage(RUSAGE_CHILDREN) before and after) and wall seconds of whole processes,
    from exec to exit, imports included:
      import torch       python -c "import torch": the floor for any tool built on torch
      torch + pyplot     python -c "import torch, matplotlib.pyplot": the floor for a tool that
                         draws a figure with matplotlib, as mlp train does (plots/loss.png)
      config show        mlp config show configs/moons.yaml
      train <config>     mlp train configs/<config>.yaml --out TMP -q --json, for the synthetic
                         shipped configs moons, spirals, multilabel, sine and xor_linear
      train moons, no plot
                         the same for moons with train.plots=false (no loss.png, so no
                         matplotlib)
      config error       mlp train configs/moons.yaml model.hidden=oops (exit 2 expected)
      eval               mlp eval RUN (RUN: a moons run trained once before the clock starts)
      predict            mlp predict RUN small.csv (five rows, printed as CSV)
      sklearn moons      the moons job as a scikit-learn script: make_moons(2000, noise=0.2),
                         a stratified 80/20 split, StandardScaler, MLPClassifier((32, 32),
                         batch_size=128, learning_rate_init=1e-2, max_iter=60), test accuracy
    Each figure is the median over --repeats rounds; "x torch" is a command's median over
    import torch's median, in CPU and in wall seconds. For the train commands, "loop s" is
    the median train_seconds of their --json summary (the epoch loop alone) and "x torch
    less loop" is (CPU seconds - loop seconds) / import torch's CPU seconds: the start-up
    overhead, with the training the config asks for taken out.

What is held equal
    Every command runs as a fresh child of this process, with the same interpreter (the
    `mlp` script beside it), environment and working directory (the repository root).
    Rounds are interleaved: each round runs every command once, and the order rotates by one
    from round to round, so that a machine that speeds up or slows down over minutes touches
    every command alike. One untimed warm-up round first fills the file cache and compiles
    bytecode. A command that exits with another code than expected stops the benchmark.

Run
    python benchmarks/startup.py [--repeats 5] [--only NAME,...] [--no-warmup] [--json PATH]
    --only picks commands by name (import torch is always run, as the reference). Every
    number goes to benchmarks/results/startup.json (git-ignored) unless --json names another
    file. CPU seconds are the steadier measure on a machine that another process is using:
    wall time counts the waits for a busy core, CPU time only the work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path(__file__).parent / "results" / "startup.json"
SYNTHETIC_CONFIGS = ("moons", "spirals", "multilabel", "sine", "xor_linear")
REFERENCE = "import torch"

SKLEARN_SCRIPT = """\
import warnings
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

warnings.simplefilter("ignore", ConvergenceWarning)
x, y = make_moons(2000, noise=0.2, random_state=0)
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.2, random_state=0, stratify=y
)
scaler = StandardScaler().fit(x_train)
model = MLPClassifier(
    (32, 32), batch_size=128, learning_rate_init=1e-2, max_iter=60, random_state=0
)
model.fit(scaler.transform(x_train), y_train)
print(model.score(scaler.transform(x_test), y_test))
"""

SMALL_CSV = "x1,x2\n0.0,0.5\n1.0,-0.5\n-1.0,0.25\n2.0,0.0\n0.5,0.5\n"


@dataclass
class Command:
    name: str
    argv: list[str]
    expect: int = 0  # the exit code a correct run gives
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    loop: list[float] = field(default_factory=list)  # train_seconds of a train command


def mlp() -> list[str]:
    """The `mlp` console script of this interpreter's environment (what a user runs)."""
    script = Path(sys.executable).with_name("mlp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlpcli"]


def commands(folder: Path, run_dir: str) -> list[Command]:
    out = str(folder / "runs")
    (folder / "sklearn_moons.py").write_text(SKLEARN_SCRIPT)
    (folder / "small.csv").write_text(SMALL_CSV)
    found = [
        Command(REFERENCE, [sys.executable, "-c", "import torch"]),
        Command("torch + pyplot", [sys.executable, "-c", "import torch, matplotlib.pyplot"]),
        Command("config show", [*mlp(), "config", "show", "configs/moons.yaml"]),
    ]
    for name in SYNTHETIC_CONFIGS:
        argv = [*mlp(), "train", f"configs/{name}.yaml", "--out", out, "-q", "--json"]
        found.append(Command(f"train {name}", argv))
    argv = [
        *mlp(),
        "train",
        "configs/moons.yaml",
        "train.plots=false",
        "--out",
        out,
        "-q",
        "--json",
    ]
    found.append(Command("train moons, no plot", argv))
    found += [
        Command(
            "config error",
            [*mlp(), "train", "configs/moons.yaml", "model.hidden=oops"],
            expect=2,
        ),
        Command("eval", [*mlp(), "eval", run_dir]),
        Command("predict", [*mlp(), "predict", run_dir, str(folder / "small.csv")]),
        Command("sklearn moons", [sys.executable, str(folder / "sklearn_moons.py")]),
    ]
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: Command) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, stdout) of one whole process; exits on an unexpected code."""
    cpu, wall = children_cpu(), time.perf_counter()
    proc = subprocess.run(command.argv, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode != command.expect:
        sys.exit(
            f"{command.name}: exit {proc.returncode}, expected {command.expect}\n"
            f"$ {' '.join(command.argv)}\n{proc.stderr[-2000:]}"
        )
    return cpu, wall, proc.stdout


def record(command: Command, cpu: float, wall: float, stdout: str) -> None:
    command.cpu.append(cpu)
    command.wall.append(wall)
    if command.name.startswith("train "):
        command.loop.append(float(json.loads(stdout)["train_seconds"]))


def train_reference_run(folder: Path) -> str:
    """A moons run folder for eval and predict, trained before any clock starts."""
    argv = [*mlp(), "train", "configs/moons.yaml", "--out", str(folder / "ref"), "-q", "--json"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"training the reference run failed:\n{proc.stderr[-2000:]}")
    return str(json.loads(proc.stdout)["run_dir"])


def bench(chosen: list[Command], repeats: int, warmup: bool) -> None:
    """Rounds of every command once, the order rotated by one each round."""
    if warmup:
        log("warm-up round")
        for command in chosen:
            run_once(command)
    for r in range(repeats):
        order = chosen[r % len(chosen) :] + chosen[: r % len(chosen)]
        log(f"round {r + 1}/{repeats}")
        for command in order:
            record(command, *run_once(command))


def summarise(command: Command, floor: Command) -> dict[str, Any]:
    cpu, wall = statistics.median(command.cpu), statistics.median(command.wall)
    base_cpu, base_wall = statistics.median(floor.cpu), statistics.median(floor.wall)
    entry: dict[str, Any] = {
        "argv": command.argv,
        "cpu_seconds": command.cpu,
        "wall_seconds": command.wall,
        "cpu_median": cpu,
        "wall_median": wall,
        "cpu_x_torch": cpu / base_cpu,
        "wall_x_torch": wall / base_wall,
    }
    if command.loop:
        loop = statistics.median(command.loop)
        entry.update(loop_seconds=command.loop, loop_median=loop)
        entry["cpu_less_loop_x_torch"] = (cpu - loop) / base_cpu
    return entry


def report(results: dict[str, dict[str, Any]], repeats: int) -> str:
    head = (
        f"{'command':<20} {'CPU s':>7} {'wall s':>7} {'CPU x torch':>12} {'wall x torch':>13} "
        f"{'loop s':>7} {'x torch less loop':>18}"
    )
    lines = [f"medians of {repeats} interleaved rounds; CPU = user + system", head, "-" * len(head)]
    for name, e in results.items():
        loop = f"{e['loop_median']:>7.2f}" if "loop_median" in e else f"{'':>7}"
        less = f"{e['cpu_less_loop_x_torch']:>17.2f}x" if "loop_median" in e else ""
        lines.append(
            f"{name:<20} {e['cpu_median']:>7.2f} {e['wall_median']:>7.2f} "
            f"{e['cpu_x_torch']:>11.2f}x {e['wall_x_torch']:>12.2f}x {loop} {less}"
        )
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--only", default="", help="comma-separated command names")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first round")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.names = [n.strip() for n in args.only.split(",") if n.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlpcli-startup-") as root:
        folder = Path(root)
        log("training the run that eval and predict read")
        every = commands(folder, train_reference_run(folder))
        known = [c.name for c in every]
        unknown = [n for n in args.names if n not in known]
        if unknown:
            log(f"--only: unknown {unknown}; accepted: {', '.join(known)}")
            return 2
        chosen = [c for c in every if c.name == REFERENCE or not args.names or c.name in args.names]
        bench(chosen, args.repeats, not args.no_warmup)
    floor = chosen[0]
    results = {c.name: summarise(c, floor) for c in chosen}
    print(report(results, args.repeats))
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"repeats": args.repeats, "machine": machine, "results": results}, indent=2)
    )
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

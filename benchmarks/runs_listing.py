"""`mlp runs` of 100 run folders against `mlp --help`, each in a fresh process.

Trains a few real runs of configs/moons.yaml and one of configs/overfit.yaml (whose config.yaml
holds a sweep grid), copies them to 100 folders with changed settings
(model.hidden, optim.lr in config.yaml) and metrics (summary.json), then times both commands
several times each, alternating, with `mlp runs` of an empty folder (what any command given an
argument costs), and prints the medians and the ratios.

    python benchmarks/runs_listing.py [--runs 100] [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_runs(folder: Path, count: int) -> None:
    from mlpcli.api import train

    seeds = folder / "trained"
    tiny = ["data.n_samples=300", "train.epochs=2", "train.plots=false"]
    trained = [
        train(ROOT / "configs/moons.yaml", [*tiny, f"model.hidden=[{w}]"], out=seeds, quiet=True)
        for w in (4, 8, 16)
    ]
    # A run of a config with a sweep section: its config.yaml holds a grid (lists of lists).
    trained.append(train(ROOT / "configs/overfit.yaml", tiny, out=seeds, quiet=True))
    runs = folder / "runs"
    runs.mkdir()
    for i in range(count):
        source = trained[i % len(trained)].run_dir
        target = runs / f"run-{i:03d}"
        shutil.copytree(source, target)
        config = (target / "config.yaml").read_text()
        config = config.replace("lr: 0.01", f"lr: {0.001 * (1 + i % 10)}")
        (target / "config.yaml").write_text(config)
        summary = json.loads((target / "summary.json").read_text())
        summary["metrics"]["val"]["accuracy"] = 0.5 + i / (2 * count)
        summary["started"] = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"
        (target / "summary.json").write_text(json.dumps(summary, indent=2))


def seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        make_runs(folder, options.runs)
        mlp = [sys.executable, "-m", "mlpcli"]
        (folder / "empty").mkdir()
        help_times, runs_times, empty_times = [], [], []
        seconds([*mlp, "--help"])  # warm the file cache and byte-code once
        seconds([*mlp, "runs", str(folder / "runs")])
        for _ in range(options.repeats):
            help_times.append(seconds([*mlp, "--help"]))
            runs_times.append(seconds([*mlp, "runs", str(folder / "runs")]))
            empty_times.append(seconds([*mlp, "runs", str(folder / "empty")]))
        listed = subprocess.run(
            [*mlp, "runs", str(folder / "runs"), "--json"], capture_output=True, text=True
        )
        rows = len(json.loads(listed.stdout))
    help_s, runs_s = statistics.median(help_times), statistics.median(runs_times)
    empty_s = statistics.median(empty_times)
    print(f"mlp --help          median {help_s:.3f} s over {options.repeats}")
    # Any command given an argument pays typer's parsing of it (which imports pydantic).
    print(f"mlp runs (empty)    median {empty_s:.3f} s over {options.repeats}")
    print(f"mlp runs ({rows} runs) median {runs_s:.3f} s over {options.repeats}")
    print(f"ratio to --help {runs_s / help_s:.2f}; to an empty folder's {runs_s / empty_s:.2f}")


if __name__ == "__main__":
    main()

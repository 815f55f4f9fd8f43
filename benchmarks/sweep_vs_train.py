"""`mlp sweep` with local workers against the same trials as separate `mlp train` commands.

What it measures
    Wall time of eight small trials on the two-moons set (hidden widths 4..512, one seed), run
    (a) as one `mlp sweep --workers N` command and (b) as eight `mlp train` commands one after
    another, as a shell loop would. Both use the same base config and write into a temporary
    folder; the ratio (b) / (a) is printed, with each side's validation metric per width to
    show that they trained the same models.

Run
    python benchmarks/sweep_vs_train.py [--workers 2] [--epochs 60] [--repeats 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTHS = [4, 8, 16, 32, 64, 128, 256, 512]
CONFIG = """\
name: bench
data: {{source: moons, n_samples: 1000, noise: 0.25}}
model: {{hidden: [32], activation: relu}}
optim: {{lr: 3.0e-3}}
train: {{epochs: {epochs}, batch_size: 64}}
"""


def mlp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *args], capture_output=True, text=True, check=True
    )


def run_sweep(config: Path, out: Path, workers: int) -> tuple[float, dict[int, float]]:
    start = time.perf_counter()
    result = mlp(
        "sweep",
        str(config),
        "--hidden",
        ",".join(map(str, WIDTHS)),
        "--workers",
        str(workers),
        "--out",
        str(out),
        "--json",
        "-q",
    )
    seconds = time.perf_counter() - start
    summary = json.loads(result.stdout)
    with open(Path(summary["sweep_dir"]) / "results.csv") as handle:
        scores = {int(r["width"]): float(r["val_accuracy"]) for r in csv.DictReader(handle)}
    return seconds, scores


def run_sequential(config: Path, out: Path) -> tuple[float, dict[int, float]]:
    start = time.perf_counter()
    scores = {}
    for width in WIDTHS:
        # The sweep's trials see the data of the base seed; so do these runs.
        result = mlp(
            "train",
            str(config),
            f"model.hidden=[{width}]",
            "data.seed=0",
            "--out",
            str(out),
            "--json",
            "-q",
        )
        scores[width] = json.loads(result.stdout)["metrics"]["val"]["accuracy"]
    return time.perf_counter() - start, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlp-sweep-bench-"))
    config = folder / "bench.yaml"
    config.write_text(CONFIG.format(epochs=args.epochs))

    sweep_times, loop_times = [], []
    for _ in range(args.repeats):
        seconds, sweep_scores = run_sweep(config, folder / "sweep", args.workers)
        sweep_times.append(seconds)
        seconds, loop_scores = run_sequential(config, folder / "train")
        loop_times.append(seconds)

    sweep_s, loop_s = statistics.median(sweep_times), statistics.median(loop_times)
    print(f"{len(WIDTHS)} trials (moons, hidden {WIDTHS[0]}..{WIDTHS[-1]}, {args.epochs} epochs)")
    print(f"  mlp sweep --workers {args.workers}: {sweep_s:7.1f} s")
    print(f"  {len(WIDTHS)} x mlp train, one after another: {loop_s:7.1f} s")
    print(f"  ratio (sequential / sweep): {loop_s / sweep_s:.2f}x")
    print("  val accuracy by width, sweep vs train:")
    for width in WIDTHS:
        print(f"    {width:4d}: {sweep_scores[width]:.4f}  {loop_scores[width]:.4f}")
    (folder / "results.json").write_text(
        json.dumps(
            {
                "sweep_seconds": sweep_times,
                "sequential_seconds": loop_times,
                "ratio": loop_s / sweep_s,
                "workers": args.workers,
            },
            indent=2,
        )
    )
    print(f"  files: {folder}")


if __name__ == "__main__":
    main()

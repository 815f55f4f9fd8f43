"""A 40-trial TPE search with ASHA pruning against the full 48-point grid over the same space.

What it measures
    On the bundled `digits` data (1,797 8x8 images, 10 classes; the config of configs/digits.yaml
    without early stopping, 30 epochs, batch 64), two `mlp sweep` commands run side by side:
    (a) the grid optim.lr {1e-3, 3e-3, 1e-2, 3e-2} x model.hidden {[32], [128], [64,64],
    [128,128]} x model.dropout {0, 0.2, 0.4}: 48 trials, 1,440 epochs; and (b) a search of the
    same ranges, `--search tpe --trials 40 --prune asha` with optim.lr=log(1e-3,3e-2),
    model.hidden a choice of the four lists and model.dropout=uniform(0,0.4). Both use
    `--workers 2`. For each sampler seed it prints the best validation accuracy of each side (and
    that trial's test accuracy), the gap grid - search (target: at most 0.01), the epochs the
    search ran as a share of the grid's (target: at most 0.5) and the wall-time ratio
    search / grid. It exits 1 when a target is missed.

    `--seed` seeds both the sampler and the trials' training, so the grid runs once per seed, with
    the same seed as the search it is compared with: a gap is then the search's doing, not the
    luck of a different weight initialisation and batch order (on 360 validation images one
    image is 0.0028 of accuracy, a third of the target). The data split is the same for all
    (`data.seed`).

Run
    python benchmarks/search_vs_grid.py [--seeds 0,1,2] [--trials 40] [--epochs 30]
        [--prune asha] [--workers 2] [--figures DIR] [--out DIR]
    A quick check of the script itself: --seeds 0 --trials 6 --epochs 3 (the grid still has 48
    trials; about 30 s). The full run takes about 3 minutes on 2 cores; `--prune median` runs
    the same comparison with the median rule.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
name: bench
seed: 0
data: {{source: digits}}
model: {{hidden: [128], activation: relu, dropout: 0.1}}
optim: {{name: adamw, lr: 2.0e-3, weight_decay: 1.0e-2}}
train: {{epochs: {epochs}, batch_size: 64}}
"""
GRID = [
    "--grid",
    "optim.lr=1e-3,3e-3,1e-2,3e-2",
    "--grid",
    "model.hidden=[32],[128],[64,64],[128,128]",
    "--grid",
    "model.dropout=0,0.2,0.4",
]
SPACE = [
    "--space",
    "optim.lr=log(1e-3,3e-2)",
    "--space",
    "model.hidden=choice([32],[128],[64,64],[128,128])",
    "--space",
    "model.dropout=uniform(0,0.4)",
]
GAP_TARGET = 0.01
EPOCHS_TARGET = 0.5
FIGURES = ("parallel", "importance", "intermediate")


@dataclass
class Side:
    seconds: float
    folder: Path
    best_trial: str
    val: float
    test: float
    epochs: int
    trials: int
    pruned: int


def mlp(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"mlp {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout)


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv") as handle:
        return list(csv.DictReader(handle))


def run_grid(config: Path, out: Path, seed: int, workers: int, epochs: int) -> Side:
    start = time.perf_counter()
    summary = mlp(
        "sweep", str(config), *GRID, "--seed", str(seed), "--workers", str(workers),
        "--out", str(out), "--name", f"grid-seed{seed}", "--json", "-q",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    folder = Path(summary["sweep_dir"])
    done = [r for r in rows(folder) if r["status"] == "completed"]
    best = max(done, key=lambda r: float(r["val_accuracy"]))
    return Side(
        seconds, folder, best["trial"], float(best["val_accuracy"]), float(best["test_accuracy"]),
        epochs * len(done), len(done), 0,
    )  # fmt: skip


def run_search(config: Path, out: Path, seed: int, workers: int, trials: int, prune: str) -> Side:
    start = time.perf_counter()
    summary = mlp(
        "sweep", str(config), "--search", "tpe", "--trials", str(trials), "--prune", prune,
        *SPACE, "--seed", str(seed), "--workers", str(workers),
        "--out", str(out), "--name", f"search-seed{seed}", "--json", "-q",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    folder = Path(summary["sweep_dir"])
    # The search's own answer: the trial its summary names best, as a user would take it.
    best = next(r for r in rows(folder) if r["trial"] == summary["best_trial"])
    return Side(
        seconds, folder, best["trial"], float(best["val_accuracy"]), float(best["test_accuracy"]),
        int(summary["epochs"]), int(summary["trials"]), int(summary["pruned"]),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="sampler (and training) seeds, e.g. 0,1,2")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prune", default="asha", help="none, median or asha")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figures", type=Path, help="copy the first search's figures here")
    parser.add_argument("--out", type=Path, help="folder for the sweeps (default: a new temp one)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    folder = args.out or Path(tempfile.mkdtemp(prefix="mlp-search-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bench.yaml"
    config.write_text(CONFIG.format(epochs=args.epochs))

    print(
        f"digits, {args.epochs} epochs, batch 64, --workers {args.workers}: grid of 48 points "
        f"against tpe --trials {args.trials} --prune {args.prune}"
    )
    print(
        "  seed | grid val  test  | search val  test  trial     | gap     | epochs      share"
        " | pruned | grid s  search s  ratio"
    )
    results, missed = [], []
    for seed in seeds:
        grid = run_grid(config, folder, seed, args.workers, args.epochs)
        search = run_search(config, folder, seed, args.workers, args.trials, args.prune)
        gap = grid.val - search.val
        share = search.epochs / grid.epochs
        ratio = search.seconds / grid.seconds
        print(
            f"  {seed:4d} | {grid.val:.4f} {grid.test:.4f} | {search.val:.4f} {search.test:.4f}"
            f" {search.best_trial} | {gap:+.4f} | {search.epochs:4d}/{grid.epochs:4d} {share:5.2f}"
            f" | {search.pruned:2d}/{search.trials:2d}  | {grid.seconds:6.1f} {search.seconds:7.1f}"
            f"  {ratio:5.2f}",
            flush=True,
        )
        if gap > GAP_TARGET:
            missed.append(f"seed {seed}: gap {gap:.4f} > {GAP_TARGET}")
        if share > EPOCHS_TARGET:
            missed.append(f"seed {seed}: epochs share {share:.2f} > {EPOCHS_TARGET}")
        results.append(
            {
                "seed": seed,
                "grid": {**vars(grid), "folder": str(grid.folder)},
                "search": {**vars(search), "folder": str(search.folder)},
                "gap": gap,
                "epochs_share": share,
                "time_ratio": ratio,
            }
        )
        if args.figures and len(results) == 1:
            args.figures.mkdir(parents=True, exist_ok=True)
            for name in FIGURES:
                source = search.folder / "plots" / f"{name}.png"
                if source.exists():
                    shutil.copyfile(source, args.figures / f"search-{name}.png")
                else:
                    print(f"  note: {source} was not drawn", file=sys.stderr)

    (folder / "results.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "seeds": results,
            },
            indent=2,
        )
    )
    print(f"  targets: gap <= {GAP_TARGET}, epochs share <= {EPOCHS_TARGET}")
    print(f"  files: {folder}")
    if missed:
        print("  missed: " + "; ".join(missed))
        sys.exit(1)


if __name__ == "__main__":
    main()

"""`mlp init` then `mlp train` on real tables, against a hand-written config of the same size.

What it measures
    For each real table (available offline: scikit-learn's bundled wine, breast cancer and
    diabetes sets, the Palmer penguins with their missing values, and, when statsmodels is
    installed, its `fair` and `grunfeld` sets), the table is written to a CSV and

    * starter: `mlp init TABLE --target COL`, then `mlp train` of the written file, unedited;
    * hand-written: what a person would write for the same table: the features listed (every
      column but the target, less those with missing values, which training refuses), the task
      named, Adam at lr 1e-3, batch size 32, 100 epochs with early stopping on the validation loss
      (patience 20), and the starter's hidden widths, so that both have the same model size.

    Both train with `mlp train CONFIG --seed S` on the same split (the data seed is held), and
    the test score (accuracy for classes, r2 for regression) is averaged over the seeds. The
    issue's bar: the starter within 0.03 of the hand-written config on every table.

Run
    python benchmarks/init_real_tables.py               # 3 seeds, files in a temporary folder
    python benchmarks/init_real_tables.py --seeds 5 --out bench-init

    Prints one row per table (rows, task, starter and hand-written test scores, their
    difference starter - hand-written, and whether it is within 0.03) and writes results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
MLP = [sys.executable, "-m", "mlpcli"]
BAR = 0.03


def sklearn_table(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame

    return load


def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()  # as published: 11 rows without sex, 2 without measurements


def fair() -> pd.DataFrame:
    """Extramarital affairs (1974 survey): whether a woman reported any, as statsmodels' docs
    model it (the hours themselves left out)."""
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data
    frame["had_affair"] = (frame.pop("affairs") > 0).astype(int)
    return frame


def grunfeld() -> pd.DataFrame:
    import statsmodels.api as sm

    return sm.datasets.grunfeld.load_pandas().data


# name, loader, target, the package it needs, the metric
TABLES: list[tuple[str, Callable[[], pd.DataFrame], str, str, str]] = [
    ("wine", sklearn_table("wine"), "target", "sklearn", "accuracy"),
    ("breast_cancer", sklearn_table("breast_cancer"), "target", "sklearn", "accuracy"),
    ("diabetes", sklearn_table("diabetes"), "target", "sklearn", "r2"),
    ("penguins", penguins, "species", "palmerpenguins", "accuracy"),
    ("fair", fair, "had_affair", "statsmodels", "accuracy"),
    ("grunfeld", grunfeld, "invest", "statsmodels", "r2"),
]


def available(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        return False
    return True


def mlp(*args: object) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*MLP, *map(str, args)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mlp {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def hand_written(frame: pd.DataFrame, csv: Path, target: str, task: str, hidden: list[int]) -> str:
    features = [c for c in frame.columns if c != target and not frame[c].isna().any()]
    config = {
        "name": "hand",
        "task": task,
        "data": {"source": "csv", "path": csv.name, "target": target, "features": features},
        "model": {"hidden": hidden, "activation": "relu"},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {
            "epochs": 100,
            "batch_size": 32,
            "early_stopping": {"patience": 20, "monitor": "val_loss"},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def test_score(config: Path, seed: int, out: Path, metric: str) -> float:
    summary = json.loads(mlp("train", config, "--seed", seed, "--out", out, "--json", "-q"))
    return float(summary["metrics"]["test"][metric])


def run_table(
    name: str, load: Callable[[], pd.DataFrame], target: str, metric: str, seeds: int, out: Path
) -> dict[str, Any]:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    frame = load()
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    starter = folder / "starter.yaml"
    found = json.loads(mlp("init", csv, "--target", target, "-o", starter, "--force", "--json"))
    hidden = yaml.safe_load(starter.read_text())["model"]["hidden"]
    hand = folder / "hand.yaml"
    hand.write_text(hand_written(frame, csv, target, found["task"], hidden))
    scores: dict[str, list[float]] = {"starter": [], "hand": []}
    for seed in range(seeds):
        for which, config in (("starter", starter), ("hand", hand)):
            scores[which].append(test_score(config, seed, folder / "runs", metric))
    means = {k: statistics.mean(v) for k, v in scores.items()}
    return {
        "table": name,
        "rows": len(frame),
        "task": found["task"],
        "metric": metric,
        "hidden": hidden,
        "left_out": [c["name"] for c in found["columns"] if not c["used"]],
        "scores": scores,
        "starter": means["starter"],
        "hand": means["hand"],
        "difference": means["starter"] - means["hand"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="init-bench-"))
    results = []
    header = f"{'table':<14} {'rows':>6} {'task':<15} {'metric':<8} {'starter':>8} {'hand':>8} {'diff':>7}"
    print(header)
    for name, load, target, package, metric in TABLES:
        if not available(package):
            print(f"{name:<14} skipped: {package} is not installed")
            continue
        row = run_table(name, load, target, metric, args.seeds, out)
        results.append(row)
        within = "ok" if row["difference"] >= -BAR else f"misses {BAR}"
        print(
            f"{name:<14} {row['rows']:>6} {row['task']:<15} {metric:<8} {row['starter']:>8.3f} "
            f"{row['hand']:>8.3f} {row['difference']:>+7.3f}  {within}",
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()

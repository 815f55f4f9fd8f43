"""mlpcli against scikit-learn's MLPClassifier / MLPRegressor on real tabular files.

What it measures
    Test-set quality of the same multi-layer perceptron trained two ways on the Palmer penguins
    (rows with missing values dropped, the `year` column dropped):

    * penguins-species (csv and parquet): classify `species` (three string labels) from `island`
      and `sex` (categorical strings) and the four body measurements; accuracy and f1_macro.
    * penguins-size (csv): predict `body_mass_g` and `flipper_length_mm` together (one network,
      two outputs) from species, island, sex and the bill measurements; r2 and rmse in the
      targets' own units, averaged over the two outputs as scikit-learn does by default.

    Each workload gets one fixed train/test split (75/25, stratified by species, seed 0), written
    as train.csv / test.csv (and .parquet for the parquet workload). The mlpcli side is the real
    command line: `mlp train CONFIG --seed S --json -q`, then `mlp eval RUN --data test.csv --json`.
    The scikit-learn side runs in this process on the same files.

What is held equal
    Hidden sizes, ReLU, Adam with its default betas and epsilon, learning rate, batch size, number
    of epochs (scikit-learn: max_iter with tol=0 and n_iter_no_change > max_iter, so every epoch
    runs), no L2 penalty (alpha=0 and weight_decay=0), and the preprocessing: one-hot encoded
    categoricals, numeric features standardised on the training rows, and for regression the
    targets standardised on the training rows and predictions mapped back to the original units.

    Both sides train on every training row: mlpcli gets data.val_split 0 and no early stopping,
    because MLPClassifier / MLPRegressor with early_stopping=False has no validation split either.
    Without validation rows mlpcli keeps the weights of the epoch with the lowest training loss,
    which with a constant learning rate is at or next to the last epoch that scikit-learn keeps.

    What differs is each library's own default: weight initialisation (PyTorch's
    kaiming-uniform against scikit-learn's Glorot-uniform), the shuffling RNG, float32 against
    float64, and the squared-error loss scale (scikit-learn halves it; Adam is nearly invariant to
    that). Several seeds per side average these out.

    As a check on the metric code, `mlp predict` output for the first seed is also scored with
    sklearn.metrics and compared with what `mlp eval` reported.

Run
    python benchmarks/compare_sklearn.py                  # 3 seeds, files in a temporary folder
    python benchmarks/compare_sklearn.py --out bench-out --seeds 5
    python benchmarks/compare_sklearn.py --threads 1       # one CPU thread on both sides

    A network this small gains nothing from several threads, and on a busy machine PyTorch's
    thread pool can make each step many times slower; --threads 1 gives steadier timings.

    Prints one table (workload, metric, mlpcli mean, scikit-learn mean, their difference
    mlpcli - scikit-learn, and the better side; rmse is the one where lower is better) and the
    wall time of each side over all seeds: "mlpcli CLI" is the `mlp train` and `mlp eval`
    processes from start to exit, imports included; "mlpcli loop" is the training loop alone
    (train_seconds in the run's summary); "sklearn" is preprocessing, fit and predict in this
    process. Everything, per seed, also goes to results.json in the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

SPLIT_SEED = 0
TEST_FRACTION = 0.25
CATEGORICAL = ["species", "island", "sex"]
LOWER_IS_BETTER = {"rmse"}


@dataclass(frozen=True)
class Workload:
    name: str
    targets: list[str]
    task: str  # classification | regression
    fmt: str  # csv | parquet
    hidden: list[int]
    lr: float
    batch_size: int
    epochs: int
    metrics: list[str] = field(default_factory=list)


# Tuned on the scikit-learn side and held for both: a wider, deeper or longer-trained network
# overfits these 249 training rows (test r2 falls on the regression workload).
SETTINGS = {"hidden": [16], "lr": 1e-3, "batch_size": 32, "epochs": 100}

WORKLOADS = [
    Workload(
        "penguins-species",
        ["species"],
        "classification",
        "csv",
        metrics=["accuracy", "f1_macro"],
        **SETTINGS,
    ),
    Workload(
        "penguins-species",
        ["species"],
        "classification",
        "parquet",
        metrics=["accuracy", "f1_macro"],
        **SETTINGS,
    ),
    Workload(
        "penguins-size",
        ["body_mass_g", "flipper_length_mm"],
        "regression",
        "csv",
        metrics=["r2", "rmse"],
        **SETTINGS,
    ),
]

# ---------------------------------------------------------------- data and configs


def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().dropna().drop(columns=["year"]).reset_index(drop=True)


def write_split(frame: pd.DataFrame, folder: Path, fmt: str) -> tuple[Path, Path]:
    """One fixed, stratified train/test split, written in the workload's file format."""
    train, test = train_test_split(
        frame, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=frame["species"]
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"train.{fmt}", folder / f"test.{fmt}"
    for part, path in zip((train, test), paths):
        if fmt == "csv":
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path, index=False)
    return paths


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def write_config(work: Workload, folder: Path, train_file: Path) -> Path:
    """An mlpcli config that trains on every row of train_file, every epoch, no weight decay."""
    config = {
        "name": work.name,
        "seed": 0,
        "task": work.task,
        "data": {
            "source": work.fmt,
            "path": train_file.name,  # resolved against this config's folder
            "target": work.targets[0] if len(work.targets) == 1 else work.targets,
            "features": None,
            "val_split": 0.0,
            "test_split": 0.0,
            "standardize": True,
        },
        "model": {"hidden": work.hidden, "activation": "relu"},
        "optim": {"name": "adam", "lr": work.lr, "weight_decay": 0.0},
        "schedule": {"name": "none"},
        "train": {
            "epochs": work.epochs,
            "batch_size": work.batch_size,
            "early_stopping": None,
            "device": "cpu",
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------- mlpcli through its CLI


def mlp(*args: str) -> str:
    """Run the mlp command line; returns its stdout, raising with stderr on failure."""
    proc = subprocess.run([sys.executable, "-m", "mlpcli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"mlp {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def run_mlpcli(config: Path, test_file: Path, seed: int, runs: Path) -> dict[str, Any]:
    started = time.perf_counter()
    summary = json.loads(
        mlp(
            "train",
            str(config),
            "--seed",
            str(seed),
            "--out",
            str(runs),
            "--name",
            f"seed{seed}",
            "--json",
            "-q",
        )
    )
    metrics = json.loads(mlp("eval", summary["run_dir"], "--data", str(test_file), "--json"))
    return {
        "metrics": metrics,
        "seconds": time.perf_counter() - started,
        "train_seconds": summary["train_seconds"],
        "epochs_run": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "run_dir": summary["run_dir"],
    }


def score(work: Workload, truth: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """The workload's metrics with sklearn.metrics (regression averaged over outputs)."""
    y = truth[work.targets].to_numpy()
    if work.task == "classification":
        y = y[:, 0]
        return {
            "accuracy": accuracy_score(y, predicted),
            "f1_macro": f1_score(y, predicted, average="macro"),
        }
    return {"r2": r2_score(y, predicted), "rmse": root_mean_squared_error(y, predicted)}


def check_predict(
    work: Workload, run_dir: str, test_file: Path, reported: dict[str, float], folder: Path
) -> dict[str, float]:
    """Score `mlp predict` output with sklearn.metrics; the gap to `mlp eval`, per metric."""
    out = folder / f"predictions.{work.fmt}"
    out.unlink(missing_ok=True)
    mlp("predict", run_dir, str(test_file), "-o", str(out))
    frame = read(out)
    columns = [f"predicted_{t}" for t in work.targets]
    predicted = frame[columns].to_numpy()
    predicted = predicted[:, 0] if work.task == "classification" else predicted
    rescored = score(work, frame, predicted)
    return {m: abs(rescored[m] - reported[m]) for m in work.metrics}


# ---------------------------------------------------------------- scikit-learn in process


def features_transformer(frame: pd.DataFrame, targets: list[str]) -> ColumnTransformer:
    features = [c for c in frame.columns if c not in targets]
    categorical = [c for c in features if c in CATEGORICAL]
    numeric = [c for c in features if c not in CATEGORICAL]
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(sparse_output=False), categorical),
            ("numeric", StandardScaler(), numeric),
        ]
    )


def sklearn_model(work: Workload, seed: int) -> MLPClassifier | MLPRegressor:
    cls = MLPClassifier if work.task == "classification" else MLPRegressor
    return cls(
        hidden_layer_sizes=tuple(work.hidden),
        activation="relu",
        solver="adam",
        learning_rate_init=work.lr,
        batch_size=work.batch_size,
        max_iter=work.epochs,
        alpha=0.0,
        early_stopping=False,
        tol=0.0,
        n_iter_no_change=work.epochs + 1,
        shuffle=True,
        random_state=seed,
    )


def run_sklearn(work: Workload, train_file: Path, test_file: Path, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    train, test = read(train_file), read(test_file)
    prep = features_transformer(train, work.targets)
    x_train, x_test = prep.fit_transform(train), prep.transform(test)
    model = sklearn_model(work, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
        if work.task == "classification":
            model.fit(x_train, train[work.targets[0]].to_numpy())
            predicted = model.predict(x_test)
        else:
            y_scaler = StandardScaler().fit(train[work.targets].to_numpy())
            model.fit(x_train, y_scaler.transform(train[work.targets].to_numpy()))
            predicted = y_scaler.inverse_transform(model.predict(x_test))
    return {
        "metrics": score(work, test, predicted),
        "seconds": time.perf_counter() - started,
        "epochs_run": model.n_iter_,
    }


# ---------------------------------------------------------------- the comparison


def compare(work: Workload, data: pd.DataFrame, root: Path, seeds: int) -> dict[str, Any]:
    label = f"{work.name} ({work.fmt})"
    folder = root / f"{work.name}-{work.fmt}"
    train_file, test_file = write_split(data, folder, work.fmt)
    config = write_config(work, folder, train_file)
    shutil.rmtree(folder / "runs", ignore_errors=True)  # run names are reused on a rerun
    ours, theirs = [], []
    for seed in range(seeds):
        print(f"  {label}: seed {seed}", file=sys.stderr, flush=True)
        ours.append(run_mlpcli(config, test_file, seed, folder / "runs"))
        theirs.append(run_sklearn(work, train_file, test_file, seed))
    gap = check_predict(work, ours[0]["run_dir"], test_file, ours[0]["metrics"], folder)
    return {
        "workload": label,
        "folder": str(folder),
        "rows": {"train": len(read(train_file)), "test": len(read(test_file))},
        "settings": {
            "hidden": work.hidden,
            "activation": "relu",
            "optimizer": "adam",
            "lr": work.lr,
            "batch_size": work.batch_size,
            "epochs": work.epochs,
            "l2": 0.0,
        },
        "metrics": work.metrics,
        "mlpcli": ours,
        "sklearn": theirs,
        "eval_vs_predict_max_gap": max(gap.values()),
    }


def mean(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r["metrics"][key] for r in runs)


def difference(ours: float, theirs: float) -> float:
    """ours - theirs at the printed precision, so that a float32 tie shows +0.0000, not -0.0000."""
    return round(ours - theirs, 4) + 0.0


def better(metric: str, ours: float, theirs: float) -> str:
    if round(ours, 4) == round(theirs, 4):
        return "tie"
    ours_wins = ours < theirs if metric in LOWER_IS_BETTER else ours > theirs
    return "mlpcli" if ours_wins else "sklearn"


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'workload':<30} {'metric':<9} {'mlpcli':>10} {'sklearn':>10} {'diff':>9}  better"
    lines = [head, "-" * len(head)]
    for result in results:
        for metric in result["metrics"]:
            ours, theirs = mean(result["mlpcli"], metric), mean(result["sklearn"], metric)
            lines.append(
                f"{result['workload']:<30} {metric:<9} {ours:>10.4f} {theirs:>10.4f} "
                f"{difference(ours, theirs):>+9.4f}  {better(metric, ours, theirs)}"
            )
    lines += [
        "",
        f"{'wall time, all seeds (s)':<30} {'mlpcli CLI':>11} {'mlpcli loop':>12} {'sklearn':>9}",
    ]
    for result in results:
        cli = sum(r["seconds"] for r in result["mlpcli"])
        loop = sum(r["train_seconds"] for r in result["mlpcli"])
        sk = sum(r["seconds"] for r in result["sklearn"])
        lines.append(f"{result['workload']:<30} {cli:>11.1f} {loop:>12.1f} {sk:>9.1f}")
    return "\n".join(lines)


def summarise(results: list[dict[str, Any]]) -> None:
    """Add per-metric means and differences to each result, for results.json."""
    for result in results:
        result["mean"] = {
            m: {
                "mlpcli": mean(result["mlpcli"], m),
                "sklearn": mean(result["sklearn"], m),
                "diff": mean(result["mlpcli"], m) - mean(result["sklearn"], m),
            }
            for m in result["metrics"]
        }


def report(results: list[dict[str, Any]], n_rows: int, seeds: int, threads: int | None) -> str:
    lines = [
        f"Palmer penguins, {n_rows} rows without missing values; split "
        f"{1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} (seed {SPLIT_SEED}); means over {seeds} "
        f"seeds; both sides train on every training row (mlpcli data.val_split 0 and no early "
        f"stopping, sklearn early_stopping=False).",
    ]
    for r in results:
        s = r["settings"]
        lines.append(
            f"  {r['workload']}: hidden {s['hidden']} relu, adam lr {s['lr']:g}, "
            f"batch {s['batch_size']}, {s['epochs']} epochs, no L2; "
            f"{r['rows']['train']} train / {r['rows']['test']} test rows"
        )
    gap = max(r["eval_vs_predict_max_gap"] for r in results)
    lines += [
        "",
        table(results),
        "",
        f"mlp eval against sklearn.metrics on mlp predict output: largest gap {gap:.1e}",
        f"CPU threads: {threads or 'library defaults'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for data, configs, runs and results.json "
        "(default: a new temporary folder, kept)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="model seeds per side (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both sides (default: each library's own choice)",
    )
    args = parser.parse_args(argv)

    root = (args.out or Path(tempfile.mkdtemp(prefix="mlpcli-vs-sklearn-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    data = penguins()
    started = time.perf_counter()
    if args.threads is not None:
        # The mlp subprocesses inherit this; threadpool_limits covers scikit-learn in here.
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    with threadpool_limits(limits=args.threads):
        results = [compare(work, data, root, args.seeds) for work in WORKLOADS]
    summarise(results)
    print(report(results, len(data), args.seeds, args.threads))
    print(f"total {time.perf_counter() - started:.1f} s")
    out = root / "results.json"
    out.write_text(
        json.dumps({"seeds": args.seeds, "threads": args.threads, "results": results}, indent=2)
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed of mlpcli's engine against plain PyTorch loops, scikit-learn and Lightning.

What it measures
    Training throughput, in samples per second (epochs x training rows / seconds spent
    training), and test accuracy on three workloads:
      moons   make_moons, 2000 rows, noise 0.2; 2-32-32-1 (binary); batch 128; 60 epochs
      digits  load_digits, 1797 x 64; 64-128-10; batch 64; 30 epochs
      large   100,000 x 64 Gaussian inputs labelled by a fixed random teacher network
              (10 classes); 64-256-256-10; batch 256; 5 epochs
    Contenders, each repeated --repeats times (median, min and max are reported):
      mlpcli       mlpcli.train() in this process; seconds are summary.json's train_seconds
                   (the epoch loop alone, without data loading, evaluation or saving)
      hand-tuned   tensors on the device, one torch.randperm per epoch, batches by index,
                   zero_grad(set_to_none=True), no host read inside the epoch
      hand+fused   the same loop with fused Adam and mlpcli's thread choice (one thread for
                   a step under mlpcli.training.engine.SMALL_STEP_FLOPS): what is left of mlpcli's lead is its engine
      DataLoader   TensorDataset + DataLoader(shuffle=True), loss.item() summed every step
      sklearn      MLPClassifier.fit (always on the CPU)
      Lightning    Trainer.fit on the same DataLoader, when lightning or pytorch_lightning
                   is installed; Lightning's own start-up inside fit() is counted
    The hand-tuned, DataLoader and Lightning timings cover the training loop only (the model
    and optimiser are built before the clock starts), as train_seconds does for mlpcli.
    Separately, each workload is trained once by a whole `mlp train` process (reading the
    same rows from Parquet files), timed from start to exit, imports included.

    Against the machine: a float32 matmul (2048 x 2048 on the CPU, 8192 on a GPU) gives a
    dense-matmul ceiling in GFLOP/s. One training step costs 2*B*sum(in*out) FLOPs forward,
    as much again for the weight gradients, and 2*B*sum(in*out) over all but the first layer
    for the input gradients (biases and activations are left out); "% peak" is the rate a
    contender's samples/s implies, as a share of that ceiling. The matmuls of one step alone,
    timed at the workload's shapes, give the samples/s that no loop can beat.

What is held equal
    One 80/20 stratified split (seed 0) per workload, inputs standardised with the training
    rows' mean and std, float32 everywhere; the same hidden sizes, ReLU, Adam with the same
    learning rate and default betas and eps, no weight decay, batch size and epoch count; no
    validation pass and no early stopping (mlpcli: data.val_split 0, data.standardize false
    since the inputs come standardised, train.restore_best false so the last epoch's weights
    are scored, as for every other contender). The torch contenders and mlpcli draw their
    initial weights after torch.manual_seed(0) and so start from the same weights.
    Test accuracy is predicted labels (logit > 0, or the arg-max class) against the test
    rows; mlpcli's is summary.json's metrics.test.accuracy on those same rows.

Threads
    torch's thread count is read once at start and set back before every contender, so a
    change made inside mlpcli.train() cannot carry over to the contenders after it. The
    "threads" column is torch's count while a contender trained (for mlpcli, the count its
    summary.json reports); for scikit-learn it is its BLAS library's count.

Run
    python benchmarks/train_speed.py [--repeats 3] [--quick] [--json PATH]
        [--workloads moons,digits,large] [--device cpu|cuda]
    --quick trains fewer epochs (and 20,000 rows for large) once each, and times the
    `mlp train` process for the first workload only: a smoke check of under a minute.
    --device cuda trains mlpcli (train.device cuda) and the torch contenders on the GPU;
    scikit-learn stays on the CPU. Every number goes to benchmarks/results/train_speed.json
    (git-ignored) unless --json names another file.
    Timings from a machine that another process is using are not worth comparing: torch's
    threads wait for each other at every operation, so a busy core can slow the torch
    contenders tenfold or more while scikit-learn barely notices.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.datasets import load_digits, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_info
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mlpcli
from mlpcli.config.schema import TrainConfig
from mlpcli.data import Dataset
from mlpcli.training.engine import choose_threads

SEED = 0
TEST_FRACTION = 0.2
DEFAULT_JSON = Path(__file__).parent / "results" / "train_speed.json"


@dataclass(frozen=True)
class Workload:
    name: str
    hidden: list[int]
    classes: int
    lr: float
    batch_size: int
    epochs: int
    quick_epochs: int
    rows: int | None = None  # None: every row the source has
    quick_rows: int | None = None

    @property
    def task(self) -> str:
        return "binary" if self.classes == 2 else "classification"


WORKLOADS = {
    "moons": Workload(
        "moons", hidden=[32, 32], classes=2, lr=1e-2, batch_size=128, epochs=60, quick_epochs=5,
        rows=2000,
    ),
    "digits": Workload(
        "digits", hidden=[128], classes=10, lr=1e-3, batch_size=64, epochs=30, quick_epochs=5
    ),
    "large": Workload(
        "large", hidden=[256, 256], classes=10, lr=1e-3, batch_size=256, epochs=5,
        quick_epochs=1, rows=100_000, quick_rows=20_000,
    ),
}  # fmt: skip


# ---------------------------------------------------------------- data


@dataclass
class Data:
    x_train: np.ndarray  # float32, standardised
    y_train: np.ndarray  # int64 class indices
    x_test: np.ndarray
    y_test: np.ndarray

    def head(self, rows: int) -> Data:
        return Data(self.x_train[:rows], self.y_train[:rows], self.x_test, self.y_test)


def teacher(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs; labels are the arg-max of a fixed random tanh network's 10 outputs."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((rows, 64), dtype=np.float32)
    w1 = rng.standard_normal((64, 32)) / 8.0
    w2 = rng.standard_normal((32, 10))
    return x, np.argmax(np.tanh(x @ w1) @ w2, axis=1)


def raw_rows(work: Workload, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    if work.name == "moons":
        return make_moons(n_samples=rows, noise=0.2, random_state=SEED)
    if work.name == "digits":
        return load_digits(return_X_y=True)
    return teacher(rows)


def make_data(work: Workload) -> Data:
    """One stratified split; inputs scaled with the training rows' statistics."""
    x, y = raw_rows(work, work.rows)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # digits has pixels that are always blank

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return Data(scale(x_train), y_train.astype(np.int64), scale(x_test), y_test.astype(np.int64))


def frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    table["y"] = y
    return table


# ---------------------------------------------------------------- shared pieces


@dataclass
class Setup:
    """What a contender gets: the workload (epochs already chosen), its rows and where to run."""

    work: Workload
    data: Data
    device: torch.device
    folder: Path  # holds the workload's mlpcli config and its Parquet files


@dataclass
class Run:
    seconds: float
    accuracy: float
    threads: int


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(setup: Setup) -> nn.Sequential:
    """The same layers as mlpcli's build_mlp, drawn from the same seed."""
    sizes = [setup.data.x_train.shape[1], *setup.work.hidden]
    torch.manual_seed(SEED)
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], 1 if setup.work.task == "binary" else setup.work.classes))
    return nn.Sequential(*layers).to(setup.device)


def loss_and_targets(work: Workload, y: np.ndarray) -> tuple[nn.Module, torch.Tensor]:
    """The loss mlpcli picks for the task, and the targets in the form that loss takes."""
    if work.task == "binary":
        return nn.BCEWithLogitsLoss(), torch.from_numpy(y).float()[:, None]
    return nn.CrossEntropyLoss(), torch.from_numpy(y)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == truth))


@torch.inference_mode()
def torch_accuracy(model: nn.Module, setup: Setup) -> float:
    model.eval()
    outputs = model(torch.from_numpy(setup.data.x_test).to(setup.device))
    labels = (outputs[:, 0] > 0).long() if setup.work.task == "binary" else outputs.argmax(1)
    return accuracy(labels.cpu().numpy(), setup.data.y_test)


# ---------------------------------------------------------------- contenders


def mlpcli_config(work: Workload, folder: Path, device: torch.device) -> Path:
    """A config for the Parquet files in folder: every training row, every epoch, no extras."""
    config = {
        "name": work.name,
        "seed": SEED,
        "task": work.task,
        "data": {
            "source": "parquet",
            "path": "train.parquet",
            "test_path": "test.parquet",
            "target": "y",
            "val_split": 0.0,
            "test_split": 0.0,
            "standardize": False,
        },
        "model": {"hidden": work.hidden, "activation": "relu"},
        "optim": {"name": "adam", "lr": work.lr, "weight_decay": 0.0},
        "schedule": {"name": "none"},
        "train": {
            "epochs": work.epochs,
            "batch_size": work.batch_size,
            "early_stopping": None,
            "restore_best": False,
            "device": device.type,
        },
    }
    path = folder / f"{work.name}-{work.epochs}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_mlpcli(setup: Setup) -> Run:
    data, work = setup.data, setup.work
    dataset = Dataset(
        train=frame(data.x_train, data.y_train),
        val=frame(data.x_train[:0], data.y_train[:0]),
        test=frame(data.x_test, data.y_test),
        features=[f"x{i}" for i in range(data.x_train.shape[1])],
        targets=["y"],
        task=work.task,
    )
    config = mlpcli_config(work, setup.folder, setup.device)
    result = mlpcli.train(config, out=setup.folder / "runs", quiet=True, dataset=dataset)
    summary = result.summary
    return Run(summary["train_seconds"], summary["metrics"]["test"]["accuracy"], summary["threads"])


def run_hand_tuned(setup: Setup, fused: bool = False) -> Run:
    work, device = setup.work, setup.device
    model = build_model(setup)
    if fused:  # mlpcli's thread choice, for a like-for-like loop
        train = TrainConfig(batch_size=work.batch_size)
        rows = len(setup.data.x_train)
        torch.set_num_threads(choose_threads(train, model, device, rows) or torch.get_num_threads())
    loss_fn, y = loss_and_targets(work, setup.data.y_train)
    x, y = torch.from_numpy(setup.data.x_train).to(device), y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr, fused=fused or None)
    generator = torch.Generator(device=device).manual_seed(SEED)
    n, batch = len(x), work.batch_size
    sync(device)
    start = time.perf_counter()
    model.train()
    for _ in range(work.epochs):
        order = torch.randperm(n, device=device, generator=generator)
        for first in range(0, n, batch):
            index = order[first : first + batch]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    sync(device)
    seconds = time.perf_counter() - start
    return Run(seconds, torch_accuracy(model, setup), torch.get_num_threads())


def train_loader(setup: Setup) -> tuple[nn.Module, DataLoader]:
    loss_fn, y = loss_and_targets(setup.work, setup.data.y_train)
    rows = TensorDataset(torch.from_numpy(setup.data.x_train), y)
    return loss_fn, DataLoader(rows, batch_size=setup.work.batch_size, shuffle=True)


def run_dataloader(setup: Setup) -> Run:
    work, device = setup.work, setup.device
    model = build_model(setup)
    loss_fn, loader = train_loader(setup)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr)
    start = time.perf_counter()
    model.train()
    for _ in range(work.epochs):
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item()  # the usual running total: a host read every step
    sync(device)
    seconds = time.perf_counter() - start
    return Run(seconds, torch_accuracy(model, setup), torch.get_num_threads())


def blas_threads() -> int:
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


def run_sklearn(setup: Setup) -> Run:
    work = setup.work
    model = MLPClassifier(
        hidden_layer_sizes=tuple(work.hidden),
        activation="relu",
        solver="adam",
        learning_rate_init=work.lr,
        batch_size=work.batch_size,
        max_iter=work.epochs,
        alpha=0.0,
        tol=0.0,
        n_iter_no_change=work.epochs + 1,
        early_stopping=False,
        shuffle=True,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
        start = time.perf_counter()
        model.fit(setup.data.x_train, setup.data.y_train)
        seconds = time.perf_counter() - start
    predicted = model.predict(setup.data.x_test)
    return Run(seconds, accuracy(predicted, setup.data.y_test), blas_threads())


def lightning() -> Any:
    """The installed Lightning package (lightning or pytorch_lightning), or None."""
    for name in ("lightning", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def run_lightning(setup: Setup) -> Run:
    pl = lightning()
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "GPU available: ..." and the like
    net = build_model(setup)
    loss_fn, loader = train_loader(setup)
    lr = setup.work.lr

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return loss_fn(self.net(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=lr)

    trainer = pl.Trainer(
        max_epochs=setup.work.epochs,
        accelerator="gpu" if setup.device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice on DataLoader workers and logging intervals
        start = time.perf_counter()
        trainer.fit(Module(), loader)
        sync(setup.device)
        seconds = time.perf_counter() - start
    return Run(seconds, torch_accuracy(net.to(setup.device), setup), torch.get_num_threads())


CONTENDERS: dict[str, Callable[[Setup], Run]] = {
    "mlpcli": run_mlpcli,
    "hand-tuned": run_hand_tuned,
    "hand+fused": lambda setup: run_hand_tuned(setup, fused=True),
    "DataLoader": run_dataloader,
    "sklearn": run_sklearn,
    "Lightning": run_lightning,
}


# ---------------------------------------------------------------- the machine's ceiling


def best_rate(fn: Callable[[], Any], flops: float, device: torch.device, budget: float) -> float:
    """GFLOP/s of fn at its fastest, timing groups of calls long enough to read a clock."""
    fn()
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    group = max(1, int(0.02 / max(time.perf_counter() - start, 1e-9)))
    best, deadline = math.inf, time.perf_counter() + budget
    for _ in range(1000):
        start = time.perf_counter()
        for _ in range(group):
            fn()
        sync(device)
        best = min(best, (time.perf_counter() - start) / group)
        if time.perf_counter() > deadline:
            break
    return flops / best / 1e9


def matmul_ceiling(device: torch.device) -> tuple[int, float]:
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return n, best_rate(lambda: a @ b, 2.0 * n**3, device, budget=2.0)


def layer_sizes(work: Workload, data: Data) -> list[int]:
    return [data.x_train.shape[1], *work.hidden, 1 if work.task == "binary" else work.classes]


def step_flops(sizes: list[int], batch: int) -> float:
    """Forward, weight-gradient and input-gradient matmuls of one step (none into the inputs)."""
    products = [i * o for i, o in zip(sizes, sizes[1:])]
    return 2.0 * batch * (2 * sum(products) + sum(products[1:]))


def step_matmul_rate(sizes: list[int], batch: int, device: torch.device) -> float:
    """GFLOP/s of one training step's matmuls alone, at the workload's shapes."""
    layers = [
        (
            torch.randn(batch, i, device=device),
            torch.randn(o, i, device=device),
            torch.randn(batch, o, device=device),
        )
        for i, o in zip(sizes, sizes[1:])
    ]

    def step() -> None:
        for k, (x, w, g) in enumerate(layers):
            x @ w.T  # forward
            g.T @ x  # weight gradient
            if k:
                g @ w  # gradient into the layer below

    return best_rate(step, step_flops(sizes, batch), device, budget=0.5)


# ---------------------------------------------------------------- measuring


@dataclass
class Plan:
    """What every workload is run with."""

    contenders: list[str]
    device: torch.device
    threads: int  # torch's count at start, set back before every contender
    repeats: int


def run_contender(name: str, setup: Setup, threads: int) -> Run:
    torch.set_num_threads(threads)  # torch's default, whatever an earlier contender set
    return CONTENDERS[name](setup)


def summarise(runs: list[Run], rows: int, epochs: int) -> dict[str, Any]:
    rates = [epochs * rows / r.seconds for r in runs]
    return {
        "samples_per_second": {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        },
        "test_accuracy": statistics.median(r.accuracy for r in runs),
        "threads": sorted({r.threads for r in runs}),
        "runs": [dataclasses.asdict(r) for r in runs],
    }


def time_cli(setup: Setup) -> dict[str, Any]:
    """One whole `mlp train` process on the workload's Parquet files, start to exit."""
    config = mlpcli_config(setup.work, setup.folder, setup.device)
    command = [sys.executable, "-m", "mlpcli", "train", str(config), "--out"]
    command += [str(setup.folder / "cli"), "--quiet", "--json"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr}")
    summary = json.loads(proc.stdout)
    return {
        "seconds": seconds,
        "train_seconds": summary["train_seconds"],
        "test_accuracy": summary["metrics"]["test"]["accuracy"],
    }


def warm_up(setup: Setup, plan: Plan) -> None:
    """One short untimed pass of each contender: first-use costs (imports, kernels) are paid."""
    small = Setup(
        dataclasses.replace(setup.work, epochs=1), setup.data.head(512), setup.device, setup.folder
    )
    for name in plan.contenders:
        run_contender(name, small, plan.threads)


def bench_workload(
    work: Workload, data: Data, plan: Plan, folder: Path, first: bool, time_process: bool
) -> dict[str, Any]:
    """Every contender on one workload, then one step's matmuls and optionally `mlp train`."""
    folder.mkdir()
    frame(data.x_train, data.y_train).to_parquet(folder / "train.parquet", index=False)
    frame(data.x_test, data.y_test).to_parquet(folder / "test.parquet", index=False)
    setup = Setup(work, data, plan.device, folder)
    if first:
        warm_up(setup, plan)
    runs: dict[str, list[Run]] = {name: [] for name in plan.contenders}
    for repeat in range(plan.repeats):
        for name in plan.contenders:  # interleaved, so that a slow patch of the machine is shared
            log(f"  {work.name}: {name}, repeat {repeat + 1} of {plan.repeats}")
            runs[name].append(run_contender(name, setup, plan.threads))
    torch.set_num_threads(plan.threads)
    sizes = layer_sizes(work, data)
    log(
        f"  {work.name}: one step's matmuls" + (", the `mlp train` process" if time_process else "")
    )
    return {
        "workload": work.name,
        "rows": {"train": len(data.x_train), "test": len(data.x_test)},
        "layers": sizes,
        "settings": {"lr": work.lr, "batch_size": work.batch_size, "epochs": work.epochs},
        "flops_per_sample": step_flops(sizes, work.batch_size) / work.batch_size,
        "step_matmul_gflops": step_matmul_rate(sizes, work.batch_size, plan.device),
        "contenders": {
            name: summarise(done, len(data.x_train), work.epochs) for name, done in runs.items()
        },
        "cli": time_cli(setup) if time_process else None,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- report


def compact(rate: float) -> str:
    return f"{rate / 1e6:.2f}M" if rate >= 1e6 else f"{rate / 1e3:.1f}k"


def table(result: dict[str, Any], ceiling: float, skipped: dict[str, str]) -> list[str]:
    contenders = result["contenders"]

    def median(name: str) -> float | None:
        return contenders[name]["samples_per_second"]["median"] if name in contenders else None

    hand, sk = median("hand-tuned"), median("sklearn")
    lines = []
    for name, entry in contenders.items():
        rate = entry["samples_per_second"]
        peak = 100 * rate["median"] * result["flops_per_sample"] / (ceiling * 1e9)
        ratios = [f"{rate['median'] / ref:>8.2f}x" if ref else f"{'-':>9}" for ref in (hand, sk)]
        lines.append(
            f"{result['workload']:<8} {name:<11} {','.join(map(str, entry['threads'])):>7} "
            f"{rate['median']:>12,.0f} {compact(rate['min']) + '-' + compact(rate['max']):>16} "
            f"{entry['test_accuracy']:>8.4f} {ratios[0]} {ratios[1]} {peak:>7.2f}%"
        )
    lines += [
        f"{result['workload']:<8} {name:<11} skipped ({why})" for name, why in skipped.items()
    ]
    return lines


def report(results: list[dict[str, Any]], machine: dict[str, Any], skipped: dict[str, str]) -> str:
    head = (
        f"{'workload':<8} {'contender':<11} {'threads':>7} {'samples/s':>12} {'min-max':>16} "
        f"{'test acc':>8} {'vs hand':>9} {'vs sklearn':>10} {'% peak':>8}"
    )
    lines = [
        f"{machine['device']}; torch {machine['torch']}, {machine['threads']} threads by default; "
        f"float32 {machine['matmul_n']}x{machine['matmul_n']} matmul: "
        f"{machine['matmul_gflops']:.1f} GFLOP/s (the ceiling for '% peak')",
    ]
    for r in results:
        s, layers = r["settings"], "-".join(map(str, r["layers"]))
        bound = r["step_matmul_gflops"] * 1e9 / r["flops_per_sample"]
        lines.append(
            f"  {r['workload']}: {layers}, batch {s['batch_size']}, Adam lr {s['lr']:g}, "
            f"{s['epochs']} epochs, {r['rows']['train']:,} train / {r['rows']['test']:,} test "
            f"rows; {r['flops_per_sample'] / 1e3:,.1f} kFLOP per sample; one step's matmuls "
            f"alone: {r['step_matmul_gflops']:.1f} GFLOP/s = {bound:,.0f} samples/s"
        )
    lines += ["", head, "-" * len(head)]
    for r in results:
        lines += table(r, machine["matmul_gflops"], skipped)
    lines += ["", f"{'whole `mlp train` process':<26} {'wall s':>8} {'loop s':>8} {'test acc':>9}"]
    for r in results:
        cli = r["cli"]
        if cli is None:
            lines.append(f"{r['workload']:<26} not timed with --quick")
            continue
        lines.append(
            f"{r['workload']:<26} {cli['seconds']:>8.1f} {cli['train_seconds']:>8.2f} "
            f"{cli['test_accuracy']:>9.4f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 3, or 1 with --quick")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and rows: a smoke check")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    args.names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.names if w not in WORKLOADS]
    if unknown or not args.names:
        parser.error(f"--workloads: unknown {unknown}; accepted: {', '.join(WORKLOADS)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def selected(args: argparse.Namespace) -> list[Workload]:
    """The chosen workloads, with --quick's epochs and rows."""
    works = [WORKLOADS[name] for name in args.names]
    if not args.quick:
        return works
    return [
        dataclasses.replace(w, epochs=w.quick_epochs, rows=w.quick_rows or w.rows) for w in works
    ]


def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    log(f"matmul ceiling on {device}")
    n, gflops = matmul_ceiling(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    return {
        "device": name,
        "torch": torch.__version__,
        "threads": threads,
        "matmul_n": n,
        "matmul_gflops": gflops,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        log(f"--device cuda: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
        return 2
    names = [n for n in CONTENDERS if n != "Lightning" or lightning() is not None]
    skipped = {} if "Lightning" in names else {"Lightning": "not installed"}
    plan = Plan(names, torch.device(args.device), torch.get_num_threads(), args.repeats)
    machine = machine_info(plan.device, plan.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="mlpcli-train-speed-") as root:
        for i, work in enumerate(selected(args)):
            folder = Path(root) / work.name
            first = i == 0
            done = bench_workload(
                work, make_data(work), plan, folder, first, first or not args.quick
            )
            results.append(done)
    print(report(results, machine, skipped))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "quick": args.quick,
                "repeats": args.repeats,
                "device": args.device,
                "machine": machine,
                "skipped": skipped,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

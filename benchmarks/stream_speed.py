"""Streaming Parquet training against in-memory training, and a stream's memory at 8x the rows.

What it measures
    Three whole `mlp train` processes, side by side in one run, on generated Parquet data of
    32 float32 features and a binary target (a fixed noisy teacher: a linear score plus one
    product term; the model here reaches about 0.93 validation accuracy):
      in-memory 2M    one Parquet file of 2,097,152 rows, data.stream: false
      streaming 2M    the same rows as a folder of 16 files, data.stream: true
      streaming 16M   16,777,216 rows, 16 files, data.stream: true
    and `python -c "import torch"`, the floor of any process built on torch. For each: peak
    resident memory (the child's ru_maxrss from os.wait4, one child at a time), whole-process
    wall seconds, summary.json's train_seconds (the epoch loop alone) and samples_per_second
    (training rows x epochs / train_seconds), and the validation accuracy. It prints a table and
    the three ratios the streaming feature promises:
      streaming / in-memory rows/s at 2M     at least 0.5
      streaming 16M / 2M peak RSS            at most 1.10 (memory set by the shuffle buffer and
                                             the model, not by the rows)
      |val accuracy, streaming - in-memory|  at most 0.01 at 2M
    and the in-memory peak against the floor plus three times the table's float32 size.

What is held equal
    The model 32-128-128-1 (ReLU, the written-out engine), Adam lr 1e-3, batch 1024, 2 epochs,
    seed 0, validation and test fractions 0.2 each, train.threads (1 by default: the read-ahead
    thread of a stream then has the machine's second core, and the in-memory run is not slowed
    by two torch threads waiting on each other), diagnostics as by default, train.plots false.
    Row groups hold 131,072 rows; the 2M folder holds one per file, the 16M folder eight. The
    rows differ only in count: row group g of file f is drawn from the seed (f, g), so the 2M
    folder's file f is the 16M folder's file f cut after its first group. The in-memory file holds
    the 2M folder's rows in the same order. The splits differ (a stream splits by a hash of each
    row's position, the in-memory run by a seeded stratified draw), so the validation rows are
    other rows of the same distribution: on 400k validation rows, accuracy has a standard error
    under 0.0005.

Run
    python benchmarks/stream_speed.py [--work DIR] [--quick] [--repeats 1] [--threads 1]
        [--json PATH]
    The data are generated once into --work (default benchmarks/results/stream_data, about
    3.9 GB for the full sizes) and reused by later runs; each file is written row group by row
    group, never whole in memory. --quick uses 204,800 and 1,638,400 rows in row groups of 12,800
    (the 8x ratio of rows and groups per file kept) and a shuffle buffer of 32,768 rows, which
    the smaller size's training rows fill as 2M rows fill the default 262,144: a smoke check of
    a minute or two. With
    --repeats N, rounds are interleaved (each round runs every contender once) and the median
    is reported. Every number goes to benchmarks/results/stream_speed.json (git-ignored) unless
    --json names another file. Run it on an otherwise idle machine: another busy process slows
    the contender running at that moment, and only that one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS / "stream_speed.json"
FEATURES = 32
FILES = 16
SEED = 0
# Rows per row group, of the two sizes, and data.shuffle_buffer (None: the default, 262,144):
# the quick sizes take a buffer that the smaller size's training rows fill, as the full sizes do.
FULL = {"group": 131_072, "small": 16 * 131_072, "large": 16 * 8 * 131_072, "buffer": None}
QUICK = {"group": 12_800, "small": 16 * 12_800, "large": 16 * 8 * 12_800, "buffer": 32_768}
REFERENCE = "import torch"


@dataclass
class Contender:
    name: str
    argv: list[str]
    peak_mib: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def of_summary(self, key: str) -> float:
        return self.median([float(s[key]) for s in self.summary])

    @property
    def val_accuracy(self) -> float:
        return self.median([s["metrics"]["val"]["accuracy"] for s in self.summary])

    def row(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": self.name,
            "peak_rss_mib": self.median(self.peak_mib),
            "seconds": self.median(self.wall),
            "peak_rss_mib_each": self.peak_mib,
        }
        if self.summary:
            found["train_rows"] = self.summary[0]["rows"]["train"]
            found["train_seconds"] = self.of_summary("train_seconds")
            found["samples_per_second"] = self.of_summary("samples_per_second")
            found["val_accuracy"] = self.val_accuracy
            found["samples_per_second_each"] = [s["samples_per_second"] for s in self.summary]
            found["engine"] = self.summary[0]["engine"]  # held equal: the same for all
            found["threads"] = self.summary[0]["threads"]
        return found


# ---------------------------------------------------------------- data


def teacher() -> np.ndarray:
    return np.random.default_rng([SEED, 1]).standard_normal(FEATURES) / np.sqrt(FEATURES)


def row_group(file: int, group: int, rows: int) -> pa.Table:
    """Row group `group` of file `file`: drawn from its own seed, so that a folder of fewer
    groups per file holds the first groups of a larger one."""
    rng = np.random.default_rng([SEED, file, group])
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    score = x @ teacher() + 0.5 * x[:, 0] * x[:, 1] + 0.3 * rng.standard_normal(rows)
    columns = {f"x{i + 1}": x[:, i] for i in range(FEATURES)}
    columns["y"] = (score > 0).astype(np.float32)
    return pa.table(columns)


def write_parquet(path: Path, groups: list[tuple[int, int]], rows: int) -> None:
    """One Parquet file of the given (file, group) row groups, written one group at a time."""
    writer = None
    try:
        for file, group in groups:
            table = row_group(file, group, rows)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=rows)
    finally:
        if writer is not None:
            writer.close()


def make_data(work: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """The 2M folder, the same rows as one file, and the 16M folder, under `work`; each made
    in a temporary folder renamed when complete, and reused when it exists."""
    group = sizes["group"]
    per_file = {name: sizes[name] // FILES // group for name in ("small", "large")}
    made: dict[str, Path] = {}
    for name, what in (("small", "folder"), ("table", "file"), ("large", "folder")):
        groups = per_file["small" if name == "table" else name]
        rows = FILES * groups * group
        target = work / f"{what}-{rows}x{FEATURES}-g{group}"
        made[name] = target / "table.parquet" if what == "file" else target
        if target.exists():
            continue
        started = time.perf_counter()
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=work))
        if what == "file":
            every = [(f, g) for f in range(FILES) for g in range(groups)]
            write_parquet(building / "table.parquet", every, group)
        else:
            for f in range(FILES):
                path = building / f"part-{f:03d}.parquet"
                write_parquet(path, [(f, g) for g in range(groups)], group)
        building.rename(target)
        size = sum(p.stat().st_size for p in target.iterdir()) / 2**20
        print(
            f"wrote {target.name}: {rows:,} rows, {size:,.0f} MiB, "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return made


# ---------------------------------------------------------------- contenders


def mlp() -> list[str]:
    """The `mlp` console script of this interpreter's environment (what a user runs)."""
    script = Path(sys.executable).with_name("mlp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlpcli"]


def write_config(
    folder: Path, name: str, path: Path, stream: bool, threads: int, buffer: int | None
) -> Path:
    data: dict[str, Any] = {"source": "parquet", "path": str(path), "target": "y"}
    if stream:
        data.update(stream=True, shuffle_buffer=buffer)
    config = {
        "name": name,
        "seed": SEED,
        "task": "binary",
        "data": data,
        "model": {"hidden": [128, 128], "activation": "relu"},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 1024, "threads": threads, "plots": False},
    }
    file = folder / f"{name}.yaml"
    file.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return file


def label(rows: int) -> str:
    """2M for 2,097,152 rows (2**21), 0.2M for 204,800."""
    return f"{rows >> 20}M" if rows % 2**20 == 0 else f"{rows / 1e6:.2g}M"


def contenders(folder: Path, data: dict[str, Path], sizes: dict[str, int], threads: int) -> list:
    small, large = label(sizes["small"]), label(sizes["large"])
    out = str(folder / "runs")
    found = [Contender(REFERENCE, [sys.executable, "-c", "import torch"])]
    for name, path, stream in (
        (f"in-memory {small}", data["table"], False),
        (f"streaming {small}", data["small"], True),
        (f"streaming {large}", data["large"], True),
    ):
        config = write_config(
            folder, name.replace(" ", "-"), path, stream, threads, sizes["buffer"]
        )
        found.append(Contender(name, [*mlp(), "train", str(config), "--out", out, "-q", "--json"]))
    return found


def run_once(contender: Contender) -> None:
    """One whole process: its peak RSS (ru_maxrss of this child alone), wall seconds and, for a
    train command, its summary."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(contender.argv, cwd=ROOT, stdout=out, stderr=err, text=True)
        # wait4 reaps this child and gives its own rusage (RUSAGE_CHILDREN would be the
        # largest over every child so far).
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        printed, errors = out.read(), err.read()
    if code != 0:
        sys.exit(f"{contender.name} exited with {code}:\n{errors[-3000:]}")
    contender.peak_mib.append(usage.ru_maxrss / 1024)  # KiB on Linux
    contender.wall.append(wall)
    if printed.strip():
        contender.summary.append(json.loads(printed))


# ---------------------------------------------------------------- report


def ratios(found: list[Contender]) -> dict[str, float]:
    floor, memory, small, large = found
    return {
        "stream_vs_memory_rows_per_s": small.of_summary("samples_per_second")
        / memory.of_summary("samples_per_second"),
        "stream_large_vs_small_peak_rss": large.median(large.peak_mib)
        / small.median(small.peak_mib),
        "val_accuracy_difference": abs(small.val_accuracy - memory.val_accuracy),
        "stream_vs_memory_seconds": small.median(small.wall) / memory.median(memory.wall),
        "floor_mib": floor.median(floor.peak_mib),
    }


def print_table(found: list[Contender], sizes: dict[str, int]) -> None:
    head = (
        f"{'contender':<16} {'peak RSS MiB':>12} {'process s':>10} {'train s':>8} "
        f"{'train rows':>11} {'rows/s':>10} {'val acc':>8}"
    )
    print(head)
    print("-" * len(head))
    for c in found:
        r = c.row()
        if "train_seconds" not in r:
            print(f"{c.name:<16} {r['peak_rss_mib']:>12,.0f} {r['seconds']:>10.1f}")
            continue
        print(
            f"{c.name:<16} {r['peak_rss_mib']:>12,.0f} {r['seconds']:>10.1f} "
            f"{r['train_seconds']:>8.1f} {r['train_rows']:>11,} "
            f"{r['samples_per_second']:>10,.0f} {r['val_accuracy']:>8.4f}"
        )
    floor, memory, small, large = found
    got = ratios(found)
    table_mib = sizes["small"] * (FEATURES + 1) * 4 / 2**20
    print()
    print(
        f"streaming / in-memory rows/s at {small.name.split()[1]}: "
        f"{got['stream_vs_memory_rows_per_s']:.2f}x (needs >= 0.5)"
    )
    print(
        f"streaming {large.name.split()[1]} / {small.name.split()[1]} peak RSS: "
        f"{got['stream_large_vs_small_peak_rss']:.3f} (needs <= 1.10)"
    )
    print(
        f"val accuracy, streaming - in-memory: "
        f"{small.val_accuracy - memory.val_accuracy:+.4f} (needs |.| <= 0.01)"
    )
    print(f"whole process, streaming / in-memory: {got['stream_vs_memory_seconds']:.2f}x")
    above = memory.median(memory.peak_mib) - got["floor_mib"]
    print(
        f"in-memory peak: import torch + {above:,.0f} MiB = {above / table_mib:.1f} x the "
        f"table's float32 size ({table_mib:,.0f} MiB)"
    )
    stream_above = large.median(large.peak_mib) - got["floor_mib"]
    print(f"streaming {large.name.split()[1]} peak: import torch + {stream_above:,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=RESULTS / "stream_data")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.work.mkdir(parents=True, exist_ok=True)
    data = make_data(args.work, sizes)
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        found = contenders(Path(tmp), data, sizes, args.threads)
        for round_ in range(args.repeats):
            for c in found:
                print(f"round {round_ + 1}: {c.name}", file=sys.stderr)
                run_once(c)
        shutil.rmtree(Path(tmp) / "runs", ignore_errors=True)
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{FEATURES} features, batch 1024, 2 epochs, threads {args.threads}, "
        f"{args.repeats} round(s), medians"
    )
    print_table(found, sizes)
    record = {
        "sizes": sizes,
        "threads": args.threads,
        "repeats": args.repeats,
        "contenders": [c.row() for c in found],
        "ratios": ratios(found),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

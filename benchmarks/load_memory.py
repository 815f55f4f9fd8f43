"""Peak memory of `mlp train` on a Parquet table held in memory, against `import torch`.

What it measures
    The peak resident set (ru_maxrss, read by a launcher that starts each one) of whole processes:
      import torch       python -c "import torch": the floor for any tool built on torch
      train small        mlp train of the config below on the first 2,000 rows of the table:
                         imports, model, run folder, everything that does not grow with rows
      train              mlp train of the whole table: ROWS x 16 float32 features and a float32
                         target in one Parquet file (row groups of 262,144 rows), regression,
                         hidden [32], one epoch, batch 4096, no plots or diagnostics
    T is the table's bytes as float32, ROWS x 17 x 4. It prints each peak in MiB and
    (peak - import torch) / T and (peak - train small) / T: how many copies of the table the
    run holds at its peak.

Run
    python benchmarks/load_memory.py [--rows 2000000] [--json PATH]
    Every number goes to benchmarks/results/load_memory.json (git-ignored) unless --json names
    another file. Memory, unlike time, does not depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_JSON = Path(__file__).parent / "results" / "load_memory.json"
FEATURES = 16
CONFIG = """\
task: regression
data: {source: parquet, path: table.parquet, target: y}
model: {hidden: [32]}
train: {epochs: 1, batch_size: 4096, plots: false, diagnostics: false}
"""


def write_table(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.random.default_rng(0).standard_normal((rows, FEATURES), dtype=np.float32)
    columns = {f"x{i + 1}": x[:, i] for i in range(FEATURES)}
    columns["y"] = x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2]
    pq.write_table(pa.table(columns), path, row_group_size=262_144)


# Run by a fresh interpreter, which starts the command and prints its peak: the peak Linux
# reports for a child counts what it was forked from, and this benchmark's own process holds
# the tables it wrote; the launcher holds next to nothing.
LAUNCHER = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_mib(args: list[str], cwd: Path) -> float:
    """The peak resident memory of one process running args (ru_maxrss: KiB on Linux)."""
    run = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], cwd=cwd, capture_output=True, text=True
    )
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {run.stderr}")
    return int(run.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    table_mib = args.rows * (FEATURES + 1) * 4 / 2**20
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_table(work / "table.parquet", args.rows)
        write_table(work / "small.parquet", 2_000)
        (work / "c.yaml").write_text(CONFIG)
        train = [sys.executable, "-m", "mlpcli", "train", "c.yaml", "-q", "--out", "runs"]
        peaks = {
            "import torch": peak_mib([sys.executable, "-c", "import torch"], work),
            "train small": peak_mib([*train, "data.path=small.parquet"], work),
            "train": peak_mib(train, work),
        }
    print(f"table: {args.rows:,} x {FEATURES + 1} float32, T = {table_mib:.0f} MiB")
    for name, peak in peaks.items():
        over_torch = (peak - peaks["import torch"]) / table_mib
        over_small = (peak - peaks["train small"]) / table_mib
        print(
            f"{name:<13} {peak:7.0f} MiB  torch + {over_torch:4.2f} T  small + {over_small:5.2f} T"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": args.rows, "table_mib": table_mib, "peak_mib": peaks}))


if __name__ == "__main__":
    main()

"""The statistics pass of a stream against loading and fitting the same table in memory.

What it measures
    Seconds and peak resident memory (VmHWM) of one process each, side by side:
      in memory   load_dataset + fit_preprocessor of one Parquet file (data.stream: false)
      stream      open_stream + fit_stream of the same file (data.stream: true)
      stream x4   fit_stream of a folder of four copies of it (4x the rows)
    on N rows (default 2,000,000; --rows) of 16 float32 standard-normal features and a 0/1
    target, written in row groups of 250,000 rows. Seconds cover the data work alone, after
    the imports; the peak includes them. Each is run --repeats times (median, min, max).

What is held equal
    The config (seed 0, val_split and test_split 0.2, task auto: binary) and the files.

Run: python benchmarks/stream_stats.py [--rows N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from mlpcli.config.schema import Config
mode, path = sys.argv[1], sys.argv[2]
data = {"source": "parquet", "path": path, "stream": mode != "memory"}
config = Config.model_validate({"data": data})
if mode == "memory":
    from mlpcli.data.sources import fit_preprocessor, load_dataset
    start = time.perf_counter()
    fit_preprocessor(config, load_dataset(config))
else:
    from mlpcli.data.stream import fit_stream, open_stream
    start = time.perf_counter()
    fit_stream(config, open_stream(config))
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"seconds": seconds, "peak_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def write(folder: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.standard_normal(rows, dtype=np.float32) for i in range(16)}
    columns["y"] = (columns["x0"] + 0.5 * columns["x1"] > 0).astype(np.int64)
    path = folder / "one.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=250_000)
    (folder / "four").mkdir()
    for i in range(4):
        shutil.copy(path, folder / "four" / f"part-{i}.parquet")
    return path


def run(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = write(Path(tmp), args.rows)
        contenders = [("in memory", "memory", one), ("stream", "stream", one)]
        contenders.append(("stream x4", "stream", one.parent / "four"))
        results = {}
        for label, mode, path in contenders:
            runs = [run(mode, path) for _ in range(args.repeats)]
            results[label] = runs
            seconds = [r["seconds"] for r in runs]
            peak = max(r["peak_mb"] for r in runs)
            print(
                f"{label:10s} {statistics.median(seconds):6.2f} s "
                f"(min {min(seconds):.2f}, max {max(seconds):.2f})  peak {peak:5.0f} MB"
            )
        median = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
        peak = {k: max(r["peak_mb"] for r in v) for k, v in results.items()}
        print(f"stream / in memory: {median['stream'] / median['in memory']:.2f}x the seconds")
        print(
            f"stream x4 / stream: {median['stream x4'] / median['stream']:.2f}x the seconds, "
            f"{peak['stream x4'] / peak['stream']:.2f}x the peak"
        )


if __name__ == "__main__":
    main()

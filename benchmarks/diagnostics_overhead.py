"""What the per-layer diagnostics cost: every shipped config trained with them off, with the
default (`every: auto`) and with a record after every epoch (`every: 1`), side by side.

What it measures
    The wall time of Trainer.fit() (every epoch, validation and callback, the run folder's
    own among them: metrics.csv, checkpoints, diagnostics.csv), not start-up, data loading,
    the final scoring or the plots, which diagnostics do not touch. Each config runs
    --repeats times per setting, the settings interleaved so that a busy spell of the machine
    hits all of them alike; the median is reported, and the overhead is the median's ratio
    to the median with diagnostics off. "records" is the number of epochs diagnostics.csv
    holds under `every: auto`.

Run
    python benchmarks/diagnostics_overhead.py [--repeats 5] [--configs moons digits ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import mlpcli
from mlpcli.diagnostics import read_rows
from mlpcli.trainer import Trainer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SETTINGS = {
    "off": "train.diagnostics=false",
    "auto": "train.diagnostics={every: auto}",
    "every 1": "train.diagnostics={every: 1}",
}


def timed_fits() -> list[float]:
    """Make Trainer.fit record how long each call takes."""
    durations: list[float] = []
    fit = Trainer.fit

    def timed(self: Trainer) -> None:
        start = time.perf_counter()
        try:
            fit(self)
        finally:
            durations.append(time.perf_counter() - start)

    Trainer.fit = timed  # type: ignore[method-assign]
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", nargs="*", default=None)
    args = parser.parse_args()
    names = args.configs or sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    durations = timed_fits()
    print(f"{'config':<12}{'epochs':>7}{'off s':>9}", end="")
    for setting in list(SETTINGS)[1:]:
        print(f"{setting + ' s':>11}{'ratio':>8}", end="")
    print(f"{'records':>9}")
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            times: dict[str, list[float]] = {s: [] for s in SETTINGS}
            records = epochs = 0
            for _ in range(args.repeats):
                for setting, override in SETTINGS.items():
                    result = mlpcli.train(CONFIGS / f"{name}.yaml", [override], out=out, quiet=True)
                    times[setting].append(durations[-1])
                    epochs = result.summary["epochs_run"]
                    if setting == "auto":
                        rows = read_rows(result.run_dir / "diagnostics.csv")
                        records = len({r["epoch"] for r in rows})
            off = statistics.median(times["off"])
            print(f"{name:<12}{epochs:>7}{off:>9.3f}", end="")
            for setting in list(SETTINGS)[1:]:
                median = statistics.median(times[setting])
                print(f"{median:>11.3f}{median / off:>8.3f}", end="")
            print(f"{records:>9}")


if __name__ == "__main__":
    main()

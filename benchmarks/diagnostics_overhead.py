"""What the per-layer diagnostics cost: every shipped config trained with them off, with the
default (`every: auto`) and with a record after every epoch (`every: 1`), side by side.

What it measures
    The wall time of Trainer.fit() (every epoch, validation and callback, the run folder's
    own among them: metrics.csv, checkpoints, diagnostics.csv), not start-up, data loading,
    the final scoring or the plots, which diagnostics do not touch. Each config runs
    --repeats times per setting, the settings interleaved so that a busy spell of the machine
    hits all of them alike; medians are reported.
      off s, auto s, every 1 s   the fit's median wall time in each setting
      ratio                      that median over the median with diagnostics off
      diag %                     the time spent inside the diagnostics callback itself
                                 (timed around each of its calls), over the fit's median with
                                 diagnostics off: the cost alone, without the run-to-run
                                 noise of a whole fit (synced file writes vary by tens of
                                 milliseconds), which on runs this short can exceed it
      records                    the epochs diagnostics.csv holds under `every: auto`

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
from mlpcli.training.diagnostics import Diagnostics, read_rows
from mlpcli.training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SETTINGS = {
    "off": "train.diagnostics=false",
    "auto": "train.diagnostics={every: auto}",
    "every 1": "train.diagnostics={every: 1}",
}


def timed(owner: type, name: str, durations: list[float]) -> None:
    """Make owner.name append how long each call takes to durations."""
    method = getattr(owner, name)

    def wrapper(self: object, *args: object) -> None:
        start = time.perf_counter()
        try:
            method(self, *args)
        finally:
            durations.append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", nargs="*", default=None)
    args = parser.parse_args()
    names = args.configs or sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    fits: list[float] = []
    inside: list[float] = []  # every call of the diagnostics callback
    timed(Trainer, "fit", fits)
    for hook in ("on_train_start", "on_epoch_end"):
        timed(Diagnostics, hook, inside)
    columns = f"{'config':<12}{'epochs':>7}{'off s':>8}"
    for setting in list(SETTINGS)[1:]:
        columns += f"{setting + ' s':>11}{'ratio':>7}{'diag %':>8}"
    print(f"{columns}{'records':>9}")
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            times: dict[str, list[float]] = {s: [] for s in SETTINGS}
            spent: dict[str, list[float]] = {s: [] for s in SETTINGS}
            records = epochs = 0
            for _ in range(args.repeats):
                for setting, override in SETTINGS.items():
                    inside.clear()
                    result = mlpcli.train(CONFIGS / f"{name}.yaml", [override], out=out, quiet=True)
                    times[setting].append(fits[-1])
                    spent[setting].append(sum(inside))
                    epochs = result.summary["epochs_run"]
                    if setting == "auto":
                        rows = read_rows(result.run_dir / "diagnostics.csv")
                        records = len({r["epoch"] for r in rows})
            off = statistics.median(times["off"])
            line = f"{name:<12}{epochs:>7}{off:>8.3f}"
            for setting in list(SETTINGS)[1:]:
                median = statistics.median(times[setting])
                share = 100 * statistics.median(spent[setting]) / off
                line += f"{median:>11.3f}{median / off:>7.3f}{share:>7.1f}%"
            print(f"{line}{records:>9}", flush=True)


if __name__ == "__main__":
    main()

"""Pruners: which epochs a trial waits for a verdict at, Optuna's pruner for each PRUNERS name,
and the verdict in words, worked out from what the pruner itself looked at."""

from __future__ import annotations

import math
import statistics
from typing import Any

from ...console import number

# ASHA keeps the best quarter of the trials at each rung, as Optuna's SuccessiveHalvingPruner
# and Ray Tune's ASHAScheduler do by default, but its first rung is epoch 4, not 1 (rungs 4, 16,
# 64, ...): after one epoch the validation score mostly tells which learning rate is largest,
# and a search cut there kept too few good trials (on digits, 1 to 5 of 40 ran to the end and
# one seed in three missed the grid's best by 0.011; with the first rung at 4 every seed came
# within 0.003, at a third of the grid's epochs). The median rule waits for 5 completed trials,
# as Optuna's MedianPruner does.
REDUCTION_FACTOR = 4
MIN_RESOURCE = 4
MEDIAN_STARTUP = 5


def make_pruner(optuna: Any, name: str) -> Any:
    """Optuna's pruner for a PRUNERS name, every argument given (defaults drift between
    versions)."""
    pruners = optuna.pruners
    if name == "median":
        return pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0, interval_steps=1
        )
    if name == "asha":
        return pruners.SuccessiveHalvingPruner(
            min_resource=MIN_RESOURCE,
            reduction_factor=REDUCTION_FACTOR,
            min_early_stopping_rate=0,
            bootstrap_count=0,
        )
    return pruners.NopPruner()


def ask_epochs(name: str, epochs: int) -> frozenset[int]:
    """The epochs at which a trial of `epochs` epochs waits for a verdict: every epoch but the
    last for the median rule, ASHA's rungs below the last epoch (none in a trial of 4 epochs
    or fewer), none without pruning."""
    if name == "median":
        return frozenset(range(1, epochs))
    if name == "asha":
        return frozenset(rungs(epochs))
    return frozenset()


def rungs(epochs: int) -> list[int]:
    """ASHA's rungs below the last epoch: 4, 16, 64, ..."""
    found, rung = [], MIN_RESOURCE
    while rung < epochs:
        found.append(rung)
        rung *= REDUCTION_FACTOR
    return found


def reason(
    optuna: Any, study: Any, trial: Any, name: str, epoch: int, objective: str, maximise: bool
) -> str:
    """Why `trial` was pruned at `epoch`, in the numbers the pruner compared."""
    trials = study.get_trials(deepcopy=False)
    frozen = next(t for t in trials if t.number == trial.number)
    if name == "median":
        return _median_reason(optuna, trials, frozen, epoch, objective, maximise)
    if name == "asha":
        return _asha_reason(trials, frozen, epoch, objective, maximise)
    return f"epoch {epoch}: pruned"


def _median_reason(
    optuna: Any, trials: list[Any], frozen: Any, epoch: int, objective: str, maximise: bool
) -> str:
    values = [v for s, v in frozen.intermediate_values.items() if s <= epoch]
    best = max(values) if maximise else min(values)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    others = [t.intermediate_values[epoch] for t in complete if epoch in t.intermediate_values]
    others = [v for v in others if not math.isnan(v)]
    if math.isnan(best) or not others:
        return f"epoch {epoch}: {objective} is not a number"
    median = statistics.median(others)  # Optuna's 50th percentile, interpolated alike
    side = "below" if maximise else "above"
    return (
        f"epoch {epoch}: best {objective} so far {number(best)}, {side} the median "
        f"{number(median)} of {len(others)} completed trials at epoch {epoch}"
    )


def _asha_reason(trials: list[Any], frozen: Any, epoch: int, objective: str, maximise: bool) -> str:
    value = frozen.intermediate_values.get(epoch, math.nan)
    if math.isnan(value):
        return f"epoch {epoch}: {objective} is not a number"
    # The rung this epoch is, and where Optuna's successive halving keeps each trial's value
    # at it: the values it compared this trial's with.
    rung = rungs(epoch + 1).index(epoch) if epoch in rungs(epoch + 1) else 0
    key = f"completed_rung_{rung}"
    competing = sorted(t.system_attrs[key] for t in trials if key in t.system_attrs)
    if not competing:
        return f"epoch {epoch}: {objective} {number(value)}, not among the best"
    keep = max(1, len(competing) // REDUCTION_FACTOR)
    cutoff = competing[-keep] if maximise else competing[keep - 1]
    return (
        f"epoch {epoch}: {objective} {number(value)}, not in the best {keep} of "
        f"{len(competing)} trials at epoch {epoch} (cut-off {number(cutoff)})"
    )

"""Sweeps: a grid of trials over a base config, run by local workers, gathered into one table."""

from ..sweeps.runner import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]

"""Sweeps: a grid of trials over a base config, run by an executor (worker processes on this
machine, or Ray), gathered into one table and its figures."""

from .runner import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]

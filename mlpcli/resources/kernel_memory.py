"""The memory the kernel baseline's fit needs (float64 kernel matrices), checked against what is
available before any matrix is allocated, and the sizes that bound it."""

from __future__ import annotations

from ..errors import ConfigError
from .memory import available_memory

MAX_EXACT_ROWS = 2000  # training rows the kernel baseline solves exactly; above, Nystroem
LANDMARKS = 1000  # Nystroem's centres: a seeded random subset of the training rows
FLOAT64 = 8  # bytes


def kernel_centres(rows: int) -> int:
    """The centres a fit on `rows` training rows keeps: every row, or the landmarks."""
    return rows if rows <= MAX_EXACT_ROWS else LANDMARKS


def kernel_bytes(rows: int, other_rows: int) -> int:
    """float64 bytes the fit holds at its peak: two matrices of the training rows against the
    centres (their squared distances and kernel, or the kernel and Nystroem's features), six of
    the centres against themselves (W, its eigenvectors and W^-1/2, the system, a copy and its
    Cholesky factor), and two of the largest other split's rows against the centres (their
    squared distances and kernel)."""
    centres = kernel_centres(rows)
    return FLOAT64 * (2 * rows * centres + 6 * centres * centres + 2 * other_rows * centres)


def check_kernel_memory(
    rows: int, other_rows: int, available: tuple[int, str] | None = None
) -> None:
    """Refuse (ConfigError, exit 2) a kernel fit whose matrices do not fit in the memory
    available (default: memory.available_memory()), naming the limit."""
    need = kernel_bytes(rows, other_rows)
    free, source = available if available is not None else available_memory()
    if need <= free:
        return
    how = (
        f"{rows:,} x {rows:,}, exact up to {MAX_EXACT_ROWS:,} training rows"
        if rows <= MAX_EXACT_ROWS
        else f"{rows:,} x {LANDMARKS:,} Nystroem landmarks"
    )
    raise ConfigError(
        f"train.baseline kernel: its kernel matrices ({how}) need about {need / 1e9:.2f} GB of "
        f"memory, more than the {free / 1e9:.2f} GB available ({source}); use fewer rows "
        f"(data.n_samples, or a smaller file) or leave kernel out of train.baseline"
    )

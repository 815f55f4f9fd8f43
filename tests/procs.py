"""`mlp` commands in real child processes, for tests that kill, signal or race them.

Each child is forked from a server process that has already imported mlpcli and torch, so a test
can start dozens of them without paying the imports each time; inside, the child runs the same
entry point as the `mlp` console script, with its own pid, files and exit code.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from pathlib import Path
from typing import Any

# torch._dynamo is imported by the first optimizer a process builds; preloading it keeps that
# out of every child's start-up too.
PRELOAD = [
    *("mlpcli.cli", "mlpcli.training.run", "torch", "torch._dynamo"),
    *("sklearn.datasets", "sklearn.model_selection", "matplotlib.pyplot"),
]

_context = mp.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _main(argv: list[str], log: str, gate: Any) -> None:
    import torch

    # SIGINT raises KeyboardInterrupt, as in an `mlp` started from a terminal. The children
    # inherit the test runner's SIGINT disposition through the fork server, and a runner started
    # in the background by a non-interactive shell ignores SIGINT: a child would then carry on
    # through the SIGINT a test sends it and run to its end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)  # many children share two cores
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if gate is not None:
        gate.wait()
    from mlpcli.cli import app

    sys.argv = ["mlp", *argv]
    app(prog_name="mlp")  # exits through SystemExit with the command's exit code


def start(argv: list[Any], log: Path, gate: Any = None) -> mp.Process:
    """Start `mlp ARGV` in a child process whose stdout and stderr go to `log`."""
    process = _context.Process(target=_main, args=([str(a) for a in argv], str(log), gate))
    process.start()
    return process


def barrier(parties: int) -> Any:
    """A barrier the children of `start` can wait on, to begin at the same moment."""
    return _context.Barrier(parties)

"""mlpcli: train, evaluate and sweep multi-layer perceptrons from YAML files.

The API (mlpcli.api) is imported lazily so that `import mlpcli` (and the CLI's --help) stays free of torch.
"""

from __future__ import annotations

from typing import Any

from .version import __version__ as __version__

__all__ = [
    "Config",
    "evaluate",
    "export",
    "inspect",
    "load",
    "load_config",
    "plot",
    "predict",
    "summary",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")

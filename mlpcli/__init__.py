"""mlpcli: train, evaluate and sweep multi-layer perceptrons from YAML files.

The API is imported lazily so that `import mlpcli` (and the CLI's --help) stays free of torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Config", "load", "load_config", "train"]

_LAZY = {
    "train": "mlpcli.api",
    "load": "mlpcli.evaluate",
    "load_config": "mlpcli.config",
    "Config": "mlpcli.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")

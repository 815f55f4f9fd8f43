"""mlpcli: train, evaluate and sweep multi-layer perceptrons from YAML files.

The names of the API (mlpcli.api, which lists them in its __all__) are looked up there when
first used, so that `import mlpcli` (and the CLI's --help) stays free of torch and pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__ as __version__


def __getattr__(name: str) -> Any:
    # Python asks a package for names of its own (submodules being imported, __path__, ...):
    # only the API's names, and its __all__, are looked up in mlpcli.api.
    if name.startswith("_") and name != "__all__":
        raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")
    api = importlib.import_module("mlpcli.api")
    if name == "__all__":
        return api.__all__
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")

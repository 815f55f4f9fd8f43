"""The version of mlpcli, in one place: the package metadata reads it (pyproject.toml)."""

__version__ = "0.1.0"

"""Data: sources (synthetic, bundled, files), splits, and the Preprocessor that travels with a model."""

from .preprocess import Preprocessor
from .sources import Dataset, fit_preprocessor, load_dataset

__all__ = ["Dataset", "Preprocessor", "fit_preprocessor", "load_dataset"]

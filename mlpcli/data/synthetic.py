"""Synthetic data sets as Columns and bundled ones as DataFrames: features x1, x2, ... and target
column y.

Every generator takes (n_samples, noise, rng) and is seeded by the caller, so a config and its seed
always give the same rows. moons, circles and blobs draw the very rows scikit-learn's make_moons,
make_circles and make_blobs draw for the same seed (written out here in numpy, so that a synthetic
run never imports scikit-learn). The bundled sets come from scikit-learn's package data; nothing is
downloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..config.registry import SYNTHETIC_SOURCES
from .columns import Columns, columns_of

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------- scikit-learn's generators
# Each step below is the one scikit-learn 1.x takes, in the same order and with the same legacy
# RandomState, so that every draw, and so every row, is bitwise the same as its own.


def _halves(n: int) -> tuple[int, int, np.ndarray]:
    """The outer and inner shapes' sizes, and the labels 0 (outer) then 1 (inner)."""
    n_out = n // 2
    n_in = n - n_out
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    return n_out, n_in, y


def _shuffle(
    x: np.ndarray, y: np.ndarray, state: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.utils.shuffle: one shuffled arange indexes both arrays."""
    order = np.arange(x.shape[0])
    state.shuffle(order)
    return x[order], y[order]


def make_moons(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.datasets.make_moons(n, noise=noise, random_state=seed), shuffled."""
    n_out, n_in, y = _halves(n)
    state = np.random.RandomState(seed)
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    x = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    x, y = _shuffle(x, y, state)
    x += state.normal(scale=noise, size=x.shape)
    return x, y


def make_circles(
    n: int, noise: float, seed: int, factor: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.datasets.make_circles(n, noise=noise, random_state=seed, factor=factor)."""
    n_out, n_in, y = _halves(n)
    state = np.random.RandomState(seed)
    # endpoint=False: the first point is not drawn again as the last
    angle_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    outer_x, outer_y = np.cos(angle_out), np.sin(angle_out)
    inner_x, inner_y = np.cos(angle_in) * factor, np.sin(angle_in) * factor
    x = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    x, y = _shuffle(x, y, state)
    x += state.normal(scale=noise, size=x.shape)
    return x, y


def make_blobs(
    n: int, centers: int, cluster_std: float, seed: int, n_features: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.datasets.make_blobs(n, n_features, centers=centers, cluster_std=cluster_std,
    random_state=seed): centres uniform in [-10, 10), the first n % centers blobs one row larger."""
    state = np.random.RandomState(seed)
    middles = state.uniform(-10.0, 10.0, size=(centers, n_features))
    stds = np.full(centers, cluster_std)
    sizes = [n // centers + (i < n % centers) for i in range(centers)]
    x = np.empty((n, n_features), dtype=np.float64)
    y = np.empty(n, dtype=int)
    start = 0
    for i, (size, std) in enumerate(zip(sizes, stds)):
        x[start : start + size] = state.normal(loc=middles[i], scale=std, size=(size, n_features))
        y[start : start + size] = i
        start += size
    return _shuffle(x, y, state)


# ---------------------------------------------------------------- the sources


def moons(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Two interleaved half-moons (scikit-learn's make_moons)."""
    return columns_of(*make_moons(n, noise, int(rng.integers(2**31))))


def circles(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """A circle inside another of twice its radius (scikit-learn's make_circles)."""
    return columns_of(*make_circles(n, noise, int(rng.integers(2**31)), factor=0.5))


def xor(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """The four-quadrant XOR: no linear model does better than chance."""
    x = rng.uniform(-1, 1, size=(n, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    return columns_of(x + noise * rng.standard_normal(x.shape), y)


def spirals(n: int, noise: float, rng: np.random.Generator, arms: int = 3) -> Columns:
    """Interleaved spiral arms, one class each (the classic CS231n set)."""
    per_arm = np.array_split(np.arange(n), arms)
    xs, ys = [], []
    for arm, idx in enumerate(per_arm):
        r = np.linspace(0.05, 1.0, len(idx))
        theta = np.linspace(arm * 4.0, (arm + 1) * 4.0, len(idx)) + noise * rng.standard_normal(
            len(idx)
        )
        xs.append(np.c_[r * np.sin(theta), r * np.cos(theta)])
        ys.append(np.full(len(idx), arm))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(n)
    return columns_of(x[order], y[order])


def blobs(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Four Gaussian blobs in the plane, wider with more noise (scikit-learn's make_blobs)."""
    return columns_of(*make_blobs(n, 4, 1.0 + 10 * noise, int(rng.integers(2**31))))


def sine(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """One input, one output: y = sin(2 pi x) + noise on [-1, 1]."""
    x = rng.uniform(-1, 1, size=(n, 1))
    y = np.sin(2 * np.pi * x[:, 0]) + noise * rng.standard_normal(n)
    return columns_of(x, y)


def multilabel(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Points in the plane with three overlapping yes/no labels, each a nonlinear region."""
    x = rng.uniform(-1.5, 1.5, size=(n, 2))
    labels = np.c_[
        (x**2).sum(axis=1) < 1.0,  # inside the unit circle
        x[:, 1] > 0.5 * np.sin(np.pi * x[:, 0]),  # above a wave
        np.abs(x[:, 0] - x[:, 1]) < 0.6,  # on a diagonal band
    ].astype(int)
    names = list(SYNTHETIC_SOURCES["multilabel"].targets)  # the columns, in the order above
    return columns_of(x + noise * rng.standard_normal(x.shape), labels, names)


def bundled(name: str) -> pd.DataFrame:
    """A scikit-learn bundled set with its own feature names; class labels as their names."""
    import sklearn.datasets as skd

    bunch = getattr(skd, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "y"})
    if "target_names" in bunch and name != "digits":
        frame["y"] = np.asarray(bunch.target_names)[frame["y"].to_numpy()]
    return frame

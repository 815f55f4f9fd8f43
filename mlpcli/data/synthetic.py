"""Synthetic and bundled data sets as DataFrames: features x1, x2, ... and target column y.

Every generator takes (n_samples, noise, rng) and is seeded by the caller, so a config and its seed
always give the same rows. The bundled sets come from scikit-learn's package data; nothing is
downloaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _frame(x: np.ndarray, y: np.ndarray, target: str | list[str] = "y") -> pd.DataFrame:
    frame = pd.DataFrame(x, columns=[f"x{i + 1}" for i in range(x.shape[1])])
    if isinstance(target, list):
        for i, name in enumerate(target):
            frame[name] = y[:, i]
    else:
        frame[target] = y
    return frame


def moons(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=noise, random_state=rng.integers(2**31))
    return _frame(x, y)


def circles(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_circles

    x, y = make_circles(n, noise=noise, factor=0.5, random_state=rng.integers(2**31))
    return _frame(x, y)


def xor(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    """The four-quadrant XOR: no linear model does better than chance."""
    x = rng.uniform(-1, 1, size=(n, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    return _frame(x + noise * rng.standard_normal(x.shape), y)


def spirals(n: int, noise: float, rng: np.random.Generator, arms: int = 3) -> pd.DataFrame:
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
    return _frame(x[order], y[order])


def blobs(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n, centers=4, cluster_std=1.0 + 10 * noise, random_state=rng.integers(2**31))
    return _frame(x, y)


def sine(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    """One input, one output: y = sin(2 pi x) + noise on [-1, 1]."""
    x = rng.uniform(-1, 1, size=(n, 1))
    y = np.sin(2 * np.pi * x[:, 0]) + noise * rng.standard_normal(n)
    return _frame(x, y)


def multilabel(n: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    """Points in the plane with three overlapping yes/no labels, each a nonlinear region."""
    x = rng.uniform(-1.5, 1.5, size=(n, 2))
    labels = np.c_[
        (x**2).sum(axis=1) < 1.0,  # inside the unit circle
        x[:, 1] > 0.5 * np.sin(np.pi * x[:, 0]),  # above a wave
        np.abs(x[:, 0] - x[:, 1]) < 0.6,  # on a diagonal band
    ].astype(int)
    return _frame(x + noise * rng.standard_normal(x.shape), labels, ["circle", "wave", "band"])


def bundled(name: str) -> pd.DataFrame:
    """A scikit-learn bundled set with its own feature names; class labels as their names."""
    import sklearn.datasets as skd

    bunch = getattr(skd, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "y"})
    if "target_names" in bunch and name != "digits":
        frame["y"] = np.asarray(bunch.target_names)[frame["y"].to_numpy()]
    return frame

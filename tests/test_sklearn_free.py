"""The numpy generators and splits draw bitwise what scikit-learn draws for the same seeds.

scikit-learn is the oracle here: a run's rows and splits must not change because they are no
longer drawn by scikit-learn (the shipped configs' scores, and the fingerprints that eval checks,
depend on it).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.model_selection import train_test_split
from sklearn.utils.extmath import _approximate_mode

from mlpcli.config.schema import build_config
from mlpcli.data import synthetic
from mlpcli.data.columns import as_frame
from mlpcli.data.sources import load_dataset
from mlpcli.data.splits import approximate_mode, part_size, split_frame, split_indices

SEEDS = (0, 1, 42, 12345, 2**31 - 1)
SIZES = (1, 2, 3, 4, 5, 7, 10, 99, 1000, 2001)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal: shape, dtype and bytes (so 0.0 and -0.0, or two NaNs, are told apart)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_moons_and_circles_are_scikit_learns_rows():
    for n, noise, seed in itertools.product(SIZES, (0.0, 0.05, 0.2, 1.5), SEEDS):
        for ours, theirs in (
            (synthetic.make_moons(n, noise, seed), make_moons(n, noise=noise, random_state=seed)),
            (
                synthetic.make_circles(n, noise, seed, factor=0.5),
                make_circles(n, noise=noise, random_state=seed, factor=0.5),
            ),
            (
                synthetic.make_circles(n, noise, seed),
                make_circles(n, noise=noise, random_state=seed),
            ),
        ):
            assert same(ours[0], theirs[0]) and same(ours[1], theirs[1]), (n, noise, seed)


def test_blobs_are_scikit_learns_rows():
    for n, centers, std, seed in itertools.product(SIZES, (1, 3, 4, 7), (0.5, 1.0, 3.0), SEEDS):
        ours = synthetic.make_blobs(n, centers, std, seed)
        theirs = make_blobs(n, centers=centers, cluster_std=std, random_state=seed)
        assert same(ours[0], theirs[0]) and same(ours[1], theirs[1]), (n, centers, std, seed)


@pytest.mark.parametrize("source", ["moons", "circles", "blobs"])
def test_sources_give_the_frames_scikit_learn_gave(source):
    """The sources as load_dataset calls them, against the code they replace."""
    for n, noise, seed in itertools.product((5, 200, 2000), (0.0, 0.2), (0, 7, 2**32 - 1)):
        ours = getattr(synthetic, source)(n, noise, np.random.default_rng(seed))
        state = np.random.default_rng(seed).integers(2**31)
        if source == "moons":
            x, y = make_moons(n, noise=noise, random_state=state)
        elif source == "circles":
            x, y = make_circles(n, noise=noise, factor=0.5, random_state=state)
        else:
            x, y = make_blobs(n, centers=4, cluster_std=1.0 + 10 * noise, random_state=state)
        theirs = pd.DataFrame(x, columns=["x1", "x2"]).assign(y=y)
        pd.testing.assert_frame_equal(as_frame(ours), theirs, check_exact=True)


def scikit_learn_split(frame, fraction, seed, stratify):
    """What split_frame did with scikit-learn: stratified, else a plain shuffle."""
    try:
        return train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:
        return train_test_split(frame, test_size=fraction, random_state=seed)


def labels_for(kind: str, n: int, rng: np.random.Generator) -> pd.Series | None:
    """Strata as load_dataset passes them (class labels as text), of several shapes."""
    if kind == "none":
        return None
    if kind == "balanced":
        y = np.arange(n) % 2
    elif kind == "imbalanced":  # about 80 / 15 / 5 per cent
        y = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])
    elif kind == "rare":  # one row of its own class: cannot be stratified
        y = np.r_[np.zeros(n - 1, dtype=int), 1]
    elif kind == "many":  # more classes than a small part has rows
        y = np.arange(n) % max(1, n // 2)
    else:  # words, shuffled
        y = rng.choice(np.array(["cat", "dog", "émeu", "Zebra", "10", "9"]), size=n)
    return pd.Series(y).astype(str)


KINDS = ("none", "balanced", "imbalanced", "rare", "many", "words")
FRACTIONS = (0.01, 0.15, 0.2, 0.25, 0.33, 0.5, 0.9)
SPLIT_SIZES = (2, 3, 4, 5, 6, 7, 10, 11, 20, 37, 100, 1001)


@pytest.mark.parametrize("kind", KINDS)
def test_splits_are_train_test_splits(kind):
    rng = np.random.default_rng(len(kind))
    checked = 0
    for n, fraction in itertools.product(SPLIT_SIZES, FRACTIONS):
        if n - part_size(n, fraction) < 1:
            continue  # load_dataset refuses these before splitting
        strata = labels_for(kind, n, rng)
        # An index that is not 0..n-1, as the second split (the validation rows) receives.
        frame = pd.DataFrame({"a": rng.standard_normal(n), "b": np.arange(n)})
        frame.index = rng.permutation(n) + 100
        if strata is not None:
            strata.index = frame.index
        for seed in (0, 1, 2**32 - 1):
            ours = split_frame(frame, fraction, seed, strata)
            theirs = scikit_learn_split(frame, fraction, seed, strata)
            for mine, reference in zip(ours, theirs):
                pd.testing.assert_frame_equal(mine, reference, check_exact=True)
            checked += 1
    assert checked > 200


def test_split_indices_partition_the_rows_with_ceil_of_the_fraction():
    rest, part = split_indices(11, 0.33, seed=3, strata=np.array(list("aabbbbbbbbb")))
    assert len(part) == part_size(11, 0.33) == 4
    assert sorted(np.r_[rest, part]) == list(range(11))


@pytest.mark.parametrize("fraction, n", [(1.0, 10), (0.95, 10), (1.5, 10)])
def test_a_split_that_leaves_no_rest_is_refused(fraction, n):
    with pytest.raises(ValueError, match="keep a row"):
        split_indices(n, fraction, seed=0)


def test_zero_fraction_splits_off_nothing():
    frame = pd.DataFrame({"a": range(5)})
    rest, part = split_frame(frame, 0.0, 0, None)
    assert rest is frame and len(part) == 0


def test_approximate_mode_is_scikit_learns():
    rng = np.random.default_rng(1)
    for _ in range(300):
        counts = rng.integers(1, 30, size=rng.integers(1, 8))
        draws = int(rng.integers(1, counts.sum() + 1))
        seed = int(rng.integers(2**32))
        ours = approximate_mode(counts, draws, np.random.RandomState(seed))
        assert same(ours, _approximate_mode(counts, draws, np.random.RandomState(seed)))


@pytest.mark.parametrize(
    "source, fractions",
    [
        ("moons", (0.2, 0.2)),
        ("spirals", (0.15, 0.15)),
        ("blobs", (0.1, 0.33)),
        ("sine", (0.2, 0.2)),
    ],
)
def test_load_dataset_splits_as_before(source, fractions):
    """A whole synthetic data section against the old pipeline: the rows scikit-learn drew,
    split off for test with the seed and for validation with seed + 1."""
    val, test = fractions
    seed = 5
    raw = {"name": "t", "seed": seed, "data": {"source": source, "n_samples": 301}}
    raw["data"].update(val_split=val, test_split=test)
    dataset = load_dataset(build_config(raw))

    frame = as_frame(getattr(synthetic, source)(301, 0.1, np.random.default_rng(seed)))
    strata = (lambda f: None) if source == "sine" else (lambda f: f["y"].astype(str))
    rest, test_rows = scikit_learn_split(frame, test, seed, strata(frame))
    train_rows, val_rows = scikit_learn_split(rest, val / (1 - test), seed + 1, strata(rest))
    for ours, theirs in zip(
        (dataset.train, dataset.val, dataset.test), (train_rows, val_rows, test_rows)
    ):
        # A synthetic set travels as Columns, which keep no row labels.
        pd.testing.assert_frame_equal(
            as_frame(ours), theirs.reset_index(drop=True), check_exact=True
        )


@pytest.mark.slow
def test_mlp_train_of_a_synthetic_config_imports_no_sklearn(tmp_path):
    """A whole `mlp train` in a child process: its modules, once it has written the run.
    (tests/test_imports.py checks pandas and torch._dynamo the same way.)"""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {source: moons, n_samples: 60}\nmodel: {hidden: [4]}\ntrain: {epochs: 1}\n"
    )
    args = ["train", str(config), "--out", str(tmp_path / "runs"), "-q"]
    code = (
        "import sys\nfrom mlpcli.cli import app\n"
        f"try:\n    app({args!r}, prog_name='mlp')\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('sklearn' in sys.modules, 'scipy' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout.split()[-2:] == ["False", "False"]
    assert len(list((tmp_path / "runs").iterdir())) == 1

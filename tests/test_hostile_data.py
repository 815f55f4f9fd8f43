"""Hostile and extreme data: non-finite and huge values, changed files, oversized and odd files.

Each case goes through the `mlp` command and asserts the exit code, that the message names the file
or column at fault, and that no traceback or numpy warning reaches the user.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpcli.cli import app

runner = CliRunner()


def mlp(*args: str | Path) -> tuple[int, str]:
    """Run the CLI with numpy warnings turned into errors; exit code and all output."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = runner.invoke(app, [str(a) for a in args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output, output
    assert "Warning" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, output


def table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    b = rng.normal(5.0, 2.0, n)
    return pd.DataFrame({"a": a, "b": b, "y": np.where(a + b > 5, "yes", "no")})


def write_config(folder: Path, data: str = "data.csv", **extra: str) -> Path:
    keys = ", ".join(f"{k}: {v}" for k, v in extra.items())
    config = folder / "exp.yaml"
    config.write_text(
        f"name: exp\ndata: {{source: {Path(data).suffix[1:]}, path: {data}, target: y"
        f"{', ' + keys if keys else ''}}}\n"
        "model: {hidden: [8]}\ntrain: {epochs: 3, batch_size: 32}\n"
    )
    return config


def train(folder: Path, *args: str) -> tuple[int, str]:
    return mlp("train", folder / "exp.yaml", "--out", folder / "runs", "--name", "r", "-q", *args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run on data.csv (classes yes/no from columns a and b); returns its folder."""
    folder = tmp_path_factory.mktemp("trained")
    table().to_csv(folder / "data.csv", index=False)
    write_config(folder)
    code, output = train(folder)
    assert code == 0, output
    return folder


# ---------------------------------------------------------------- non-finite and huge values


@pytest.mark.parametrize("where", ["train", "val", "test"])
def test_infinite_values_in_any_split_are_refused_naming_columns_and_counts(tmp_path, where):
    frame = table()
    frame.loc[[3, 40], "a"] = np.inf
    frame.loc[7, "b"] = -np.inf
    if where == "train":
        frame.to_csv(tmp_path / "data.csv", index=False)
        write_config(tmp_path)
    else:
        table().to_csv(tmp_path / "data.csv", index=False)
        frame.to_csv(tmp_path / "part.csv", index=False)
        write_config(tmp_path, **{f"{where}_path": "part.csv"})
    code, output = train(tmp_path)
    assert code == 2, output
    assert "infinite values in 'a' (2 rows), 'b' (1 row)" in output
    assert "before training" in output
    assert not (tmp_path / "runs").exists()


def test_nan_and_inf_are_both_named(tmp_path):
    frame = table()
    frame.loc[3, "a"] = np.nan
    frame.loc[4, "b"] = np.inf
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    code, output = train(tmp_path)
    assert code == 2
    assert "missing values in 'a' (1 row)" in output
    assert "infinite values in 'b' (1 row)" in output


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_infinite_values_are_refused_at_prediction_and_eval(trained, tmp_path, command):
    frame = table(10, seed=1)
    frame.loc[2, "b"] = np.inf
    frame.to_csv(tmp_path / "new.csv", index=False)
    args = [trained / "runs" / "r", tmp_path / "new.csv"]
    code, output = mlp(command, *(args if command == "predict" else [args[0], "--data", args[1]]))
    assert code == 2, output
    assert "infinite values in 'b' (1 row)" in output
    assert "training" not in output
    assert ("before predicting" if command == "predict" else "before evaluating") in output


def test_missing_values_at_prediction_do_not_mention_training(trained, tmp_path):
    frame = table(10, seed=1).drop(columns="y")
    frame.loc[[1, 2], "a"] = np.nan
    frame.to_csv(tmp_path / "new.csv", index=False)
    code, output = mlp("predict", trained / "runs" / "r", tmp_path / "new.csv")
    assert code == 2
    assert "missing values in 'a' (2 rows); fill or drop those rows before predicting" in output


@pytest.mark.parametrize("scale", [1e308, 1e-300])
def test_extreme_but_finite_columns_standardise_and_train(tmp_path, scale):
    frame = table()
    frame["huge"] = np.random.default_rng(3).uniform(-1, 1, len(frame)) * scale
    frame["flat"] = scale
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    code, output = train(tmp_path)
    assert code == 0, output
    from mlpcli.data import Preprocessor

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prep = Preprocessor.fit(frame, ["a", "huge", "flat"], ["y"], "binary")
        x = prep.transform(frame)
    assert np.isfinite(x).all()
    huge = x[:, 1]
    assert huge.std() == pytest.approx(1.0, rel=1e-5)
    assert abs(huge.mean()) < 1e-5
    assert (x[:, 2] == 0).all()
    assert (tmp_path / "runs" / "r" / "model.safetensors").is_file()


def test_regression_targets_of_huge_values_are_scaled_without_overflow():
    from mlpcli.data import Preprocessor

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "t": [-1.7e308, 1.7e308, 0.0, 1e308]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prep = Preprocessor.fit(frame, ["x"], ["t"], "regression")
        y = prep.encode_targets(frame)
    assert np.isfinite(prep.target_scale).all()
    assert np.isfinite(y).all()


def regression_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 1.0, n), rng.normal(0.0, 1.0, n)
    return pd.DataFrame({"a": a, "b": b, "y": np.tanh(a) + 0.5 * b + rng.normal(0, 0.1, n)})


def test_a_target_near_float64s_largest_value_is_refused_naming_the_column(tmp_path):
    """Its squared errors cannot be represented: mse, rmse and mae came out NaN and r2 as 0.0
    on a run that completed."""
    frame = regression_table()
    frame["y"] = frame["y"] / frame["y"].abs().max() * 1.7e308
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    code, output = train(tmp_path)
    assert code == 2, output
    message = " ".join(output.split())
    assert "data.csv" in message and "regression target 'y' reaches 1.7e+308" in message
    assert "accepted: up to 1e+150" in message
    assert not (tmp_path / "runs" / "r").exists()


def train_npz(folder: Path, frame: pd.DataFrame) -> dict:
    """Train on frame's a, b -> y saved as an npz (exact binary values); the summary."""
    folder.mkdir()
    np.savez(folder / "data.npz", X=frame[["a", "b"]].to_numpy(), y=frame["y"].to_numpy())
    (folder / "exp.yaml").write_text(
        "data: {source: npz, path: data.npz}\ntask: regression\n"
        "model: {hidden: [8]}\ntrain: {epochs: 40, batch_size: 32}\n"
    )
    code, output = train(folder)
    assert code == 0, output
    return json.loads((folder / "runs" / "r" / "summary.json").read_text())


@pytest.mark.parametrize("power", [465, -700])
def test_targets_far_from_one_train_the_same_and_score_in_their_units(tmp_path, power):
    """Targets times 2**465 (about 1e140) or 2**-700 (about 1e-211) standardise to the same
    values, so they train the same weights: r2 is the same, rmse and mae scale exactly (r2 came
    out 0.0 and rmse 0.0 for the small ones), and mse too, to 0.0 where it leaves float64."""
    frame = regression_table()
    base = train_npz(tmp_path / "base", frame)
    frame["y"] = frame["y"] * 2.0**power
    scaled = train_npz(tmp_path / "scaled", frame)
    assert scaled["status"] == "completed"
    for split, metrics in base["metrics"].items():
        got = scaled["metrics"][split]
        assert got["loss"] == metrics["loss"] and got["r2"] == metrics["r2"]
        assert got["rmse"] == math.ldexp(metrics["rmse"], power)
        assert got["mae"] == math.ldexp(metrics["mae"], power)
        assert got["mse"] == metrics["mse"] * 2.0**power * 2.0**power
    assert scaled["metrics"]["test"]["r2"] > 0.5


@pytest.mark.parametrize(
    "split, n, extra, needles",
    [
        ("training", 120, {}, ["training split has 72 rows, all with 'y' = 2.5", "varies"]),
        ("validation", 120, {"val_path": "val.csv"}, ["a data.val_path file whose targets vary"]),
        ("test", 20, {"test_split": "0.05"}, ["a single row ('y' = ", "data.test_split (0.05)"]),
    ],
)
def test_a_split_whose_regression_target_does_not_vary_is_refused(
    tmp_path, split, n, extra, needles
):
    """r2 is undefined there (it was reported as 0.0)."""
    frame = regression_table(n)
    if split == "training":
        frame["y"] = 2.5
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.assign(y=1.0).head(10).to_csv(tmp_path / "val.csv", index=False)
    write_config(tmp_path, **extra)
    code, output = train(tmp_path)
    assert code == 2, output
    message = " ".join(output.split())
    assert f"the {split} split has" in message and "r2 is undefined" in message
    for needle in needles:
        assert needle in message, message
    assert not (tmp_path / "runs" / "r").exists()


def test_a_run_whose_final_metrics_are_not_finite_fails_rather_than_completes(
    tmp_path, monkeypatch
):
    """A last guard, for predictions too far from the targets to score in float64."""
    import mlpcli.training.run
    from mlpcli.errors import TrainingError

    frame = regression_table()
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    scores = mlpcli.training.run.evaluate

    def overflowing(*args, **kwargs):
        values = scores(*args, **kwargs)
        return {**values, "mse": values["mse"] * math.inf}

    monkeypatch.setattr(mlpcli.training.run, "evaluate", overflowing)
    with pytest.raises(TrainingError) as info:
        mlpcli.training.run.train(
            tmp_path / "exp.yaml", out=tmp_path / "runs", name="r", quiet=True
        )
    message = str(info.value)
    assert "not finite" in message and "test mse inf" in message and "marked failed" in message
    run = tmp_path / "runs" / "r"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and math.isinf(summary["metrics"]["test"]["mse"])
    assert (run / "model.safetensors").is_file()


def test_a_value_too_far_from_training_for_float32_is_refused(trained, tmp_path):
    frame = table(4, seed=2).drop(columns="y")
    frame.loc[1, "a"] = 1e300
    frame.to_csv(tmp_path / "new.csv", index=False)
    code, output = mlp("predict", trained / "runs" / "r", tmp_path / "new.csv")
    assert code == 2, output
    assert "'a' (1 row)" in output


# ---------------------------------------------------------------- messages about values


def test_every_unseen_category_is_named_up_to_a_bound(tmp_path):
    from mlpcli.data import Preprocessor
    from mlpcli.errors import DataError

    train = pd.DataFrame({"c": ["red", "blue"] * 5, "y": [0.0, 1.0] * 5})
    prep = Preprocessor.fit(train, ["c"], ["y"], "regression")
    with pytest.raises(DataError) as info:
        prep.transform(pd.DataFrame({"c": ["pink", "grey"]}))
    assert "'grey', 'pink'" in str(info.value)
    many = pd.DataFrame({"c": [f"c{i}" for i in range(9)]})
    with pytest.raises(DataError) as info:
        prep.transform(many)
    message = str(info.value)
    assert "'c0', 'c1', 'c2', 'c3', 'c4' and 4 more" in message
    assert "'c5'" not in message


def test_unseen_classes_are_all_named(trained, tmp_path):
    frame = table(10, seed=1)
    frame.loc[0, "y"] = "maybe"
    frame.loc[1, "y"] = "perhaps"
    frame.to_csv(tmp_path / "new.csv", index=False)
    code, output = mlp("eval", trained / "runs" / "r", "--data", tmp_path / "new.csv")
    assert code == 2
    assert "'maybe', 'perhaps'" in output


# ---------------------------------------------------------------- eval of a run: its own data only


def rewrite_metadata(model: Path, change) -> None:
    """Edit the JSON metadata of a model file in place, as someone sharing it could."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model), "pt") as handle:
        header = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    meta = json.loads(header["mlpcli"])
    change(meta)
    header["mlpcli"] = json.dumps(meta)
    model.unlink()
    save_file(tensors, str(model), metadata=header)


def test_a_run_records_the_sha256_of_its_file_and_splits(trained):
    from mlpcli.runs.checkpoint import load_model_file

    _, meta = load_model_file(trained / "runs" / "r" / "model.safetensors")
    import hashlib

    sha = hashlib.sha256((trained / "data.csv").read_bytes()).hexdigest()
    assert meta["data"]["files"] == {"path": sha}
    assert set(meta["data"]["splits"]) == {"train", "val", "test"}
    assert all(len(v) == 64 for v in meta["data"]["splits"].values())
    code, output = mlp("eval", trained / "runs" / "r")
    assert code == 0, output


def test_eval_refuses_a_data_file_changed_since_training(tmp_path):
    table().to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    assert train(tmp_path)[0] == 0
    run = tmp_path / "runs" / "r"
    shuffled = pd.read_csv(tmp_path / "data.csv").sample(frac=1.0, random_state=1)
    shuffled.to_csv(tmp_path / "data.csv", index=False)
    code, output = mlp("eval", run)
    assert code == 2, output
    assert "data.csv changed since the run was trained (sha256 differs)" in output
    assert "--data" in output
    code, output = mlp("eval", run, "--data", tmp_path / "data.csv")
    assert code == 0, output
    (tmp_path / "data.csv").unlink()
    code, output = mlp("eval", run, "--split", "val")
    assert code == 2 and "data.csv" in output and "--data" in output


@pytest.mark.parametrize("source", ["moons", "csv"])
def test_eval_refuses_a_split_drawn_again_differently(tmp_path, source):
    """Another numpy or scikit-learn could draw other rows from the same seed and file."""
    if source == "csv":
        table().to_csv(tmp_path / "data.csv", index=False)
        write_config(tmp_path)
    else:
        (tmp_path / "exp.yaml").write_text(
            "data: {source: moons, n_samples: 200}\ntrain: {epochs: 2}\n"
        )
    assert train(tmp_path)[0] == 0
    model = tmp_path / "runs" / "r" / "model.safetensors"
    rewrite_metadata(model, lambda m: m["data"]["splits"].update(test="0" * 64))
    code, output = mlp("eval", tmp_path / "runs" / "r")
    assert code == 2, output
    assert "test split" in output and "--data" in output
    assert (source == "moons") == ("moons" in output)
    code, output = mlp("eval", tmp_path / "runs" / "r", "--split", "val")
    assert code == 0, output


def test_a_run_without_a_data_fingerprint_reads_no_file_but_its_data_option(tmp_path):
    """Older model files record no sha256: their data path is not opened, --data still works."""
    table().to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    assert train(tmp_path)[0] == 0
    rewrite_metadata(tmp_path / "runs" / "r" / "model.safetensors", lambda m: m.pop("data"))
    code, output = mlp("eval", tmp_path / "runs" / "r")
    assert code == 2, output
    assert "no sha256" in output and "--data" in output, output
    code, output = mlp("eval", tmp_path / "runs" / "r", "--data", tmp_path / "data.csv")
    assert code == 0, output


def test_a_synthetic_run_without_a_data_fingerprint_still_evaluates(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "data: {source: moons, n_samples: 200}\nmodel: {hidden: [4]}\ntrain: {epochs: 2}\n"
    )
    result = mlp("train", config, "--out", tmp_path / "runs", "--name", "s", "-q")
    assert result[0] == 0, result[1]
    rewrite_metadata(tmp_path / "runs" / "s" / "model.safetensors", lambda m: m.pop("data"))
    code, output = mlp("eval", tmp_path / "runs" / "s")
    assert code == 0, output


def test_a_bare_model_file_needs_data_for_a_file_source(trained, tmp_path):
    model = trained / "runs" / "r" / "model.safetensors"
    code, output = mlp("eval", model)
    assert code == 2, output
    assert "--data" in output and "model.safetensors" in output
    code, output = mlp("eval", model, "--data", trained / "data.csv")
    assert code == 0, output


def test_paths_in_a_model_file_are_not_opened(tmp_path):
    """A shared model whose metadata points data.path at another file: never read, never shown."""
    table().to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    assert train(tmp_path)[0] == 0
    secret = tmp_path / "secret.csv"
    secret.write_text("TOPSECRET-LINE,x\n1,2\n")
    run = tmp_path / "runs" / "r"

    def point_at_secret(meta):
        meta["config"]["data"]["path"] = str(secret)

    rewrite_metadata(run / "model.safetensors", point_at_secret)
    for target in (run, run / "model.safetensors"):
        code, output = mlp("eval", target)
        assert code == 2, output
        assert "TOPSECRET" not in output


# ---------------------------------------------------------------- oversized and odd files

GIB = 1 << 30


def mlp_limited(*args: str | Path, memory: int = 3 * GIB, timeout: float = 120) -> tuple[int, str]:
    """`mlp` in a process that cannot take more than `memory` bytes of address space."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *map(str, args)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Warning" not in output, output
    return done.returncode, output


def npy_header_only(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """An .npy whose header claims `shape`, followed by a few bytes of data only."""
    import io

    from numpy.lib import format as npy

    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    npy.write_array_header_2_0(buffer, header)
    return buffer.getvalue() + b"\0" * 64


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def npz_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


@pytest.mark.slow
def test_an_npz_whose_headers_claim_terabytes_is_refused_before_reading(tmp_path):
    write_npz(
        tmp_path / "bomb.npz",
        {"X.npy": npy_header_only((10**12, 4)), "y.npy": npz_bytes(np.zeros(3))},
    )
    (tmp_path / "exp.yaml").write_text("data: {source: npz, path: bomb.npz}\n")
    code, output = mlp_limited("train", tmp_path / "exp.yaml", "--out", tmp_path / "runs")
    assert code == 2, output
    assert "bomb.npz" in output and "memory" in output
    assert "TiB" in output  # the estimate, in readable units
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_huge_sparse_csv_is_refused_by_its_size_before_reading(tmp_path):
    path = tmp_path / "sparse.csv"
    with open(path, "wb") as handle:
        handle.write(b"a,b,y\n")
        handle.truncate(1 << 40)  # a terabyte of holes: no disk is used
    write_config(tmp_path, data="sparse.csv")
    code, output = mlp_limited("train", tmp_path / "exp.yaml", "--out", tmp_path / "runs")
    assert code == 2, output
    assert "sparse.csv" in output and "memory" in output


def test_a_file_larger_than_the_memory_left_is_refused_naming_estimate_and_limit(
    tmp_path, monkeypatch
):
    from mlpcli.data import limits
    from mlpcli.data.files import read_table
    from mlpcli.errors import DataError

    frame = table(2000)
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet")
    np.savez(tmp_path / "data.npz", X=frame[["a", "b"]].to_numpy(), y=np.zeros(len(frame)))
    monkeypatch.setattr(limits, "available_memory", lambda: (10_000, "MemAvailable"))
    for name in ("data.csv", "data.parquet", "data.npz"):
        with pytest.raises(DataError) as info:
            read_table(tmp_path / name)
        message = str(info.value)
        assert name in message and "KiB" in message and "memory" in message
        assert "7.8 KiB available (MemAvailable)" in message  # 80% of the 10,000 bytes


def test_a_huge_cell_is_not_echoed_whole(tmp_path):
    frame = table()
    frame["a"] = frame["a"].astype(object)
    frame.loc[5, "a"] = "9" * 10 + "x" * 2_000_000
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    code, output = train(tmp_path)
    assert code == 2
    assert "'a'" in output and "row 6" in output
    assert len(output) < 1000


def test_a_huge_column_name_and_category_are_not_echoed_whole(trained, tmp_path):
    name = "c" * 1_000_000
    pd.DataFrame({name: [1.0], "b": [2.0]}).to_csv(tmp_path / "new.csv", index=False)
    code, output = mlp("predict", trained / "runs" / "r", tmp_path / "new.csv")
    assert code == 2 and "'a'" in output
    assert len(output) < 1000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_fifos_and_devices_are_not_regular_files(trained, tmp_path, kind):
    import os

    if kind == "fifo":
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)  # opening it to read would wait for a writer for ever
    else:
        path = Path("/dev/zero")
    (tmp_path / "exp.yaml").write_text(f"data: {{source: csv, path: {path}, target: y}}\n")
    for args in (
        ["train", tmp_path / "exp.yaml", "--out", tmp_path / "runs"],
        ["eval", trained / "runs" / "r", "--data", path],
    ):
        code, output = mlp_limited(*args, timeout=60)
        assert code == 2, output
        assert f"{path}: not a regular file" in output


# ---------------------------------------------------------------- files pandas and numpy trip on


@pytest.mark.parametrize("n", [1, 2])
def test_a_table_too_small_to_split_names_file_rows_and_splits(tmp_path, n):
    table(n).to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path)
    code, output = train(tmp_path)
    assert code == 2, output
    assert "data.csv" in output and f"{n} row" in output
    assert "test_split" in output and "val_split" in output


def write_parquet(path: Path, columns: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def parquet_config(tmp_path: Path, columns: dict, **extra: str) -> Path:
    write_parquet(tmp_path / "data.parquet", columns)
    return write_config(tmp_path, data="data.parquet", **extra)


def nested_columns(n: int) -> dict:
    import pyarrow as pa

    return {
        "tags": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
        "point": pa.array([{"u": i, "v": -i} for i in range(n)]),
        "attrs": pa.array([[("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
    }


@pytest.mark.parametrize("column", ["tags", "point", "attrs"])
def test_nested_parquet_columns_are_refused_naming_column_and_type(tmp_path, column):
    n = 60
    frame = table(n)
    columns = {"a": frame["a"], "y": frame["y"], column: nested_columns(n)[column]}
    parquet_config(tmp_path, columns)
    code, output = train(tmp_path)
    assert code == 2, output
    assert f"'{column}'" in output
    assert {"tags": "list<", "point": "struct<", "attrs": "map<"}[column] in output


def test_an_unused_nested_parquet_column_is_left_alone(tmp_path):
    n = 60
    frame = table(n)
    parquet_config(
        tmp_path,
        {"a": frame["a"], "b": frame["b"], "y": frame["y"], **nested_columns(n)},
        features="[a, b]",
    )
    code, output = train(tmp_path)
    assert code == 0, output


def test_a_parquet_list_target_is_refused(tmp_path):
    import pyarrow as pa

    n = 60
    frame = table(n)
    labels = pa.array([[int(v == "yes")] for v in frame["y"]], pa.list_(pa.int64()))
    parquet_config(tmp_path, {"a": frame["a"], "b": frame["b"], "y": labels})
    code, output = train(tmp_path)
    assert code == 2, output
    assert "'y'" in output and "list<" in output


def test_parquet_decimals_are_numbers_not_categories(tmp_path):
    from decimal import Decimal

    import pyarrow as pa

    from mlpcli.runs.checkpoint import load_model_file

    n = 60
    frame = table(n)
    price = pa.array([Decimal(f"{v:.2f}") for v in frame["b"]], pa.decimal128(10, 2))
    parquet_config(tmp_path, {"a": frame["a"], "price": price, "y": frame["y"]})
    code, output = train(tmp_path)
    assert code == 0, output
    _, meta = load_model_file(tmp_path / "runs" / "r" / "model.safetensors")
    assert "price" in meta["preprocessor"]["numeric"]
    assert meta["preprocessor"]["categorical"] == {}


@pytest.mark.parametrize(
    "array, dtype",
    [
        (np.zeros((5, 2), dtype=[("u", "<f8"), ("v", "<i4")]), "('u', '<f8')"),
        (np.zeros((5, 2), dtype=np.complex128), "complex128"),
        (np.zeros((5, 2), dtype="datetime64[s]"), "datetime64[s]"),
    ],
)
def test_npz_arrays_of_structured_or_complex_dtypes_are_refused(tmp_path, array, dtype):
    np.savez(tmp_path / "data.npz", X=array, y=np.zeros(5))
    (tmp_path / "exp.yaml").write_text("data: {source: npz, path: data.npz}\n")
    code, output = mlp("train", tmp_path / "exp.yaml", "--out", tmp_path / "runs")
    assert code == 2, output
    assert "data.npz" in output and "array X" in output and dtype in output


@pytest.mark.parametrize("scale", [1e-200, 1e-3, 1.0, 1e6, 1e200])
def test_mean_and_std_match_numpy_where_numpy_is_exact(scale):
    from mlpcli.data.preprocess import mean_std

    values = np.random.default_rng(0).normal(3.0, 2.0, 500) * scale
    mean, std = mean_std(values)
    assert mean == pytest.approx(np.mean(values / scale) * scale, rel=1e-12)
    assert std == pytest.approx(np.std(values / scale) * scale, rel=1e-12)
    if scale == 1.0:
        assert (mean, std) == pytest.approx((values.mean(), values.std()), rel=1e-12)

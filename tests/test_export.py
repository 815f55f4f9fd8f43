"""mlp export: the ONNX graph, fed the columns its sidecar names, gives what `mlp predict
--proba` gives (the regression values for a regression), for every shipped config."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_exit_2, mlp

onnxruntime = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def train(tmp_path: Path, config: str | Path, *overrides: str) -> Path:
    """A short run of a config: the graph must compute what the model does, trained or not."""
    quick = ["train.epochs=3", "train.diagnostics=false", "train.plots=false"]
    result = mlp("train", config, *quick, *overrides, "--out", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.output
    return next((tmp_path / "runs").iterdir())


def onnx_inputs(sidecar: dict, frame: pd.DataFrame) -> np.ndarray:
    """The graph's input matrix as a user builds it from the sidecar: numeric columns as they
    are, `column=category` as 0/1."""
    columns = []
    for name in sidecar["input"]["columns"]:
        if name in frame.columns:
            columns.append(frame[name].to_numpy(dtype=np.float64))
        else:
            column, category = name.split("=", 1)
            columns.append((frame[column].astype(str) == category).to_numpy(dtype=np.float64))
    return np.stack(columns, axis=1).astype(np.float32)


def predicted(tmp_path: Path, run: Path, frame: pd.DataFrame, proba: bool) -> pd.DataFrame:
    rows = tmp_path / f"rows-{len(frame)}.csv"
    out = tmp_path / f"predicted-{len(frame)}.csv"
    frame.to_csv(rows, index=False)
    result = mlp("predict", run, rows, "-o", out, *(["--proba"] if proba else []))
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def assert_graph_equals_predict(tmp_path: Path, run: Path, graph: Path) -> None:
    sidecar = json.loads(Path(f"{graph}.json").read_text())
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    targets = set(sidecar["targets"])
    test = pd.read_csv(tmp_path / "test-rows.csv")
    features = test.drop(columns=[c for c in test.columns if c in targets])
    regression = sidecar["task"] == "regression"
    for n in (1, 7, 65536):
        frame = features.iloc[np.arange(n) % len(features)].reset_index(drop=True)
        (got,) = session.run(None, {"input": onnx_inputs(sidecar, frame)})
        theirs = predicted(tmp_path, run, frame, proba=not regression)
        expected = theirs[sidecar["output"]["columns"]].to_numpy(dtype=np.float64)
        assert got.shape == (n, len(sidecar["output"]["columns"]))
        # 1e-5, relative beyond 1: float32 regression values in the hundreds differ in
        # their fifth decimal from mlp predict's float64 ones, however exact the graph
        difference = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
        assert difference.max() <= 1e-5, (n, difference.max())


def write_test_rows(tmp_path: Path, run: Path) -> None:
    import mlpcli

    mlpcli.load(run).split("test").to_csv(tmp_path / "test-rows.csv", index=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_exports_a_graph_that_predicts_as_mlp_predict(tmp_path, name):
    run = train(tmp_path, ROOT / "configs" / f"{name}.yaml")
    write_test_rows(tmp_path, run)
    result = mlp("export", run)
    assert result.exit_code == 0, result.output
    graph = run / "model.onnx"
    assert not list(run.glob("*.onnx.data"))  # one self-contained file
    assert_graph_equals_predict(tmp_path, run, graph)


@pytest.fixture
def table_run(tmp_path):
    """A CSV with a text column (one-hot inputs) and three classes."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "size": rng.normal(50, 10, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "weight": rng.normal(-3, 0.5, n),
        }
    )
    frame["kind"] = np.where(frame["size"] > 52, "big", np.where(frame.colour == "red", "red", "x"))
    data = tmp_path / "table.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "table.yaml"
    config.write_text(
        f"data: {{source: csv, path: {data}, target: kind}}\nmodel: {{hidden: [8]}}\n"
    )
    return train(tmp_path, config)


def test_text_columns_enter_as_the_one_hot_columns_the_sidecar_names(tmp_path, table_run):
    write_test_rows(tmp_path, table_run)
    result = mlp("export", table_run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checked_on"] == "the test split" and report["max_difference"] <= 1e-5
    sidecar = json.loads(Path(report["sidecar"]).read_text())
    assert sidecar["input"]["columns"] == [
        "size",
        "colour=blue",
        "colour=green",
        "colour=red",
        "weight",
    ]
    assert sidecar["output"]["columns"] == ["proba_big", "proba_red", "proba_x"]
    assert_graph_equals_predict(tmp_path, table_run, Path(report["onnx"]))


def test_a_model_file_alone_is_checked_on_rows_drawn_around_the_training_means(tmp_path, table_run):
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "m.safetensors").write_bytes((table_run / "model.safetensors").read_bytes())
    result = mlp("export", alone / "m.safetensors", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["onnx"] == str(alone / "m.onnx") and report["rows_checked"] == 1024
    assert report["checked_on"] == "rows drawn around the training means"
    said = mlp("export", alone / "m.safetensors", "-o", alone / "again.onnx").stderr
    assert "onnxruntime on rows drawn around the training means (1,024 rows)" in said, said


def test_export_refuses_to_replace_a_file_and_names_the_extra_it_needs(
    tmp_path, table_run, monkeypatch
):
    taken = tmp_path / "taken.onnx"
    taken.write_text("mine")
    assert_exit_2(mlp("export", table_run, "-o", taken), f"{taken} already exists")
    assert taken.read_text() == "mine"
    assert_exit_2(mlp("export", table_run, "-o", tmp_path / "x.txt"), "ending in .onnx")
    assert_exit_2(mlp("export", table_run, "--format", "tflite"), "accepted: onnx")

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    result = mlp("export", table_run)
    assert_exit_2(result, 'needs onnxruntime; install them: pip install "mlpcli[onnx]"')
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (table_run / "model.onnx").exists()


def test_a_graph_that_disagrees_with_the_model_fails_and_writes_nothing(table_run, monkeypatch):
    import mlpcli.serving.export

    monkeypatch.setattr(mlpcli.serving.export, "TOLERANCE", -1.0)  # nothing can pass
    result = mlp("export", table_run)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "differs from the model's predictions" in result.stderr
    assert not (table_run / "model.onnx").exists()


@pytest.mark.slow
def test_json_output_is_one_clean_object_on_stdout(tmp_path, table_run):
    """In a real process: the exporter's own progress lines must not reach stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "mlpcli", "export", str(table_run), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["onnx"] == str(table_run / "model.onnx")
    assert result.stderr == ""


def test_a_model_file_of_a_synthetic_set_is_checked_on_its_test_rows_drawn_again(tmp_path):
    run = train(tmp_path, ROOT / "configs" / "moons.yaml")
    alone = tmp_path / "moons.safetensors"
    alone.write_bytes((run / "model.safetensors").read_bytes())
    result = mlp("export", alone, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checked_on"] == "the test split" and report["rows_checked"] == 400

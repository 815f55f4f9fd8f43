"""No file the tool reads can make it run code, and no damaged file gets past a clean error.

Crafted pickles that would create a marker file are put wherever mlp reads a file: as the model
file given to eval and predict (under its own name and renamed to .safetensors), as a run
folder's model, and as the resume checkpoint. Truncated and random files go to the same places.
Every one must exit 2 with a message naming the file, and the marker must never appear.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mlpcli.cli import app

runner = CliRunner()

CONFIG = """\
name: safe
data: {source: moons, n_samples: 300}
model: {hidden: [8]}
train: {epochs: 4, checkpoint_seconds: 0}
"""


class Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled(marker: str, protocol: int) -> bytes:
    return pickle.dumps({"model": Marker(marker)}, protocol=protocol)


def torch_saved(marker: str, protocol: int, zipped: bool = True) -> bytes:
    """torch's own format (a zip holding a pickle, or the legacy one) with the crafted object."""
    buffer = io.BytesIO()
    torch.save(
        {"format": "mlpcli-checkpoint", "epoch": 1, "model": Marker(marker)},
        buffer,
        pickle_protocol=protocol,
        _use_new_zipfile_serialization=zipped,
    )
    return buffer.getvalue()


PAYLOADS = {
    **{f"pickle-protocol-{p}": (pickled, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    **{f"torch-zip-protocol-{p}": (torch_saved, p) for p in (2, 4, 5)},
    "torch-legacy": (lambda marker, p: torch_saved(marker, 2, zipped=False), 2),
}

PLACES = ["eval-file.pt", "eval-renamed.safetensors", "predict-file", "run-model", "resume"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run, a run stopped after its first epochs, and rows to predict on."""
    folder = tmp_path_factory.mktemp("safety")
    config = folder / "safe.yaml"
    config.write_text(CONFIG)
    result = runner.invoke(app, ["train", str(config), "--out", str(folder), "--name", "done"])
    assert result.exit_code == 0, result.output
    stopped = folder / "stopped"
    shutil.copytree(folder / "done", stopped)
    (stopped / "model.safetensors").unlink()
    summary = (stopped / "summary.json").read_text().replace('"completed"', '"stopped"')
    (stopped / "summary.json").write_text(summary)
    pd.DataFrame({"x1": [0.1, 1.0], "x2": [0.5, -0.2]}).to_csv(folder / "rows.csv", index=False)
    return folder


def place(finished: Path, where: str, data: bytes, tmp_path: Path) -> list[str]:
    """Put `data` where mlp will read it; returns the command line that reads it."""
    rows = str(finished / "rows.csv")
    if where in ("eval-file.pt", "eval-renamed.safetensors", "predict-file"):
        name = {"eval-file.pt": "model.pt", "predict-file": "model.safetensors"}
        path = tmp_path / name.get(where, "model.safetensors")
        path.write_bytes(data)
        if where == "predict-file":
            return ["predict", str(path), rows]
        return ["eval", str(path)]
    run = tmp_path / "run"
    shutil.copytree(finished / ("done" if where == "run-model" else "stopped"), run)
    if where == "run-model":
        (run / "model.safetensors").write_bytes(data)
        return ["eval", str(run)]
    (run / "checkpoints" / "last.pt").write_bytes(data)
    return ["train", str(finished / "safe.yaml"), "--resume", str(run)]


def assert_refused(argv: list[str], names: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert names in result.stderr, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_crafted_pickle_is_refused_and_never_runs(finished, tmp_path, payload, where):
    marker = tmp_path / "marker"
    make, protocol = PAYLOADS[payload]
    argv = place(finished, where, make(str(marker), protocol), tmp_path)
    # The payload really is live: plain unpickling would have run it.
    assert_refused(argv, "last.pt" if where == "resume" else "model.")
    assert not marker.exists()


def test_the_payloads_would_run_if_unpickled(tmp_path):
    """Guards the test above against payloads that are harmless anyway."""
    for name, (make, protocol) in PAYLOADS.items():
        marker = tmp_path / name
        data = make(str(marker), protocol)
        if name.startswith("pickle"):
            pickle.loads(data)
        else:
            torch.load(io.BytesIO(data), weights_only=False)
        assert marker.exists(), name


def damaged(good: bytes, kind: str) -> bytes:
    rng = np.random.default_rng(len(kind))
    if kind == "empty":
        return b""
    if kind == "random":
        return rng.bytes(4096)
    if kind == "truncated-header":
        return good[:12]
    if kind == "truncated-half":
        return good[: len(good) // 2]
    return good[:-1]  # truncated by one byte


DAMAGE = ["empty", "random", "truncated-header", "truncated-half", "truncated-last-byte"]


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize("where", PLACES)
def test_a_damaged_file_is_refused(finished, tmp_path, kind, where):
    source = "checkpoints/last.pt" if where == "resume" else "model.safetensors"
    good = (finished / "done" / source).read_bytes()
    argv = place(finished, where, damaged(good, kind), tmp_path)
    assert_refused(argv, "last.pt" if where == "resume" else "model.")


def rewritten_checkpoint(finished: Path, tmp_path: Path, change) -> list[str]:
    """A real checkpoint, loaded, changed and saved again: well-formed, but not resumable."""
    state = torch.load(finished / "done" / "checkpoints" / "last.pt", weights_only=True)
    change(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return place(finished, "resume", buffer.getvalue(), tmp_path)


def test_a_checkpoint_of_another_format_version_is_refused(finished, tmp_path):
    argv = rewritten_checkpoint(finished, tmp_path, lambda s: s.update(version=1))
    assert_refused(argv, "a checkpoint of format 1")


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda s: s.pop("optimizer"), "optimizer: Field required"),
        (lambda s: s["model"].update({"0.weight": torch.zeros(3, 3)}), "0.weight"),
        (lambda s: s.update(rng="not a state"), "rng"),
        (lambda s: s["optimizer"].update(state="x"), "does not fit this run's model"),
    ],
    ids=["missing-key", "wrong-shape", "wrong-type", "wrong-optimizer"],
)
def test_a_checkpoint_that_does_not_fit_the_run_is_refused(finished, tmp_path, change, key):
    argv = rewritten_checkpoint(finished, tmp_path, change)
    assert_refused(argv, key)

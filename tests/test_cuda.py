"""Training on a CUDA GPU: both engines, mixed precision, compile, NaN checks, resume.

Skipped where torch sees no CUDA GPU (CI has none).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_train import NanAtStep

import mlpcli
from mlpcli.callbacks import Callback
from mlpcli.config.schema import build_config
from mlpcli.errors import TrainingError

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def config(**train):
    return build_config(
        {
            "data": {"source": "moons", "n_samples": 2000, "noise": 0.15},
            "model": {"hidden": [64, 64]},
            "optim": {"lr": 0.01},
            "train": {"epochs": 15, "batch_size": 128, "device": "cuda", **train},
        }
    )


@pytest.mark.parametrize(
    "train",
    [
        {},
        {"engine": "autograd"},
        {"precision": "bf16"},
        {"precision": "fp16"},
        {"compile": True},
    ],
    ids=["backprop", "autograd", "bf16", "fp16", "compile"],
)
def test_training_on_the_gpu(tmp_path, train):
    result = mlpcli.train(config(**train), out=tmp_path, quiet=True)
    summary = result.summary
    assert summary["device"].startswith("cuda")
    assert summary["engine"] == ("backprop" if not train else "autograd")
    assert summary["metrics"]["test"]["accuracy"] > 0.9
    predictor = mlpcli.load(result.run_dir)
    assert predictor.evaluate(predictor.split("test"))["accuracy"] == pytest.approx(
        summary["metrics"]["test"]["accuracy"], abs=0.01
    )


def test_a_nan_on_the_gpu_names_its_step(tmp_path):
    # 1200 training rows in batches of 128: 10 steps an epoch; step 23 is epoch 3, step 3.
    with pytest.raises(TrainingError, match="at epoch 3, step 3 of 10"):
        mlpcli.train(config(), out=tmp_path, quiet=True, callbacks=[NanAtStep(23)])


class StopAt(Callback):
    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 5:
            raise KeyboardInterrupt


def test_resume_on_the_gpu_matches_an_uninterrupted_run(tmp_path):
    whole = mlpcli.train(config(), out=tmp_path / "a", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config(), out=tmp_path / "b", name="cut", quiet=True, callbacks=[StopAt()])
    resumed = mlpcli.train(config(), resume=tmp_path / "b" / "cut", quiet=True)
    a = load_file(whole.run_dir / "model.safetensors")
    b = load_file(resumed.run_dir / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)

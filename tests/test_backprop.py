"""The written-out backprop against autograd: same loss, same gradients, same training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlpcli.config.registry import ACTIVATIONS
from mlpcli.config.schema import ModelConfig, TrainConfig, build_config
from mlpcli.errors import ConfigError
from mlpcli.model.factory import build_mlp
from mlpcli.training.backprop import Backprop, unsupported
from mlpcli.training.engine import Autograd, make_engine

# loss -> (loss module, outputs, targets for a batch of 32)
LOSSES = {
    "bce": (nn.BCEWithLogitsLoss(), 1, lambda g: torch.randint(0, 2, (32, 1), generator=g).float()),
    "bce-multilabel": (
        nn.BCEWithLogitsLoss(),
        3,
        lambda g: torch.randint(0, 2, (32, 3), generator=g).float(),
    ),
    "cross_entropy": (nn.CrossEntropyLoss(), 4, lambda g: torch.randint(0, 4, (32,), generator=g)),
    "mse": (nn.MSELoss(), 2, lambda g: torch.randn(32, 2, generator=g)),
    "mae": (nn.L1Loss(), 2, lambda g: torch.randn(32, 2, generator=g)),
    "huber": (nn.HuberLoss(delta=0.5), 1, lambda g: torch.randn(32, 1, generator=g) * 3),
}

ACTIVATION_SPECS = [
    *ACTIVATIONS,
    {"name": "leaky_relu", "negative_slope": 0.2},
    {"name": "swish", "beta": 2.5},
    {"name": "softplus", "beta": 3.0},
]


def twins(spec, out_dim, bias=True, dropout=0.0, hidden=(16, 8)):
    """Two identical models: one for autograd, one flattened for the written-out path."""
    config = ModelConfig(hidden=list(hidden), activation=spec, bias=bias, dropout=dropout)
    torch.manual_seed(0)
    reference = build_mlp(config, 5, out_dim)
    torch.manual_seed(0)
    return reference, build_mlp(config, 5, out_dim)


def autograd_grads(model, loss_fn, x, y):
    model.train()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def backprop_grads(model, loss_fn, x, y):
    model.train()
    engine = Backprop(model, loss_fn)
    with engine.context():
        loss = engine.loss(x, y)
        engine.backward()
    return loss, engine.flat.grad.clone()


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("spec", ACTIVATION_SPECS, ids=str)
def test_gradients_equal_autograd_for_every_activation_and_loss(spec, loss):
    loss_fn, out_dim, targets = LOSSES[loss]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 5, generator=g) * 2, targets(g)
    reference, model = twins(spec, out_dim)
    want_loss, want = autograd_grads(reference, loss_fn, x, y)
    got_loss, got = backprop_grads(model, loss_fn, x, y)
    torch.testing.assert_close(got_loss, want_loss)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert got.abs().sum() > 0


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradients_equal_autograd_without_bias_and_with_dropout(bias, dropout):
    loss_fn, out_dim, targets = LOSSES["cross_entropy"]
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(32, 5, generator=g), targets(g)
    reference, model = twins("tanh", out_dim, bias=bias, dropout=dropout, hidden=(12, 12, 6))
    torch.manual_seed(7)  # the same dropout masks on both sides
    want_loss, want = autograd_grads(reference, loss_fn, x, y)
    torch.manual_seed(7)
    got_loss, got = backprop_grads(model, loss_fn, x, y)
    torch.testing.assert_close(got_loss, want_loss)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_the_model_reads_and_writes_the_flat_parameter():
    _, model = twins("relu", 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = Backprop(model, nn.MSELoss())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        engine.flat.add_(1.0)
    assert all(torch.equal(before[k] + 1, v) for k, v in model.state_dict().items())
    model.load_state_dict(before)  # loading writes through to the flat parameter
    assert torch.equal(engine.flat[: before["0.weight"].numel()], before["0.weight"].reshape(-1))


def test_training_steps_match_autograd():
    loss_fn, out_dim, targets = LOSSES["cross_entropy"]
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(256, 5, generator=g), targets(torch.Generator().manual_seed(4)).repeat(8)
    reference, model = twins("relu", out_dim)
    slow = Autograd(reference, loss_fn, TrainConfig(), torch.device("cpu"))
    fast = Backprop(model, loss_fn)
    optimizers = [
        torch.optim.Adam(engine.parameters, lr=1e-2, fused=True) for engine in (slow, fast)
    ]
    for step in range(20):
        rows = slice(step * 12, step * 12 + 32)
        for engine, optimizer in zip((slow, fast), optimizers):
            with engine.context():
                engine.loss(x[rows], y[rows])
                engine.update(optimizer, grad_clip=1.0)
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_models_that_need_autograd_get_it():
    loss_fn = nn.MSELoss()
    cpu = torch.device("cpu")
    for config in (
        ModelConfig(norm="batch"),
        ModelConfig(norm="layer"),
        ModelConfig(activation={"name": "swish", "learnable": True}),
    ):
        model = build_mlp(config, 3, 1)
        assert unsupported(model, loss_fn)
        assert isinstance(make_engine(TrainConfig(), model, loss_fn, cpu), Autograd)
        with pytest.raises(ConfigError, match="train.engine: backprop cannot train this model"):
            make_engine(TrainConfig(engine="backprop"), model, loss_fn, cpu)
    plain = build_mlp(ModelConfig(dropout=0.1), 3, 1)
    assert isinstance(make_engine(TrainConfig(), plain, loss_fn, cpu), Backprop)
    assert isinstance(make_engine(TrainConfig(engine="autograd"), plain, loss_fn, cpu), Autograd)
    assert isinstance(make_engine(TrainConfig(precision="bf16"), plain, loss_fn, cpu), Autograd)


def test_fp16_needs_a_gpu():
    model = build_mlp(ModelConfig(), 3, 1)
    with pytest.raises(ConfigError, match="train.precision: fp16 needs a CUDA GPU"):
        make_engine(TrainConfig(precision="fp16"), model, nn.MSELoss(), torch.device("cpu"))
    with pytest.raises(ValueError, match="backprop runs in fp32"):
        TrainConfig(engine="backprop", precision="bf16")


def test_a_failing_compile_is_a_config_error(tmp_path, monkeypatch):
    import mlpcli

    def broken(*args, **kwargs):
        def forward(x):
            raise RuntimeError("no C compiler found\nmore detail")

        return forward

    monkeypatch.setattr(torch, "compile", broken)
    config = build_config({"data": {"n_samples": 200}, "train": {"epochs": 2, "compile": True}})
    with pytest.raises(ConfigError, match="train.compile: torch.compile failed here"):
        mlpcli.train(config, out=tmp_path, quiet=True)


@pytest.mark.parametrize("name", list(LOSSES))
def test_a_batch_part_with_no_rows_has_an_empty_gradient(name):
    """In a run of several processes, one may get no row of a short last batch."""
    from mlpcli.training.backprop import LOSS_GRADS

    loss_fn, out_dim, targets = LOSSES[name]
    y = targets(torch.Generator().manual_seed(0))[:0]
    _, grad = LOSS_GRADS[type(loss_fn)](torch.empty(0, out_dim), y, loss_fn)
    assert grad.shape == (0, out_dim)

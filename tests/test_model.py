"""The model factory: every activation, layer order, options, initialisation and devices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlpcli.config.registry import ACTIVATIONS, INITS
from mlpcli.config.schema import ModelConfig
from mlpcli.errors import ConfigError
from mlpcli.model.factory import Swish, build_mlp, count_parameters, make_activation, resolve_device

CUDA = torch.cuda.is_available()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# name -> (parameters to build it with, the formula in NumPy float64)
ORACLES = {
    "identity": ({}, lambda x: x),
    "sigmoid": ({}, sigmoid),
    "tanh": ({}, np.tanh),
    "relu": ({}, lambda x: np.maximum(x, 0)),
    "leaky_relu": ({"negative_slope": 0.2}, lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": ({"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    "gelu": ({}, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    "silu": ({}, lambda x: x * sigmoid(x)),
    "swish": ({"beta": 2.5}, lambda x: x * sigmoid(2.5 * x)),
    "softplus": ({"beta": 2.0}, lambda x: np.log1p(np.exp(2.0 * x)) / 2.0),
}


def layers(model: nn.Sequential) -> list[type]:
    return [type(m) for m in model]


def test_every_activation_has_an_oracle():
    assert set(ORACLES) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_mlp_with_each_activation_runs_forward_and_backward(name):
    torch.manual_seed(0)
    params, _ = ORACLES[name]
    config = ModelConfig(hidden=[16, 8], activation={"name": name, **params})
    model = build_mlp(config, in_dim=5, out_dim=3)
    assert isinstance(model, nn.Sequential)
    x = torch.randn(32, 5)
    out = model(x)
    assert out.shape == (32, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # the input reaches the output for every activation but a constant one
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_matches_its_formula(name):
    params, formula = ORACLES[name]
    x = np.linspace(-4, 4, 81)
    layer = make_activation({"name": name, **params})
    got = layer(torch.tensor(x, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(got, formula(x), rtol=1e-6, atol=1e-9)
    # and the same layer sits after the first Linear of a built model
    model = build_mlp(ModelConfig(hidden=[4], activation={"name": name, **params}), 2, 1)
    built = model[1].double()
    np.testing.assert_allclose(
        built(torch.tensor(x)).detach().numpy(), formula(x), rtol=1e-6, atol=1e-9
    )


def test_activation_defaults_come_from_the_registry():
    assert make_activation({"name": "leaky_relu"}).negative_slope == 0.01
    assert make_activation({"name": "elu"}).alpha == 1.0
    assert float(make_activation({"name": "swish"}).beta) == 1.0


def test_swish_with_beta_one_is_silu():
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(Swish()(x), nn.functional.silu(x))


def test_learnable_swish_beta_is_a_parameter_that_gets_a_gradient():
    torch.manual_seed(0)
    config = ModelConfig(
        hidden=[8, 8], activation={"name": "swish", "beta": 1.5, "learnable": True}
    )
    model = build_mlp(config, 3, 1)
    betas = [m.beta for m in model if isinstance(m, Swish)]
    assert len(betas) == 2 and all(isinstance(b, nn.Parameter) for b in betas)
    assert betas[0] is not betas[1]  # one per layer
    ids = {id(p) for p in model.parameters()}
    assert all(id(b) in ids for b in betas)
    model(torch.randn(16, 3)).sum().backward()
    assert all(b.grad is not None and b.grad.abs() > 0 for b in betas)
    assert count_parameters(model) == (3 * 8 + 8) + (8 * 8 + 8) + (8 + 1) + 2


def test_fixed_swish_beta_is_a_buffer_not_a_parameter():
    model = build_mlp(ModelConfig(hidden=[8], activation={"name": "swish", "beta": 1.5}), 3, 1)
    swish = model[1]
    assert isinstance(swish, Swish) and not isinstance(swish.beta, nn.Parameter)
    assert all(p is not swish.beta for p in model.parameters())
    assert "1.beta" in model.state_dict()  # still saved with the weights


# ---------------------------------------------------------------- structure


def test_no_hidden_layer_is_one_linear():
    model = build_mlp(ModelConfig(hidden=[]), 4, 2)
    assert layers(model) == [nn.Linear]
    assert (model[0].in_features, model[0].out_features) == (4, 2)


def test_layer_sizes_follow_hidden():
    model = build_mlp(ModelConfig(hidden=[7, 5, 3]), 4, 2)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 7), (7, 5), (5, 3), (3, 2)]
    assert layers(model) == [nn.Linear, nn.ReLU] * 3 + [nn.Linear]
    assert count_parameters(model) == sum(i * o + o for i, o in [(4, 7), (7, 5), (5, 3), (3, 2)])


def test_bias_false_leaves_no_bias():
    model = build_mlp(ModelConfig(hidden=[6, 6], bias=False), 4, 2)
    assert all(m.bias is None for m in model if isinstance(m, nn.Linear))
    assert not any("bias" in name for name, _ in model.named_parameters())
    assert count_parameters(model) == 4 * 6 + 6 * 6 + 6 * 2


@pytest.mark.parametrize("norm, norm_class", [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_and_dropout_sit_between_linear_and_the_next_linear(norm, norm_class):
    config = ModelConfig(hidden=[8, 4], activation="tanh", norm=norm, dropout=0.25)
    model = build_mlp(config, 3, 2)
    block = [nn.Linear, norm_class, nn.Tanh, nn.Dropout]
    assert layers(model) == block * 2 + [nn.Linear]
    assert model[3].p == 0.25
    assert [
        m.normalized_shape[0] if norm == "layer" else m.num_features
        for m in model
        if isinstance(m, norm_class)
    ] == [8, 4]
    model.train()
    assert model(torch.randn(10, 3)).shape == (10, 2)


def test_dropout_zero_adds_no_layer():
    assert nn.Dropout not in layers(build_mlp(ModelConfig(hidden=[4], dropout=0.0), 2, 1))


def test_per_layer_activations_are_applied_in_order():
    spec = ["tanh", {"name": "leaky_relu", "negative_slope": 0.3}, "sigmoid"]
    model = build_mlp(ModelConfig(hidden=[5, 5, 5], activation=spec), 2, 1)
    acts = [m for m in model if not isinstance(m, nn.Linear)]
    assert [type(m) for m in acts] == [nn.Tanh, nn.LeakyReLU, nn.Sigmoid]
    assert acts[1].negative_slope == 0.3


def test_model_needs_inputs_and_outputs():
    with pytest.raises(ConfigError):
        build_mlp(ModelConfig(), 0, 1)
    with pytest.raises(ConfigError):
        build_mlp(ModelConfig(), 3, 0)


# ---------------------------------------------------------------- initialisation


@pytest.mark.parametrize("init", INITS)
def test_every_init_builds_and_runs(init):
    torch.manual_seed(0)
    model = build_mlp(
        ModelConfig(hidden=[16, 16], init=init, activation=["relu", "leaky_relu"]), 4, 2
    )
    assert torch.isfinite(model(torch.randn(8, 4))).all()
    biases = [m.bias for m in model if isinstance(m, nn.Linear)]
    if init == "default":
        assert all(b.abs().sum() > 0 for b in biases)
    else:
        assert all(torch.count_nonzero(b) == 0 for b in biases)


def first_weight(init: str, activation: str = "relu", width: int = 512) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_mlp(ModelConfig(hidden=[width], init=init, activation=activation), width, 1)
    return model[0].weight.detach()


def test_kaiming_normal_uses_the_relu_gain():
    std = first_weight("kaiming_normal").std().item()
    assert std == pytest.approx(math.sqrt(2 / 512), rel=0.03)


def test_kaiming_uniform_uses_the_leaky_relu_slope():
    w = first_weight("kaiming_uniform", {"name": "leaky_relu", "negative_slope": 0.5})
    bound = math.sqrt(2 / (1 + 0.5**2)) * math.sqrt(3 / 512)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound


def test_xavier_uses_fan_in_and_fan_out():
    std = first_weight("xavier_normal").std().item()
    assert std == pytest.approx(math.sqrt(2 / (512 + 512)), rel=0.03)
    w = first_weight("xavier_uniform")
    assert w.abs().max().item() <= math.sqrt(6 / 1024)


def test_default_init_is_torchs_own():
    bound = 1 / math.sqrt(512)
    w = first_weight("default")
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound


# ---------------------------------------------------------------- devices


def test_cpu_device_works():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")
def test_auto_is_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_names_train_device(name):
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    message = str(info.value)
    assert message.startswith("train.device:") and f"'{name}'" in message
    assert "cpu" in message


def test_mps_without_mps_names_train_device(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="train.device: 'mps'"):
        resolve_device("mps")


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_model_trains_a_step_on_cuda():
    device = resolve_device("cuda")
    assert device.type == "cuda" and resolve_device("auto").type == "cuda"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    torch.manual_seed(0)
    config = ModelConfig(
        hidden=[32, 32], activation={"name": "swish", "learnable": True}, norm="batch", dropout=0.1
    )
    model = build_mlp(config, 4, 3).to(device)
    x = torch.randn(64, 4, device=device)
    y = torch.randint(0, 3, (64,), device=device)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert losses[-1] < losses[0]
    cpu_model = build_mlp(config, 4, 3)
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    model.eval()
    cpu_model.eval()
    torch.testing.assert_close(cpu_model(x.cpu()), model(x).cpu(), rtol=1e-4, atol=1e-4)

"""The written-out engine's contract with the model, checked over random layer stacks.

Stacks the engine accepts must train exactly as autograd does (same gradients, same weights after
several optimiser steps); any other stack must fall back to autograd (train.engine auto) or be
refused (train.engine backprop), never train wrongly or crash.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mlpcli.config.schema import ModelConfig, OptimConfig, TrainConfig
from mlpcli.errors import ConfigError
from mlpcli.model.factory import Swish, build_mlp
from mlpcli.training.backprop import Backprop, unsupported
from mlpcli.training.engine import Autograd, make_engine
from mlpcli.training.trainer import make_optimizer

CPU = torch.device("cpu")
ROWS, IN_DIM = 12, 3

# loss name -> (loss module, output width, targets for ROWS rows from a generator)
LOSSES = {
    "bce": (nn.BCEWithLogitsLoss, 2, lambda g: torch.randint(0, 2, (ROWS, 2), generator=g) * 1.0),
    "cross_entropy": (nn.CrossEntropyLoss, 3, lambda g: torch.randint(0, 3, (ROWS,), generator=g)),
    "mse": (nn.MSELoss, 2, lambda g: torch.randn(ROWS, 2, generator=g)),
    "mae": (nn.L1Loss, 1, lambda g: torch.randn(ROWS, 1, generator=g)),
    "huber": (lambda: nn.HuberLoss(delta=0.5), 1, lambda g: torch.randn(ROWS, 1, generator=g) * 2),
}

activation_specs = st.one_of(
    st.sampled_from(["identity", "sigmoid", "tanh", "relu", "gelu", "silu"]),
    st.builds(
        lambda s: {"name": "leaky_relu", "negative_slope": s}, st.sampled_from([0.01, 0.2, 0.7])
    ),
    st.builds(lambda a: {"name": "elu", "alpha": a}, st.sampled_from([0.5, 1.0, 1.7])),
    st.builds(lambda b: {"name": "swish", "beta": b}, st.sampled_from([0.5, 1.0, 2.5])),
    st.builds(lambda b: {"name": "softplus", "beta": b}, st.sampled_from([1.0, 3.0])),
)


@st.composite
def model_configs(draw: st.DrawFn) -> ModelConfig:
    hidden = draw(st.lists(st.integers(1, 6), max_size=3))
    if draw(st.booleans()):
        activation = draw(st.lists(activation_specs, min_size=len(hidden), max_size=len(hidden)))
    else:
        activation = draw(activation_specs)
    return ModelConfig(
        hidden=hidden,
        activation=activation,
        bias=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        init=draw(st.sampled_from(["default", "xavier_normal", "kaiming_uniform"])),
    )


optim_configs = st.sampled_from(
    [
        OptimConfig(name="sgd", lr=0.05),
        OptimConfig(name="sgd", lr=0.05, momentum=0.9),
        OptimConfig(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        OptimConfig(name="rmsprop", lr=0.01),
        OptimConfig(name="rmsprop", lr=0.01, momentum=0.5),
        OptimConfig(name="adam", lr=0.01),
        OptimConfig(name="adamw", lr=0.01, weight_decay=0.1),
    ]
)


def twins(build):
    """Two identical models from one builder: one for each engine."""
    torch.manual_seed(0)
    reference = build()
    torch.manual_seed(0)
    return reference, build()


def flat_grads(parameters):
    return torch.cat([p.grad.reshape(-1) for p in parameters])


@settings(max_examples=40, deadline=None)
@given(
    model=model_configs(),
    loss=st.sampled_from(list(LOSSES)),
    optim=optim_configs,
    steps=st.integers(1, 4),
    clip=st.sampled_from([None, 0.5]),
)
def test_allowed_stacks_train_as_autograd_does(model, loss, optim, steps, clip):
    make_loss, out_dim, targets = LOSSES[loss]
    loss_fn = make_loss()
    reference, fast_model = twins(lambda: build_mlp(model, IN_DIM, out_dim))
    assert unsupported(fast_model, loss_fn) is None
    fast = make_engine(TrainConfig(), fast_model, loss_fn, CPU)
    assert isinstance(fast, Backprop)
    slow = Autograd(reference, loss_fn, TrainConfig(), CPU)
    optimizers = [make_optimizer(optim, e.parameters, CPU) for e in (slow, fast)]
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(ROWS, IN_DIM, generator=g), targets(g)
        losses, grads = [], []
        for engine, optimizer in zip((slow, fast), optimizers):
            engine.model.train()
            torch.manual_seed(step)  # the same dropout masks on both sides
            with engine.context():
                losses.append(engine.loss(x, y))
                engine.update(optimizer, clip)
            grads.append(flat_grads(engine.model.parameters()) if engine is slow else None)
        torch.testing.assert_close(losses[1], losses[0].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fast.flat.grad, grads[0], rtol=1e-4, atol=1e-6)
    for a, b in zip(reference.state_dict().values(), fast_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


# Tokens of an arbitrary stack; "linear" takes the next width from the draw.
TOKENS = {
    "linear": None,
    "linear-no-bias": None,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "relu-inplace": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "elu": lambda: nn.ELU(alpha=0.5),
    "swish": lambda: Swish(2.0),
    "swish-learnable": lambda: Swish(1.0, learnable=True),
    "dropout": lambda: nn.Dropout(0.3),
    "batch-norm": None,
    "softmax": lambda: nn.Softmax(dim=1),
}

# Tokens that are activations the engine differentiates.
ACTIVATION_TOKENS = ["tanh", "relu", "sigmoid", "identity", "elu", "swish"]


def build_stack(tokens: list[str], widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width, widths = IN_DIM, list(widths)
    for token in tokens:
        if token.startswith("linear"):
            out = widths.pop() if widths else 2
            layers.append(nn.Linear(width, out, bias=token == "linear"))
            width = out
        elif token == "batch-norm":
            layers.append(nn.BatchNorm1d(width))
        else:
            layers.append(TOKENS[token]())
    return nn.Sequential(*layers)


def is_allowed(tokens: list[str]) -> bool:
    """The grammar (Linear [activation] [Dropout])* Linear, written independently of the engine."""
    activations = set(ACTIVATION_TOKENS)
    state = "start"  # start: before a Linear; linear: after one; act: after its activation
    for token in tokens:
        if token in ("linear", "linear-no-bias"):
            state = "linear"
        elif token in activations and state == "linear":
            state = "act"
        elif token == "dropout" and state in ("linear", "act"):
            state = "dropout"
        else:
            return False
    return state == "linear"


block_tokens = st.tuples(
    st.sampled_from(["linear", "linear-no-bias"]),
    st.lists(st.sampled_from(ACTIVATION_TOKENS), max_size=1),
    st.lists(st.just("dropout"), max_size=1),
).map(lambda block: [block[0], *block[1], *block[2]])
# Stacks in the grammar, built block by block, and any sequence of layers at all.
grammar_stacks = st.tuples(
    st.lists(block_tokens, max_size=3), st.sampled_from(["linear", "linear-no-bias"])
).map(lambda stack: [token for block in stack[0] for token in block] + [stack[1]])
any_stacks = st.lists(st.sampled_from(list(TOKENS)), min_size=1, max_size=7)


@settings(max_examples=40, deadline=None)
@given(
    tokens=st.one_of(grammar_stacks, any_stacks),
    widths=st.lists(st.integers(1, 5), max_size=7),
)
def test_any_stack_is_trained_exactly_or_left_to_autograd(tokens, widths):
    loss_fn = nn.MSELoss()
    reference, model = twins(lambda: build_stack(tokens, widths))
    reason = unsupported(model, loss_fn)
    assert (reason is None) == is_allowed(tokens), reason
    if reason is not None:
        assert isinstance(make_engine(TrainConfig(), model, loss_fn, CPU), Autograd)
        with pytest.raises(ConfigError, match="train.engine: backprop cannot train this model"):
            make_engine(TrainConfig(engine="backprop"), model, loss_fn, CPU)
        return
    g = torch.Generator().manual_seed(2)
    x = torch.randn(ROWS, IN_DIM, generator=g) * 2
    y = torch.randn(ROWS, reference(x).shape[1], generator=g)
    reference.train()
    torch.manual_seed(3)
    loss_fn(reference(x), y).backward()
    engine = make_engine(TrainConfig(engine="backprop"), model, loss_fn, CPU)
    model.train()
    torch.manual_seed(3)
    with engine.context():
        engine.loss(x, y)
        engine.backward()
    torch.testing.assert_close(engine.flat.grad, flat_grads(reference.parameters()))


@pytest.mark.parametrize(
    "layers",
    [
        [nn.Linear(3, 4), nn.Tanh(), nn.ReLU(), nn.Linear(4, 1)],
        [nn.Linear(3, 4), nn.Sigmoid(), nn.Identity(), nn.Linear(4, 1)],
        [nn.Linear(3, 4), nn.Dropout(0.5), nn.Tanh(), nn.Linear(4, 1)],
        [nn.Tanh(), nn.Linear(3, 1)],
        [nn.Linear(3, 4), nn.Tanh()],
    ],
    ids=["two-activations", "activation-then-identity", "dropout-first", "no-linear-first", "end"],
)
def test_stacks_outside_the_grammar_are_named_and_refused(layers):
    model = nn.Sequential(*layers)
    reason = unsupported(model, nn.MSELoss())
    assert reason is not None and "layer" in reason
    with pytest.raises(ValueError, match="cannot train this model"):
        Backprop(model, nn.MSELoss())


def test_linear_after_linear_is_a_block_without_activation():
    loss_fn = nn.MSELoss()
    reference, model = twins(lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)))
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    loss_fn(reference(x), y).backward()
    engine = Backprop(model, loss_fn)
    with engine.context():
        engine.loss(x, y)
        engine.backward()
    torch.testing.assert_close(engine.flat.grad, flat_grads(reference.parameters()))

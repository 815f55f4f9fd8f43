"""mlpcli's optimisers and schedules against torch.optim's, the oracle: bitwise equal parameters,
state and learning rates, and state dicts that load into either."""

from __future__ import annotations

import math

import pytest
import torch

from mlpcli.training import optimizers, schedules

# torch warns when its scheduler steps with no optimiser step between; these only read the lr.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")

# (mlpcli class, torch class, options besides lr)
CASES = {
    "sgd": (optimizers.SGD, torch.optim.SGD, {}),
    "sgd-fused": (optimizers.SGD, torch.optim.SGD, {"fused": True, "weight_decay": 0.01}),
    "sgd-momentum": (optimizers.SGD, torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.01}),
    "sgd-nesterov-fused": (
        optimizers.SGD,
        torch.optim.SGD,
        {"momentum": 0.9, "nesterov": True, "fused": True},
    ),
    "adam": (optimizers.Adam, torch.optim.Adam, {"weight_decay": 0.1, "betas": (0.8, 0.9)}),
    "adam-fused": (optimizers.Adam, torch.optim.Adam, {"fused": True}),
    "adamw": (optimizers.AdamW, torch.optim.AdamW, {}),
    "adamw-fused": (optimizers.AdamW, torch.optim.AdamW, {"fused": True, "weight_decay": 0.1}),
    "rmsprop": (optimizers.RMSprop, torch.optim.RMSprop, {}),
    "rmsprop-momentum": (
        optimizers.RMSprop,
        torch.optim.RMSprop,
        {"momentum": 0.5, "weight_decay": 0.01},
    ),
}


def parameters(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(6, 4, generator=g)), torch.nn.Parameter(torch.zeros(6))]


def gradients(steps: int) -> list[list[torch.Tensor | None]]:
    """Random gradients; on one step the second parameter has none (both optimisers skip it)."""
    g = torch.Generator().manual_seed(1)
    out: list[list[torch.Tensor | None]] = []
    for step in range(steps):
        out.append([torch.randn(6, 4, generator=g), torch.randn(6, generator=g)])
        if step == 2:
            out[-1][1] = None
    return out


def apply(optimizer, params, grads) -> None:
    for p, grad in zip(params, grads):
        p.grad = None if grad is None else grad.clone()
    optimizer.step()


def assert_same_state(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        x, y = a["state"][key], b["state"][key]
        assert x.keys() == y.keys(), key
        for name in x:
            assert x[name].dtype == y[name].dtype and x[name].device == y[name].device, name
            assert torch.equal(x[name], y[name]), name


@pytest.mark.parametrize("case", list(CASES))
def test_each_optimizer_steps_bitwise_as_torch_optim_does(case):
    ours_cls, torch_cls, options = CASES[case]
    ours_params, torch_params = parameters(), parameters()
    ours = ours_cls(ours_params, lr=0.05, **options)
    reference = torch_cls(torch_params, lr=0.05, **options)
    assert ours.param_groups[0].keys() == reference.param_groups[0].keys()
    for grads in gradients(12):
        apply(ours, ours_params, grads)
        apply(reference, torch_params, grads)
    for a, b in zip(ours_params, torch_params):
        assert torch.equal(a, b)
    assert_same_state(ours.state_dict(), reference.state_dict())


@pytest.mark.parametrize("case", ["sgd-momentum", "adam-fused", "adamw", "rmsprop-momentum"])
@pytest.mark.parametrize("direction", ["ours-to-torch", "torch-to-ours"])
def test_a_state_dict_from_either_resumes_in_the_other(case, direction):
    ours_cls, torch_cls, options = CASES[case]
    first_cls, second_cls = (
        (ours_cls, torch_cls) if direction == "ours-to-torch" else (torch_cls, ours_cls)
    )
    grads = gradients(10)
    straight = parameters()
    uninterrupted = first_cls(straight, lr=0.05, **options)
    for step in grads:
        apply(uninterrupted, straight, step)

    params = parameters()
    first = first_cls(params, lr=0.05, **options)
    for step in grads[:5]:
        apply(first, params, step)
    saved = first.state_dict()
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    second = second_cls(resumed_params, lr=0.5, **options)  # the saved lr wins
    second.load_state_dict(saved)
    assert second.param_groups[0]["lr"] == 0.05
    for step in grads[5:]:
        apply(second, resumed_params, step)
    for a, b in zip(straight, resumed_params):
        assert torch.equal(a, b)
    assert_same_state(uninterrupted.state_dict(), second.state_dict())


def test_a_state_dict_for_other_parameters_is_refused():
    ours = optimizers.Adam(parameters(), lr=0.1)
    other = optimizers.Adam([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match="other parameter groups"):
        ours.load_state_dict(other.state_dict())


@pytest.mark.parametrize("case", ["sgd-fused", "adam-fused", "adam", "rmsprop"])
def test_grad_scaler_drives_them_as_it_drives_torch_optim(case):
    """GradScaler hands a fused update its scale and inf flag, unscales for the others, and
    skips the step whose gradients overflowed: the same parameters and scale either way."""
    ours_cls, torch_cls, options = CASES[case]
    results = []
    for cls in (ours_cls, torch_cls):
        params = parameters()
        optimizer = cls(params, lr=0.05, **options)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        g = torch.Generator().manual_seed(2)
        for step in range(6):
            loss = sum((p * torch.randn(p.shape, generator=g)).sum() for p in params)
            if step == 3:
                loss = loss * math.inf  # overflows: this step must change nothing
            for p in params:  # as the engines clear them
                p.grad = None
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        results.append(([p.detach().clone() for p in params], scaler.get_scale()))
    (ours, ours_scale), (reference, reference_scale) = results
    assert ours_scale == reference_scale < 2.0**8
    assert all(torch.equal(a, b) for a, b in zip(ours, reference))


# ---------------------------------------------------------------- schedules

SCHEDULES = {
    "step": (
        lambda o: schedules.StepLR(o, step_size=3, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    ),
    "cosine": (
        lambda o: schedules.CosineAnnealingLR(o, T_max=25, eta_min=1e-4),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=25, eta_min=1e-4),
    ),
    "cosine-to-zero": (
        lambda o: schedules.CosineAnnealingLR(o, T_max=7),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7),
    ),
    "plateau": (
        lambda o: schedules.ReduceLROnPlateau(o, factor=0.5, patience=2, min_lr=1e-3),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, mode="min", factor=0.5, patience=2, min_lr=1e-3
        ),
    ),
}


def metrics(epochs: int) -> list[float]:
    """A loss that improves, stalls, improves a little (less than the 1e-4 threshold), stalls."""
    values = [1.0, 0.8, 0.7, 0.7, 0.71, 0.69995, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6]
    return (values * math.ceil(epochs / len(values)))[:epochs]


def lrs(schedule, optimizer, watched: list[float]) -> list[float]:
    out = []
    for value in watched:
        out.append(optimizer.param_groups[0]["lr"])
        if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
            schedule.step(value)
        elif isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
            schedule.step()
        else:
            schedule.step(value)
    return out


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_each_schedule_sets_the_lr_torch_sets_bitwise(name):
    make_ours, make_torch = SCHEDULES[name]
    ours_opt = optimizers.Adam(parameters(), lr=0.1)
    torch_opt = torch.optim.Adam(parameters(), lr=0.1)
    ours, reference = make_ours(ours_opt), make_torch(torch_opt)
    watched = metrics(25)
    ours_lrs, torch_lrs = lrs(ours, ours_opt, watched), lrs(reference, torch_opt, watched)
    assert ours_lrs == torch_lrs  # exact floats, not approximately
    assert len(set(ours_lrs)) > 2  # the schedule did change the lr
    assert ours.state_dict() == reference.state_dict()
    assert_same_state(ours_opt.state_dict(), torch_opt.state_dict())


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_a_schedule_resumed_from_torchs_state_continues_as_torchs(name):
    make_ours, make_torch = SCHEDULES[name]
    watched = metrics(20)
    torch_opt = torch.optim.Adam(parameters(), lr=0.1)
    reference = make_torch(torch_opt)
    expected = lrs(reference, torch_opt, watched)

    torch_opt = torch.optim.Adam(parameters(), lr=0.1)
    first = make_torch(torch_opt)
    lrs(first, torch_opt, watched[:9])
    ours_opt = optimizers.Adam(parameters(), lr=0.1)
    ours = make_ours(ours_opt)
    ours_opt.load_state_dict(torch_opt.state_dict())
    ours.load_state_dict(first.state_dict())
    assert lrs(ours, ours_opt, watched[9:]) == expected[9:]


def test_a_schedule_state_cannot_add_attributes():
    schedule = schedules.StepLR(optimizers.SGD(parameters(), lr=0.1), step_size=2, gamma=0.5)
    schedule.load_state_dict({"last_epoch": 4, "optimizer": None, "surprise": 1})
    assert schedule.last_epoch == 4 and schedule.optimizer is not None
    assert not hasattr(schedule, "surprise")

"""Tasks: metrics checked against scikit-learn, loss choice, output transforms, improvement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from mlpcli.config.registry import LOSSES, MAXIMISED_METRICS, TASKS, main_metric, resolve
from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError
from mlpcli.model.tasks import (
    compute_metrics,
    is_better,
    make_loss,
    transform,
)
from mlpcli.training.plan import check_monitor


def values(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    for value in metrics.values():
        assert value.dim() == 0
    return {name: value.item() for name, value in metrics.items()}


# ---------------------------------------------------------------- metrics against scikit-learn


@pytest.mark.parametrize("seed", range(3))
def test_classification_metrics_match_sklearn(seed):
    gen = torch.Generator().manual_seed(seed)
    outputs = torch.randn(200, 5, generator=gen)
    targets = torch.randint(0, 5, (200,), generator=gen)
    got = values(compute_metrics("classification", outputs, targets, None))
    pred = outputs.argmax(1).numpy()
    assert set(got) == set(TASKS["classification"][2])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(targets.numpy(), pred))
    assert got["f1_macro"] == pytest.approx(
        skm.f1_score(targets.numpy(), pred, average="macro", zero_division=0)
    )


def test_f1_macro_counts_a_class_never_predicted_and_skips_an_absent_one():
    # five output columns: class 2 is in the targets but never predicted, class 4 appears nowhere
    true = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 1])
    pred = np.array([0, 1, 1, 1, 0, 3, 3, 3, 0, 0])
    outputs = torch.nn.functional.one_hot(torch.tensor(pred), 5).float()
    got = values(compute_metrics("classification", outputs, torch.tensor(true), None))
    expected = skm.f1_score(true, pred, average="macro", zero_division=0)
    assert got["f1_macro"] == pytest.approx(expected)
    assert got["f1_macro"] != pytest.approx(
        skm.f1_score(true, pred, labels=[0, 1, 3], average="macro")
    )
    assert got["accuracy"] == pytest.approx(0.6)


@pytest.mark.parametrize("seed", range(3))
def test_binary_metrics_match_sklearn(seed):
    gen = torch.Generator().manual_seed(seed)
    outputs = torch.randn(150, 1, generator=gen)
    targets = torch.randint(0, 2, (150, 1), generator=gen).float()
    got = values(compute_metrics("binary", outputs, targets, None))
    pred = (outputs[:, 0] > 0).long().numpy()
    true = targets[:, 0].long().numpy()
    assert set(got) == set(TASKS["binary"][2])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(true, pred, average="macro"))


def test_binary_outputs_are_logits_with_the_threshold_at_zero():
    outputs = torch.tensor([[-0.1], [0.1], [2.0], [-3.0]])
    targets = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    assert values(compute_metrics("binary", outputs, targets, None))["accuracy"] == 0.75


@pytest.mark.parametrize("seed", range(3))
def test_multilabel_metrics_match_sklearn(seed):
    gen = torch.Generator().manual_seed(seed)
    outputs = torch.randn(120, 4, generator=gen) + 0.3
    targets = torch.randint(0, 2, (120, 4), generator=gen).float()
    # a few rows exactly right so that subset accuracy is not zero
    targets[:15] = (outputs[:15] > 0).float()
    got = values(compute_metrics("multilabel", outputs, targets, None))
    pred = (outputs > 0).int().numpy()
    true = targets.int().numpy()
    assert set(got) == set(TASKS["multilabel"][2])
    assert got["f1_micro"] == pytest.approx(skm.f1_score(true, pred, average="micro"))
    assert got["subset_accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert got["subset_accuracy"] > 0


def test_multilabel_with_nothing_predicted_or_true_is_zero_not_nan():
    got = values(compute_metrics("multilabel", -torch.ones(5, 3), torch.zeros(5, 3), None))
    assert got == {"f1_micro": 0.0, "subset_accuracy": 1.0}


@pytest.mark.parametrize("scaled", [False, True])
def test_regression_metrics_match_sklearn_in_target_units(scaled):
    gen = torch.Generator().manual_seed(0)
    true = torch.randn(100, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [1.0, 50.0, 0.01], dtype=torch.float64
    ) + torch.tensor([0.0, 200.0, -1.0], dtype=torch.float64)
    pred = true + torch.randn(100, 3, generator=gen, dtype=torch.float64) * true.std(0) * 0.5
    scale = None
    outputs, targets = pred, true
    if scaled:
        scale = torch.stack([true.mean(0), true.std(0)], dim=1)  # [mean, std] per output
        outputs = (pred - scale[:, 0]) / scale[:, 1]
        targets = (true - scale[:, 0]) / scale[:, 1]
    got = values(compute_metrics("regression", outputs, targets, scale))
    t, p = true.numpy(), pred.numpy()
    assert set(got) == set(TASKS["regression"][2])
    assert got["mse"] == pytest.approx(skm.mean_squared_error(t, p), rel=1e-9)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(t, p), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(t, p), rel=1e-9)


def test_regression_metrics_of_a_single_output():
    true = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    pred = torch.tensor([[1.5], [2.0], [2.0], [4.0]])
    got = values(compute_metrics("regression", pred, true, None))
    assert got["mse"] == pytest.approx(1.25 / 4)
    assert got["rmse"] == pytest.approx(math.sqrt(1.25 / 4))
    assert got["mae"] == pytest.approx(1.5 / 4)
    assert got["r2"] == pytest.approx(1 - 1.25 / 5)


def scaled_targets(power: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised outputs and targets of two outputs, and a [mean, std] per output of about
    2**power (their standard deviations differ by 10x)."""
    gen = torch.Generator().manual_seed(1)
    targets = torch.randn(200, 2, generator=gen)
    outputs = targets + 0.3 * torch.randn(200, 2, generator=gen)
    scale = torch.tensor([[3.0, 1.5], [-20.0, 15.0]], dtype=torch.float64) * 2.0**power
    return outputs, targets, scale


@pytest.mark.parametrize("power", [-1000, -700, 465, 1010])
def test_regression_metrics_scale_exactly_with_the_targets_units(power):
    """Squares of errors near 1e304 or 1e-301 neither overflow nor vanish on the way: r2 stays,
    rmse and mae scale exactly; mse scales exactly, to infinity or 0 where it leaves float64."""
    outputs, targets, scale = scaled_targets(0)
    base = values(compute_metrics("regression", outputs, targets, scale))
    got = values(compute_metrics("regression", outputs, targets, scale * 2.0**power))
    assert got["r2"] == base["r2"] and 0.8 < base["r2"] < 1
    assert got["rmse"] == math.ldexp(base["rmse"], power)
    assert got["mae"] == math.ldexp(base["mae"], power)
    mse = base["mse"] * 2.0**power * 2.0**power if abs(power) < 512 else None
    if mse is not None:
        assert got["mse"] == mse
    else:
        assert got["mse"] == (math.inf if power > 0 else 0.0)


def test_r2_of_a_target_that_does_not_vary_is_undefined_not_zero():
    outputs = torch.tensor([[0.5], [1.0], [1.5]])
    got = values(compute_metrics("regression", outputs, torch.ones(3, 1), None))
    assert math.isnan(got["r2"])
    assert got["mse"] == pytest.approx((0.25 + 0.25) / 3)
    # three equal targets of 3.3 whose rounded mean leaves a variance of 2e-31, not 0
    targets = torch.full((3, 1), 3.3, dtype=torch.float64)
    got = values(compute_metrics("regression", outputs.double(), targets, None))
    assert math.isnan(got["r2"]), got["r2"]
    # a constant second output makes the mean over outputs undefined too
    targets = torch.tensor([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    got = values(compute_metrics("regression", torch.zeros(3, 2), targets, None))
    assert math.isnan(got["r2"])


def test_metrics_stay_on_the_outputs_device_and_dtype():
    got = compute_metrics("classification", torch.randn(10, 3), torch.randint(0, 3, (10,)), None)
    assert all(v.device == torch.device("cpu") and v.dtype.is_floating_point for v in got.values())


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("task", TASKS)
def test_auto_loss_is_the_task_default(task):
    loss = make_loss(build_config({}), task)
    assert type(loss) is resolve(LOSSES[TASKS[task][0]][0])


def test_default_losses_are_the_documented_ones():
    config = build_config({})
    assert isinstance(make_loss(config, "regression"), nn.MSELoss)
    assert isinstance(make_loss(config, "binary"), nn.BCEWithLogitsLoss)
    assert isinstance(make_loss(config, "multilabel"), nn.BCEWithLogitsLoss)
    assert isinstance(make_loss(config, "classification"), nn.CrossEntropyLoss)


@pytest.mark.parametrize(
    "loss, task", [(loss, task) for loss, (_, tasks) in LOSSES.items() for task in tasks]
)
def test_explicit_loss_that_fits_is_built(loss, task):
    assert type(make_loss(build_config({"loss": loss}), task)) is resolve(LOSSES[loss][0])


@pytest.mark.parametrize(
    "loss, task",
    [(loss, task) for loss, (_, tasks) in LOSSES.items() for task in TASKS if task not in tasks],
)
def test_loss_that_does_not_fit_the_data_is_refused(loss, task):
    # task auto: only the data reveals the task, so the check happens here, not in the schema
    with pytest.raises(ConfigError) as info:
        make_loss(build_config({"loss": loss}), task)
    message = str(info.value)
    assert message.startswith("loss:") and f"'{loss}'" in message and task in message


# ---------------------------------------------------------------- improvement and monitors


@pytest.mark.parametrize("metric", sorted(MAXIMISED_METRICS))
def test_larger_is_better_for_maximised_metrics(metric):
    for name in (metric, f"val_{metric}", f"train_{metric}"):
        assert is_better(name, 0.9, 0.8)
        assert not is_better(name, 0.7, 0.8)
        assert not is_better(name, 0.85, 0.8, min_delta=0.1)


@pytest.mark.parametrize("metric", ["loss", "val_loss", "train_loss", "val_mse", "rmse", "mae"])
def test_smaller_is_better_for_minimised_metrics(metric):
    assert is_better(metric, 0.1, 0.2)
    assert not is_better(metric, 0.3, 0.2)
    assert not is_better(metric, 0.2, 0.2)
    assert not is_better(metric, 0.15, 0.2, min_delta=0.1)
    assert is_better(metric, 0.05, 0.2, min_delta=0.1)


@pytest.mark.parametrize("metric", ["val_loss", "val_accuracy"])
def test_nan_is_never_an_improvement(metric):
    nan = float("nan")
    assert not is_better(metric, nan, None)
    assert not is_better(metric, nan, 0.5)
    assert is_better(metric, 0.5, None)


def test_main_metric_is_the_first_listed():
    assert main_metric("regression") == "r2"
    assert main_metric("classification") == "accuracy"
    assert main_metric("multilabel") == "f1_micro"


def test_transform_per_task():
    x = torch.tensor([[-1.0, 0.0, 2.0]])
    torch.testing.assert_close(transform("regression", x), x)
    torch.testing.assert_close(transform("multilabel", x), torch.sigmoid(x))
    probs = transform("classification", x)
    torch.testing.assert_close(probs.sum(1), torch.ones(1))
    assert probs.argmax().item() == 2


def test_monitor_must_be_reported_for_the_task():
    config = build_config({"train": {"early_stopping": {"monitor": "val_accuracy"}}})
    check_monitor(config, "classification", has_val=True)
    with pytest.raises(ConfigError, match="train.early_stopping.monitor.*regression"):
        check_monitor(config, "regression", has_val=True)
    with pytest.raises(ConfigError, match="needs validation rows"):
        check_monitor(config, "classification", has_val=False)

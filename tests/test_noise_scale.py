"""The gradient noise scale: B_simple against its definition where each row's gradient is known
in closed form, the estimators, the verdict, and `mlp inspect --noise`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import mlp
from torch import nn

import mlpcli
from mlpcli.insight.noise import estimate, noise_scale, noise_verdict

CIRCLES = Path(__file__).parent.parent / "configs" / "circles.yaml"


def linear_regression(rows=400, seed=0):
    """A linear model away from its least-squares fit, its rows, and the mean G and covariance
    trace tr(Σ) of the rows' own gradients of (w·x + b - y)², which are 2r·(x, 1), r the
    residual: tr(Σ)/|G|² is the noise scale by definition."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 3, generator=generator, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-1.0], [2.0]], dtype=torch.float64) + 0.5
    y = y + 0.3 * torch.randn(rows, 1, generator=generator, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.5, 1.5]]))
        model[0].bias.fill_(0.0)
    with torch.no_grad():
        residual = model(x) - y
    per_row = 2 * residual * torch.cat([x, torch.ones(rows, 1, dtype=x.dtype)], dim=1)
    mean = per_row.mean(dim=0)
    trace = ((per_row - mean) ** 2).sum(dim=1).mean()
    return model, x, y, float(mean.square().sum()), float(trace)


def test_b_simple_matches_its_definition_on_a_linear_regression():
    model, x, y, grad_squared, trace = linear_regression()
    measured = noise_scale(model, nn.MSELoss(), x, y, batch_size=4, seed=0, batches=2000)
    assert measured.b_big == 32 and measured.batches == 2000
    assert measured.grad_squared == pytest.approx(grad_squared, rel=0.05)
    assert measured.trace == pytest.approx(trace, rel=0.05)
    assert measured.b_simple == pytest.approx(trace / grad_squared, rel=0.05)


def test_the_same_seed_gives_the_same_number_and_another_seed_a_close_one():
    model, x, y, _, _ = linear_regression()
    first, again, other = (
        noise_scale(model, nn.MSELoss(), x, y, 8, seed, batches=300) for seed in (0, 0, 1)
    )
    assert first.b_simple == again.b_simple
    assert first.b_simple != other.b_simple
    assert other.b_simple == pytest.approx(first.b_simple, rel=0.3)


def test_the_estimators_invert_the_expected_norms():
    # E|G_B|² = |G|² + tr(Σ)/B: from exact norms at two sizes both terms come back.
    g2, tr = 2.0, 300.0
    got = estimate(10, 80, g2 + tr / 10, g2 + tr / 80)
    assert got[0] == pytest.approx(g2) and got[1] == pytest.approx(tr)
    assert got[2] == pytest.approx(150.0)
    # Noise that makes |G|² come out at or below 0 gives no number, never a negative one.
    assert estimate(10, 80, 30.0, 3.0)[2] is None
    assert estimate(10, 80, 4.0, 4.5)[2] is None


@pytest.mark.parametrize(
    "b_simple, words",
    [
        (1900.0, ["batch 64 is well below the noise scale of 1,900", "fewer steps"]),
        (10.0, ["batch 64 is above the noise scale of 10", "waste compute"]),
        (100.0, ["batch 64 is near the noise scale of 100"]),
        (None, ["no noise scale", "batch 64"]),
    ],
)
def test_the_verdict_names_the_batch_size(b_simple, words):
    verdict = noise_verdict(b_simple, 64, 512, 100, -1.0 if b_simple is None else 1.0)
    for word in words:
        assert word in verdict


@pytest.fixture(scope="module")
def circles_run(tmp_path_factory):
    return mlpcli.train(
        CIRCLES, ["train.epochs=10"], out=tmp_path_factory.mktemp("runs"), quiet=True
    ).run_dir


def test_inspect_noise_reports_a_finite_positive_repeatable_scale(circles_run):
    result = mlp("inspect", circles_run, "--noise", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    noise = report["noise_scale"]
    assert {"b_simple", "batch_size", "b_big", "batches", "verdict"} <= set(noise)
    assert math.isfinite(noise["b_simple"]) and noise["b_simple"] > 0
    assert noise["batch_size"] == 64 and noise["b_big"] == 512 and noise["batches"] == 100
    assert noise["verdict"].startswith("batch 64 is")
    assert any("dropout off" in note for note in report["notes"])
    assert json.loads(mlp("inspect", circles_run, "--noise", "--json").stdout) == report
    assert json.loads((circles_run / "inspect.json").read_text()) == report


def test_noise_and_probes_combine_with_at_and_print_their_lines(circles_run):
    result = mlp("inspect", circles_run, "--noise", "--probes", "--at", "init")
    assert result.exit_code == 0, result.output
    assert "gradient noise scale: batch 64 is" in result.stdout
    assert "linear probes:" in result.stdout and "noise scale from 100 batches" in result.stderr


def test_a_model_with_batch_norm_and_dropout_is_measured_as_training_runs_it(tmp_path):
    run = mlpcli.train(
        CIRCLES,
        ["train.epochs=3", "model.norm=batch", "model.dropout=0.2"],
        out=tmp_path,
        quiet=True,
    ).run_dir
    before = (run / "model.safetensors").read_bytes()
    report, _ = mlpcli.inspect(run, noise=True, probes=True)
    assert report.noise is not None and report.noise.b_simple is not None
    assert report.noise.b_simple > 0 and math.isfinite(report.noise.b_simple)
    again, _ = mlpcli.inspect(run, noise=True)
    assert again.noise is not None and again.noise.b_simple == report.noise.b_simple
    assert (run / "model.safetensors").read_bytes() == before

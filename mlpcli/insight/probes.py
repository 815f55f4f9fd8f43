"""Linear probes (Alain and Bengio 2016): how linearly separable each layer's representation is.

A linear model is fitted on one layer's activations of a sample of training rows, standardised
by that sample's mean and std, and scored on held-out rows with the task's main metric: layer 0
is the standardised inputs, then each hidden layer after its activation. The network is run as
a training step sees it (probe_model: batch norm by the rows' own statistics, dropout off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config.registry import main_metric
from ..config.schema import Config
from ..data import Preprocessor
from ..errors import DataError
from ..model.layers import activation_text
from ..model.outputs import Split, target_scale
from ..model.tasks import compute_metrics, make_loss
from ..training.engine import SMALL_STEP_FLOPS, cpu_threads
from ..training.probe import probe_model

# λ of the L2 penalty λ/2·|W|² added to the mean loss (half the mean squared error for least
# squares); the bias is not penalised. Small enough to leave a probe's score as an unpenalised
# fit's, large enough to keep a logistic fit on separable rows finite.
PENALTY = 1e-3
LBFGS_STEPS = 200  # iteration cap of a logistic fit (full batch, float64, deterministic)
SEPARABLE = 0.95  # a held-out probe score from which a representation is called separable
HELD_OUT = 0.25  # share of the sample held out without validation or test rows (or with --data)


@dataclass
class Probe:
    """One layer's probe: its representation's width and the probe's main-metric scores."""

    layer: int
    name: str
    width: int
    metric: str
    train: float | None
    val: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "name": self.name,
            "width": self.width,
            "metric": self.metric,
            "train": self.train,
            "val": self.val,
        }


@dataclass
class ProbeReport:
    """The probes, the rows they used, the verdict, and the held-out rows' 2-D projections."""

    probes: list[Probe]
    rows: dict[str, Any]  # {"train": fitted on, "val": scored on, "held_out": which rows}
    verdict: str
    projections: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (n x 2 PCA, variance share)
    target: torch.Tensor  # the held-out rows' targets as encoded for training


def standardised(fit: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """fit and others in float64, each column scaled by fit's mean and std (a constant column,
    as a dead unit's, by 1: it stays constant)."""
    fit = fit.double()
    mean = fit.mean(dim=0)
    std = fit.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple((x.double() - mean) / std for x in (fit, *others))


def ridge(
    x: torch.Tensor, y: torch.Tensor, penalty: float = PENALTY
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising |xW + b - y|²/(2n) + penalty/2·|W|², in closed form:
    (XcᵀXc + n·penalty·I) W = Xcᵀ(y - ȳ), with Xc the centred x, and b = ȳ - x̄W."""
    x, y = x.double(), y.double().reshape(len(y), -1)
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    xc = x - x_mean
    gram = xc.T @ xc + len(x) * penalty * torch.eye(x.shape[1], dtype=x.dtype)
    weight = torch.linalg.solve(gram, xc.T @ (y - y_mean))
    return weight, y_mean - x_mean @ weight


def logistic(
    task: str, x: torch.Tensor, y: torch.Tensor, classes: int = 0, penalty: float = PENALTY
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising the mean cross-entropy (softmax over `classes` classes, or as many as
    y shows; one sigmoid per output for binary and multilabel, averaged over rows and outputs)
    + penalty/2·|W|², by full-batch L-BFGS from zeros."""
    x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    if task == "classification":
        outputs = max(classes, int(y.max().item()) + 1)
        target = F.one_hot(y.long(), outputs).double()
        count = len(x)
    else:
        outputs = y.shape[1]
        target = y.double()
        count = target.numel()
    penalised = torch.ones(x.shape[1], 1, dtype=torch.float64)
    penalised[-1] = 0  # the bias row

    def objective(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        scores = x @ theta
        if task == "classification":
            loss = -(target * scores.log_softmax(dim=1)).sum() / count
            residual = scores.softmax(dim=1) - target
        else:
            loss = F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / count
            residual = scores.sigmoid() - target
        weights = theta * penalised
        value = loss + penalty / 2 * weights.square().sum()
        return float(value), x.T @ residual / count + penalty * weights

    theta = lbfgs(objective, torch.zeros(x.shape[1], outputs, dtype=torch.float64))
    return theta[:-1], theta[-1]


def lbfgs(
    objective: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    start: torch.Tensor,
    steps: int = LBFGS_STEPS,
    memory: int = 20,
    tolerance: float = 1e-9,
) -> torch.Tensor:
    """The minimum of a smooth convex objective (value and gradient) by L-BFGS (Nocedal and
    Wright, algorithm 7.4) with a backtracking Armijo line search: deterministic, at most
    `steps` iterations, stopping once the largest gradient entry is below `tolerance`.
    (torch.optim.LBFGS would import torch._dynamo, a second or more of start-up.)"""
    theta = start
    value, grad = objective(theta)
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1/yᵀs), oldest first
    for _ in range(steps):
        if grad.abs().max() < tolerance:
            break
        direction = grad.clone()
        alphas = []
        for s, y, rho in reversed(pairs):
            alpha = rho * float((s * direction).sum())
            direction -= alpha * y
            alphas.append(alpha)
        if pairs:
            s, y, _ = pairs[-1]
            direction *= float((s * y).sum() / (y * y).sum())
        else:
            direction /= max(1.0, float(grad.abs().sum()))  # a first step of modest length
        for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
            direction += s * (alpha - rho * float((y * direction).sum()))
        slope = -float((grad * direction).sum())
        if slope >= 0:  # not a descent direction (rounding): fall back on the gradient
            direction, slope = grad, -float(grad.square().sum())
        step = 1.0
        while True:
            new_theta = theta - step * direction
            new_value, new_grad = objective(new_theta)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step /= 2
        s, y = new_theta - theta, new_grad - grad
        curvature = float((s * y).sum())
        if curvature > 1e-16:  # always, for a strictly convex objective, but for rounding
            pairs = [*pairs[-(memory - 1) :], (s, y, 1 / curvature)]
        done = abs(value - new_value) <= 1e-12 * max(1.0, abs(value))
        theta, value, grad = new_theta, new_value, new_grad
        if done:
            break
    return theta


def fit_probe(
    task: str, x: torch.Tensor, y: torch.Tensor, classes: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's linear model on standardised features: least squares for regression,
    logistic otherwise."""
    return ridge(x, y) if task == "regression" else logistic(task, x, y, classes)


def score(
    task: str, outputs: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None
) -> float | None:
    """The task's main metric of raw linear outputs (None where it is undefined)."""
    value = compute_metrics(task, outputs, y, scale)[main_metric(task)].item()
    return value if math.isfinite(value) else None


def representations(model: nn.Module, config: Config, task: str, rows: Split) -> list[torch.Tensor]:
    """The inputs, then each hidden layer's activations, of these rows."""
    layers = probe_model(model, make_loss(config, task), rows.x, rows.y)
    return [rows.x, *(layer.post for layer in layers[:-1])]


def layer_names(config: Config) -> list[str]:
    return ["input"] + [
        f"hidden {k} ({activation_text(spec)})"
        for k, spec in enumerate(config.model.activations(), start=1)
    ]


def pca_2d(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows projected on their first two principal components (a second column of zeros
    for one feature), and each component's share of the variance. Each component's sign puts
    its largest loading positive, so the same rows always give the same picture."""
    centred = features.double() - features.double().mean(dim=0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    largest = components.gather(1, components.abs().argmax(dim=1, keepdim=True))
    components = components * torch.where(largest < 0, -1.0, 1.0).to(components.dtype)
    projected = centred @ components.T
    total = (singular**2).sum()
    share = (singular[:2] ** 2) / total if total > 0 else torch.zeros(len(components))
    if projected.shape[1] < 2:
        projected = torch.cat([projected, torch.zeros(len(projected), 1, dtype=projected.dtype)], 1)
        share = torch.cat([share, torch.zeros(1, dtype=share.dtype)])
    return projected, share


def probe_layers(
    model: nn.Module, config: Config, prep: Preprocessor, fit: Split, held: Split
) -> tuple[list[Probe], list[tuple[torch.Tensor, torch.Tensor]]]:
    """A probe per layer, fitted on `fit` and scored on both; and the held-out rows' PCA."""
    task = prep.task
    if config.model.norm == "batch" and len(held) < 2:
        raise DataError(
            "--probes: 1 held-out row; model.norm batch normalises by the statistics of the "
            "rows probed, which needs at least 2"
        )
    scale = target_scale(prep, torch.device("cpu"))
    metric = main_metric(task)
    probes, projections = [], []
    layers = zip(
        representations(model, config, task, fit), representations(model, config, task, held)
    )
    for k, (name, (fit_x, held_x)) in enumerate(zip(layer_names(config), layers)):
        fit_std, held_std = standardised(fit_x, held_x)
        weight, bias = fit_probe(task, fit_std, fit.y, prep.out_dim)
        probes.append(
            Probe(
                k,
                name,
                fit_x.shape[1],
                metric,
                score(task, fit_std @ weight + bias, fit.y, scale),
                score(task, held_std @ weight + bias, held.y, scale),
            )
        )
        projections.append(pca_2d(held_x))
    return probes, projections


def probe_verdict(probes: list[Probe], held_out: str) -> str:
    """Where the representation becomes linearly separable (a held-out score of SEPARABLE or
    more), in words."""
    metric = f"{held_out} {probes[0].metric}"
    word = "predictable" if probes[0].metric == "r2" else "separable"

    def shown(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.2f}"

    first = next((p for p in probes if p.val is not None and p.val >= SEPARABLE), None)
    if first is None:
        best = max(probes, key=lambda p: -math.inf if p.val is None else p.val)
        return (
            f"no layer's representation is linearly {word} (best: {best.name}, {metric} "
            f"{shown(best.val)}, below {SEPARABLE:g})"
        )
    if first.layer == 0:
        return (
            f"the input is already linearly {word} ({metric} {shown(first.val)}): a linear "
            f"model would do"
        )
    return (
        f"the input is not linearly {word} ({metric} {shown(probes[0].val)}); {first.name}'s "
        f"representation is ({shown(first.val)})"
    )


def probe_run(
    model: nn.Module,
    config: Config,
    prep: Preprocessor,
    fit_rows: Any,
    held_rows: Any,
    held_out: str,
) -> ProbeReport:
    """Probes fitted on the DataFrame fit_rows and scored on held_rows (`held_out` says which
    rows those are, for the verdict and the JSON)."""
    cpu = torch.device("cpu")
    fit = Split.from_frame(prep, fit_rows, cpu, "the probes' training rows")
    held = Split.from_frame(prep, held_rows, cpu, f"the probes' {held_out} rows")
    # One thread for a small fit, as training takes for a small step: on such matrices a
    # second thread only waits, and slows the fit tenfold when another process is busy.
    step = 6 * len(fit) * max([prep.in_dim, *config.model.hidden]) * prep.out_dim
    with cpu_threads(1 if step < SMALL_STEP_FLOPS else None):
        probes, projections = probe_layers(model, config, prep, fit, held)
    return ProbeReport(
        probes,
        {"train": len(fit), "val": len(held), "held_out": held_out},
        probe_verdict(probes, held_out),
        projections,
        held.y,
    )

"""The kernel baseline: RBF kernel ridge regression on the MLP's own preprocessed split tensors
(standardised inputs), its bandwidth and penalty chosen on the validation split.

Targets: one-hot classes (the largest output wins), +-1 per binary or multilabel output (an
output above 0 is positive, as the MLP's logits are read), the standardised regression target.
Up to MAX_EXACT_ROWS training rows it solves (K + lambda I) alpha = y exactly; above, Nystroem:
LANDMARKS training rows drawn with the run's seed are the only centres, and ridge regression on
the features W^-1/2 k(landmarks, x) (W: the kernel among the landmarks) approximates K by
C W^-1 C' (C: every training row against the landmarks). Both solve by a Cholesky
factorisation in float64 on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ...config.registry import MAXIMISED_METRICS, main_metric
from ...errors import ConfigError
from ...model.kernel import KernelMachine, rbf, squared_distances
from ...model.outputs import Split, predict_raw, read_floats
from ...model.tasks import compute_metrics
from ...resources.kernel_memory import LANDMARKS, MAX_EXACT_ROWS

# gamma = factor / median squared distance between training rows (a sample of MEDIAN_ROWS)
GAMMA_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)
MEDIAN_ROWS = 1000
EIGEN_FLOOR = 1e-12  # relative: the smallest eigenvalue of W that Nystroem's features keep
WIDE = torch.float64


@dataclass
class KernelFit:
    """The fitted machine, its chosen gamma and lambda, and how it was fitted."""

    model: KernelMachine
    gamma: float
    lam: float
    method: str  # exact | nystroem
    selected_on: str  # the split the grid was scored on: val, or train when there is none
    grid: list[dict[str, float]] = field(default_factory=list)  # gamma, lambda, score

    def block(self) -> dict[str, Any]:
        """What summary.json records of the fit, beside the metrics."""
        return {
            "method": self.method,
            "centres": len(self.model.centres),
            "gamma": self.gamma,
            "lambda": self.lam,
            "selected_on": self.selected_on,
            "grid": self.grid,
        }


def kernel_targets(task: str, y: torch.Tensor, outputs: int) -> torch.Tensor:
    """What the ridge regression fits, rows x outputs in float64."""
    if task == "classification":
        return torch.nn.functional.one_hot(y.long(), outputs).to(WIDE)
    if task in ("binary", "multilabel"):
        return 2 * y.to(WIDE) - 1
    return y.to(WIDE)


def median_gamma(x: torch.Tensor, seed: int) -> float:
    """1 / the median squared distance between two training rows (a seeded sample of rows)."""
    if len(x) > MEDIAN_ROWS:
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        x = x[pick[:MEDIAN_ROWS]]
    squared = squared_distances(x, x)
    upper = squared[torch.triu_indices(len(x), len(x), 1).unbind()]
    median = float(upper.median()) if len(upper) else 0.0
    return 1.0 / median if median > 0 else 1.0


def solve(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor | None:
    """system^-1 rhs by Cholesky; None when the system is not positive definite in float64."""
    factor, info = torch.linalg.cholesky_ex(system)
    if int(info) != 0:
        return None
    return torch.cholesky_solve(rhs, factor)


def fit_kernel(
    train: Split,
    val: Split | None,
    task: str,
    outputs: int,
    target_scale: torch.Tensor | None,
    seed: int,
    landmarks: int | None = None,
) -> KernelFit:
    """Every (gamma, lambda) of the grid fitted on the training rows and scored on the
    validation rows (else the training rows) by the task's main metric; the best one's
    machine. `landmarks` forces Nystroem with that many centres (a test compares it with the
    exact fit)."""
    x = train.x.detach().to("cpu", WIDE)
    y = kernel_targets(task, train.y.cpu(), outputs)
    offset = y.mean(0)
    y = y - offset
    method, centres = _centres(x, landmarks, seed)
    scored = val if val is not None and len(val) else train
    scale = target_scale.cpu() if target_scale is not None else None
    metric = main_metric(task)
    base = median_gamma(x, seed)
    distances = squared_distances(x, centres) if method == "exact" else None
    scored_distances = squared_distances(scored.x.cpu(), centres)
    scored_y = scored.y.cpu()
    best: tuple[float, float, float, torch.Tensor] | None = None
    grid = []
    for factor in GAMMA_FACTORS:
        gamma = factor * base
        if distances is not None:  # exact: the kernel of the training rows, once per gamma
            gram, rhs, back = torch.exp(-gamma * distances), y, None
        else:
            gram, rhs, back = _nystroem_system(x, centres, y, gamma)
        scored_kernel = torch.exp(-gamma * scored_distances)
        for lam in LAMBDAS:
            system = gram.clone()
            system.diagonal().add_(lam)
            coef = solve(system, rhs)
            del system
            if coef is None:
                continue
            if back is not None:  # from the features' weights to the landmarks' coefficients
                coef = back @ coef
            predicted = offset + scored_kernel @ coef  # the machine's, without its float32 cast
            score = read_floats(compute_metrics(task, predicted, scored_y, scale))[metric]
            grid.append({"gamma": gamma, "lambda": lam, metric: score})
            if best is None or _better(score, best[0], metric):
                best = (score, gamma, lam, coef)
    if best is None:
        raise ConfigError(
            "train.baseline kernel: no (gamma, lambda) of the grid gave a positive definite "
            "system to solve (are the training rows all alike?)"
        )
    _, gamma, lam, coef = best
    machine = KernelMachine(centres, coef, offset, torch.tensor(gamma, dtype=WIDE))
    selected = "val" if scored is val else "train"
    return KernelFit(machine, gamma, lam, method, selected, grid)


def _centres(x: torch.Tensor, landmarks: int | None, seed: int) -> tuple[str, torch.Tensor]:
    """("exact", every training row), or ("nystroem", the landmarks: a seeded random subset of
    the rows, in their order)."""
    if landmarks is None and len(x) <= MAX_EXACT_ROWS:
        return "exact", x
    count = min(landmarks or LANDMARKS, len(x))
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]
    return "nystroem", x[pick.sort().values]


def _nystroem_system(
    x: torch.Tensor, centres: torch.Tensor, y: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nystroem's features phi(x) = W^-1/2 k(landmarks, x), whose inner products approximate
    the kernel (C W^-1 C' for K); their ridge system Phi'Phi (+ lambda I, added by the caller)
    and right side Phi'y, and W^-1/2, which turns the solution into coefficients of the
    landmarks. Directions of W below EIGEN_FLOOR of its largest are dropped, as scikit-learn's
    Nystroem does: nearly coinciding landmarks make it singular."""
    values, vectors = torch.linalg.eigh(rbf(centres, centres, gamma))
    keep = values > EIGEN_FLOOR * values.max()
    back = vectors[:, keep] / values[keep].sqrt()  # W^-1/2 on the directions kept
    features = rbf(x, centres, gamma) @ back
    # Phi'Phi from the features, not W^-1/2 C'C W^-1/2, which squares C's condition number.
    return features.T @ features, features.T @ y, back


def _better(score: float, than: float, metric: str) -> bool:
    """Whether a grid point's score beats the best so far (a NaN never does; ties keep the
    earlier, smoother, one)."""
    if score != score:
        return False
    if than != than:
        return True
    return score > than if metric in MAXIMISED_METRICS else score < than


def kernel_metrics(
    machine: KernelMachine, splits: dict[str, Split], task: str, scale: torch.Tensor | None
) -> dict[str, dict[str, float]]:
    """The task's metrics on every split, by the code that scores the MLP (no loss: the
    machine minimises a squared error on its own targets, not the task's loss)."""
    scale = scale.cpu() if scale is not None else None
    return {
        name: read_floats(
            compute_metrics(task, predict_raw(machine, split.x.cpu()), split.y.cpu(), scale)
        )
        for name, split in splits.items()
    }

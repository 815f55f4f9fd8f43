"""Every name a config can use, in plain dicts that import nothing heavy.

The schema, the error messages, the model factory and the tests all read these tables, so a new
activation, loss or optimiser is added in one place. Torch objects are named by dotted path and
resolved only when a model is built.
"""

from __future__ import annotations

import difflib
import importlib
import reprlib
from collections.abc import Iterable
from typing import Any, NamedTuple


# name -> (layer class, {parameter: default})
class Activation(NamedTuple):
    """An activation: its class, its parameters' defaults, and what it does to a unit."""

    path: str  # dotted class
    defaults: dict[str, Any]
    # Its units can die: one whose input is <= 0 on every row outputs 0 and passes no gradient.
    dies: bool = False
    # A bounded output (low, high): a unit that sits near a bound passes almost no gradient.
    bounds: tuple[float, float] | None = None
    # The nonlinearity whose gain kaiming_* init uses (torch.nn.init.calculate_gain's names).
    kaiming: str = "linear"


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("torch.nn.Identity", {}),
    "sigmoid": Activation("torch.nn.Sigmoid", {}, bounds=(0.0, 1.0)),
    "tanh": Activation("torch.nn.Tanh", {}, bounds=(-1.0, 1.0)),
    "relu": Activation("torch.nn.ReLU", {}, dies=True, kaiming="relu"),
    # leaky_relu and elu keep a slope below 0, so their units never die
    "leaky_relu": Activation("torch.nn.LeakyReLU", {"negative_slope": 0.01}, kaiming="leaky_relu"),
    "elu": Activation("torch.nn.ELU", {"alpha": 1.0}),
    "gelu": Activation("torch.nn.GELU", {}),
    "silu": Activation("torch.nn.SiLU", {}),
    "swish": Activation("mlpcli.model.factory.Swish", {"beta": 1.0, "learnable": False}),
    "softplus": Activation("torch.nn.Softplus", {"beta": 1.0}),
}

# name -> (loss class, tasks it fits)
LOSSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "mse": ("torch.nn.MSELoss", ("regression",)),
    "mae": ("torch.nn.L1Loss", ("regression",)),
    "huber": ("torch.nn.HuberLoss", ("regression",)),
    "bce": ("torch.nn.BCEWithLogitsLoss", ("binary", "multilabel")),
    "cross_entropy": ("torch.nn.CrossEntropyLoss", ("classification",)),
}

# task -> (default loss, output transform, metrics; the first metric is the headline one)
TASKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "regression": ("mse", "identity", ("r2", "mse", "rmse", "mae")),
    "binary": ("bce", "sigmoid", ("accuracy", "f1_macro")),
    "classification": ("cross_entropy", "softmax", ("accuracy", "f1_macro")),
    "multilabel": ("bce", "sigmoid", ("f1_micro", "subset_accuracy")),
}

# Metrics where larger is better; every other metric (and every loss) is minimised.
MAXIMISED_METRICS = frozenset({"accuracy", "f1_macro", "f1_micro", "subset_accuracy", "r2"})


class Optimizer(NamedTuple):
    """An optimiser: its class (doing what its torch.optim namesake does, bitwise; see
    optimizers.py for why not torch.optim's own), the config keys it takes besides lr and
    weight_decay, the values it keeps per parameter (one more with momentum > 0, which the
    memory estimate counts), and whether it has a fused implementation (one kernel for every
    parameter) on CPU and CUDA."""

    path: str
    takes: tuple[str, ...]
    state: int
    fused: bool


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer("mlpcli.training.optimizers.SGD", ("momentum", "nesterov"), 0, True),
    "adam": Optimizer("mlpcli.training.optimizers.Adam", (), 2, True),
    "adamw": Optimizer("mlpcli.training.optimizers.AdamW", (), 2, True),
    "rmsprop": Optimizer("mlpcli.training.optimizers.RMSprop", ("momentum",), 1, False),
}


class Schedule(NamedTuple):
    """A learning-rate schedule: its class (None: a constant lr) and {its argument: the
    schedule.<key> it takes}, where "epochs" stands for train.epochs."""

    path: str | None
    takes: dict[str, str]


SCHEDULES: dict[str, Schedule] = {
    "none": Schedule(None, {}),
    "step": Schedule(
        "mlpcli.training.schedules.StepLR", {"step_size": "step_size", "gamma": "gamma"}
    ),
    "cosine": Schedule(
        "mlpcli.training.schedules.CosineAnnealingLR", {"T_max": "epochs", "eta_min": "min_lr"}
    ),
    "plateau": Schedule(
        "mlpcli.training.schedules.ReduceLROnPlateau",
        {"factor": "factor", "patience": "patience", "min_lr": "min_lr"},
    ),
}

INITS: tuple[str, ...] = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
)


class SyntheticSource(NamedTuple):
    """A generated set, drawn by mlpcli.data.synthetic.<name>(n_samples, noise, rng): its task,
    its feature columns and model outputs (what the memory estimate counts before a row is
    drawn), and its target columns."""

    task: str
    features: int
    outputs: int
    targets: tuple[str, ...] = ("y",)


SYNTHETIC_SOURCES: dict[str, SyntheticSource] = {
    "moons": SyntheticSource("binary", 2, 1),
    "circles": SyntheticSource("binary", 2, 1),
    "xor": SyntheticSource("binary", 2, 1),
    "spirals": SyntheticSource("classification", 2, 3),
    "blobs": SyntheticSource("classification", 2, 4),
    "sine": SyntheticSource("regression", 1, 1),
    "multilabel": SyntheticSource("multilabel", 2, 3, ("circle", "wave", "band")),
}
# Real sets bundled with scikit-learn (sklearn.datasets.load_<name>); nothing is downloaded.
BUNDLED_SOURCES: dict[str, str] = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "binary",
    "digits": "classification",
    "diabetes": "regression",
}
# Sources whose features are an image's pixels, row by row: (height, width), read by
# `mlp plot --detectors`; a config sets data.image_shape for its own files.
IMAGE_SHAPES: dict[str, tuple[int, int]] = {"digits": (8, 8)}
# The user's own files, by format.
FILE_SOURCES: tuple[str, ...] = ("csv", "parquet", "npz")
SOURCES: tuple[str, ...] = (*SYNTHETIC_SOURCES, *BUNDLED_SOURCES, *FILE_SOURCES)


class Executor(NamedTuple):
    """Where a sweep's trials run (`mlp sweep --executor NAME`): the function that makes it
    (sweeps/executors/; local's takes a worker count, ray's its RayOptions), what it is in
    --help, and the `mlp sweep` options only it takes."""

    path: str
    about: str
    options: tuple[str, ...]


EXECUTORS: dict[str, Executor] = {
    "local": Executor(
        "mlpcli.sweeps.executors.local.make_executor", "worker processes", ("workers",)
    ),
    "ray": Executor(
        "mlpcli.sweeps.executors.ray_executor.make_ray_executor",
        "one Ray task per trial",
        ("address", "cpus_per_trial", "gpus_per_trial", "retries", "shared_dir"),
    ),
}


class SpaceKind(NamedTuple):
    """How a searched key of `sweep.space` is drawn (`KEY: NAME(ARGS)`, sweeps/search/space.py):
    the spec's form, as messages and docs show it, and what it draws."""

    form: str
    about: str


SPACE_KINDS: dict[str, SpaceKind] = {
    "uniform": SpaceKind("uniform(LOW, HIGH)", "a float drawn uniformly, both ends included"),
    "log": SpaceKind("log(LOW, HIGH)", "a float drawn on a log scale; LOW above 0"),
    "int": SpaceKind(
        "int(LOW, HIGH) or int(LOW, HIGH, log)",
        "an integer drawn uniformly or on a log scale, both ends included",
    ),
    "choice": SpaceKind("choice(V1, V2, ...)", "one of the listed YAML values"),
}


class Baseline(NamedTuple):
    """A model `train.baseline` (or `--baseline NAME`) trains beside the MLP on the same split
    tensors, reported in summary.json's `baselines` and as one more point of a sweep: its label
    in tables, plots and messages, and what it is."""

    label: str
    about: str


BASELINES: dict[str, Baseline] = {
    "linear": Baseline(
        "linear baseline", "the config's model with no hidden layer, trained like the MLP"
    ),
    "kernel": Baseline(
        "kernel baseline",
        "RBF kernel ridge regression, its bandwidth and penalty chosen on the validation split",
    ),
}


class Search(NamedTuple):
    """How `mlp sweep` chooses its trials (`sweep.search`, `--search`): what it is in --help,
    and Optuna's sampler for it (None: the grid, which Optuna never sees)."""

    about: str
    sampler: str | None


SEARCHES: dict[str, Search] = {
    "grid": Search("every combination of sweep.grid (and sweep.zip, seeds)", None),
    "random": Search("sweep.trials points drawn at random from sweep.space", "RandomSampler"),
    "tpe": Search(
        "sweep.trials points from a Tree-structured Parzen Estimator over sweep.space, "
        "after 10 random ones",
        "TPESampler",
    ),
}


class Pruner(NamedTuple):
    """How a search stops hopeless trials (`sweep.prune`, `--prune`): what it is in --help,
    and Optuna's pruner for it."""

    about: str
    pruner: str


PRUNERS: dict[str, Pruner] = {
    "none": Pruner("every trial runs all its epochs", "NopPruner"),
    "median": Pruner(
        "stop a trial whose best value so far is worse than the median of the completed "
        "trials at the same epoch (after 5 trials have completed)",
        "MedianPruner",
    ),
    "asha": Pruner(
        "asynchronous successive halving: at epochs 4, 16, 64, ... keep only the best quarter "
        "of the trials that reached it",
        "SuccessiveHalvingPruner",
    ),
}


def main_metric(task: str) -> str:
    """A task's headline metric: the first one it reports."""
    return TASKS[task][2][0]


def source_task(source: str) -> str | None:
    """The task a synthetic or bundled source knows it has; None for files (their data tells)."""
    synthetic = SYNTHETIC_SOURCES.get(source)
    return synthetic.task if synthetic is not None else BUNDLED_SOURCES.get(source)


def executors_text() -> str:
    """'local (worker processes) or ray (...)', for --executor's help."""
    return " or ".join(f"{name} ({entry.about})" for name, entry in EXECUTORS.items())


def names_text(registry: Any) -> str:
    """'grid, random or tpe': a registry's names for an option's help."""
    names = list(registry)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def all_metric_names() -> set[str]:
    return {m for _, _, metrics in TASKS.values() for m in metrics} | {"loss"}


# Values echoed in messages come from untrusted files and command lines: cut, never dumped whole.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def shown(value: object, limit: int = 80) -> str:
    """repr(value), cut to at most limit characters."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggest(value: str, choices: Iterable[object]) -> str:
    """' (did you mean 'x'?)' for the nearest valid name, or ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(what: str, value: object, choices: Iterable[object]) -> str:
    """A message for a name that is not in a registry: the nearest match and every valid name."""
    names = ", ".join(str(c) for c in choices)
    return f"unknown {what} {shown(str(value))}{suggest(str(value), choices)}; accepted: {names}"


def resolve(dotted: str) -> Any:
    """Import 'package.module.Name' and return Name."""
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)

"""The kernel baseline: `--baseline kernel` in `mlp train` and `mlp sweep`, and its fit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from conftest import assert_exit_2, mlp
from safetensors.torch import load_file, save

import mlpcli
from mlpcli.cli import baseline_args
from mlpcli.config.registry import BASELINES
from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError
from mlpcli.model.kernel import KernelMachine
from mlpcli.model.outputs import Split
from mlpcli.resources import kernel_memory
from mlpcli.sweeps.boundaries import first_seeds
from mlpcli.sweeps.plan import plan_trials
from mlpcli.training.baselines.kernel import GAMMA_FACTORS, LAMBDAS, fit_kernel

MOONS = {
    "name": "moons",
    "seed": 0,
    "data": {"source": "moons", "n_samples": 400, "noise": 0.2},
    "model": {"hidden": [16]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 15, "plots": False, "diagnostics": False},
}


def write_config(tmp_path, **train):
    raw = {**MOONS, "train": {**MOONS["train"], **train}}
    path = tmp_path / "moons.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def circles(n, seed, noise=0.1):
    """A circle inside another, standardised inputs and 0/1 targets, as a binary Split."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(np.arange(n) % 2 == 0, 1.0, 0.5)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + rng.normal(0, noise, (n, 2))
    x = (x - x.mean(0)) / x.std(0)
    y = (radius < 0.75).astype(np.float32)[:, None]
    return Split(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y))


# ------------------------------------------------------------ the fit, against oracles


def test_the_exact_fit_is_the_direct_solve_of_k_plus_lambda_i():
    train, val = circles(60, 0), circles(40, 1)
    fit = fit_kernel(train, val, "binary", 1, None, seed=0)
    assert fit.method == "exact"
    x = train.x.double().numpy()
    y = 2 * train.y.double().numpy() - 1
    offset = y.mean(0)
    kernel = np.exp(-fit.gamma * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    alpha = np.linalg.solve(kernel + fit.lam * np.eye(len(x)), y - offset)
    np.testing.assert_allclose(fit.model.coef.numpy(), alpha, rtol=1e-8, atol=1e-8)
    xv = val.x.double().numpy()
    kernel_val = np.exp(-fit.gamma * ((xv[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    expected = kernel_val @ alpha + offset
    np.testing.assert_allclose(fit.model(val.x.double()).numpy(), expected, rtol=1e-8, atol=1e-8)


def test_nystroem_with_every_row_a_landmark_is_the_exact_fit():
    train, val = circles(80, 2), circles(40, 3)
    exact = fit_kernel(train, val, "binary", 1, None, seed=0)
    nystroem = fit_kernel(train, val, "binary", 1, None, seed=0, landmarks=len(train))
    assert nystroem.method == "nystroem" and len(nystroem.model.centres) == len(train)
    assert (nystroem.gamma, nystroem.lam) == (exact.gamma, exact.lam)
    probe = circles(50, 4).x.double()
    np.testing.assert_allclose(nystroem.model(probe), exact.model(probe), atol=1e-7)


def test_the_chosen_gamma_and_lambda_score_best_on_val():
    train, val = circles(100, 5, noise=0.2), circles(60, 6, noise=0.2)
    fit = fit_kernel(train, val, "binary", 1, None, seed=0)
    assert len(fit.grid) == len(GAMMA_FACTORS) * len(LAMBDAS) and fit.selected_on == "val"
    best = max(point["accuracy"] for point in fit.grid)
    first = next(p for p in fit.grid if p["accuracy"] == best)  # ties keep the smoother one
    assert (first["gamma"], first["lambda"]) == (fit.gamma, fit.lam)
    chosen = (fit.model(val.x)[:, 0] > 0).float() == val.y[:, 0]
    assert chosen.float().mean().item() == pytest.approx(best)


def test_a_classification_kernel_fits_one_hot_targets_and_stores_its_rows():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(90, 3)).astype(np.float32))
    y = torch.from_numpy(np.argmax(x.numpy(), 1))  # the largest input is the class
    fit = fit_kernel(Split(x, y), Split(x[:30], y[:30]), "classification", 3, None, seed=0)
    assert fit.model.coef.shape == (90, 3)
    assert fit.model.stored_numbers() == 90 * 3 + 90 * 3 + 3 + 1
    assert (fit.model(x).argmax(1) == y).float().mean() > 0.9
    # Several outputs come out of the solve column-major; a model file needs them contiguous.
    assert save(fit.model.state_dict())


# ------------------------------------------------------------ mlp train --baseline kernel


def train_json(config, out, *args):
    result = mlp("train", config, "--out", out, "--json", "-q", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_linear_and_kernel_fill_baselines_and_the_kernel_beats_linear_on_moons(tmp_path):
    summary = train_json(write_config(tmp_path), tmp_path, "--baseline", "linear,kernel")
    baselines = summary["baselines"]
    assert list(baselines) == ["mlp", "linear", "kernel"]
    for entry in baselines.values():
        assert set(entry["metrics"]) == {"train", "val", "test"}
        assert entry["predict_ms_per_1k_rows"] > 0
    assert baselines["mlp"]["metrics"] == summary["metrics"]
    assert baselines["mlp"]["stored_numbers"] == summary["params"] == 2 * 16 + 16 + 16 + 1
    assert baselines["linear"]["stored_numbers"] == 3
    kernel = baselines["kernel"]
    train_rows = summary["rows"]["train"]
    assert kernel["method"] == "exact" and kernel["centres"] == train_rows
    # Its training rows (x 2 features), a coefficient each, the offset and gamma.
    assert kernel["stored_numbers"] == train_rows * 2 + train_rows + 1 + 1
    assert "loss" not in kernel["metrics"]["test"]  # a squared error of its own, not the task's
    test = {name: entry["metrics"]["test"]["accuracy"] for name, entry in baselines.items()}
    assert test["kernel"] >= test["linear"] + 0.05 and test["kernel"] >= 0.9
    # The linear model's block is as before, beside its entry in baselines.
    baseline = summary["baseline"]
    assert list(baseline) == ["params", "metrics", "saved_epoch", "epochs_run"]
    assert baseline["metrics"] == baselines["linear"]["metrics"] and baseline["params"] == 3
    saved = json.loads((tmp_path / summary["name"] / "summary.json").read_text())
    assert saved["baselines"] == baselines and saved["baseline"] == baseline
    config = yaml.safe_load((tmp_path / summary["name"] / "config.yaml").read_text())
    assert config["train"]["baseline"] == ["linear", "kernel"]


def test_the_kernel_alone_leaves_no_linear_block(tmp_path):
    summary = train_json(write_config(tmp_path, baseline="kernel"), tmp_path)
    assert list(summary["baselines"]) == ["mlp", "kernel"] and "baseline" not in summary


def test_the_mlp_is_bitwise_the_same_with_or_without_baselines(tmp_path):
    config = write_config(tmp_path)
    alone = train_json(config, tmp_path / "a")
    both = train_json(config, tmp_path / "b", "--baseline", "linear,kernel")
    assert alone["metrics"] == both["metrics"]
    weights = [
        load_file(tmp_path / d / s["name"] / "model.safetensors")
        for d, s in (("a", alone), ("b", both))
    ]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_a_kernel_that_does_not_fit_in_memory_is_refused_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_memory, "available_memory", lambda: (10_000, "a test limit"))
    result = mlp("train", write_config(tmp_path), "--out", tmp_path, "--baseline", "kernel")
    assert_exit_2(result, "train.baseline kernel", "GB available (a test limit)")
    assert "exact up to 2,000 training rows" in result.stderr
    assert not list(tmp_path.glob("moons-*"))  # refused before the MLP trained
    swept = mlp("sweep", write_config(tmp_path), "--out", tmp_path, "--baseline", "kernel")
    assert_exit_2(swept, "sweep point kernel baseline", "GB available (a test limit)")
    assert not list(tmp_path.glob("moons-*"))  # before the sweep folder was made


def test_the_memory_check_counts_nystroem_landmarks_above_the_exact_limit():
    rows = kernel_memory.MAX_EXACT_ROWS + 1
    need = kernel_memory.kernel_bytes(rows, 0)
    assert need == 8 * (2 * rows * kernel_memory.LANDMARKS + 6 * kernel_memory.LANDMARKS**2)
    with pytest.raises(ConfigError, match="Nystroem landmarks"):
        kernel_memory.check_kernel_memory(rows, 0, available=(need - 1, "a test limit"))


# ------------------------------------------------------------ the option and the config key


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--baseline"], ["--baseline=linear"]),
        (["--baseline", "kernel"], ["--baseline=kernel"]),
        (["--baseline", "linear,kernel", "-q"], ["--baseline=linear,kernel", "-q"]),
        (["--baseline", "linear, kernel"], ["--baseline=linear, kernel"]),
        (["--baseline", "-q"], ["--baseline=linear", "-q"]),
        # An override or a path after it keeps its own meaning.
        (["--baseline", "optim.lr=0.1"], ["--baseline=linear", "optim.lr=0.1"]),
        (["--baseline", "configs/moons.yaml"], ["--baseline=linear", "configs/moons.yaml"]),
        (["--baseline=kernel", "x"], ["--baseline=kernel", "x"]),
        (["--", "--baseline"], ["--", "--baseline"]),
    ],
)
def test_baseline_takes_an_optional_list_of_names(args, expected):
    assert baseline_args(args) == expected


def test_the_cli_forms_reach_the_config(tmp_path):
    config = write_config(tmp_path, epochs=2)
    forms = {"linear": ["--baseline"], "kernel": ["--baseline", "kernel", "train.epochs=1"]}
    for name, args in forms.items():
        summary = train_json(config, tmp_path / name, *args)
        assert list(summary["baselines"]) == ["mlp", name]
    assert summary["epochs_run"] == 1  # the override after --baseline kernel was kept


@pytest.mark.parametrize(
    ("value", "names", "written"),
    [
        (False, [], False),
        (True, ["linear"], True),
        ("kernel", ["kernel"], ["kernel"]),
        ("kernel,linear", ["linear", "kernel"], ["linear", "kernel"]),
        ("linear, kernel", ["linear", "kernel"], ["linear", "kernel"]),
        (["kernel"], ["kernel"], ["kernel"]),
    ],
)
def test_the_config_key_takes_true_false_a_name_or_a_list(value, names, written):
    config = build_config({"train": {"baseline": value}})
    assert config.train.baseline == names
    assert config.to_dict()["train"]["baseline"] == written


def test_an_unknown_baseline_is_refused_naming_the_accepted_ones(tmp_path):
    for command in ("train", "sweep"):
        result = mlp(command, write_config(tmp_path), "--baseline", "kernal")
        assert_exit_2(result, "unknown baseline 'kernal' (did you mean 'kernel'?)")
        assert f"accepted: {', '.join(BASELINES)}" in result.stderr


# ------------------------------------------------------------ mlp sweep --baseline kernel


def test_a_sweep_plans_a_point_per_baseline_and_seed():
    config = build_config(
        {
            **MOONS,
            "train": {"baseline": ["linear", "kernel"]},
            "sweep": {"grid": {"model.hidden": [[4], [8]]}, "seeds": 2},
        }
    )
    trials, configs = plan_trials(config)
    extra = [t for t in trials if t.baseline]
    assert [(t.baseline, t.point, t.seed) for t in extra] == [
        ("linear", 2, 0),
        ("linear", 2, 1),
        ("kernel", 3, 0),
        ("kernel", 3, 1),
    ]
    assert not any(c["train"]["baseline"] for c in configs)


@pytest.mark.slow
def test_a_sweep_with_linear_and_kernel_gets_their_points_rows_lines_and_panels(tmp_path):
    config = write_config(tmp_path, epochs=8)
    args = ("--hidden", "2,8", "--workers", "1", "--out", tmp_path, "--name", "s", "-q")
    result = mlp("sweep", config, *args, "--baseline", "linear,kernel", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    sweep_dir = tmp_path / "s"
    marked = [(p["model"], p["completed"]) for p in summary["points"] if p.get("baseline")]
    assert marked == [("linear", 1), ("kernel", 1)]
    assert summary["trials"] == 4 and summary["completed"] == 4
    assert not summary["best"].get("baseline")
    kernel = next(p for p in summary["points"] if p.get("model") == "kernel")
    linear = next(p for p in summary["points"] if p.get("model") == "linear")
    assert kernel["val_accuracy_mean"] > linear["val_accuracy_mean"]
    with open(sweep_dir / "results.csv") as handle:
        rows = {r["trial"]: r for r in csv.DictReader(handle)}
    assert [rows[t]["baseline"] for t in sorted(rows)] == ["", "", "linear", "kernel"]
    # The kernel's trial folder scores like a trained one: mlp eval reads its model file.
    trial = sweep_dir / "trials" / "trial-003"
    own = json.loads((trial / "summary.json").read_text())
    assert mlpcli.evaluate(trial).metrics["accuracy"] == pytest.approx(
        own["metrics"]["test"]["accuracy"]
    )
    assert isinstance(mlpcli.load(trial).model, KernelMachine)
    assert "loss" not in mlpcli.evaluate(trial).metrics  # not the task's loss: left out
    assert_exit_2(mlp("inspect", trial), "kernel baseline point", "mlp plot --boundary")
    assert_exit_2(mlp("summary", trial), "kernel baseline point", "mlp summary does not apply")
    trials, _ = plan_trials(build_config(yaml.safe_load((sweep_dir / "sweep.yaml").read_text())))
    labels = [label for label, run in first_seeds(sweep_dir, trials) if run is not None]
    assert labels[-1].startswith(BASELINES["kernel"].label) and len(labels) == 4
    assert (sweep_dir / "plots" / "boundaries.png").stat().st_size > 0
    assert (sweep_dir / "plots" / "vs_width.png").stat().st_size > 0
    # Resume: a kernel trial that did not finish is fitted again, a finished one is kept.
    (sweep_dir / "trials" / "trial-003" / "summary.json").unlink()
    kept = (sweep_dir / "trials" / "trial-002" / "summary.json").read_text()
    again = mlp("sweep", sweep_dir / "sweep.yaml", "--resume", sweep_dir, "-q", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["completed"] == 4
    assert (sweep_dir / "trials" / "trial-002" / "summary.json").read_text() == kept
    assert json.loads((trial / "summary.json").read_text())["metrics"] == own["metrics"]

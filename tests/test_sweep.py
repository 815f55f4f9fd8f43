"""Sweeps: grid expansion, failing trials, resume, the results files, the CLI and the pool."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.config import build_config
from mlpcli.errors import ConfigError
from mlpcli.sweep import run_sweep
from mlpcli.sweep.executor import InlineExecutor, LocalExecutor
from mlpcli.sweep.grid import expand, hidden_axis, parse_values
from mlpcli.sweep.runner import plan_trials, with_plan

BASE = {
    "name": "s",
    "data": {"source": "moons", "n_samples": 300, "noise": 0.2},
    "model": {"hidden": [8]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 8},
}


def config(**sweep):
    return build_config({**BASE, "sweep": sweep})


# ------------------------------------------------------------ grid expansion


def test_product_zip_and_seeds():
    trials = expand(
        {"model.hidden": [[8], [16], [8, 8]], "optim.lr": [0.1, 0.01]},
        {"model.activation": ["relu", "tanh"], "model.dropout": [0.0, 0.2]},
        seeds=3,
        base_seed=5,
    )
    assert len(trials) == 3 * 2 * 2 * 3
    assert [t.index for t in trials] == list(range(36))
    assert {t.seed for t in trials} == {5, 6, 7}
    assert len({t.point for t in trials}) == 12
    # Zipped values always travel together.
    assert {(t.settings["model.activation"], t.settings["model.dropout"]) for t in trials} == {
        ("relu", 0.0),
        ("tanh", 0.2),
    }
    first = trials[0]
    assert first.settings == {
        "model.hidden": [8],
        "optim.lr": 0.1,
        "model.activation": "relu",
        "model.dropout": 0.0,
    }
    assert first.label() == "model.hidden=[8] optim.lr=0.1 model.activation=relu model.dropout=0.0"


def test_zip_lists_must_match_and_keys_not_repeat():
    with pytest.raises(ConfigError, match="same length"):
        expand({}, {"a.b": [1, 2], "c.d": [1]}, 1, 0)
    with pytest.raises(ConfigError, match="both"):
        expand({"a.b": [1]}, {"a.b": [1]}, 1, 0)
    with pytest.raises(ConfigError, match="no values"):
        expand({"a.b": []}, {}, 1, 0)


def test_command_line_values_and_hidden_by_depth():
    assert parse_values("8,16,32", "--hidden") == [8, 16, 32]
    assert parse_values("[64],[32,32]", "--grid") == [[64], [32, 32]]
    assert parse_values("relu,{name: swish, beta: 2}", "--grid") == [
        "relu",
        {"name": "swish", "beta": 2},
    ]
    assert hidden_axis([8, 16], [1, 2], [64, 64]) == [[8], [16], [8, 8], [16, 16]]
    assert hidden_axis([8, 16], None, [64, 64]) == [[8, 8], [16, 16]]
    assert hidden_axis(None, [1, 3], [32]) == [[32], [32, 32, 32]]
    with pytest.raises(ConfigError, match="--hidden"):
        hidden_axis([0], None, [8])


def test_yaml_sweep_section_with_list_values_and_cli_flags():
    cfg = with_plan(
        config(grid={"model.hidden": [[64], [32, 32]]}, seeds=2),
        grid=["optim.lr=1e-3,1e-2"],
    )
    trials, configs = plan_trials(cfg)
    assert len(trials) == 2 * 2 * 2
    assert [c["model"]["hidden"] for c in configs[:4]] == [[64], [64], [64], [64]]
    assert {c["optim"]["lr"] for c in configs} == {0.001, 0.01}
    # Seeds vary the training; every trial sees the same rows.
    assert {c["seed"] for c in configs} == {0, 1}
    assert {c["data"]["seed"] for c in configs} == {0}
    assert all(c["sweep"]["grid"] == {} for c in configs)  # a trial is an ordinary run


def test_every_trial_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="model.activation.*rleu"):
        run_sweep(config(grid={"model.activation": ["relu", "rleu"]}), out=tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="hiden"):
        run_sweep(config(grid={"model.hiden": [[4]]}), out=tmp_path, quiet=True)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------ running


def rows(sweep_dir):
    with open(sweep_dir / "results.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_sweep_writes_results_summary_plots_and_ordinary_runs(tmp_path):
    result = run_sweep(
        config(), hidden=[2, 16], seeds=2, out=tmp_path, quiet=True, executor=InlineExecutor()
    )
    table = rows(result.sweep_dir)
    assert [r["trial"] for r in table] == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert [r["model.hidden"] for r in table] == ["[2]", "[2]", "[16]", "[16]"]
    assert [r["seed"] for r in table] == ["0", "1", "0", "1"]
    assert all(r["status"] == "completed" for r in table)
    for key in ("params", "width", "depth", "train_loss", "val_accuracy", "test_accuracy"):
        assert all(r[key] for r in table), key
    assert table[0]["params"] == str(2 * 2 + 2 + 2 + 1)
    summary = json.loads((result.sweep_dir / "summary.json").read_text())
    assert summary == result.summary
    assert summary["status"] == "completed" and summary["trials"] == 4
    assert summary["grid"] == {"model.hidden": [[2], [16]]}
    (small, large) = summary["points"]
    assert small["completed"] == 2 and small["settings"] == {"model.hidden": "[2]"}
    assert large["train_loss_mean"] < small["train_loss_mean"]
    mean = (float(table[2]["val_accuracy"]) + float(table[3]["val_accuracy"])) / 2
    assert large["val_accuracy_mean"] == pytest.approx(mean)
    assert summary["best"]["point"] in (0, 1)
    assert (result.sweep_dir / "plots" / "vs_width.png").stat().st_size > 1000
    # Each trial is an ordinary run folder.
    trial = result.sweep_dir / "trials" / "trial-003"
    assert mlpcli.load(trial).config.model.hidden == [16]


def test_a_diverging_trial_fails_alone(tmp_path):
    result = run_sweep(
        build_config({**BASE, "optim": {"name": "sgd", "lr": 0.05}}),
        grid=["optim.lr=0.05,1e12"],
        out=tmp_path,
        quiet=True,
        executor=InlineExecutor(),
    )
    table = rows(result.sweep_dir)
    assert [r["status"] for r in table] == ["completed", "failed"]
    assert "loss became" in table[1]["error"]
    assert result.failed == 1 and result.summary["status"] == "failed"
    assert "loss became" in result.summary["failures"]["trial-001"]


class StopAfter(InlineExecutor):
    """Runs `n` trials, then behaves as if Ctrl-C was pressed."""

    def __init__(self, n):
        self.n = n

    def run(self, tasks):
        yield from super().run(tasks[: self.n])
        raise KeyboardInterrupt


def test_resume_skips_finished_trials_and_reproduces_the_rest(tmp_path):
    plan = {"hidden": [2, 4, 8], "seeds": 1, "quiet": True}
    whole = run_sweep(config(), out=tmp_path / "whole", executor=InlineExecutor(), **plan)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config(), out=tmp_path / "cut", name="cut", executor=StopAfter(1), **plan)
    cut = tmp_path / "cut" / "cut"
    assert json.loads((cut / "summary.json").read_text())["status"] == "stopped"
    assert [r["status"] for r in rows(cut)] == ["completed"]

    ran = []

    class Counting(InlineExecutor):
        def run(self, tasks):
            ran.extend(t.trial.name for t in tasks)
            yield from super().run(tasks)

    resumed = run_sweep(config(), resume=cut, executor=Counting(), **plan)
    assert ran == ["trial-001", "trial-002"]
    assert resumed.summary["completed"] == 3
    for a, b in zip(rows(whole.sweep_dir), rows(cut)):
        assert a["val_loss"] == b["val_loss"] and a["test_accuracy"] == b["test_accuracy"]
    with pytest.raises(ConfigError, match="differs"):
        run_sweep(config(), resume=cut, executor=Counting(), hidden=[2, 4], quiet=True)


def test_the_cli_runs_a_sweep_and_prints_json(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "data: {source: moons, n_samples: 200}\nmodel: {hidden: [4]}\ntrain: {epochs: 3}\n"
        "sweep:\n  grid:\n    model.activation: [relu, {name: swish, beta: 2.0}]\n"
    )
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--workers", "1", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trials"] == 2 and summary["completed"] == 2
    assert (tmp_path / summary["name"] / "plots" / "by_point.png").exists()
    table = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1", "--out", str(tmp_path)])
    assert table.exit_code == 0 and "activation=relu" in table.stdout
    bad = CliRunner().invoke(
        app, ["sweep", str(path), "--grid", "optim.lr", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "--grid" in bad.stderr


def test_trials_in_worker_processes(tmp_path):
    result = run_sweep(
        config(), hidden=[2, 4], out=tmp_path, quiet=True, executor=LocalExecutor(workers=2)
    )
    assert [r["status"] for r in rows(result.sweep_dir)] == ["completed", "completed"]
    inline = run_sweep(config(), hidden=[2, 4], out=tmp_path, quiet=True, executor=InlineExecutor())
    # One thread per worker, same seeds: the same numbers as in this process.
    for a, b in zip(rows(result.sweep_dir), rows(inline.sweep_dir)):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-5)

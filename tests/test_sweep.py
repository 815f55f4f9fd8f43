"""Sweeps: grid expansion, failing trials, resume, the results files, the CLI and the pool."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from rich.console import Console
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app
from mlpcli.config.schema import build_config
from mlpcli.console import sweep_table
from mlpcli.errors import ConfigError
from mlpcli.sweeps import run_sweep
from mlpcli.sweeps.executors.local import InlineExecutor, LocalExecutor, TrialProgress, TrialTask
from mlpcli.sweeps.grid import expand, hidden_axis, parse_values
from mlpcli.sweeps.plan import plan_trials
from mlpcli.sweeps.runner import known_metric, with_plan
from mlpcli.sweeps.view import SweepView

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
    assert hidden_axis([8, 16], [1, 2], [[64, 64]], "f") == [[8], [16], [8, 8], [16, 16]]
    assert hidden_axis([8, 16], None, [[64, 64]], "f") == [[8, 8], [16, 16]]
    assert hidden_axis(None, [1, 3], [[32]], "f") == [[32], [32, 32, 32]]
    with pytest.raises(ConfigError, match="--hidden"):
        hidden_axis([0], None, [[8]], "f")


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

    def run(self, tasks, progress=None, window=None):
        yield from super().run(tasks[: self.n], progress)
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
        def run(self, tasks, progress=None, window=None):
            ran.extend(t.trial.name for t in tasks)
            yield from super().run(tasks, progress)

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


@pytest.mark.slow
def test_trials_in_worker_processes(tmp_path):
    result = run_sweep(
        config(), hidden=[2, 4], out=tmp_path, quiet=True, executor=LocalExecutor(workers=2)
    )
    assert [r["status"] for r in rows(result.sweep_dir)] == ["completed", "completed"]
    inline = run_sweep(config(), hidden=[2, 4], out=tmp_path, quiet=True, executor=InlineExecutor())
    # One thread per worker, same seeds: the same numbers as in this process.
    for a, b in zip(rows(result.sweep_dir), rows(inline.sweep_dir)):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-5)


@pytest.mark.parametrize("left", ["an empty folder", "only its config.yaml"])
def test_resume_starts_a_trial_left_before_its_first_epoch(tmp_path, left):
    """A kill or a full disk between making a trial's folder and its first writes."""
    plan = {"hidden": [2, 4], "quiet": True}
    whole = run_sweep(config(), out=tmp_path / "whole", executor=InlineExecutor(), **plan)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config(), out=tmp_path / "cut", name="cut", executor=StopAfter(1), **plan)
    cut = tmp_path / "cut" / "cut"
    folder = cut / "trials" / "trial-001"
    folder.mkdir()
    if left == "only its config.yaml":
        shutil.copy(whole.sweep_dir / "trials" / "trial-001" / "config.yaml", folder)
    resumed = run_sweep(config(), resume=cut, executor=InlineExecutor(), **plan)
    assert resumed.failed == 0 and resumed.summary["completed"] == 2, resumed.summary["failures"]
    assert rows(cut)[1]["val_loss"] == rows(whole.sweep_dir)[1]["val_loss"]


def test_the_final_table_never_cuts_the_settings_and_shows_one_seed_as_a_mean():
    points = [
        {
            "point": i,
            "settings": {
                "model.hidden": "[32,32]",
                "model.activation": activation,
                "optim.weight_decay": "0.0001",
            },
            "trials": 1,
            "completed": 1,
            "params": 1234,
            **{f"{k}_mean": 0.5 for k in ("train_accuracy", "val_accuracy", "val_loss")},
            **{f"{k}_std": 0.0 for k in ("train_accuracy", "val_accuracy", "val_loss")},
        }
        for i, activation in enumerate(["relu", "leaky_relu"])
    ]
    summary = {"name": "overfit-sweep-20261130-120000", "main_metric": "accuracy"}
    console = Console(file=io.StringIO(), width=80)
    console.print(sweep_table({**summary, "points": points}))
    text = console.file.getvalue()
    for word in ("hidden=[32,32]", "activation=relu", "activation=leaky_relu", "0.0001"):
        assert word in text, text
    assert "…" not in text and "± 0.000" not in text and "0.500" in text


def test_the_live_view_shows_running_trials_under_a_fixed_header():
    trials, _ = plan_trials(with_plan(config(), hidden=[2, 4]))
    console = Console(file=io.StringIO(), width=120)
    view = SweepView(trials, known_metric(config()), console=console)
    view.on_progress(TrialProgress(trials[0], 3, 8, "binary"))
    view.on_progress(TrialProgress(trials[1], 0, 8, "binary"))
    console.print(view._render())
    text = console.file.getvalue()
    assert "val accuracy" in text and "3/8" in text and text.count("running") == 2
    # A data file's task is known from the first trial's start, before any trial ends.
    file_view = SweepView(trials, None, console=console)
    file_view.on_progress(TrialProgress(trials[0], 0, 8, "regression"))
    assert file_view.metric == "r2"
    assert known_metric(build_config({**BASE, "task": "regression"})) == "r2"


def test_trials_report_their_start_and_epochs(tmp_path):
    trials, configs = plan_trials(with_plan(config(), hidden=[2]))
    task = TrialTask(trials[0], configs[0], tmp_path / trials[0].name)
    events = []
    [result] = InlineExecutor().run([task], events.append)
    assert result.status == "completed"
    assert events[0].epoch == 0 and events[0].epochs == 8 and events[0].task == "binary"


def single_point_series(failed_point):
    """Two widths and two learning rates: every line is one point; one point failed."""
    points = []
    for i, (hidden, width, depth, lr) in enumerate(
        [("[64]", 64, 1, "1e-3"), ("[32,32]", 32, 2, "1e-3"), ("[64]", 64, 1, "1e-2")]
    ):
        point = {
            "point": i,
            "settings": {"optim.lr": lr, "model.hidden": hidden},
            "width": width,
            "depth": depth,
            "params": 100 * (i + 1),
            "trials": 1,
            "completed": 0 if i == failed_point else 1,
        }
        if i != failed_point:
            for split, value in (("train", 0.9), ("val", 0.8)):
                for name in ("loss", "accuracy"):
                    point[f"{split}_{name}_mean"], point[f"{split}_{name}_std"] = value, 0.0
        points.append(point)
    return points


@pytest.mark.parametrize("kind", ["curves", "points"])
def test_sweep_plots_tell_splits_apart_keep_the_legend_off_the_data_and_mark_failures(
    tmp_path, monkeypatch, kind
):
    from mlpcli import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    points = single_point_series(failed_point=2)
    if kind == "curves":
        plots.sweep_curves(points, tmp_path / "p.png", "accuracy", "width", "t")
    else:
        plots.sweep_points(points, tmp_path / "p.png", "accuracy", "t")
    [fig] = figures
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)
    [legend] = fig.legends
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    labels = {text.get_text() for text in legend.get_texts()}
    assert {"train", "validation", plots.FAILED_LABEL} <= labels
    ax = fig.axes[0]
    drawn = [line for line in ax.get_lines() if len(line.get_xdata())]
    markers = {line.get_marker() for line in drawn}
    assert {"o", "s", "x"} <= markers  # train, validation, failed
    crosses = [line for line in drawn if line.get_marker() == "x"]
    assert list(crosses[0].get_xdata()) == ([64] if kind == "curves" else [2])

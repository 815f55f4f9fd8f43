"""Sweeps at one parameter budget (--params, sweep.params): each depth's width against a brute
force search over count_parameters, the plan from flags and from the file, a real sweep within
15% of its budget with results.csv and vs_depth.png, its resume, and the inputs refused."""

from __future__ import annotations

import csv
import json
import re

import pytest
from conftest import assert_exit_2, mlp, saved_figures
from test_imports import exit_code_and_imports

from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError
from mlpcli.resources.memory import count_parameters
from mlpcli.sweeps.budget import width_for_budget, with_layers
from mlpcli.sweeps.executors.local import InlineExecutor
from mlpcli.sweeps.plan import plan_trials
from mlpcli.sweeps.runner import run_sweep, with_plan

BASE = {
    "name": "b",
    "data": {"source": "moons", "n_samples": 200, "noise": 0.2},
    "model": {"hidden": [8]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 2, "plots": False, "diagnostics": False},
}


def config(model=None, **sweep):
    return build_config({**BASE, "model": {**BASE["model"], **(model or {})}, "sweep": sweep})


def nearest_by_brute_force(cfg, depth, budget, in_dim, out_dim):
    """The width whose count is nearest the budget, smaller on a tie, trying every width."""
    best = None
    for width in range(1, 4 * budget):
        count = count_parameters(with_layers(cfg, [width] * depth), in_dim, out_dim)
        if best is None or abs(count - budget) < best[0]:
            best = (abs(count - budget), width)
        if count > 2 * budget:
            break
    return best[1]


MODELS = {
    "plain": {},
    "batch norm": {"norm": "batch"},
    "layer norm, no bias": {"norm": "layer", "bias": False},
    "learnable swish": {"activation": {"name": "swish", "learnable": True}},
}


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("dims", [(2, 1), (1, 1), (64, 10), (5, 3)])
def test_each_depths_width_is_the_nearest_count_a_brute_force_search_finds(model, dims):
    cfg = config(model)
    for depth in (1, 2, 3, 4):
        for budget in (60, 97, 500, 2000, 12345):
            least = count_parameters(with_layers(cfg, [1] * depth), *dims)
            if least > budget:
                continue
            found = width_for_budget(cfg, depth, budget, *dims)
            assert found == nearest_by_brute_force(cfg, depth, budget, *dims), (depth, budget)


def test_a_tie_goes_to_the_smaller_width():
    cfg = config()
    # one layer on 2 inputs and 1 output: 4w + 1 parameters; 11 is as near 9 (w=2) as 13 (w=3)
    assert width_for_budget(cfg, 1, 11, 2, 1) == 2


def test_a_budget_below_width_one_is_refused_naming_it_and_the_least_count():
    cfg = config()
    least = count_parameters(with_layers(cfg, [1, 1, 1]), 2, 1)
    assert width_for_budget(cfg, 3, least, 2, 1) == 1
    with pytest.raises(ConfigError) as caught:
        width_for_budget(cfg, 3, least - 1, 2, 1)
    message = str(caught.value)
    assert "sweep.params (--params)" in message and f"at least {least}" in message


def test_the_file_form_and_the_flags_make_the_same_plan():
    from_file = plan_trials(config(params=[300, 1200], depth=[1, 2], seeds=2))
    from_flags = plan_trials(with_plan(config(), params=[300, 1200], depth=[1, 2], seeds=2))
    assert from_file[1] == from_flags[1]
    assert [(t.settings, t.seed, t.budget) for t in from_file[0]] == [
        (t.settings, t.seed, t.budget) for t in from_flags[0]
    ]
    trials = from_file[0]
    assert [t.budget for t in trials] == [300] * 4 + [1200] * 4
    assert [len(t.settings["model.hidden"]) for t in trials[::2]] == [1, 2, 1, 2]
    assert len({t.point for t in trials}) == 4  # seeds share their point


def test_params_without_depth_keeps_the_files_depths():
    cfg = with_plan(config(grid={"model.hidden": [[8], [8, 8, 8]]}), params=[400])
    assert cfg.sweep.depth == [1, 3] and "model.hidden" not in cfg.sweep.grid
    # model.hidden [8]: one layer, 4w + 1 parameters, nearest 400 at w = 100 (401)
    assert plan_trials(config(params=400))[0][0].settings["model.hidden"] == [100]


def test_each_point_gets_the_width_its_own_layers_allow():
    """A grid key that changes the count (norm layers: 2 per unit) changes the width."""
    trials, configs = plan_trials(
        with_plan(config(), params=[500], depth=[2], grid=["model.norm=null,layer"])
    )
    widths = [c["model"]["hidden"][0] for c in configs]
    assert widths[1] < widths[0]
    for raw in configs:
        cfg = build_config(raw)
        assert raw["model"]["hidden"][0] == nearest_by_brute_force(cfg, 2, 500, 2, 1)


def test_a_data_files_widths_are_read_before_the_count(tmp_path):
    """A categorical column becomes one input per category, read from the file as a run does."""
    path = tmp_path / "rows.csv"
    rows = [f"{i % 7},{i % 5},{'red green blue'.split()[i % 3]},{i % 3}" for i in range(90)]
    path.write_text("a,b,colour,y\n" + "\n".join(rows) + "\n")
    raw = {**BASE, "data": {"source": "csv", "path": str(path), "target": "y"}}
    _, configs = plan_trials(build_config({**raw, "sweep": {"params": 300, "depth": [1, 2]}}))
    for depth, cfg in zip((1, 2), configs):
        # 5 inputs (a, b, three colours) and 3 classes
        assert (
            cfg["model"]["hidden"]
            == [nearest_by_brute_force(build_config(cfg), depth, 300, 5, 3)] * depth
        )


def rows(sweep_dir):
    with open(sweep_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_budget_sweep_lands_within_15_percent_draws_vs_depth_and_resumes(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch)
    cfg = config(params=2000, depth=[1, 2, 3])
    result = run_sweep(cfg, out=tmp_path, quiet=True, executor=InlineExecutor())
    assert result.summary["completed"] == 3
    table = rows(result.sweep_dir)
    assert {"width", "depth", "params", "budget"} <= set(table[0])
    for row in table:
        assert row["budget"] == "2000"
        assert abs(int(row["params"]) - 2000) <= 0.15 * 2000, row
        assert row["model.hidden"] == "[" + ",".join([row["width"]] * int(row["depth"])) + "]"
    points = json.loads((result.sweep_dir / "summary.json").read_text())["points"]
    assert [(p["depth"], p["budget"]) for p in points] == [(1, 2000), (2, 2000), (3, 2000)]

    from matplotlib.image import imread

    assert imread(result.sweep_dir / "plots" / "vs_depth.png").shape[0] > 100
    legend = [t.get_text() for t in figures["vs_depth.png"].legends[0].get_texts()]
    widths = ", ".join(r["width"] for r in table)
    assert f"2,000 params: widths {widths}" in legend

    ran = []

    class Counting(InlineExecutor):
        def run(self, tasks, progress=None, window=None):
            ran.extend(t.trial.name for t in tasks)
            yield from super().run(tasks, progress)

    saved = result.sweep_dir / "sweep.yaml"
    again = run_sweep(saved, resume=result.sweep_dir, quiet=True, executor=Counting())
    assert ran == [] and again.summary["points"] == result.summary["points"]
    with pytest.raises(ConfigError, match="sweep.params"):
        run_sweep(saved, resume=result.sweep_dir, params=[3000], quiet=True, executor=Counting())


def test_the_cli_table_shows_each_points_layers_and_parameters(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(
        "data: {source: moons, n_samples: 200}\nmodel: {hidden: [4]}\n"
        "train: {epochs: 1, plots: false, diagnostics: false}\n"
    )
    result = mlp(
        "sweep",
        path,
        "--params",
        "500",
        "--depth",
        "1,2",
        "--workers",
        "1",
        "--out",
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.output
    # one layer: 4w + 1 parameters, 501 at w = 125; two: w^2 + 5w + 1, 501 at w = 20
    assert "hidden=[125]" in result.stdout and "hidden=[20,20]" in result.stdout
    # a whole cell: a score or a time such as 0.8501 must not count
    assert len(re.findall(r"(?<![\d.])501(?![\d.])", result.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--params", "2000", "--hidden", "8"], ["--hidden", "--params"]),
        (
            ["--params", "2000", "--grid", "model.hidden=[4],[8]"],
            ["--grid model.hidden", "--params"],
        ),
        (["--params", "0", "--depth", "1"], ["--params", "0"]),
        (["--params", "-5"], ["--params", "-5"]),
        (["--params", "1.5"], ["--params", "1.5"]),
        (["--params", "300", "--depth", "0,1"], ["--depth", "0"]),
        (["--params", "5", "--depth", "1,2"], ["--params", "5 parameters", "at least 7"]),
        (["model.hidden=[]", "--params", "300"], ["--params", "model.hidden: []", "--depth"]),
    ],
)
def test_refused_flags_exit_2_naming_the_flag(tmp_path, args, needles):
    result = mlp("sweep", "configs/moons.yaml", *args, "--out", tmp_path)
    assert_exit_2(result, *needles)
    assert not list(tmp_path.iterdir())  # no sweep folder was made


@pytest.mark.parametrize(
    ("sweep", "needles"),
    [
        ("{params: 0, depth: [1]}", ["sweep.params", "positive"]),
        ("{params: [300, -1]}", ["sweep.params", "-1"]),
        ("{params: 300, depth: []}", ["sweep.depth", "at least one"]),
        ("{depth: [1, 2]}", ["sweep.depth", "sweep.params"]),
        ("{params: 300, grid: {model.hidden: [[4]]}}", ["sweep.params", "sweep.grid model.hidden"]),
        ("{params: 5, depth: [2]}", ["sweep.params", "at least"]),
    ],
)
def test_refused_file_keys_exit_2_naming_the_key(tmp_path, sweep, needles):
    path = tmp_path / "b.yaml"
    path.write_text(f"data: {{source: moons, n_samples: 200}}\nsweep: {sweep}\n")
    assert_exit_2(mlp("sweep", path, "--out", tmp_path / "runs"), *needles)
    assert not (tmp_path / "runs").exists()


def test_budget_errors_come_before_torch(tmp_path):
    out = str(tmp_path / "runs")
    for args in (
        ["sweep", "configs/moons.yaml", "--params", "5", "--depth", "1,2", "--out", out],
        ["sweep", "configs/moons.yaml", "--params", "300", "--hidden", "8", "--out", out],
        ["sweep", "configs/moons.yaml", "--params", "0", "--out", out],
    ):
        code, heavy = exit_code_and_imports(args)
        assert code == 2 and "torch" not in heavy, args


def test_the_shipped_budget_sweep_holds_each_point_within_7_percent_of_its_budget():
    from mlpcli.config.schema import load_config

    trials, configs = plan_trials(load_config("configs/budget.yaml"))
    assert len(trials) == 16 and {t.budget for t in trials} == {200, 800}
    for trial, raw in zip(trials, configs):
        count = count_parameters(build_config(raw), 2, 3)  # spirals: 2 inputs, 3 classes
        assert abs(count - trial.budget) <= 0.07 * trial.budget, (trial.label(), count)


def test_the_regularised_sweep_draws_one_line_per_weight_decay_against_width(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch)
    result = run_sweep(
        "configs/regularised.yaml",
        ["train.epochs=1"],
        grid=["model.hidden=[4],[16]"],
        seeds=1,
        out=tmp_path,
        quiet=True,
        executor=InlineExecutor(),
    )
    assert result.summary["completed"] == 4
    legend = [t.get_text() for t in figures["vs_width.png"].legends[0].get_texts()]
    assert "optim.weight_decay=0" in legend and "optim.weight_decay=0.01" in legend

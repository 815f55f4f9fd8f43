"""Sweep plans from a file and flags: how --hidden, --depth and --grid combine with the file's
sweep section, the bounds on plan size and workers, and messages given once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.config.schema import build_config, load_config
from mlpcli.errors import ConfigError
from mlpcli.sweeps.executors.local import worker_count
from mlpcli.sweeps.grid import MAX_TRIALS, expand
from mlpcli.sweeps.plan import plan_trials
from mlpcli.sweeps.runner import with_plan

BASE = {
    "name": "s",
    "data": {"source": "moons", "n_samples": 200},
    "model": {"hidden": [32]},
    "train": {"epochs": 2},
}


def config(**sweep):
    return build_config({**BASE, "sweep": sweep})


def hiddens(cfg):
    trials, configs = plan_trials(cfg)
    return [c["model"]["hidden"] for c in configs]


def test_depth_over_the_files_widths_gives_each_width_at_each_depth():
    overfit = load_config("configs/overfit.yaml")
    cfg = with_plan(overfit, depth=[1, 2], seeds=1)
    widths = [2, 8, 32, 128, 512]
    assert hiddens(cfg) == [[w] for w in widths] + [[w, w] for w in widths]


def test_hidden_over_the_files_depths_gives_each_depth_at_each_width():
    cfg = with_plan(config(grid={"model.hidden": [[8], [8, 8]]}), hidden=[4, 16])
    assert hiddens(cfg) == [[4], [16], [4, 4], [16, 16]]


def test_hidden_and_depth_together_define_the_layers():
    cfg = with_plan(config(grid={"model.hidden": [[8], [8, 8]]}), hidden=[4], depth=[3])
    assert hiddens(cfg) == [[4, 4, 4]]
    assert hiddens(with_plan(config(), depth=[1, 2])) == [[32], [32, 32]]


def test_depth_needs_layers_of_one_width():
    with pytest.raises(ConfigError, match=r"--depth.*\[32,16\]"):
        with_plan(config(grid={"model.hidden": [[32, 16]]}), depth=[2])


@pytest.mark.parametrize("flag", [{"hidden": [8]}, {"depth": [2]}])
def test_a_layer_flag_with_grid_model_hidden_is_refused_naming_both(flag):
    with pytest.raises(ConfigError) as caught:
        with_plan(config(), grid=["model.hidden=[4],[16]"], **flag)
    message = str(caught.value)
    assert "--grid model.hidden" in message and f"--{next(iter(flag))}" in message


def test_a_layer_flag_with_model_hidden_in_the_zip_is_refused():
    cfg = config(zip={"model.hidden": [[4], [8]], "optim.lr": [0.1, 0.01]})
    with pytest.raises(ConfigError, match=r"--hidden.*sweep\.zip"):
        with_plan(cfg, hidden=[8])


def test_grid_replaces_the_files_list_for_its_key_and_keeps_the_others():
    cfg = with_plan(
        config(grid={"optim.lr": [0.1, 0.01], "model.activation": ["relu", "tanh"]}),
        grid=["optim.lr=0.5"],
    )
    assert cfg.sweep.grid == {"optim.lr": [0.5], "model.activation": ["relu", "tanh"]}


def test_a_grid_key_given_twice_or_also_zipped_is_refused():
    with pytest.raises(ConfigError, match="--grid optim.lr.*twice"):
        with_plan(config(), grid=["optim.lr=0.1", "optim.lr=0.01"])
    with pytest.raises(ConfigError, match=r"--grid optim.lr.*sweep\.zip"):
        with_plan(config(zip={"optim.lr": [0.1, 0.01]}), grid=["optim.lr=0.5"])


def test_a_huge_plan_is_refused_with_its_size_before_expanding():
    grid = {f"k{i}.x": list(range(10)) for i in range(8)}  # 10^8 points
    with pytest.raises(ConfigError, match=r"100,000,000 trials.*10,000"):
        expand(grid, {}, seeds=1, base_seed=0)
    assert MAX_TRIALS == 10_000


def test_workers_are_bounded_by_cores():
    count, note = worker_count(32, trials=100, cores=2, memory=64 * 2**30)
    assert count == 2 and "--workers 32" in note and "2" in note
    assert worker_count(None, trials=100, cores=2, memory=64 * 2**30) == (2, "")
    assert worker_count(4, trials=3, cores=8, memory=64 * 2**30) == (3, "")
    count, note = worker_count(8, trials=100, cores=8, memory=2**30)
    assert count < 8 and "memory" in note


def test_an_unknown_grid_key_is_reported_once(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("data: {source: moons}\n")
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--grid", "model.hiden=[4],[8],[16]", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.count("unknown key") == 1, result.stderr
    assert "Traceback" not in result.output


def test_the_cli_combines_depth_with_the_files_grid(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "data: {source: moons}\nsweep:\n  grid:\n    model.hidden: [[4], [16]]\n"
        "    optim.lr: [0.1]\n"
    )
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--depth", "2", "--grid", "model.hidden=[8]"]
    )
    assert result.exit_code == 2 and "--depth" in result.stderr
    assert "--grid model.hidden" in result.stderr

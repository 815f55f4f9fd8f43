"""`mlp compare`: exactly the settings that differ, metrics as summary.json holds them, the
loss-curve figure, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_exit_2, mlp, saved_figures
from test_imports import exit_code_and_imports

from mlpcli.api import compare, train
from mlpcli.runs.folder import SUMMARY_FILE
from mlpcli.runs.reading import MISSING

TINY = ["data.n_samples=200", "model.hidden=[4]", "train.epochs=2", "train.plots=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs that differ in model.hidden and optim.lr only, trained once."""
    folder = tmp_path_factory.mktemp("runs")
    train("configs/moons.yaml", TINY, out=folder, name="a", quiet=True)
    train(
        "configs/moons.yaml",
        [*TINY, "model.hidden=[8]", "optim.lr=0.05"],
        out=folder,
        name="b",
        quiet=True,
    )
    return folder


def test_exactly_the_keys_that_differ_and_the_metrics_side_by_side(runs):
    result = mlp("compare", runs / "a", runs / "b", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"] == {"model.hidden": ["[4]", "[8]"], "optim.lr": [0.01, 0.05]}
    summaries = [json.loads((runs / n / SUMMARY_FILE).read_text()) for n in ("a", "b")]
    for split in ("train", "val", "test"):
        for name, values in data["metrics"][split].items():
            assert values == [s["metrics"][split][name] for s in summaries]
    assert [r["params"] for r in data["runs"]] == [s["params"] for s in summaries]
    assert [r["kept_epoch"] for r in data["runs"]] == [s["saved_epoch"] for s in summaries]
    assert data["figure"] is None


def test_a_key_one_config_lacks_differs_too(runs, tmp_path):
    older = tmp_path / "older"
    shutil.copytree(runs / "a", older)
    text = (older / "config.yaml").read_text()
    (older / "config.yaml").write_text(text.replace("  norm: null\n", ""))
    found = compare([runs / "a", older])
    assert found.settings == {"model.norm": ["null", MISSING]}
    assert found.to_dict()["settings"] == {"model.norm": ["null", "(absent)"]}


def test_a_value_that_reads_absent_is_not_a_missing_key(runs, tmp_path):
    """The marker of a missing key equals no value a config can hold; 1, 1.0 and true differ."""
    literal = tmp_path / "literal"
    shutil.copytree(runs / "a", literal)
    with (literal / "config.yaml").open("a") as config:
        config.write('pad: "(absent)"\nsame: "(absent)"\nkind: 1\n')
    typed = tmp_path / "typed"
    shutil.copytree(runs / "a", typed)
    with (typed / "config.yaml").open("a") as config:
        config.write('same: "(absent)"\nkind: true\n')
    found = compare([literal, typed])
    assert found.settings == {"pad": ["(absent)", MISSING], "kind": [1, True]}


def test_the_figure_has_one_line_per_run_per_split(runs, tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch)
    path = tmp_path / "curves.png"
    found = compare([runs / "a", runs / "b"], path)
    assert found.figure == path
    fig = figures["curves.png"]
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata())]
    assert len(lines) == 4  # two runs, train and validation
    assert sorted(line.get_linestyle() for line in lines) == ["-", "-", "--", "--"]
    assert len({line.get_color() for line in lines}) == 2  # one colour per run


def test_the_png_loads(runs, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    path = tmp_path / "curves.png"
    result = mlp("compare", runs / "a", runs / "b", "-o", path)
    assert result.exit_code == 0, result.output
    pixels = imread(path)  # a PNG that loads
    assert pixels.shape[0] > 300 and pixels.shape[1] > 400
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1])[:, :3], axis=0)
    assert len(colours) > 10  # drawn, not a blank canvas
    assert_exit_2(mlp("compare", runs / "a", runs / "b", "-o", path), "already exists")


def test_runs_that_share_a_folder_name_are_told_apart(runs, tmp_path, monkeypatch):
    """Two sweeps' trials/trial-002: each labelled by the shortest path suffix that differs,
    in the tables, the JSON and the figure's legend alike."""
    figures = saved_figures(monkeypatch)
    for sweep, run in (("sweep-a", "a"), ("sweep-b", "b")):
        shutil.copytree(runs / run, tmp_path / sweep / "trials" / "trial-002")
    shutil.copytree(runs / "a", tmp_path / "other")
    paths = [tmp_path / s / "trials" / "trial-002" for s in ("sweep-a", "sweep-b")]
    found = compare([*paths, tmp_path / "other"], tmp_path / "curves.png")
    expected = ["sweep-a/trials/trial-002", "sweep-b/trials/trial-002", "other"]
    assert [r.name for r in found.runs] == expected
    fig = figures["curves.png"]
    legend = [text.get_text() for box in fig.legends for text in box.get_texts()]
    assert set(expected) <= set(legend), legend
    result = mlp("compare", *paths)
    assert result.exit_code == 0, result.output
    assert "sweep-a/trials/trial-002" in result.stdout
    assert "sweep-b/trials/trial-002" in result.stdout
    twice = compare([runs / "a", runs / "a"])
    assert [r.name for r in twice.runs] == ["a (1)", "a (2)"]  # the same folder twice


def test_a_damaged_metrics_csv_is_a_note_naming_the_run(runs, tmp_path, monkeypatch):
    """A run whose curves cannot be drawn is said, on stderr and in --json, not dropped
    silently from the figure; the other run is still drawn."""
    import random

    figures = saved_figures(monkeypatch)
    damaged = tmp_path / "damaged"
    shutil.copytree(runs / "b", damaged)
    noise = random.Random(0).randbytes(4096)
    (damaged / "metrics.csv").write_bytes(b"\xff" + noise)
    found = compare([runs / "a", damaged], tmp_path / "curves.png")
    assert found.notes == ["damaged: no loss curves (metrics.csv: damaged (not UTF-8 text))"]
    lines = [line for line in figures["curves.png"].axes[0].get_lines() if len(line.get_xdata())]
    assert len(lines) == 2  # run a's train and validation curves
    result = mlp("compare", runs / "a", damaged, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["notes"] == found.notes
    assert "damaged: no loss curves" in result.stderr and "metrics.csv" in result.stderr
    (damaged / "metrics.csv").unlink()
    assert compare([runs / "a", damaged]).notes == [
        "damaged: no loss curves (metrics.csv: missing)"
    ]
    assert compare([runs / "a", runs / "b"]).notes == []


def test_refusals(runs, tmp_path):
    assert_exit_2(mlp("compare", runs / "a"), "at least two")
    sweep_dir = tmp_path / "sw"
    sweep_dir.mkdir()
    (sweep_dir / "sweep.yaml").write_text("name: sw\n")
    assert_exit_2(mlp("compare", runs / "a", sweep_dir), "a sweep folder", "trials")
    damaged = tmp_path / "damaged"
    shutil.copytree(runs / "b", damaged)
    (damaged / SUMMARY_FILE).write_text("[1, 2]")
    assert_exit_2(mlp("compare", runs / "a", damaged), "summary.json: damaged")
    (damaged / SUMMARY_FILE).write_text("{}")
    (damaged / "config.yaml").write_text("model: [unclosed")
    assert_exit_2(mlp("compare", runs / "a", damaged), "config.yaml: damaged")
    (damaged / "config.yaml").unlink()
    assert_exit_2(mlp("compare", runs / "a", damaged), "not a run folder")


def test_compare_without_a_figure_imports_neither_torch_nor_pandas(runs):
    code, heavy = exit_code_and_imports(["compare", str(runs / "a"), str(runs / "b")])
    assert code == 0 and not heavy


def test_odd_names_metrics_and_long_values_print_escaped_and_clipped(runs, tmp_path):
    odd = tmp_path / "rtl\u202eevil"
    shutil.copytree(runs / "b", odd)
    summary = json.loads((odd / SUMMARY_FILE).read_text())
    summary["metrics"]["val"]["\x1b[2Jacc"] = 0.5
    (odd / SUMMARY_FILE).write_text(json.dumps(summary))
    with (odd / "config.yaml").open("a") as config:
        config.write("pad: " + "x" * 5000 + "\n")
    result = mlp("compare", runs / "a", odd)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2Jacc" in result.stdout and "\\u202e" in result.stdout
    assert "x" * 100 not in result.stdout  # clipped; --json holds it whole
    whole = json.loads(mlp("compare", runs / "a", odd, "--json").stdout)
    assert whole["settings"]["pad"] == ["(absent)", "x" * 5000]


def test_every_output_option_is_checked_one_way(runs, tmp_path):
    """`mlp compare -o`, `mlp init -o` and `mlp config schema -o`: exit 2 naming the option
    and the path, for a missing folder, a folder and a link alike."""
    table = tmp_path / "t.csv"
    table.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(60)))
    (tmp_path / "adir").mkdir()
    (tmp_path / "link.out").symlink_to(tmp_path / "elsewhere")
    commands = {
        "compare": ["compare", runs / "a", runs / "b", "-o"],
        "init": ["init", table, "--target", "y", "--force", "-o"],
        "schema": ["config", "schema", "-o"],
    }
    for name, command in commands.items():
        for target, needle in (
            (tmp_path / "nodir" / "f.out", "does not exist"),
            (tmp_path / "adir", "a folder"),
            (tmp_path / "link.out", "a symbolic link"),
        ):
            result = mlp(*command, target)
            assert_exit_2(result, f"-o {target}", needle)
            assert not (tmp_path / "elsewhere").exists(), name


def test_the_likely_target_hint_never_prints_an_unprintable_name(tmp_path):
    table = tmp_path / "t.csv"
    name = "lab\u202eel\x1b[2J"
    table.write_text(f"x,{name}\n" + "".join(f"{i * 0.37:.2f},{i % 2}\n" for i in range(60)))
    result = mlp("init", table)
    assert result.exit_code == 0, result.output
    assert "\u202e" not in result.output and "\x1b" not in result.output
    assert "lab\\u202eel\\x1b[2J" in result.stderr and "--target '" not in result.stderr

"""`mlp runs`: statuses, damaged folders as rows, sorting, --json, sweeps, no heavy imports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_exit_2, mlp
from test_imports import exit_code_and_imports

from mlpcli.api import list_runs, sweep, train
from mlpcli.runs.folder import LOCK_FILE, SUMMARY_FILE, run_lock

TINY = ["data.n_samples=200", "model.hidden=[4]", "train.epochs=2", "train.plots=false"]
ROW_KEYS = {
    "name",
    "path",
    "kind",
    "status",
    "started",
    "epochs",
    "main_metric",
    "val",
    "test",
    "params",
    "metrics",
    "settings",
    "trials",
    "best_trial",
    "problem",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two completed runs differing in model.hidden and optim.lr, a failed one (it diverges)
    and a sweep of two trials, trained once."""
    source = tmp_path_factory.mktemp("trained")
    train("configs/moons.yaml", TINY, out=source, name="small", quiet=True)
    train(
        "configs/moons.yaml",
        [*TINY, "model.hidden=[8]", "optim.lr=0.05"],
        out=source,
        name="wide",
        quiet=True,
    )
    with pytest.raises(Exception, match="diverged"):
        train(
            "configs/sine.yaml",
            ["data.n_samples=200", "optim.name=sgd", "optim.lr=1e12", "train.epochs=2"],
            out=source,
            name="diverged",
            quiet=True,
        )
    sweep("configs/moons.yaml", TINY, hidden=[2, 8], out=source, name="grid", quiet=True)
    return source


def copy_runs(trained: Path, into: Path, *names: str) -> Path:
    into.mkdir(exist_ok=True)
    for name in names:
        shutil.copytree(trained / name, into / name)
    return into


def rows_by_name(folder: Path, sort: str | None = None) -> dict[str, dict]:
    result = mlp("runs", folder, "--json", *(["--sort", sort] if sort else []))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and all(set(r) == ROW_KEYS for r in rows)
    return {r["name"]: r for r in rows}


def test_statuses_metrics_and_the_settings_that_differ(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small", "wide", "diverged")
    interrupted = folder / "cut"
    shutil.copytree(trained / "small", interrupted)
    (interrupted / SUMMARY_FILE).unlink()  # killed before its first summary
    stopped = folder / "stopped"
    shutil.copytree(trained / "small", stopped)
    summary = json.loads((stopped / SUMMARY_FILE).read_text())
    (stopped / SUMMARY_FILE).write_text(json.dumps({**summary, "status": "stopped"}))

    rows = rows_by_name(folder)
    assert {n: r["status"] for n, r in rows.items()} == {
        "small": "completed",
        "wide": "completed",
        "diverged": "failed",
        "cut": "interrupted",
        "stopped": "interrupted",
    }
    small = json.loads((trained / "small" / SUMMARY_FILE).read_text())
    assert rows["small"]["val"] == small["metrics"]["val"]["accuracy"]
    assert rows["small"]["test"] == small["metrics"]["test"]["accuracy"]
    assert rows["small"]["params"] == small["params"] and rows["small"]["epochs"] == 2
    assert rows["small"]["metrics"] == small["metrics"]
    # moons against sine: their data and model differ; small against wide, hidden and lr.
    assert rows["small"]["settings"]["model.hidden"] == "[4]"
    assert rows["wide"]["settings"]["model.hidden"] == "[8]"
    assert rows["wide"]["settings"]["optim.lr"] == 0.05
    assert "name" not in rows["small"]["settings"]
    assert "model.bias" not in rows["small"]["settings"]  # the same in every run


def test_a_held_lock_is_running_a_released_one_interrupted(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small")
    live = folder / "live"
    shutil.copytree(trained / "small", live)
    summary = json.loads((live / SUMMARY_FILE).read_text())
    (live / SUMMARY_FILE).write_text(json.dumps({**summary, "status": "running"}))
    with run_lock(live):
        assert (live / LOCK_FILE).exists()
        assert {r.name: r.status for r in list_runs(folder)}["live"] == "running"
    assert {r.name: r.status for r in list_runs(folder)}["live"] == "interrupted"
    # A record of a process that has ended (pid 2**22 + 1 is above any this host gives).
    record = (live / LOCK_FILE).with_name("record")
    with run_lock(live):
        record.write_bytes((live / LOCK_FILE).read_bytes())
    text = record.read_text()
    pid = next(line for line in text.splitlines() if line.startswith("pid="))
    (live / LOCK_FILE).write_text(text.replace(pid, f"pid={2**22 + 1}"))
    assert {r.name: r.status for r in list_runs(folder)}["live"] == "interrupted"


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / SUMMARY_FILE).write_text('{"status": "compl'), "summary.json: damaged"),
        (lambda d: (d / SUMMARY_FILE).write_bytes(b"\x00\xff\xfe junk"), "summary.json: damaged"),
        (lambda d: (d / SUMMARY_FILE).write_text("[1, 2]"), "summary.json: damaged"),
        (lambda d: (d / "config.yaml").write_text("model: [unclosed"), "config.yaml: damaged"),
        (
            lambda d: (d / "config.yaml").write_text("a: &x [1]\n" + "x: 1\n" * 300_000),
            "config.yaml: larger than",
        ),
        (lambda d: os.truncate(d / SUMMARY_FILE, 20 << 20), "summary.json: larger than"),
    ],
    ids=["truncated", "binary", "list", "yaml", "huge-config", "huge-summary"],
)
def test_a_damaged_file_is_a_row_naming_it(trained, tmp_path, damage, needle):
    folder = copy_runs(trained, tmp_path / "runs", "small", "wide")
    damage(folder / "wide")
    result = mlp("runs", folder)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = rows_by_name(folder)
    assert needle in rows["wide"]["problem"]
    assert rows["small"]["status"] == "completed" and rows["small"]["problem"] is None


def test_links_files_and_other_folders_are_rows_saying_what_they_are(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small")
    (folder / "notes").mkdir()
    (folder / "readme.txt").write_text("hello")
    (folder / "alias").symlink_to(folder / "small")
    rows = rows_by_name(folder)
    assert rows["notes"]["problem"] == "not a run folder: no config.yaml or summary.json"
    assert "symbolic link" in rows["alias"]["problem"] and rows["alias"]["kind"] == "other"
    assert "a file" in rows["readme.txt"]["problem"]
    assert rows["small"]["status"] == "completed"


def test_a_sweep_is_one_row_with_its_trials_and_best_trial(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "grid", "small")
    rows = rows_by_name(folder)
    assert set(rows) == {"grid", "small"}
    grid = rows["grid"]
    assert grid["kind"] == "sweep" and grid["trials"] == 2
    trials = {
        name: json.loads((trained / "grid" / "trials" / name / SUMMARY_FILE).read_text())
        for name in ("trial-000", "trial-001")
    }
    best = max(trials, key=lambda n: (trials[n]["metrics"]["val"]["accuracy"], n == "trial-000"))
    assert grid["best_trial"] == best
    assert grid["val"] == trials[best]["metrics"]["val"]["accuracy"]
    assert grid["params"] == trials[best]["params"]
    assert grid["epochs"] == trials[best]["epochs_run"]


def test_a_grid_sweeps_epochs_are_its_best_trials_epochs_run(trained, tmp_path):
    """results.csv of a grid holds best_epoch, not the epochs run: those come from the best
    trial's own summary.json, never through a link."""
    folder = copy_runs(trained, tmp_path / "runs", "grid")
    best = rows_by_name(folder)["grid"]["best_trial"]
    trial = folder / "grid" / "trials" / best
    summary = json.loads((trial / SUMMARY_FILE).read_text())
    (trial / SUMMARY_FILE).write_text(json.dumps({**summary, "epochs_run": 7}))
    assert rows_by_name(folder)["grid"]["epochs"] == 7
    shutil.move(trial, tmp_path / "elsewhere")
    trial.symlink_to(tmp_path / "elsewhere")
    assert rows_by_name(folder)["grid"]["epochs"] is None


def test_sort_by_a_metric_in_both_directions(trained, tmp_path):
    folder = tmp_path / "runs"
    copy_runs(trained, folder, "small", "wide", "diverged")
    losses = {
        n: json.loads((trained / n / SUMMARY_FILE).read_text())["metrics"]["val"]["loss"]
        for n in ("small", "wide")
    }
    by_loss = [r.name for r in list_runs(folder, sort="val_loss")]
    assert by_loss[:2] == sorted(losses, key=losses.get) and by_loss[2] == "diverged"
    accuracies = {
        n: json.loads((trained / n / SUMMARY_FILE).read_text())["metrics"]["val"]["accuracy"]
        for n in ("small", "wide")
    }
    accuracy = [r.name for r in list_runs(folder, sort="accuracy")]  # val accuracy, highest first
    assert accuracy[:2] == sorted(accuracies, key=lambda n: -accuracies[n])
    assert accuracy[2] == "diverged"  # a regression run has no accuracy: last


def test_refused_input_exits_2(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small")
    assert_exit_2(mlp("runs", folder, "--sort", "val_acuracy"), "--sort val_acuracy", "accepted")
    assert_exit_2(mlp("runs", tmp_path / "nowhere"), "nowhere", "no such folder")
    (tmp_path / "file").write_text("x")
    assert_exit_2(mlp("runs", tmp_path / "file"), "not a folder")


def test_default_order_is_newest_first(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small", "wide")
    stamps = {"small": "2026-01-02T00:00:00+00:00", "wide": "2026-01-01T00:00:00+00:00"}
    for name, started in stamps.items():
        summary = json.loads((folder / name / SUMMARY_FILE).read_text())
        (folder / name / SUMMARY_FILE).write_text(json.dumps({**summary, "started": started}))
    assert [r.name for r in list_runs(folder)] == ["small", "wide"]


def test_listing_imports_neither_torch_nor_pandas(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small", "grid")
    code, heavy = exit_code_and_imports(["runs", str(folder)])
    assert code == 0 and not heavy


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_fast_reader_of_a_dumped_config_agrees_with_pyyaml(path):
    """Every shipped config as a run writes it takes the fast path and reads the same as
    through PyYAML, value and type (true, 1 and 1.0 are three settings)."""
    import yaml

    from mlpcli.config.schema import load_config
    from mlpcli.runs.dumped_yaml import flat_dumped
    from mlpcli.runs.reading import flat_settings

    text = load_config(path).to_yaml()
    # Read without PyYAML, a sweep's grid of widths (a list of lists) included.
    fast = flat_dumped(text)
    assert fast is not None, text
    typed = [(k, type(v), v) for k, v in flat_settings(yaml.safe_load(text)).items()]
    assert [(k, type(v), v) for k, v in fast.items()] == typed


@pytest.mark.parametrize(
    "text",
    ["a: &x 1\nb: *x\n", "a: {b: 1}\n", "a: 0o17\n", 'a: "x"\n', "a: 1\na: 2\n", "a:\n  - - 1\n"],
)
def test_anything_else_falls_back_to_pyyaml(text):
    from mlpcli.runs.dumped_yaml import flat_dumped

    assert flat_dumped(text) is None


@pytest.mark.parametrize(
    "value", ["y", "Y", "n", "N", "-.5", "+.5", ".e+1", ".5_0", "-1_0", ".Inf", "-.INF", ".NaN"]
)
def test_the_fast_reader_reads_yaml_lookalikes_as_pyyaml_does(value):
    """PyYAML's resolver, not the YAML 1.1 spec's: y/n are text, -.5 is text, .Inf a float."""
    import yaml

    from mlpcli.runs.dumped_yaml import flat_dumped
    from mlpcli.runs.reading import flat_settings

    for text in (f"a: {value}\nb:\n- {value}\n- x\n", yaml.safe_dump({"a": value, "b": [value]})):
        fast = flat_dumped(text)
        assert fast is None or repr(fast) == repr(flat_settings(yaml.safe_load(text))), text


def test_aliases_that_expand_past_the_bound_are_a_damaged_config(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small", "wide")
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 6):  # ten to the sixth strings once the aliases are followed
        levels.append(f"{'abcdef'[i]}: &{'abcdef'[i]} [{', '.join(['*' + 'abcdef'[i - 1]] * 10)}]")
    (folder / "wide" / "config.yaml").write_text("\n".join(levels) + "\n")
    rows = rows_by_name(folder)
    assert "config.yaml: damaged" in rows["wide"]["problem"]
    assert rows["wide"]["settings"] == {}


def test_a_lock_whose_heartbeat_stopped_is_not_running(trained, tmp_path):
    """A live pid in a stale record (the pid since reused) is no holder: the heartbeat is."""
    folder = copy_runs(trained, tmp_path / "runs", "small")
    live = folder / "small"
    summary = json.loads((live / SUMMARY_FILE).read_text())
    (live / SUMMARY_FILE).write_text(json.dumps({**summary, "status": "running"}))
    record = live / "record"
    with run_lock(live):
        record.write_bytes((live / LOCK_FILE).read_bytes())
    (live / LOCK_FILE).write_bytes(record.read_bytes())  # this live process's pid
    assert list_runs(folder)[0].status == "running"
    old = (live / LOCK_FILE).stat().st_mtime - 3600
    os.utime(live / LOCK_FILE, (old, old))
    assert list_runs(folder)[0].status == "interrupted"
    text = record.read_text()
    pid = next(line for line in text.splitlines() if line.startswith("pid="))
    (live / LOCK_FILE).write_text(text.replace(pid, f"pid={2**70}"))  # no such pid on any host
    assert list_runs(folder)[0].status == "interrupted"


def test_names_and_values_from_the_files_print_escaped_and_clipped(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "small")
    odd = folder / "rtl\u202eevil\nx"
    shutil.copytree(trained / "wide", odd)
    summary = json.loads((odd / SUMMARY_FILE).read_text())
    summary["main_metric"] = "\x1b[2Jacc"
    summary["metrics"]["val"]["\x1b[2Jacc"] = 0.5
    summary["params"] = 1e300
    (odd / SUMMARY_FILE).write_text(json.dumps(summary))
    with (odd / "config.yaml").open("a") as config:
        config.write("pad: " + "x" * 5000 + "\n")
    result = mlp("runs", folder)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "rtl\\u202eevil\\nx" in result.stdout and "\\x1b[2Jacc 0.5000" in result.stdout
    assert len(result.stdout.splitlines()) == 3  # the header and one line per run
    assert max(len(line) for line in result.stdout.splitlines()) < 400
    assert rows_by_name(folder)["rtl\u202eevil\nx"]["params"] is None  # not a count


def test_a_sweep_before_its_first_summary_is_running_while_its_lock_is_held(trained, tmp_path):
    folder = copy_runs(trained, tmp_path / "runs", "grid")
    (folder / "grid" / SUMMARY_FILE).unlink()
    with run_lock(folder / "grid"):
        assert list_runs(folder)[0].status == "running"
    assert list_runs(folder)[0].status == "interrupted"


def test_a_sweep_whose_failed_trial_wrote_a_long_error_still_ranks(trained, tmp_path):
    import csv

    folder = copy_runs(trained, tmp_path / "runs", "grid")
    results = folder / "grid" / "results.csv"
    rows = list(csv.DictReader(results.open(newline="")))
    rows.append({**rows[0], "trial": "trial-009", "status": "failed", "error": "E" * 200_000})
    with results.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    row = list_runs(folder)[0]
    assert row.problem is None and row.best_trial in {r["trial"] for r in rows[:-1]}

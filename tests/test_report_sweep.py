"""A sweep's page: every trial ranked by the main metric, pruned trials marked with their reason,
failed ones last with their error, every link leading to a section, the sweep's figures
embedded, the per-point statistics of seeds, and the cap on trial sections."""

from __future__ import annotations

import csv
import html
import json
import shlex
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import mlp, pruning_trials
from report_check import assert_self_contained, ids, images

from mlpcli.config.schema import build_config
from mlpcli.console import number
from mlpcli.pages import sweep_page as page_module
from mlpcli.pages.sweep_page import sweep_page
from mlpcli.sweeps.executors.local import InlineExecutor
from mlpcli.sweeps.runner import run_sweep

BASE = {
    "name": "s",
    "data": {"source": "moons", "n_samples": 300, "noise": 0.2},
    "model": {"hidden": [8]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 5},
}
SPACE = ["optim.lr=log(1e-3,1e-1)", "model.hidden=choice([4],[8],[16,16])"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two seeds of a grid whose second learning rate diverges: four trials fail."""
    out = tmp_path_factory.mktemp("grid")
    result = run_sweep(
        build_config({**BASE, "optim": {"name": "sgd", "lr": 0.05}}),
        grid=["optim.lr=0.05,1e12"],
        hidden=[4, 8],
        seeds=2,
        out=out,
        name="grid",
        quiet=True,
        executor=InlineExecutor(),
    )
    return result.sweep_dir


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A random search whose pruner stops trials 1 and 3 at epoch 2, whatever their values."""
    out = tmp_path_factory.mktemp("search")
    with pruning_trials((1, 3), step=2):
        result = run_sweep(
            build_config(BASE),
            out=out,
            name="search",
            executor=InlineExecutor(),
            quiet=True,
            search="random",
            trials=4,
            prune="median",
            space=SPACE,
        )
    return result.sweep_dir


def csv_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class _Tables(HTMLParser):
    """The cells' text of the tables of one section, row by row."""

    def __init__(self, section_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.section_id, self.depth, self.rows = section_id, 0, []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag == "section"
        elif tag == "section" and dict(attrs).get("id") == self.section_id:
            self.depth = 1
        if self.depth and tag == "tr":
            self.rows.append([])
        if self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None
        if self.depth and tag == "section":
            self.depth -= 1

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_rows(document: str, section_id: str) -> list[dict[str, str]]:
    parser = _Tables(section_id)
    parser.feed(document)
    header, *body = parser.rows
    return [dict(zip(header, row)) for row in body]


def test_grid_page_ranks_trials_and_puts_failed_ones_last_with_their_error(grid):
    document, notes = sweep_page(grid)
    assert notes == []
    assert_self_contained(document)
    found = csv_rows(grid)
    done = [r for r in found if r["status"] == "completed"]
    failed = [r for r in found if r["status"] == "failed"]
    assert len(done) == 4 and len(failed) == 4
    # Best val accuracy first (higher is better); ties keep results.csv's order.
    ranked = sorted(done, key=lambda r: -float(r["val_accuracy"])) + failed
    shown = table_rows(document, "results")
    assert [row["trial"] for row in shown] == [r["trial"] for r in ranked]
    for row, source in zip(shown, ranked):
        assert row["val accuracy"] == (
            number(float(source["val_accuracy"])) if source in done else ""
        )
        assert row["model.hidden"] == source["model.hidden"]
    for row, source in zip(shown[4:], failed):
        assert row["status"] == "failed"
        assert "loss became nan" in source["error"]
        assert row["reason or error"] == cut(source["error"])
        assert html.escape(source["error"], quote=True) in document  # whole in its section
    # Status and value come before the swept keys (a phone's first screen shows them).
    assert list(shown[0])[:4] == ["#", "trial", "status", "val accuracy"]
    # Some trials failed, others completed: the sweep is not called failed outright.
    assert json.loads((grid / "summary.json").read_text())["status"] == "failed"
    heading = document[document.index("<h1>") : document.index("</h1>")]
    assert '<span class="status warn">completed, 4 of 8 trials failed</span>' in heading


def test_search_page_marks_pruned_trials_in_place_with_their_reason(search):
    document, _ = sweep_page(search)
    assert_self_contained(document)
    found = csv_rows(search)
    assert [r["status"] for r in found].count("pruned") == 2
    ranked = sorted(found, key=lambda r: -float(r["val_accuracy"]))
    shown = table_rows(document, "results")
    assert [row["trial"] for row in shown] == [r["trial"] for r in ranked]
    for row, source in zip(shown, ranked):
        if source["status"] == "pruned":
            assert row["status"] == f"pruned at epoch {source['pruned_at']}" == "pruned at epoch 2"
            assert row["reason or error"] == cut(source["reason"])
            assert source["reason"].startswith("epoch 2: best val_accuracy")
        else:
            assert (row["status"], row["reason or error"]) == ("completed", "")
        assert row["epochs"] == source["epochs"]
        # A learning rate to 4 significant digits in the table, exact in the trial's section;
        # parameters as the run page writes them.
        assert row["optim.lr"] == f"{float(source['optim.lr']):.4g}" != source["optim.lr"]
        assert f"optim.lr={source['optim.lr']}" in document
        assert row["params"] == f"{int(source['params']):,}"
    # The best trial and the command that trains it again, as `mlp sweep` prints it.
    summary = json.loads((search / "summary.json").read_text())
    text = html.unescape(document)
    command = shlex.join(["mlp", "train", str(search / "sweep.yaml")])
    assert f"{command} {summary['overrides']}" in text
    assert f"{summary['best_trial']}: " in text and "random search, pruned by median" in text


def cut(text: str) -> str:
    """A reason or error as the results table shows it: its first line, at most 80 chars."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= 80 else line[:79].rstrip() + "…"


def test_every_trial_has_a_linked_section_and_the_links_resolve(grid, search):
    for sweep_dir in (grid, search):
        document, _ = sweep_page(sweep_dir)
        assert_self_contained(document)  # every href="#..." names an id of the page
        names = [r["trial"] for r in csv_rows(sweep_dir)]
        sections = {i for i in ids(document) if i.startswith("t-")}
        assert len(sections) == len(names)
        for name in names:
            (anchor,) = [i for i in sections if i.endswith(name)]
            assert f'<a href="#{anchor}">{name}</a>' in document
        assert document.count('<a href="#results">back to results</a>') == len(names)
    # A completed trial's section: its metrics and its curves drawn as SVG from metrics.csv.
    document, _ = sweep_page(search)
    svgs = [data for _, data in images(document) if data.startswith(b"<svg")]
    assert len(svgs) == 2 * 4  # loss and val accuracy per trial
    assert all(b"<polyline" in data or b"<path" in data for data in svgs)


def test_sweep_figures_are_embedded_as_they_are(grid, search):
    for sweep_dir in (grid, search):
        document, _ = sweep_page(sweep_dir)
        pngs = {data for _, data in images(document) if data.startswith(b"\x89PNG")}
        figures = sorted((sweep_dir / "plots").glob("*.png"))
        assert figures
        assert {path.read_bytes() for path in figures} <= pngs
        for path in figures:
            assert f"plots/{path.name}" in document
    # Each known figure is captioned with what it shows, not only its name.
    document, _ = sweep_page(search)
    for name in ("parallel", "intermediate"):
        caption = page_module.SWEEP_CAPTIONS[f"plots/{name}.png"]
        assert f"<code>plots/{name}.png</code>: {html.escape(caption)}</figcaption>" in document


def test_points_show_means_and_stds_over_seeds(grid, search):
    document, _ = sweep_page(grid)
    summary = json.loads((grid / "summary.json").read_text())
    shown = table_rows(document, "points")
    assert len(shown) == len(summary["points"]) == 4
    for row, point in zip(shown, summary["points"]):
        assert row["seeds done"] == f"{point['completed']} of {point['trials']}"
        if point["completed"]:
            mean, std = point["val_accuracy_mean"], point["val_accuracy_std"]
            assert row["val accuracy"] == f"{number(mean)} ± {number(std)}"
    # The best point, its spread, and the command that trains it again.
    text = html.unescape(document)
    best = summary["best"]
    command = shlex.join(
        ["mlp", "train", str(grid / "sweep.yaml"), "optim.lr=0.05", "model.hidden=[4]"]
    )
    assert command in text and f"over {best['completed']} seeds" in text
    assert 'id="points"' not in sweep_page(search)[0]  # one seed: nothing to average


def test_above_500_trials_the_best_100_and_every_failed_or_pruned_keep_a_section(search, tmp_path):
    sweep_dir = tmp_path / "big"
    shutil.copytree(search, sweep_dir)
    template = csv_rows(search)[0]
    rows = []
    for i in range(600):
        status = "failed" if i % 100 == 7 else "pruned" if i % 100 == 9 else "completed"
        row = {**template, "trial": f"trial-{i:03d}", "status": status}
        row["val_accuracy"] = "" if status == "failed" else f"{(i * 37 % 600) / 600:.4f}"
        row["error"] = "<img src=x onerror=alert(1)> & more" if status == "failed" else ""
        row["reason"] = "stopped <b>early</b>" if status == "pruned" else ""
        rows.append(row)
    rows.append({**template, "trial": "../../elsewhere", "val_accuracy": "1.0"})
    rows.append(dict(rows[7]))  # a name repeated: one section, one id
    with open(sweep_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(template))
        writer.writeheader()
        writer.writerows(rows)
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    shown = table_rows(document, "results")
    assert len(shown) == 602  # the table lists every row
    sections = {i for i in ids(document) if i.startswith("t-")}
    best = {r["trial"] for r in shown[:100]}
    failed_or_pruned = {r["trial"] for r in rows if r["status"] != "completed"}
    assert len(failed_or_pruned) == 12 and shown[0]["trial"] == "../../elsewhere"
    assert len(sections) == len(best | failed_or_pruned) == document.count('<section id="t-')
    left = 602 - len(sections) - 1  # the repeated row's name has its section
    assert f"{left} of 602 trials have no section below" in document
    # Hostile text from the file is shown as text, and a trial name is never a path to follow.
    assert "<img src=x" not in document
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in document
    assert "<b>early</b>" not in document
    assert any("'../../elsewhere' is not a folder name" in n for n in notes)


def test_above_100000_rows_the_rest_are_left_with_a_note(search, tmp_path, monkeypatch):
    sweep_dir = tmp_path / "long"
    shutil.copytree(search, sweep_dir)
    monkeypatch.setattr(page_module, "MAX_ROWS", 3)
    document, notes = sweep_page(sweep_dir)
    assert len(table_rows(document, "results")) == 3
    assert any("more than 3 rows" in n for n in notes)


def test_a_sweep_without_summary_or_results_still_gets_a_page(search, tmp_path):
    sweep_dir = tmp_path / "bare"
    shutil.copytree(search, sweep_dir)
    (sweep_dir / "summary.json").write_text("{not json")
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert any("summary.json: damaged" in n for n in notes)
    assert len(table_rows(document, "results")) == 4
    (sweep_dir / "results.csv").unlink()
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert "results.csv holds no trials" in document
    assert any("results.csv: missing" in n for n in notes)


def test_a_trial_folder_that_is_a_link_is_not_followed(search, tmp_path):
    sweep_dir = tmp_path / "linked"
    shutil.copytree(search, sweep_dir)
    trial = sweep_dir / "trials" / "trial-000"
    shutil.rmtree(trial)
    trial.symlink_to(sweep_dir / "trials" / "trial-002")
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert any("trial-000" in n and "symbolic link" in n for n in notes), notes
    # Its section shows its row of results.csv only: no metrics table, no curves.
    start = document.index('<section id="t-0-trial-000">')
    own = document[start : document.index("</section>", start)]
    assert "back to results" in own and "<table" not in own and "<img" not in own


def test_what_is_missing_is_listed_on_the_page_and_in_the_trial_section(search, tmp_path):
    sweep_dir = tmp_path / "thin"
    shutil.copytree(search, sweep_dir)
    (sweep_dir / "summary.json").unlink()
    (sweep_dir / "trials" / "trial-002" / "metrics.csv").unlink()
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert notes == ["summary.json: missing"]
    overview = section_html(document, "overview")
    assert "<h3>Not shown</h3>" in overview and "<li>summary.json: missing</li>" in overview
    own = section_html(document, "t-2-trial-002")
    assert "No curves: the trial has no readable metrics.csv." in own
    assert "<li>metrics.csv: missing</li>" in own and "<img" not in own
    # The footer names the files that were read, and only those.
    footer = document[document.index("<footer>") :]
    assert "files read: results.csv, plots/" in footer and "summary.json" not in footer
    assert "the folders of 4 trials under trials/" in footer


def section_html(document: str, id_: str) -> str:
    start = document.index(f'<section id="{id_}">')
    return document[start : document.index("</section>", start)]


def test_a_summary_of_the_wrong_shapes_gives_a_page_not_a_traceback(grid, tmp_path):
    sweep_dir = tmp_path / "odd"
    shutil.copytree(grid, sweep_dir)
    odd = {
        "name": ["x"], "status": 5, "main_metric": 3, "seeds": 2, "points": 1, "best": [],
        "grid": "lr", "zip": 4, "search": "random", "trials": "8", "completed": None,
        "failed": {}, "seconds": "soon", "command": ["mlp"], "workers": True,
    }  # fmt: skip
    (sweep_dir / "summary.json").write_text(json.dumps(odd))
    document, notes = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert notes == []
    assert len(table_rows(document, "results")) == 8  # results.csv's counts and metric stand
    assert "8 trials, 4 completed, 4 failed" in document and "accuracy (higher" in document
    assert 'id="points"' not in document
    (sweep_dir / "summary.json").write_text(
        json.dumps(
            {"seeds": 2, "points": [1, {"settings": 3, "params": "x"}], "best": {"settings": 1}}
        )
    )
    document, _ = sweep_page(sweep_dir)
    assert_self_contained(document)
    assert len(table_rows(document, "points")) == 1


def test_a_link_in_the_sweeps_plots_is_a_note_naming_it_once(search, tmp_path):
    sweep_dir = tmp_path / "planted"
    shutil.copytree(search, sweep_dir)
    (sweep_dir / "plots" / "evil.png").symlink_to(sweep_dir / "plots" / "parallel.png")
    result = mlp("report", sweep_dir, "--no-draw")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("evil.png") == 1 and "symbolic link" in result.stderr
    document = (sweep_dir / "report.html").read_text()
    assert "<li>plots/evil.png: a symbolic link" in document
    assert "<code>plots/evil.png</code>" not in document

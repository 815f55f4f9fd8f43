"""The page of a run: every section, the numbers as the terminal shows them, baselines side by
side, the inspect verdict from inspect.json or from diagnostics.csv, hostile text escaped, and
older or copied runs, whose missing files become notes and whose missing figures are drawn."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import mlp
from report_check import assert_self_contained, ids, images

import mlpcli
from mlpcli.console import number
from mlpcli.insight.inspection import inspect_run
from mlpcli.pages.run_page import draw_missing, run_page
from mlpcli.runs.reading import read_run

CONFIGS = Path(__file__).parent.parent / "configs"
SECTIONS = {"overview", "command", "metrics", "curves", "layers", "inspect", "figures", "data"}
SECTIONS |= {"config"}
DIAGNOSED = "train.diagnostics={every: 1, rows: 256}"


def section(text: str, id_: str) -> str:
    """One section's markup (sections do not nest)."""
    found = re.search(rf'<section id="{id_}">(.*?)</section>', text, re.S)
    assert found, f"no section {id_}"
    return found.group(1)


def words(markup: str) -> str:
    """The text of some markup, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def table_rows(markup: str) -> list[list[str]]:
    """The body rows of the first table in some markup, as cell texts."""
    body = re.search(r"<tbody>(.*?)</tbody>", markup, re.S)
    assert body, "no table"
    return [
        [words(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def report(run: Path, *flags: str) -> str:
    result = mlp("report", run, *flags)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    text = (run / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    return text


@pytest.fixture(scope="module")
def moons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short moons run with diagnostics and both baselines; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("runs")
    overrides = [
        "train.epochs=3",
        "data.n_samples=300",
        DIAGNOSED,
        "train.baseline=[linear,kernel]",
    ]
    return mlpcli.train(CONFIGS / "moons.yaml", overrides, out=out, name="m", quiet=True).run_dir


def copied(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def test_every_section_with_the_numbers_of_summary_and_mlp_summary(moons: Path, tmp_path):
    run = copied(moons, tmp_path)
    text = report(run)
    assert SECTIONS <= ids(text)
    summary = json.loads((run / "summary.json").read_text())
    # The main metric, in bold, with the digits `mlp train` prints.
    test_accuracy = number(summary["metrics"]["test"]["accuracy"])
    rows = {row[0]: row[1:] for row in table_rows(section(text, "metrics"))}
    assert rows["test accuracy"][0] == test_accuracy
    assert f"<strong>{test_accuracy}</strong>" in section(text, "metrics")
    layers = json.loads(mlp("summary", run, "--json").stdout)["layers"]
    shown = table_rows(section(text, "layers"))
    assert [row[3] for row in shown[:-1]] == [f"{layer['params']:,}" for layer in layers]
    assert shown[-1][0] == "total" and shown[-1][3] == f"{sum(x['params'] for x in layers):,}"
    overview = words(section(text, "overview"))
    assert "completed" in overview and f"kept epoch {summary['saved_epoch']} of 3" in overview
    assert '<span class="status completed">completed</span>' in text
    assert "mlp train" in words(section(text, "command"))  # an API run: how to train it again
    config = (run / "config.yaml").read_text()
    assert html.escape(config, quote=True) in section(text, "config")
    # Drawn for the page from diagnostics.csv, and the boundary of its two inputs.
    for name in ("gradients", "units", "boundary"):
        assert (run / "plots" / f"{name}.png").is_file()
        assert any(alt.startswith(f"plots/{name}.png") for alt, _ in images(text))


def test_baselines_side_by_side_with_stored_numbers_and_a_failed_ones_reason(moons, tmp_path):
    run = copied(moons, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    text = report(run, "--no-draw")
    metrics = section(text, "metrics")
    header = [words(h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", metrics, re.S)]
    assert header == ["metric", "MLP", "linear baseline", "kernel baseline"]
    rows = {row[0]: row[1:] for row in table_rows(metrics)}
    baselines = summary["baselines"]
    for column, name in enumerate(("mlp", "linear", "kernel")):
        entry = baselines[name]
        assert rows["val accuracy"][column] == number(entry["metrics"]["val"]["accuracy"])
        assert rows["stored numbers"][column] == f"{entry['stored_numbers']:,}"
        assert rows["ms / 1k rows"][column] == number(entry["predict_ms_per_1k_rows"], 3)
    assert rows["train loss"][2] == "-"  # the kernel reports no loss
    baselines["kernel"] = {"failed": 'out of memory <b>&"</b>'}
    (run / "summary.json").write_text(json.dumps(summary))
    failed = section(report(run, "--no-draw"), "metrics")
    assert "the kernel baseline failed: out of memory &lt;b&gt;&amp;&quot;&lt;/b&gt;" in failed


@pytest.fixture(scope="module")
def vanishing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten sigmoid layers (configs/vanishing.yaml), whose gradients vanish: flagged."""
    out = tmp_path_factory.mktemp("runs")
    overrides = ["train.epochs=2", "data.n_samples=400", DIAGNOSED]
    return mlpcli.train(
        CONFIGS / "vanishing.yaml", overrides, out=out, name="v", quiet=True
    ).run_dir


def test_inspect_from_inspect_json_and_else_from_diagnostics_csv_with_the_same_flags(
    vanishing: Path, tmp_path
):
    run = copied(vanishing, tmp_path)
    checked, _ = inspect_run(run, "best")
    assert checked.flags  # the rules have something to say
    text = section(report(run, "--no-draw"), "inspect")
    assert html.escape(checked.verdict, quote=True) in text
    assert f"mlp inspect at best (epoch {checked.epoch})" in words(text)
    for line in checked.advice:
        assert html.escape(line, quote=True) in text
    (run / "inspect.json").unlink()
    text = section(report(run, "--no-draw"), "inspect")
    assert f"from diagnostics.csv at epoch {checked.epoch}" in words(text)
    assert f"mlp inspect {run} checks the weights themselves" in words(text)
    flags = [row[-1] for row in table_rows(text)]
    assert flags == [", ".join(layer["flags"]) for layer in checked.layers]
    assert html.escape(checked.verdict, quote=True) in text


HOSTILE_COLUMN = "<img src=x onerror=alert(1)>"
HOSTILE_LABEL = "<script>alert(1)</script>"
AMPERSAND = 'a&"b'


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV run whose column names and class labels are markup."""
    root = tmp_path_factory.mktemp("hostile")
    with open(root / "rows.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([HOSTILE_COLUMN, AMPERSAND, "label"])
        for i in range(120):
            x, y = (i * 37 % 101) / 101, (i * 61 % 103) / 103
            writer.writerow([x, y, HOSTILE_LABEL if x + y > 1 else AMPERSAND])
    config = root / "hostile.yaml"
    config.write_text(
        f"data: {{source: csv, path: {root / 'rows.csv'}, target: label}}\n"
        "model: {hidden: [4]}\ntrain: {epochs: 2, diagnostics: {every: 1}}\n"
    )
    return mlpcli.train(config, out=root / "runs", name="h", quiet=True).run_dir


def test_hostile_column_names_and_labels_are_shown_escaped(hostile: Path, tmp_path):
    run = copied(hostile, tmp_path)
    text = report(run)
    for raw in (HOSTILE_COLUMN, HOSTILE_LABEL, AMPERSAND):
        assert raw not in text
    data = section(text, "data")
    for raw in (HOSTILE_COLUMN, HOSTILE_LABEL, AMPERSAND):
        assert html.escape(raw, quote=True) in data
    assert "<script" not in text.lower()


def test_an_older_run_without_command_inspect_or_plots_still_gets_a_page(moons, tmp_path):
    run = copied(moons, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("command", None)
    (run / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(run / "plots")
    (run / "diagnostics.csv").unlink()
    (run / "inspect.json").unlink(missing_ok=True)
    text = report(run, "--no-draw")
    assert SECTIONS <= ids(text)
    assert "records no command" in words(section(text, "command"))
    assert "no inspect.json and no diagnostics.csv" in words(section(text, "inspect"))
    assert "no figures besides the curves" in words(section(text, "figures"))
    # The curves drawn from metrics.csv instead of plots/loss.png.
    curves = [data for alt, data in images(section(text, "curves"))]
    assert curves and all(data.startswith(b"<svg") for data in curves)
    assert not (run / "plots").exists()  # --no-draw draws nothing


def test_a_run_without_summary_or_model_names_what_is_missing(moons, tmp_path):
    run = copied(moons, tmp_path)
    for name in ("summary.json", "model.safetensors", "metrics.csv"):
        (run / name).unlink()
    files = read_run(run)
    assert files.summary == {} and files.model is None
    assert {"summary.json: missing", "metrics.csv: missing"} <= set(files.notes)
    text = run_page(files)
    assert_self_contained(text)
    assert "summary.json: missing" in words(section(text, "overview"))
    assert "no layer table" in words(section(text, "layers"))
    assert "status unknown" in words(text)
    (run / "summary.json").write_text("{not json")
    assert "summary.json: damaged (not a JSON object)" in read_run(run).notes


def test_a_copied_run_whose_data_file_is_gone_gets_a_note_naming_it(hostile, tmp_path):
    run = copied(hostile, tmp_path)
    shutil.rmtree(run / "plots")
    data = Path(json.loads(json.dumps(read_run(run).config))["data"]["path"])
    moved = tmp_path / "elsewhere.csv"
    shutil.copy(data, moved)
    data.unlink()
    try:
        result = mlp("report", run, "--json")
    finally:
        shutil.copy(moved, data)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    notes = json.loads(result.stdout)["notes"]
    assert any(str(data) in note and "boundary" in note for note in notes), notes
    assert (run / "plots" / "gradients.png").is_file()  # the cheap figures need no data


def test_missing_cheap_figures_are_drawn_again_and_only_those_with_draw_cheap(moons, tmp_path):
    run = copied(moons, tmp_path)
    shutil.rmtree(run / "plots")
    assert draw_missing(run, read_run(run), data=False) == []
    drawn = {p.name for p in (run / "plots").iterdir()}
    assert drawn == {"gradients.png", "units.png"}
    figures = read_run(run).figures
    assert figures["plots/gradients.png"].startswith(b"\x89PNG")


def test_detectors_are_drawn_for_an_image_source(tmp_path):
    overrides = ["train.epochs=1", "model.hidden=[8]", "train.diagnostics=null"]
    run = mlpcli.train(CONFIGS / "digits.yaml", overrides, out=tmp_path, quiet=True).run_dir
    notes = draw_missing(run, read_run(run), data=True)
    assert (run / "plots" / "detectors.png").is_file(), notes
    assert not (run / "plots" / "boundary.png").exists()  # 64 inputs: no boundary to draw
    text = run_page(read_run(run))
    assert "plots/detectors.png" in words(section(text, "figures"))
    assert "0, 1, 2" in words(section(text, "data"))  # the class labels


def test_a_runs_files_and_layer_table_are_read_without_torch_or_pandas(moons):
    code = (
        "import sys; from pathlib import Path; "
        "from mlpcli.runs.reading import read_run; "
        "from mlpcli.pages.run_page import network_summary; "
        f"files = read_run(Path({str(moons)!r})); "
        "assert network_summary(files)['params'] == files.summary['params']; "
        "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_model_header_with_a_damaged_preprocessor_is_a_note_not_a_traceback(moons, tmp_path):
    run = copied(moons, tmp_path)
    path = run / "model.safetensors"
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = json.loads(header["__metadata__"]["mlpcli"])
    metadata["preprocessor"]["categorical"] = 1  # an object in every file mlp train writes
    header["__metadata__"]["mlpcli"] = json.dumps(metadata)
    new = json.dumps(header).encode()
    path.write_bytes(len(new).to_bytes(8, "little") + new + data[8 + size :])
    text = report(run, "--no-draw")
    layers = words(section(text, "layers"))
    assert "no layer table: model.safetensors's metadata is not what mlp train writes" in layers


def test_lone_surrogates_and_controls_from_the_files_reach_neither_page_nor_svg_raw(
    moons, tmp_path
):
    """Valid JSON may hold a lone surrogate (not encodable as UTF-8) and a column name a control
    character (not allowed in XML): both are shown as U+FFFD, in the page and in its SVGs."""
    run = copied(moons, tmp_path)
    (run / "plots" / "loss.png").unlink()  # so the curves are SVGs drawn from metrics.csv
    summary = json.loads((run / "summary.json").read_text())
    summary["task"] = "\ud800 x"
    summary["main_metric"] = "acc\x0b<b>"
    (run / "summary.json").write_text(json.dumps(summary))  # ASCII: \ud800 escaped
    with (run / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["val_acc\x0b<b>"] = row["val_loss"]
    with (run / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = report(run, "--no-draw")
    assert "\ufffd x" in words(section(text, "overview"))
    drawings = [data for _, data in images(section(text, "curves"))]
    assert len(drawings) == 2
    titles = ["".join(ET.fromstring(d).itertext()) for d in drawings]  # well-formed XML
    assert any("acc\ufffd<b>" in t for t in titles) and not any("\x0b" in t for t in titles)


def test_a_link_among_the_figures_is_a_note_naming_it_once(moons, tmp_path):
    run = copied(moons, tmp_path)
    (run / "plots" / "evil.png").symlink_to(run / "plots" / "loss.png")
    result = mlp("report", run, "--no-draw")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("evil.png") == 1 and "symbolic link" in result.stderr
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "plots/evil.png: a symbolic link" in words(section(text, "overview"))
    assert "plots/loss.png" in words(section(text, "curves"))


def test_the_result_comes_first_the_config_folds_and_the_fallback_command_is_quoted(
    moons, tmp_path
):
    run = copied(moons, tmp_path, "my run")
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("command", None)
    (run / "summary.json").write_text(json.dumps(summary))
    text = report(run, "--no-draw")
    overview = section(text, "overview")
    terms = re.findall(r"<dt>(.*?)</dt>", overview)
    assert terms.index("result") < terms.index("task")  # before the long facts, on a phone too
    main = summary["main_metric"]
    val, test = summary["metrics"]["val"][main], summary["metrics"]["test"][main]
    assert f"val {main} {number(val)}, test {main} {number(test)}" in words(overview)
    assert f"mlp train '{run}/config.yaml'" in words(section(text, "command"))
    config = section(text, "config")
    assert config.startswith("<h2>Config</h2><details><summary>config.yaml")
    assert html.escape((run / "config.yaml").read_text()) in config

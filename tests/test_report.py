"""`mlp report`: one self-contained page per run or sweep folder, where it is written, what it
refuses, and `--report` / `train.report` writing it when a run or a sweep ends."""

from __future__ import annotations

import html
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import InterruptAt, assert_exit_2, mlp
from report_check import assert_self_contained, assert_svg_self_contained, ids, images

from mlpcli.pages.svg import COLOURS, line_chart

TINY = "data: {source: moons, n_samples: 160}\nmodel: {hidden: [4]}\ntrain: {epochs: 3}\n"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick run folder, trained once for the tests that only read it."""
    root = tmp_path_factory.mktemp("report")
    config = root / "tiny.yaml"
    config.write_text(TINY)
    result = mlp("train", config, "--out", root / "runs", "--name", "r", "-q")
    assert result.exit_code == 0, result.output
    return root / "runs" / "r"


def test_a_line_chart_is_svg_with_a_size_its_points_and_escaped_text():
    drawn = line_chart(
        {"train <b>": [(1, 2.0), (2, 1.0), (3, math.nan), (4, 0.5)], "val": [(1, 2.5)]},
        title="loss & <script>",
        x_label="epoch",
        y_label="loss",
        width=400,
        height=250,
    )
    assert drawn.startswith(b"<svg")
    root = ET.fromstring(drawn)  # well-formed XML, which is what a browser's SVG parser wants
    assert (root.get("width"), root.get("height")) == ("400", "250")
    (line,) = root.iter(f"{SVG}polyline")
    assert len(line.get("points", "").split()) == 3  # the NaN point left out, not drawn as 0
    assert line.get("stroke") == COLOURS[0]
    (dot,) = root.iter(f"{SVG}circle")  # a series of one point is a dot
    assert dot.get("fill") == COLOURS[1]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "loss & <script>" in texts and "train <b>" in texts  # as text, once parsed
    assert b"<script" not in drawn and b"<b>" not in drawn
    assert_svg_self_contained(drawn)


def test_a_line_chart_of_any_text_is_well_formed_xml_and_utf_8():
    """Controls (not allowed in XML) and lone surrogates (not encodable) become U+FFFD."""
    hostile = "acc\x0b<b>\ud800"
    drawing = line_chart(
        {hostile: [(0, 1.0), (1, 2.0)]}, title=hostile, x_label="\x01e", y_label=hostile
    )
    texts = "".join(ET.fromstring(drawing).itertext())
    assert "acc\ufffd<b>\ufffd" in texts and "\x0b" not in texts


def test_a_line_chart_without_a_finite_point_says_so_and_log_axes_skip_non_positive_values():
    empty = ET.fromstring(line_chart({"a": [(1, math.inf)]}, title="t", x_label="x", y_label="y"))
    assert "no finite values to draw" in [t.text for t in empty.iter(f"{SVG}text")]
    assert not list(empty.iter(f"{SVG}polyline"))
    logged = line_chart(
        {"lr": [(1, 0.1), (2, 0.0), (3, 1e-3), (4, 1e-5)]},
        title="t",
        x_label="x",
        y_label="y",
        log_y=True,
    )
    (line,) = ET.fromstring(logged).iter(f"{SVG}polyline")
    assert len(line.get("points", "").split()) == 3
    labels = [t.text for t in ET.fromstring(logged).iter(f"{SVG}text")]
    assert "0.001" in labels and "y (log scale)" in labels


def test_the_page_of_a_run_is_one_self_contained_file(run: Path):
    result = mlp("report", run)
    assert result.exit_code == 0, result.output
    page = run / "report.html"
    text = page.read_text(encoding="utf-8")
    assert result.stdout.strip() == f"wrote {page} ({len(text.encode()) / 1024:,.0f} KB)"
    assert_self_contained(text)
    shown = images(text)
    assert shown and all(data for _, data in shown)
    assert ids(text)  # sections the navigation links to (checked by assert_self_contained)


def test_output_elsewhere_json_and_open(run: Path, tmp_path: Path, monkeypatch):
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda uri, *a, **k: opened.append(uri) or True)
    page = tmp_path / "shared" / "page.html"
    page.parent.mkdir()
    result = mlp("report", run, "-o", page, "--json", "--open", "--no-draw")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["path"] == str(page) and written["kind"] == "run"
    assert written["bytes"] == page.stat().st_size and isinstance(written["notes"], list)
    assert opened == [page.resolve().as_uri()]
    assert_self_contained(page.read_text(encoding="utf-8"))


def test_the_api_writes_the_same_page(run: Path, tmp_path: Path):
    import mlpcli

    written = mlpcli.report(run, tmp_path / "api.html", draw=False)
    assert written.kind == "run" and written.path == tmp_path / "api.html"
    assert written.bytes == written.path.stat().st_size


def test_refused_targets_and_outputs_name_what_is_wrong(run: Path, tmp_path: Path):
    assert_exit_2(mlp("report", tmp_path / "nowhere"), "nowhere", "no such folder")
    (tmp_path / "empty").mkdir()
    assert_exit_2(mlp("report", tmp_path / "empty"), "neither a run folder", "sweep.yaml")
    assert_exit_2(mlp("report", run, "-o", tmp_path), "is a folder")
    assert_exit_2(mlp("report", run, "-o", tmp_path / "page.txt"), ".html")
    unwritable = mlp("report", run, "-o", tmp_path / "missing" / "page.html")
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.stderr
    assert "Traceback" not in unwritable.output


def test_a_run_folder_with_a_linked_summary_is_refused_naming_the_file(run: Path, tmp_path):
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    secret = tmp_path / "elsewhere.json"
    secret.write_text("{}")
    (copied / "summary.json").symlink_to(secret)
    result = mlp("report", copied)
    assert_exit_2(result, "summary.json", "symbolic link")
    assert not (copied / "report.html").exists()


def test_report_flag_and_config_key_write_the_page_when_the_run_ends(tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "runs"
    flagged = mlp("train", config, "--out", out, "--name", "flag", "-q", "--report")
    assert flagged.exit_code == 0, flagged.output
    page = out / "flag" / "report.html"
    assert_self_contained(page.read_text(encoding="utf-8"))
    size = f"{page.stat().st_size / 1024:,.0f} KB"
    assert f"wrote {page} ({size})" in flagged.stderr.replace("\n", "")
    command = json.loads((out / "flag" / "summary.json").read_text())["command"]
    assert command.startswith(f"mlp train {config}") and command.endswith("--report")
    keyed = mlp("train", config, "train.report=true", "--out", out, "--name", "key", "-q")
    assert keyed.exit_code == 0, keyed.output
    assert (out / "key" / "report.html").is_file()
    plain = mlp("train", config, "--out", out, "--name", "plain", "-q")
    assert plain.exit_code == 0 and not (out / "plain" / "report.html").exists()


def test_a_run_that_fails_with_report_has_its_page_too(tmp_path: Path):
    config = tmp_path / "diverges.yaml"
    config.write_text(TINY + "optim: {name: sgd, lr: 1e30}\n")
    result = mlp("train", config, "--out", tmp_path, "--name", "d", "-q", "--report")
    assert result.exit_code == 1 and "Traceback" not in result.output
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"].startswith("the training loss became nan at epoch 1")
    assert "\n" not in summary["error"] and summary["error"] in result.stderr.replace("\n", "")
    text = (tmp_path / "d" / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    overview = text[text.index('<section id="overview">') : text.index('<section id="command">')]
    assert '<span class="status failed">failed</span>' in overview
    assert f'<span class="error">{html.escape(summary["error"])}</span>' in overview
    # No model was saved: no epoch's weights were kept, and epoch 0's record is the untrained
    # network's, which gets no verdict.
    assert "<dt>weights</dt>" not in overview
    assert not (tmp_path / "d" / "model.safetensors").exists()
    inspect = text[text.index('<section id="inspect">') : text.index('<section id="figures">')]
    assert "at initialisation, before training" in inspect and "healthy" not in inspect


def test_an_interrupted_run_records_why_and_its_resumed_completion_drops_it(tmp_path: Path):
    import mlpcli
    from mlpcli.errors import Interrupted

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    with pytest.raises(Interrupted):
        mlpcli.train(config, out=tmp_path, name="cut", quiet=True, callbacks=[InterruptAt(2)])
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["error"] == "interrupted"
    mlpcli.train(config, out=tmp_path, resume=tmp_path / "cut", quiet=True)
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["status"] == "completed" and "error" not in summary


def test_a_sweep_reads_its_config_file_once_before_the_trials(tmp_path: Path, monkeypatch):
    """A config edited or removed while a sweep runs changes nothing once the sweep started."""
    import mlpcli
    from mlpcli.sweeps import runner

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    real = runner.run_sweep

    def then_remove(*args, **kwargs):
        result = real(*args, **kwargs)
        config.unlink()  # as if removed while the trials ran
        return result

    monkeypatch.setattr(runner, "run_sweep", then_remove)
    result = mlpcli.sweep(
        config, ["train.epochs=1"], hidden=[2, 4], workers=1, out=tmp_path, quiet=True
    )
    assert result.summary["completed"] == 2 and result.sweep_dir.name.startswith("tiny-sweep-")
    assert "name: tiny" in (result.sweep_dir / "sweep.yaml").read_text()


def test_a_run_stopped_by_ctrl_c_with_train_report_has_its_page(tmp_path: Path):
    import mlpcli
    from mlpcli.errors import Interrupted

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    with pytest.raises(Interrupted):
        mlpcli.train(
            config,
            ["train.report=true"],
            out=tmp_path,
            name="cut",
            quiet=True,
            callbacks=[InterruptAt(2)],
        )
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["status"] == "stopped" and "command" not in summary  # not from the CLI
    assert_self_contained((tmp_path / "cut" / "report.html").read_text(encoding="utf-8"))


def test_sweep_report_writes_one_page_for_the_sweep_and_none_per_trial(tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    args = ("--hidden", "2,4", "--workers", "1", "--out", tmp_path, "--name", "s", "-q")
    result = mlp("sweep", config, *args, "--report")
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "s"
    assert_self_contained((sweep / "report.html").read_text(encoding="utf-8"))
    assert f"wrote {sweep / 'report.html'} (" in result.stderr.replace("\n", "")
    assert not list((sweep / "trials").rglob("report.html"))
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["command"].startswith(f"mlp sweep {config}")
    again = mlp("report", sweep, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["kind"] == "sweep"


def test_importing_mlpcli_does_not_import_the_pages():
    code = "import sys, mlpcli, mlpcli.api, mlpcli.cli; print('mlpcli.pages' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"

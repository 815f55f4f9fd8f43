"""The page of one run: what it was, how it went, its network and every figure it has.

Each section is built from the run folder's files (`RunFiles`) and says in a note what it
could not show; numbers are written as the terminal writes them (`console.number`), so the page
and `mlp train` show the same digits. `draw_missing` draws the figures a run lacks but its files
(and, when asked, its data) allow, into its plots/ as `mlp inspect` and `mlp plot` would.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..config.registry import BASELINES, IMAGE_SHAPES
from ..console import kept_epoch, number
from ..errors import MlpError
from ..runs.folder import MODEL_FILE
from ..runs.reading import RunFiles, as_dict, as_list, as_number, listed, metric_series
from . import svg
from .markup import (
    Safe,
    facts,
    image,
    join,
    note,
    page,
    png_size,
    section,
    status_word,
    table,
    tag,
)

LOSS_FIGURE, LR_FIND_FIGURE = "plots/loss.png", "plots/lr_find.png"
GRADIENTS_FIGURE, UNITS_FIGURE = "plots/gradients.png", "plots/units.png"
BOUNDARY_FIGURE, CURVE_FIGURE = "plots/boundary.png", "plots/curve.png"
DETECTORS_FIGURE = "plots/detectors.png"
# What each figure shows (docs/runs.md's words); a figure not listed is captioned by its name.
CAPTIONS = {
    LOSS_FIGURE: "Train and validation loss, and the main validation metric, per epoch; a dashed "
    "line marks the epoch whose weights were kept and, when the best epoch is another, a dotted "
    "line marks it.",
    LR_FIND_FIGURE: "The learning-rate range test (optim.lr: auto): the loss against the rate, "
    "the chosen rate marked.",
    GRADIENTS_FIGURE: "From diagnostics.csv: each hidden layer's gradient RMS (dL/dz and dL/dW, "
    "log scale) against epoch, coloured from the input layer (dark) to the output (light).",
    UNITS_FIGURE: "From diagnostics.csv: each hidden layer's dead and saturated fractions "
    "against epoch, coloured from the input layer (dark) to the output (light).",
    BOUNDARY_FIGURE: "Decision regions or output surface over two features with the train and "
    "test points; with neurons, the first hidden layer's units over the same grid.",
    CURVE_FIGURE: "The model's output along its one numeric input, over the train and "
    "validation points; with neurons, the first hidden layer's units along it.",
    DETECTORS_FIGURE: "The first hidden layer's weights as images: what each unit detects.",
    "plots/confusion.png": "The confusion matrix of what the last mlp eval --plot scored.",
    "plots/representations.png": "Each layer's representation of the held-out rows on its "
    "first two principal components, coloured by the target, its linear probe's score in the "
    "panel's title (mlp inspect --probes).",
}
SECTIONS = (
    ("overview", "Overview"),
    ("command", "Command"),
    ("metrics", "Metrics"),
    ("curves", "Curves"),
    ("layers", "Layers"),
    ("inspect", "Inspect"),
    ("figures", "Figures"),
    ("data", "Data"),
    ("config", "Config"),
)


def run_page(files: RunFiles) -> str:
    """The whole page of a run, as one HTML document."""
    summary = files.summary
    body = [
        _overview(files),
        section("command", "Command", *_command(files)),
        section("metrics", "Metrics", metrics_table(summary)),
        section("curves", "Curves", curves(files)),
        section("layers", "Layers", _layers(files)),
        section("inspect", "Inspect", _inspect(files)),
        section("figures", "Figures", _figures(files)),
        section("data", "Data", _data(files)),
        section("config", "Config", _config(files)),
    ]
    heading = join(["run ", files.name, " ", status_word(summary.get("status"))])
    return page(f"run {files.name} · mlpcli", heading, SECTIONS, body, files.path, files.read)


# ------------------------------------------------------------------ overview and command


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _overview(files: RunFiles) -> Safe:
    summary = files.summary
    pairs: list[tuple[str, object]] = [
        ("run", files.name),
        ("status", status_word(summary.get("status"))),
    ]
    error = summary.get("error")
    if isinstance(error, str) and error and summary.get("status") != "completed":
        pairs.append(("error", tag("span", {"class": "error"}, error)))
    pairs += _result(summary)
    for key in ("task", "started"):
        if isinstance(summary.get(key), str):
            pairs.append((key, summary[key]))
    if _int(summary.get("epochs_run")) is not None:
        pairs.append(("epochs run", summary["epochs_run"]))
    if _has_model(files):  # without a model file no epoch's weights were kept
        try:
            pairs.append(("weights", kept_epoch(summary)))
        except (KeyError, TypeError):
            pass
    if summary.get("stopped_early") is True:
        pairs.append(("stopped early", summary.get("stopped_by") or "yes"))
    elif isinstance(summary.get("stopped_by"), str):
        pairs.append(("stopped by", summary["stopped_by"]))
    if _int(summary.get("params")) is not None:
        pairs.append(("parameters", f"{summary['params']:,}"))
    for key in ("device", "engine", "threads", "processes"):
        if isinstance(summary.get(key), (str, int)) and not isinstance(summary.get(key), bool):
            pairs.append((key, summary[key]))
    for key, label in (("seconds", "seconds in all"), ("train_seconds", "seconds training")):
        if (seconds := as_number(summary.get(key))) is not None:
            pairs.append((label, f"{seconds:.1f}"))
    if (speed := as_number(summary.get("samples_per_second"))) is not None:
        pairs.append(("samples / s", f"{speed:,.0f}"))
    rows = summary.get("rows")
    if isinstance(rows, dict) and rows:
        shown = [f"{k} {v:,}" if _int(v) is not None else f"{k} {v}" for k, v in rows.items()]
        pairs.append(("rows", ", ".join(shown)))
    continued = summary.get("continued")
    if isinstance(continued, list) and continued:
        pairs.append(("continued", ", ".join(str(step) for step in continued)))
    parts = [facts(pairs)]
    if files.notes:
        parts.append(tag("h3", None, "Not shown"))
        parts.append(tag("ul", {"class": "note"}, *(tag("li", None, n) for n in files.notes)))
    return section("overview", "Overview", *parts)


def _result(summary: dict[str, Any]) -> list[tuple[str, object]]:
    """The main metric on val and test, first in the overview: the result before the facts."""
    main = summary.get("main_metric")
    if not isinstance(main, str):
        return []
    metrics = as_dict(summary.get("metrics"))
    shown = [
        f"{split} {main} {_cell(value)}"
        for split in ("val", "test")
        if (value := as_dict(metrics.get(split)).get(main)) is not None
    ]
    return [("result", tag("strong", None, ", ".join(shown)))] if shown else []


def _has_model(files: RunFiles) -> bool:
    """Whether the run has a model file (read, or there but unreadable: a note says so)."""
    return files.model is not None or any(n.startswith(f"{MODEL_FILE}:") for n in files.notes)


def _command(files: RunFiles) -> list[Safe]:
    summary = files.summary
    command = summary.get("command")
    parts = []
    if isinstance(command, str) and command:
        parts.append(tag("pre", None, tag("code", None, command)))
    else:
        retrain = shlex.join(["mlp", "train", str(files.path / "config.yaml")])
        parts.append(tag("pre", None, tag("code", None, retrain)))
        parts.append(
            note(
                "summary.json records no command (a run of an earlier version, or one started "
                "from Python): this one trains the run again from its config.yaml"
            )
        )
    versions = summary.get("versions")
    if isinstance(versions, dict) and versions:
        parts.append(facts([(str(k), v) for k, v in versions.items()]))
    return parts


# ------------------------------------------------------------------ metrics and curves


def _cell(value: object, places: int = 4) -> str:
    number_ = as_number(value)
    return "-" if number_ is None else number(number_, places)


def _bold(text: str, main: bool) -> object:
    return tag("strong", None, text) if main else text


def metrics_table(summary: dict[str, Any]) -> Safe:
    """Train, val and test side by side; with summary.json's `baselines`, one column per model
    (the MLP, then each baseline) with its stored numbers and predict time per 1,000 rows, and
    a failed baseline's reason. The main metric's rows are in bold."""
    main = summary.get("main_metric")
    baselines = as_dict(summary.get("baselines"))
    if baselines:
        return _baselines_table(baselines, main)
    metrics = as_dict(summary.get("metrics"))
    splits = [s for s in metrics if as_dict(metrics[s])]
    if not splits:
        return note("summary.json holds no final metrics (the run did not finish scoring)")
    names = list(dict.fromkeys(k for s in splits for k in as_dict(metrics[s])))
    rows = [
        [
            _bold(name, name == main),
            *(_bold(_cell(as_dict(metrics[s]).get(name)), name == main) for s in splits),
        ]
        for name in names
    ]
    return table(["metric", *splits], rows, numeric=[False, *[True] * len(splits)])


def _baselines_table(baselines: dict[str, Any], main: object) -> Safe:
    names = list(baselines)
    labels = {"mlp": "MLP", **{n: entry.label for n, entry in BASELINES.items()}}
    models = [as_dict(baselines[n]) for n in names]
    splits = list(dict.fromkeys(s for m in models for s in as_dict(m.get("metrics"))))
    rows: list[list[object]] = []
    for split in splits:
        keys = list(
            dict.fromkeys(k for m in models for k in as_dict(as_dict(m.get("metrics")).get(split)))
        )
        for key in keys:
            values = [as_dict(as_dict(m.get("metrics")).get(split)).get(key) for m in models]
            rows.append(
                [
                    _bold(f"{split} {key}", key == main),
                    *(_bold(_cell(v), key == main) for v in values),
                ]
            )
    stored = [_int(m.get("stored_numbers")) for m in models]
    rows.append(["stored numbers", *("-" if s is None else f"{s:,}" for s in stored)])
    rows.append(["ms / 1k rows", *(_cell(m.get("predict_ms_per_1k_rows"), 3) for m in models)])
    header = ["metric", *(labels.get(n, n) for n in names)]
    parts = [table(header, rows, numeric=[False, *[True] * len(names)])]
    for name, model in zip(names, models):
        if "failed" in model:
            parts.append(note(f"the {labels.get(name, name)} failed: {model['failed']}"))
    return join(parts)


def _figure(files: RunFiles, name: str, caption: object) -> Safe:
    data = files.figures[name]
    width, height = png_size(data) or (None, None)
    return tag(
        "figure",
        None,
        image(data, "png", f"{name} of run {files.name}", width, height),
        tag("figcaption", None, join([tag("code", None, name), ": ", caption])),
    )


def curves(files: RunFiles) -> Safe:
    """plots/loss.png when the run has it, else charts drawn from metrics.csv (train and val
    loss, and the main metric); the learning-rate range test's figure and numbers when there."""
    parts: list[Safe] = []
    if LOSS_FIGURE in files.figures:
        parts.append(_figure(files, LOSS_FIGURE, CAPTIONS[LOSS_FIGURE]))
    elif files.metrics:
        parts.append(svg_curves(files.metrics, files.summary.get("main_metric"), name=files.name))
    else:
        parts.append(note("no plots/loss.png and no metrics.csv rows to draw the curves from"))
    if LR_FIND_FIGURE in files.figures:
        parts.append(_figure(files, LR_FIND_FIGURE, CAPTIONS[LR_FIND_FIGURE]))
    found = as_dict(files.summary.get("lr_find"))
    if found:
        pairs = [(k.replace("_", " "), _shown(v)) for k, v in found.items()]
        parts.append(facts(pairs))
    return join(parts)


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def svg_curves(
    metrics_rows: list[dict[str, str]],
    main_metric: object,
    width: int = 520,
    height: int = 280,
    name: str = "",
) -> Safe:
    """Small SVG charts from metrics.csv rows, side by side while they fit: train and val
    loss, and the main metric's train and val columns when it is not the loss. `name` (the
    run's or trial's) goes into each image's alt text. A note when there is nothing to draw."""
    columns = list(metrics_rows[0]) if metrics_rows else []
    charts: list[tuple[str, dict[str, list[tuple[float, float]]]]] = []
    losses: dict[str, list[tuple[float, float]]] = {
        c: points
        for c in ("train_loss", "val_loss")
        if c in columns and (points := metric_series(metrics_rows, c))
    }
    if losses:
        charts.append(("loss", losses))
    if isinstance(main_metric, str) and main_metric != "loss":
        wanted = (f"train_{main_metric}", f"val_{main_metric}")
        series = {c: metric_series(metrics_rows, c) for c in wanted if c in columns}
        series = {c: points for c, points in series.items() if points}
        if series:
            charts.append((main_metric, series))
    if not charts:
        return note("metrics.csv has no loss or main-metric values to draw")
    figures = []
    for title, series in charts:
        drawing = svg.line_chart(
            series, title=title, x_label="epoch", y_label=title, width=width, height=height
        )
        alt = f"{title} per epoch of {name}" if name else f"{title} per epoch"
        figures.append(
            tag(
                "figure",
                None,
                image(drawing, "svg", alt, width, height),
                tag("figcaption", None, f"{title} per epoch, from metrics.csv"),
            )
        )
    return tag("div", {"class": "curves"}, *figures)


# ------------------------------------------------------------------ layers and inspect


def network_summary(files: RunFiles) -> dict[str, Any] | str:
    """mlp summary's numbers of the run's network, from its model file's header (no torch);
    or why there are none, in words."""
    from ..insight.summary import summarize_metadata

    if files.model is None:
        return "no model.safetensors (the run saved no model): no layer table"
    if "kernel" in files.model:  # model.kernel.KERNEL_KEY: a sweep's kernel baseline point
        return "a kernel machine (a sweep's kernel baseline point) has no layers of its own"
    rows = _int(as_dict(files.summary.get("rows")).get("train")) or 0
    try:
        return summarize_metadata(files.model, rows)
    except MlpError as exc:
        return f"no layer table: {MODEL_FILE}'s metadata: {exc}"
    except Exception as exc:
        # The header may hold anything (a damaged or hand-edited file). mlp eval checks it
        # against runs.file_schemas first, but that module loads torch, which a page does not:
        # whatever the metadata breaks is a note here, never a traceback.
        return (
            f"no layer table: {MODEL_FILE}'s metadata is not what mlp train writes "
            f"({type(exc).__name__}: {exc})"
        )


def _layers(files: RunFiles) -> Safe:
    """mlp summary's table of the run's network."""
    summary = network_summary(files)
    if isinstance(summary, str):
        return note(summary)
    layers = summary["layers"]
    norms = any(row.get("norm") for row in layers)
    header = ["layer", "width", *(["norm"] if norms else []), "activation", "params"]
    header.append("multiply-adds / row")
    rows: list[list[object]] = [
        [
            row["layer"],
            f"{row['width']:,}",
            *([row.get("norm") or ""] if norms else []),
            row["activation"],
            f"{row['params']:,}",
            f"{row['multiply_adds']:,}",
        ]
        for row in layers
    ]
    blank = [""] * (len(header) - 3)
    rows.append(
        [
            tag("strong", None, "total"),
            *blank,
            f"{summary['params']:,}",
            f"{summary['multiply_adds']:,}",
        ]
    )
    numeric = [c not in ("layer", "norm", "activation") for c in header]
    caption = f"{summary['inputs']} inputs, {summary['task']}"
    parts = [table(header, rows, caption=caption, numeric=numeric)]
    per_row = summary.get("params_per_train_row")
    if per_row is not None:
        parts.append(
            tag(
                "p",
                None,
                f"{per_row:g} parameters per training row ({summary['train_rows']:,} rows)",
            )
        )
    return join(parts)


def _inspect(files: RunFiles) -> Safe:
    """inspect.json's report; without it, the same rules applied to diagnostics.csv's record
    nearest the kept epoch; without either, a note."""
    if files.inspect is not None:
        return _inspect_report(files.inspect)
    if files.diagnostics:
        return _inspect_from_diagnostics(files)
    return note(
        "no inspect.json and no diagnostics.csv: run mlp inspect RUN to diagnose the network"
    )


def _inspect_rows(layers: list[Any]) -> Safe:
    layers = [layer for layer in layers if isinstance(layer, dict)]
    norms = any(layer.get("norm") for layer in layers)
    header = ["layer", "width", *(["norm"] if norms else []), "activation", "params"]
    header += ["grad ratio", "dead", "saturated", "flags"]
    rows = []
    for layer in layers:
        ratio = as_number(layer.get("grad_ratio"))
        flags = layer.get("flags") if isinstance(layer.get("flags"), list) else []
        width, params = _int(layer.get("width")), _int(layer.get("params"))
        rows.append(
            [
                layer.get("layer"),
                "-" if width is None else f"{width:,}",
                *([layer.get("norm") or ""] if norms else []),
                layer.get("activation"),
                "-" if params is None else f"{params:,}",
                "-" if ratio is None else f"{ratio:.2g}",
                _fraction(layer.get("dead")),
                _fraction(layer.get("saturated")),
                tag("span", {"class": "bad"}, ", ".join(map(str, flags))) if flags else "",
            ]
        )
    numeric = [c not in ("norm", "activation", "flags") for c in header]
    return table(header, rows, numeric=numeric)


def _fraction(value: object) -> str:
    shown = as_number(value)
    return "-" if shown is None else f"{shown:.0%}"


def _verdict(verdict: object, flags: object) -> Safe:
    kind = "warn" if isinstance(flags, list) and flags else "ok"
    return tag("p", None, tag("strong", {"class": kind}, verdict))


def _inspect_report(report: dict[str, Any]) -> Safe:
    layers = as_list(report.get("layers"))
    parts = [
        tag(
            "p", None, f"mlp inspect at {report.get('at', '?')} (epoch {report.get('epoch', '?')})"
        ),
        _inspect_rows(layers),
        _verdict(report.get("verdict", ""), report.get("flags")),
    ]
    advice = report.get("advice")
    if isinstance(advice, list) and advice:
        parts.append(tag("ul", None, *(tag("li", None, line) for line in advice)))
    probes = report.get("probes")
    if isinstance(probes, list) and probes:
        parts.append(_probes(probes, report))
    noise = as_dict(report.get("noise_scale"))
    if noise.get("verdict"):
        parts.append(tag("p", None, f"gradient noise scale: {noise['verdict']}"))
    notes = report.get("notes")
    if isinstance(notes, list):
        parts.extend(note(line) for line in notes)
    return join(parts)


def _probes(probes: list[Any], report: dict[str, Any]) -> Safe:
    rows_info = as_dict(report.get("probe_rows"))
    held = str(rows_info.get("held_out", "held-out"))
    probes = [p for p in probes if isinstance(p, dict)]
    metric = str(probes[0].get("metric", "")) if probes else ""
    rows = [
        [
            p.get("layer"),
            p.get("name"),
            _int(p.get("width")),
            _cell(p.get("train")),
            _cell(p.get("val")),
        ]
        for p in probes
    ]
    header = ["layer", "name", "width", f"train {metric}", f"{held} {metric}"]
    parts = [table(header, rows, caption="linear probes", numeric=[True, False, True, True, True])]
    if report.get("probe_verdict"):
        parts.append(tag("p", None, f"linear probes: {report['probe_verdict']}"))
    return join(parts)


def _nearest_record(files: RunFiles) -> int:
    """diagnostics.csv's recorded epoch nearest the kept one (the last recorded without one)."""
    epochs = sorted({row["epoch"] for row in files.diagnostics})
    kept = _int(files.summary.get("saved_epoch"))
    if kept is None:
        return epochs[-1]
    return min(epochs, key=lambda epoch: (abs(epoch - kept), -epoch))


def _inspect_from_diagnostics(files: RunFiles) -> Safe:
    from ..insight.inspection import layer_findings, verdict_text

    epoch = _nearest_record(files)
    stats: dict[int, dict[str, float]] = {}
    for row in files.diagnostics:
        if row["epoch"] == epoch:
            stats.setdefault(row["layer"], {})[row["name"]] = row["value"]
    ordered = [stats[k] for k in sorted(stats) if "grad_rms" in stats[k]]
    rows = _hidden_rows(files, len(ordered))
    layers, flags = layer_findings(ordered, rows)
    if files.model is None:
        for layer in layers:
            layer["params"] = None  # counted from the model file, which the run lacks
    if epoch == 0:
        # The untrained network's record says nothing of how training went: no verdict.
        return join(
            [
                tag(
                    "p",
                    None,
                    "from diagnostics.csv at epoch 0 (the record nearest the kept epoch): at "
                    "initialisation, before training, so no verdict on the trained network",
                ),
                _inspect_rows(layers),
            ]
        )
    return join(
        [
            tag(
                "p",
                None,
                f"from diagnostics.csv at epoch {epoch}; mlp inspect {files.path} checks the "
                f"weights themselves",
            ),
            _inspect_rows(layers),
            _verdict(verdict_text(layers, flags), flags),
        ]
    )


def _hidden_rows(files: RunFiles, count: int) -> list[Any]:
    """The hidden layers as mlp summary counts them (from the model file), else as far as
    config.yaml tells (widths and activations; parameters unknown)."""
    from ..model.layers import LayerRow

    summary = network_summary(files)
    if not isinstance(summary, str):
        return [LayerRow(**layer) for layer in summary["layers"][:-1]][:count]
    model = as_dict(as_dict(files.config).get("model"))
    hidden = as_list(model.get("hidden"))
    activation = model.get("activation")
    name = activation if isinstance(activation, str) else "?"
    norm = model.get("norm") if isinstance(model.get("norm"), str) else None
    return [
        LayerRow(str(k), _int(hidden[k - 1]) or 0 if k <= len(hidden) else 0, name, 0, 0, norm)
        for k in range(1, count + 1)
    ]


# ------------------------------------------------------------------ figures, data, config


def _figures(files: RunFiles) -> Safe:
    shown = [n for n in files.figures if n not in (LOSS_FIGURE, LR_FIND_FIGURE)]
    if not shown:
        return note(
            "no figures besides the curves: mlp inspect RUN draws gradients and units, "
            "mlp plot RUN --boundary --detectors what the network learned"
        )
    return join(_figure(files, name, CAPTIONS.get(name, name)) for name in shown)


def _data(files: RunFiles) -> Safe:
    data = as_dict(as_dict(files.config).get("data"))
    pairs: list[tuple[str, object]] = []
    for key in ("source", "path", "val_path", "test_path", "target", "features", "image_shape"):
        value = data.get(key)
        if value not in (None, "", []):
            pairs.append((key, listed(value)))
    if data.get("stream") is True:
        pairs.append(("stream", "true"))
    prep = as_dict(as_dict(files.model).get("preprocessor"))
    for key, label in (("features", "input columns"), ("targets", "targets")):
        if isinstance(prep.get(key), list):
            pairs.append((label, listed(prep[key])))
    categorical = as_dict(prep.get("categorical"))
    if categorical:
        pairs.append(("categorical", listed(list(categorical))))
    if isinstance(prep.get("labels"), list) and prep["labels"]:
        pairs.append(("class labels", listed(prep["labels"])))
    if not pairs:
        return note("neither config.yaml nor the model file says what data the run read")
    parts = [facts(pairs)]
    if files.model is None:
        parts.append(note("no model.safetensors: its input columns and class labels are unknown"))
    return join(parts)


def _config(files: RunFiles) -> Safe:
    if files.config_text is None:
        return note("no config.yaml")
    lines = len(files.config_text.splitlines())
    return tag(
        "details",
        None,
        tag("summary", None, f"config.yaml, the resolved config ({lines} lines)"),
        tag("pre", None, files.config_text),
    )


# ------------------------------------------------------------------ drawing what is missing


def draw_missing(run_dir: Path, files: RunFiles, data: bool) -> list[str]:
    """Draw into run_dir/plots the figures the run lacks: gradients and units from
    diagnostics.csv; with `data`, the boundary (or curve) for a model of one or two numeric
    inputs and the detectors for an image source, which load the model and read its data.
    Returns notes on what could not be drawn (a read-only folder, data that is gone)."""
    notes: list[str] = []
    names = {row["name"] for row in files.diagnostics}
    lacking = [f for f in (GRADIENTS_FIGURE, UNITS_FIGURE) if f not in files.figures]
    if lacking and names & {"grad_rms", "dead", "saturated"}:
        notes += _draw_history(run_dir, files)
    if data:
        notes += _draw_learned(run_dir, files)
    return notes


def _hidden(files: RunFiles) -> list[int]:
    hidden = as_dict(as_dict(files.config).get("model")).get("hidden")
    if isinstance(hidden, list) and all(_int(h) is not None for h in hidden):
        return hidden
    return [0] * len({row["layer"] for row in files.diagnostics})


def _draw_history(run_dir: Path, files: RunFiles) -> list[str]:
    from ..insight.inspection import draw_history

    kept = _int(files.summary.get("saved_epoch"))
    mark = (kept, f"kept: epoch {kept}") if kept is not None else None
    try:
        draw_history(run_dir, _hidden(files), mark)
    except MlpError as exc:
        return [f"plots/gradients.png and plots/units.png not drawn: {exc}"]
    return []


def _draw_learned(run_dir: Path, files: RunFiles) -> list[str]:
    """The boundary and detectors figures the run qualifies for and lacks."""
    if files.model is None:
        return []  # nothing learned to draw (the layers section says why)
    config = as_dict(files.config)
    data = as_dict(config.get("data"))
    prep = as_dict(files.model.get("preprocessor"))
    hidden = as_dict(config.get("model")).get("hidden")
    has_hidden = isinstance(hidden, list) and bool(hidden)
    numeric = as_dict(prep.get("numeric"))
    features = as_list(prep.get("features"))
    boundary = (
        not {BOUNDARY_FIGURE, CURVE_FIGURE} & set(files.figures)
        and 1 <= len(numeric) <= 2
        and len(features) == len(numeric)
    )
    image = data.get("source") in IMAGE_SHAPES or data.get("image_shape") is not None
    detectors = DETECTORS_FIGURE not in files.figures and image and has_hidden
    if not (boundary or detectors):
        return []
    if data.get("stream") is True:
        return ["the boundary and detectors figures are not drawn for a run that streams its data"]
    from ..insight.figures import plot_run

    notes = []
    for kind, wanted in (("boundary", boundary), ("detectors", detectors)):
        if not wanted:
            continue
        try:
            if kind == "boundary":
                result = plot_run(run_dir, boundary=True, neurons=has_hidden)
            else:
                result = plot_run(run_dir, detectors=True)
        except MlpError as exc:
            notes.append(f"plots/{kind}.png not drawn: {exc}")
            continue
        notes += [f"plots/{kind}.png: {line}" for line in result.notes]
    return notes

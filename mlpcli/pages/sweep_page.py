"""A sweep folder's page: the overview, every trial ranked by the main metric, the per-point
statistics, the sweep's figures, one short section per trial linked from the table, and
sweep.yaml as written.

It is built from the folder's files alone (summary.json, results.csv, sweep.yaml, plots/*.png,
trials/NAME/), so a copied sweep, or one an earlier version made, shows what it holds; what is
missing or damaged is listed on the page under "Not shown". A trial is found by its name under
trials/, never by the path results.csv recorded (that path is the machine's that ran it). Each
trial's curves are small SVGs drawn from its metrics.csv: a few KB where its loss.png would be
tens, so a page of hundreds of trials stays light.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from pathlib import Path
from typing import Any

from ..config.registry import MAXIMISED_METRICS
from ..console import number, settings_text
from ..errors import MlpError
from ..runs.atomic import check_own
from ..runs.folder import SUMMARY_FILE, SWEEP_FILE
from ..runs.reading import (
    CSV_CAP,
    TEXT_CAP,
    Reader,
    RunFiles,
    as_dict,
    as_list,
    as_number,
    listed,
    main_metric_of,
    rank_rows,
    read_run,
)
from .markup import (
    Safe,
    anchor_id,
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
from .run_page import metrics_table, svg_curves

RESULTS_FILE = "results.csv"
# Every trial keeps its section up to this many trials; above, the best TOP_TRIALS and every
# failed or pruned one do, so a sweep of thousands still gives a page a browser opens at once.
ALL_SECTIONS = 500
TOP_TRIALS = 100
MAX_ROWS = 100_000  # results.csv rows read; a larger file is cut, with a note
# The sweep's figures in the order a reader wants them (what it varied, then how it searched),
# each with what it shows (docs/sweeps.md's words). Any other PNG in plots/ follows by name.
SWEEP_CAPTIONS = {
    "plots/vs_depth.png": "Loss and main metric against depth at an equal parameter budget, "
    "one line per budget, its widths in the legend; train solid, validation dashed.",
    "plots/vs_width.png": "Loss and main metric against hidden width: train solid with dots, "
    "validation dashed with open squares, one colour per line.",
    "plots/vs_params.png": "Loss and main metric against the number of parameters.",
    "plots/by_point.png": "Loss and main metric per point, side by side; a point none of whose "
    "trials completed is labelled failed in red.",
    "plots/boundaries.png": "One decision-region panel per point, from its first completed "
    "seed, titled with its settings and validation metric.",
    "plots/parallel.png": "Each trial as a line through one axis per searched key to the "
    "objective, coloured by the objective; pruned trials in grey, at the value they stopped "
    "with.",
    "plots/importance.png": "Each searched key's share of the objective's variance over the "
    "completed trials (Optuna's fANOVA).",
    "plots/intermediate.png": "The objective against epoch for every trial, pruned ones ending "
    "at a cross where they stopped, the best trial marked, ASHA's rungs as dotted lines.",
}
TRIAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
CURVE_WIDTH, CURVE_HEIGHT = 420, 220
CELL_CHARS = 80  # a reason or error in the results table; its section holds the whole text


def sweep_page(sweep_dir: Path) -> tuple[str, list[str]]:
    """The whole document of a sweep folder, and notes on what it could not show."""
    sweep_dir = Path(sweep_dir)
    reader = Reader(sweep_dir)
    summary = reader.json(SUMMARY_FILE) or {}
    rows = _results(reader)
    figures = reader.figures(list(SWEEP_CAPTIONS))
    config_text = reader.text(SWEEP_FILE, TEXT_CAP)
    metric = main_metric_of(summary, rows[0] if rows else ())
    ranked = rank_rows(rows, metric)
    shown = _sections_kept(ranked)
    # Ids from results.csv's order, so a trial keeps its id whatever the ranking; a name that
    # a damaged file repeats gets one section, its first row's.
    trial_ids: dict[str, str] = {}
    for i, row in enumerate(rows):
        if (name := row.get("trial", "")) in shown:
            trial_ids.setdefault(name, anchor_id("t", name, i))

    body = [_results_section(ranked, metric, trial_ids)]
    nav = [("overview", "Overview"), ("results", "Results")]
    points = [p for p in as_list(summary.get("points")) if isinstance(p, dict)]
    if int(as_number(summary.get("seeds")) or 1) > 1 and points:
        body.append(_points_section(points, metric))
        nav.append(("points", "Points"))
    body.append(_figures_section(figures))
    nav.append(("figures", "Figures"))
    trials, done = [], set()
    for row in ranked:
        if (name := row.get("trial", "")) in trial_ids and name not in done:
            done.add(name)
            trials.append(_trial_section(sweep_dir, row, trial_ids[name], metric, reader.notes))
    if trials:
        body.append(tag("div", {"id": "trials"}, tag("h2", None, "Trials"), *trials))
        nav.append(("trials", "Trials"))
    body.append(_config_section(config_text))
    nav.append(("config", "Config"))
    body.insert(0, _overview(sweep_dir, summary, rows, metric, reader.notes))

    name = _text(summary.get("name")) or sweep_dir.name
    heading = join(["sweep ", name, " ", _sweep_status(summary, rows)])
    files_read = list(reader.read)
    if done:
        files_read.append(f"the folders of {len(done)} trials under trials/")
    document = page(f"sweep {name} · mlpcli", heading, nav, body, sweep_dir, files_read)
    return document, reader.notes


# ------------------------------------------------------------------ reading


def _results(reader: Reader) -> list[dict[str, str]]:
    """results.csv's rows as text, at most MAX_ROWS of them."""
    text = reader.text(RESULTS_FILE, CSV_CAP)
    if text is None:
        return []
    # A cell may be a long error message; the csv module's default limit is 128 KiB.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    rows: list[dict[str, str]] = []
    try:
        for i, row in enumerate(csv.DictReader(io.StringIO(text, newline=""))):
            if i == MAX_ROWS:
                reader.notes.append(
                    f"{RESULTS_FILE}: more than {MAX_ROWS:,} rows; the first {MAX_ROWS:,} are shown"
                )
                break
            rows.append({str(k): v if isinstance(v, str) else "" for k, v in row.items()})
    except csv.Error as exc:
        reader.notes.append(f"{RESULTS_FILE}: damaged ({exc}); the page shows the rows before it")
    finally:
        csv.field_size_limit(limit)
    return rows


def _text(value: object) -> str:
    """A JSON value that should be text, or "" for anything else."""
    return value if isinstance(value, str) else ""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sections_kept(ranked: list[dict[str, str]]) -> set[str]:
    """The trials that get a section: all, or above ALL_SECTIONS the best TOP_TRIALS and every
    failed or pruned one (those are the ones a reader looks up)."""
    names = [row.get("trial", "") for row in ranked]
    if len(ranked) <= ALL_SECTIONS:
        return {n for n in names if n}
    kept = {n for n in names[:TOP_TRIALS] if n}
    kept |= {r.get("trial", "") for r in ranked if r.get("status") in ("failed", "pruned")}
    return kept - {""}


def _settings_columns(rows: list[dict[str, str]]) -> list[str]:
    """The swept keys: results.csv's dotted columns (config keys), and a budget's column."""
    columns = list(rows[0]) if rows else []
    return [c for c in columns if "." in c or c == "budget"]


def _counts(summary: dict[str, Any], rows: list[dict[str, str]]) -> dict[str, int]:
    """Trials in all, completed, pruned and failed: summary.json's counts, results.csv's where
    the summary lacks one."""
    statuses = [row.get("status", "") for row in rows]
    found = {"trials": len(rows)}
    found |= {s: statuses.count(s) for s in ("completed", "pruned", "failed")}
    for key in found:
        if (value := _count(summary.get(key))) is not None:
            found[key] = value
    return found


# ------------------------------------------------------------------ words


def _direction(metric: str) -> str:
    return "higher" if metric in MAXIMISED_METRICS else "lower"


def _value(value: Any) -> str:
    """A metric cell as the terminal writes it."""
    number_ = as_number(value)
    if number_ is None:
        return "" if value in (None, "") else str(value)
    return number(number_)


def _setting(value: str) -> str:
    """A swept value for the table: a whole number as written, any other number to 4
    significant digits (its section and the retrain command keep the exact value)."""
    number_ = as_number(value)
    if number_ is None or re.fullmatch(r"[+-]?\d+", value.strip()):
        return value
    return f"{number_:.4g}"


def _whole(value: Any) -> str:
    """A count with thousands separators, as the run page writes parameters."""
    number_ = as_number(value)
    if number_ is None or not number_.is_integer():
        return "" if value in (None, "") else str(value)
    return f"{int(number_):,}"


def _seconds(value: Any) -> str:
    seconds = as_number(value)
    return "" if seconds is None else f"{seconds:.2f}"


def _first_line(text: str) -> object:
    """A reason or error cut to its first line and CELL_CHARS characters; the whole text is
    the cell's tooltip. Its width is kept from shrinking to a few words a line on a phone."""
    if not text:
        return ""
    line = text.strip().split("\n", 1)[0]
    if len(line) > CELL_CHARS:
        line = line[: CELL_CHARS - 1].rstrip() + "…"
    return tag("span", {"class": "reason", "title": None if line == text else text}, line)


def _sweep_status(summary: dict[str, Any], rows: list[dict[str, str]]) -> Safe:
    """summary.json's status as a coloured word; a sweep it calls failed because some trials
    failed, while others completed, reads "completed, N of M trials failed"."""
    status = summary.get("status")
    counts = _counts(summary, rows)
    if status == "failed" and 0 < counts["failed"] < counts["trials"] and counts["completed"]:
        words = f"completed, {counts['failed']} of {counts['trials']} trials failed"
        return tag("span", {"class": "status warn"}, words)
    return status_word(status)


# ------------------------------------------------------------------ sections


def _overview(
    sweep_dir: Path,
    summary: dict[str, Any],
    rows: list[dict[str, str]],
    metric: str,
    notes: list[str],
) -> Safe:
    pairs: list[tuple[str, object]] = [("status", _sweep_status(summary, rows))]
    pairs.append(("main metric", f"{metric} ({_direction(metric)} is better)"))
    counts = _counts(summary, rows)
    shown = [f"{counts['trials']} trials", f"{counts['completed']} completed"]
    search = as_dict(summary.get("search"))
    if search or counts["pruned"]:
        shown.append(f"{counts['pruned']} pruned")
    shown.append(f"{counts['failed']} failed")
    pairs.append(("trials", ", ".join(shown)))
    for key, label in (("seeds", "seeds per point"), ("workers", "workers")):
        if (value := _count(summary.get(key))) is not None:
            pairs.append((label, value))
    if (seconds := as_number(summary.get("seconds"))) is not None:
        pairs.append(("seconds", f"{seconds:.1f}"))
    if search:
        kind = f"{_text(search.get('kind')) or '?'} search"
        if _text(search.get("prune")) not in ("", "none"):
            kind += f", pruned by {search['prune']}"
        pairs.append(("search", kind))
        space = as_dict(search.get("space"))
        if space:
            pairs.append(("space", join((f"{k}={v}" for k, v in space.items()), "  ")))
        ran = as_number(summary.get("epochs"))
        full = as_number(summary.get("epochs_without_pruning"))
        if ran is not None and full:
            pairs.append(("epochs", f"{ran:.0f} of {full:.0f} ({100 * ran / full:.0f}%)"))
    else:
        varied = {**as_dict(summary.get("grid")), **as_dict(summary.get("zip"))}
        if varied:
            pairs.append(("grid", join((f"{k}: {listed(v)}" for k, v in varied.items()), "  ·  ")))
    if command := _text(summary.get("command")):
        pairs.append(("command", tag("code", None, command)))
    pairs += _best_facts(sweep_dir, summary, metric)
    parts = [facts(pairs)]
    if notes:
        parts.append(tag("h3", None, "Not shown"))
        parts.append(tag("ul", {"class": "note"}, *(tag("li", None, n) for n in notes)))
    return section("overview", "Overview", *parts)


def _best_facts(sweep_dir: Path, summary: dict[str, Any], metric: str) -> list[tuple[str, object]]:
    """The best trial (a search) or point (a grid), its settings and the command that trains
    it again, as `mlp sweep` prints them."""
    best = as_dict(summary.get("best"))
    if not best:
        return [("best", "none: no trial completed")]
    settings = as_dict(best.get("settings"))
    mean = as_number(best.get(f"val_{metric}_mean"))
    std = as_number(best.get(f"val_{metric}_std"))
    seeds = int(as_number(best.get("completed")) or 0)
    score = f"val {metric} {number(mean)}" if mean is not None else ""
    if mean is not None and std and seeds > 1:
        score += f" ± {number(std)} over {seeds} seeds"
    config = str(sweep_dir / SWEEP_FILE)
    if "search" in summary:
        who = _text(summary.get("best_trial"))
        command = f"{shlex.join(['mlp', 'train', config])} {_text(summary.get('overrides'))}"
    else:
        who = f"point {best.get('point', '?')}"
        command = shlex.join(["mlp", "train", config, *(f"{k}={v}" for k, v in settings.items())])
    return [
        ("best", f"{who}: {settings_text(settings)}" + (f" · {score}" if score else "")),
        ("trains it again", tag("code", None, command.strip())),
    ]


def _results_section(
    ranked: list[dict[str, str]],
    metric: str,
    trial_ids: dict[str, str],
) -> Safe:
    keys = _settings_columns(ranked)
    has_epochs = any("epochs" in row for row in ranked[:1])
    # The status and the value first: on a phone they are what the first screen shows.
    header = ["#", "trial", "status", f"val {metric}", *keys, f"test {metric}", "params"]
    header += ["epochs" if has_epochs else "best epoch", "seconds", "reason or error"]
    numeric = [True, False, False, True, *[False] * len(keys), True, True, True, True, False]
    body = []
    for rank, row in enumerate(ranked, 1):
        name = row.get("trial", "")
        cell: object = name
        if name in trial_ids:
            cell = tag("a", {"href": f"#{trial_ids[name]}"}, name)
        cell = tag("span", {"class": "nowrap"}, cell)
        if row.get("baseline"):
            cell = join([cell, " ", tag("span", {"class": "note"}, f"baseline: {row['baseline']}")])
        status = row.get("status", "")
        words = status
        if status == "pruned" and row.get("pruned_at"):
            words = f"pruned at epoch {row['pruned_at']}"
        body.append(
            [
                rank,
                cell,
                status_word(status, words),
                tag("span", {"class": "main"}, _value(row.get(f"val_{metric}"))),
                *(_setting(row.get(k, "")) for k in keys),
                _value(row.get(f"test_{metric}")),
                _whole(row.get("params")),
                row.get("epochs" if has_epochs else "best_epoch", ""),
                _seconds(row.get("seconds")),
                _first_line(row.get("error") or row.get("reason") or ""),
            ]
        )
    children: list[object] = [
        tag(
            "p",
            None,
            f"Ranked by val {metric}, {_direction(metric)} first; failed trials last. "
            "A trial's name leads to its section.",
        ),
        table(header, body, numeric=numeric) if body else note("results.csv holds no trials."),
    ]
    total = len(ranked)
    left = sum(row.get("trial", "") not in trial_ids for row in ranked)
    if total > ALL_SECTIONS and left:
        children.append(
            note(
                f"{left} of {total} trials have no section below: the page keeps one for the "
                f"best {TOP_TRIALS} and for every failed or pruned trial."
            )
        )
    return section("results", "Results", *children)


def _points_section(points: list[dict[str, Any]], metric: str) -> Safe:
    keys = list(dict.fromkeys(k for p in points for k in as_dict(p.get("settings"))))
    columns = [f"{s}_{metric}" for s in ("train", "val", "test")] + ["val_loss"]
    header = ["point", *keys, "seeds done", "params", *(c.replace("_", " ") for c in columns)]
    body = []
    for p in points:
        settings = as_dict(p.get("settings"))
        cells = [_mean_std(p, c) for c in columns]
        done = f"{p.get('completed', '?')} of {p.get('trials', '?')}"
        body.append([p.get("point", ""), *(settings.get(k, "") for k in keys), done,
                     _whole(p.get("params")), *cells])  # fmt: skip
    numeric = [True, *[False] * len(keys), True, True, *[True] * len(columns)]
    return section(
        "points",
        "Points",
        tag("p", None, "Each point's mean ± standard deviation over its completed seeds."),
        table(header, body, numeric=numeric),
    )


def _mean_std(point: dict[str, Any], column: str) -> str:
    mean = as_number(point.get(f"{column}_mean"))
    std = as_number(point.get(f"{column}_std"))
    if mean is None:
        return ""
    return f"{number(mean)} ± {number(std or 0.0)}"


def _caption(name: str) -> str:
    if name in SWEEP_CAPTIONS:
        return SWEEP_CAPTIONS[name]
    stem = name.removeprefix("plots/").removesuffix(".png")
    if stem.startswith("vs_"):  # a grid key's figure: vs_optim.lr.png
        key = stem[3:]
        return f"Loss and main metric against {key}, one line per combination of the other keys."
    return "A figure in the sweep's plots/ folder."


def _figures_section(figures: dict[str, bytes]) -> Safe:
    shown = []
    for name, data in figures.items():
        width, height = png_size(data) or (None, None)
        caption = join([tag("code", None, name), ": ", _caption(name)])
        shown.append(
            tag(
                "figure",
                None,
                image(data, "png", name, width, height),
                tag("figcaption", None, caption),
            )
        )
    if not shown:
        return section("figures", "Figures", note("The sweep folder has no figures."))
    return section("figures", "Figures", *shown)


def _trial_section(
    sweep_dir: Path, row: dict[str, str], id_: str, metric: str, notes: list[str]
) -> Safe:
    name = row.get("trial", "")
    status = row.get("status", "")
    heading = join([tag("span", {"class": "nowrap"}, name), " ", status_word(status)])
    keys = _settings_columns([row])
    pairs: list[tuple[str, object]] = []
    settings = " ".join(f"{k}={row[k]}" for k in keys if row.get(k, "") != "")
    pairs.append(("settings", settings or "(base)"))
    if row.get("baseline"):
        pairs.append(("baseline", row["baseline"]))
    if row.get("seed", "") != "":
        pairs.append(("seed", row["seed"]))
    if status == "pruned":
        pairs.append(("pruned", row.get("reason") or f"at epoch {row.get('pruned_at', '?')}"))
    if row.get("error"):
        pairs.append(("error", tag("span", {"class": "error"}, row["error"])))
    children: list[object] = [facts(pairs)]
    files = _trial_files(sweep_dir, name, notes)
    if files is not None:
        if as_dict(files.summary.get("metrics")):
            children.append(metrics_table(files.summary))
        children.append(_trial_curves(files, metric))
        if files.notes:
            children.append(
                tag("ul", {"class": "note"}, *(tag("li", None, n) for n in files.notes))
            )
    children.append(tag("p", None, tag("a", {"href": "#results"}, "back to results")))
    return tag("section", {"id": id_}, tag("h3", None, heading), *children)


def _trial_files(sweep_dir: Path, name: str, notes: list[str]) -> RunFiles | None:
    if not TRIAL_NAME.fullmatch(name) or name.strip(".") == "":
        notes.append(f"{RESULTS_FILE}: trial name {name!r} is not a folder name; not read")
        return None
    folder = sweep_dir / "trials" / name
    try:
        check_own(folder, "folder")  # never a link to a folder elsewhere
        if not folder.is_dir():
            notes.append(f"trials/{name}: missing; its section shows {RESULTS_FILE}'s row only")
            return None
        return read_run(folder)
    except MlpError as exc:
        notes.append(f"trials/{name}: not read ({exc})")
        return None


def _trial_curves(files: RunFiles, metric: str) -> Safe:
    """The trial's loss and main metric by epoch as small SVGs, or why there are none."""
    if not files.metrics:
        if "metrics.csv" in files.read:
            return note("No epoch finished: metrics.csv has no rows to draw.")
        return note("No curves: the trial has no readable metrics.csv.")
    return svg_curves(files.metrics, metric, CURVE_WIDTH, CURVE_HEIGHT, name=files.name)


def _config_section(text: str | None) -> Safe:
    if text is None:
        return section("config", "Config", note(f"{SWEEP_FILE} could not be read."))
    return section(
        "config",
        "Config",
        tag("p", None, f"{SWEEP_FILE}: the base config and its sweep section, as the sweep ran."),
        tag("pre", None, tag("code", None, text)),
    )

"""`mlp report`: which kind of folder a target is, the figures it lacks drawn, its page written.

The page is built from the folder's files alone, so a run made by an earlier version or copied
from another machine gets one too; what a folder lacks is a note on the page, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import RunError, WriteError
from ..runs.atomic import write_text_atomic
from ..runs.folder import (
    CONFIG_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    SWEEP_FILE,
    check_run_folder,
    check_sweep_folder,
)

Draw = Literal["all", "cheap", "none"]
DRAWS: tuple[Draw, ...] = ("all", "cheap", "none")
PAGE_SUFFIXES = (".html", ".htm")


@dataclass
class Report:
    """A page written: where, of what kind of folder, its size, and what it could not show."""

    path: Path
    kind: Literal["run", "sweep"]
    bytes: int
    notes: list[str] = field(default_factory=list)


def folder_kind(target: Path) -> Literal["run", "sweep"]:
    """ "sweep" for a folder with sweep.yaml, "run" for one with config.yaml or summary.json
    (a link under either name counts, to be refused by name); RunError otherwise."""
    if not target.exists():
        raise RunError(f"{target}: no such folder; give a run folder or a sweep folder")
    if not target.is_dir():
        raise RunError(f"{target}: not a folder; give a run folder or a sweep folder")
    if (target / SWEEP_FILE).exists() or (target / SWEEP_FILE).is_symlink():
        return "sweep"
    for name in (CONFIG_FILE, SUMMARY_FILE):
        if (target / name).exists() or (target / name).is_symlink():
            return "run"
    raise RunError(
        f"{target}: neither a run folder (it has no {CONFIG_FILE} or {SUMMARY_FILE}) nor a "
        f"sweep folder (no {SWEEP_FILE})"
    )


def _output(target: Path, output: str | Path | None) -> Path:
    if output is None:
        return target / REPORT_FILE
    path = Path(output)
    if path.is_dir():
        raise RunError(f"-o {path}: is a folder; give the page's file name, e.g. {path}/page.html")
    if path.suffix.lower() not in PAGE_SUFFIXES:
        raise RunError(f"-o {path}: the page is an HTML file; give a name ending in .html")
    return path


def _plots(run_dir: Path) -> set[tuple[str, int]]:
    """The figures a run folder holds (name, modification time), to tell whether any was drawn."""
    plots = run_dir / "plots"
    if not plots.is_dir() or plots.is_symlink():
        return set()
    return {(p.name, p.stat().st_mtime_ns) for p in plots.glob("*.png") if p.is_file()}


def write_report(
    target: str | Path, output: str | Path | None = None, draw: Draw = "all"
) -> Report:
    """Write the page of a run folder or a sweep folder: to `output`, or TARGET/report.html.

    draw: "all" draws the figures a run lacks that its files and its data allow (boundary and
    detectors read the data), "cheap" only those its diagnostics allow, "none" nothing. Drawn
    figures go into the run's plots/, where the next page (and `mlp plot`) finds them.
    """
    if draw not in DRAWS:
        raise ValueError(f"draw={draw!r}: one of {', '.join(DRAWS)}")
    target = Path(target)
    kind = folder_kind(target)
    path = _output(target, output)
    if kind == "sweep":
        check_sweep_folder(target)
        from .sweep_page import sweep_page

        text, notes = sweep_page(target)
    else:
        check_run_folder(target)
        from ..runs.reading import read_run
        from .run_page import draw_missing, run_page

        files = read_run(target)
        drawn: list[str] = []
        if draw != "none":
            before = _plots(target)
            drawn = draw_missing(target, files, data=draw == "all")
            if _plots(target) != before:
                files = read_run(target)
        text = run_page(files)
        notes = [*files.notes, *drawn]
    try:
        write_text_atomic(path, text)
    except WriteError as exc:
        if output is None:  # a read-only or shared folder: the page can still go elsewhere
            raise WriteError(f"{exc}; or write the page elsewhere with -o FILE.html") from None
        raise
    return Report(path, kind, len(text.encode("utf-8")), notes)

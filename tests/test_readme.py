"""The README's commands run as written, in order, in a fresh folder that holds only configs/.

Each bash block of a section runs as one `bash -e` script and each python block with the
environment's Python, in the order the README gives them; any command that fails fails the test.
The set-up block installs packages and the test command runs this suite, so they are not run
here. The pages of docs/ are run by test_docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from test_docs import RUNNABLE, blocks, fresh_clone, run_blocks

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text under `## title`, up to the next second-level heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    return fresh_clone(tmp_path)


def run_section(title: str, folder: Path) -> None:
    """Run every bash and python block of the section in `folder`, in order."""
    runnable = [b for b in blocks(section(title)) if b.language in RUNNABLE]
    assert runnable, f"README.md's '{title}' section has no bash or python block"
    run_blocks(f"README '{title}'", runnable, folder)


@pytest.mark.slow
def test_the_first_session_runs_as_written(clone):
    run_section("A first session", clone)
    narrow = clone / "runs" / "moons-narrow"
    assert (narrow / "model.safetensors").is_file()
    predictions = pd.read_csv(clone / "predictions.csv")
    assert list(predictions.columns) == ["x1", "x2", "y", "proba_0", "proba_1"]
    assert len(predictions) == 5
    sweeps = sorted(p.name for p in (clone / "runs").glob("*-sweep-*"))
    assert [name.split("-sweep-")[0] for name in sweeps] == ["moons", "overfit"]


@pytest.mark.slow
def test_the_insight_example_runs_as_written(clone):
    run_section("What the network learned", clone)
    assert (clone / "runs" / "vanishing" / "plots" / "gradients.png").is_file()


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    lines = len(README.splitlines())
    assert lines <= 300, f"README.md has {lines} lines; the reference belongs in docs/"


def test_ci_runs_the_readme_test_command_and_it_selects_every_test(request):
    """The quick loop is `-m "not slow"` on the command line; nothing deselects slow tests for CI."""
    command = 'pip install -e ".[dev]" && python -m pytest'
    assert f"```bash\n{command}\n```" in README
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci
    assert not any(arg.startswith("-m") for arg in request.config.getini("addopts"))

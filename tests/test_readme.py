"""The README's commands run as written, in order, in a fresh folder that holds only configs/.

Each bash block of a section runs as one `bash -e` script and each python block with the
environment's Python, in the order the README gives them; any command that fails fails the test.
The set-up and Development blocks install packages or run this suite, so they are not run here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The text under `## title`, up to the next second-level heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def code_blocks(title: str) -> list[tuple[str, str]]:
    """(language, code) of the section's bash and python blocks, in order."""
    blocks = BLOCK.findall(section(title))
    assert blocks, f"README.md's '{title}' section has no bash or python block"
    return blocks


def run_section(title: str, folder: Path) -> None:
    """Run every block of the section in `folder`, with `mlp` and `python` from this environment."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for language, code in code_blocks(title):
        command = ["bash", "-e", "-x", "-c", code] if language == "bash" else [sys.executable]
        done = subprocess.run(
            command,
            input=code if language == "python" else None,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"README '{title}', {language} block failed with exit code {done.returncode}:\n"
            f"{code}\n--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
        )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder shaped like a fresh clone as far as the commands see it: configs/ and nothing else."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    return tmp_path


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
def test_the_sweep_examples_run_as_written(clone):
    run_section("Sweeps", clone)
    assert (clone / "runs" / "widths" / "results.csv").is_file()


def test_ci_runs_the_readme_test_command_and_it_selects_every_test(request):
    """The quick loop is `-m "not slow"` on the command line; nothing deselects slow tests for CI."""
    command = 'pip install -e ".[dev]" && python -m pytest'
    assert f"```bash\n{command}\n```" in README
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci
    assert not any(arg.startswith("-m") for arg in request.config.getini("addopts"))

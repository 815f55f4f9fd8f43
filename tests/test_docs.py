"""The pages in docs/ run as written, and their links and the README's lead somewhere.

Each page's bash and python blocks run in order, in a fresh folder that holds only a copy of
configs/: a bash block as one `bash -e` script, a python block with this environment's Python.
A block preceded by `<!-- not run: REASON -->` (one that installs packages, starts a cluster or a
server, needs a GPU, or runs this suite) is skipped; every other block must succeed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NETNS, netns_works

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
RUNNABLE = ("bash", "python")

# A fence at any indentation (a block inside a list item is indented), closed at the same one.
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[^\n`]*)\n(?P<code>.*?)^(?P=indent)``` *$", re.M | re.S
)
# The marker, as the last thing before a fence: nothing but blank space between the two.
NOT_RUN = re.compile(r"<!--\s*not run:(?P<reason>(?:(?!-->).)*)-->\s*\Z", re.S)
NOT_RUN_ANYWHERE = re.compile(r"<!--\s*not run:", re.S)


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    not_run: str | None  # the marker's reason; None for a block that runs


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order, with the not-run marker before it."""
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        code = "".join(line[indent:] for line in match["code"].splitlines(keepends=True))
        marker = NOT_RUN.search(text, 0, match.start())
        line = text.count("\n", 0, match.start()) + 1
        reason = marker["reason"].strip() if marker else None
        found.append(Block(match["lang"].strip(), code, line, reason))
    return found


def run_blocks(where: str, runnable: list[Block], folder: Path, wrap: tuple[str, ...] = ()) -> None:
    """Run the blocks in `folder`, in order, with `mlp` and `python` from this environment.

    `wrap` is a command prefix every block runs under (a network namespace, say).
    """
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # torch.distributed's gloo on 127.0.0.1
    for block in runnable:
        bash = block.language == "bash"
        command = ["bash", "-e", "-x", "-c", block.code] if bash else [sys.executable]
        done = subprocess.run(
            [*wrap, *command],
            input=None if bash else block.code,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"{where}, {block.language} block at line {block.line} failed with exit code "
            f"{done.returncode}:\n{block.code}\n--- stdout ---\n{done.stdout[-3000:]}\n"
            f"--- stderr ---\n{done.stderr[-3000:]}"
        )


def fresh_clone(folder: Path) -> Path:
    """`folder` shaped like a fresh clone as far as the commands see it: configs/ and nothing else."""
    shutil.copytree(ROOT / "configs", folder / "configs")
    return folder


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    return fresh_clone(tmp_path)


def runnable_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page.read_text()) if b.language in RUNNABLE and b.not_run is None]


# torch's rendezvous store (a TCPStore) listens on every interface, so the pages that launch
# torchrun run in a network namespace of their own whose only interface is the loopback.
LOOPBACK_ONLY_PAGES = {"scaling.md"}


# What each page's commands leave behind, beyond their exit codes.
EXPECTED_FILES = {
    "runs.md": ["runs/moons-short/model.safetensors"],
    "sweeps.md": [
        "runs/widths/results.csv",
        "runs/widths/plots/vs_width.png",
        "runs/search/search.journal",
        "runs/search/plots/parallel.png",
        "runs/again/model.safetensors",
    ],
    "insight.md": [
        "runs/vanishing/plots/gradients.png",
        "runs/vanishing-fixed/inspect.json",
        "runs/xor-mlp/plots/boundary.png",
        "runs/widths/plots/boundaries.png",
        "runs/digits16/plots/detectors.png",
    ],
    "export.md": ["runs/moons/model.onnx", "runs/moons/model.onnx.json", "moons.onnx"],
    "streaming.md": [
        "runs/events/model.safetensors",
        "runs/events/plots/gradients.png",
        "predictions.parquet",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_page_s_commands_run_as_written(page, clone):
    wrap: tuple[str, ...] = ()
    if page.name in LOOPBACK_ONLY_PAGES:
        if not netns_works():
            pytest.skip("needs unshare and ip to keep torch's rendezvous store off the network")
        wrap = NETNS
    run_blocks(f"docs/{page.name}", runnable_blocks(page), clone, wrap)
    for name in EXPECTED_FILES.get(page.name, []):
        assert (clone / name).is_file(), f"docs/{page.name}'s commands wrote no {name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_block_left_out_says_why_and_every_marker_precedes_a_block(page):
    text = page.read_text()
    marked = [b for b in blocks(text) if b.not_run is not None]
    for block in marked:
        assert block.not_run, f"docs/{page.name}: the block at line {block.line} gives no reason"
    markers = len(NOT_RUN_ANYWHERE.findall(INLINE_CODE.sub("", without_code(text))))
    assert markers == len(marked), (
        f"docs/{page.name}: {markers - len(marked)} `<!-- not run: ... -->` marker(s) not "
        "directly before a fenced block"
    )


def test_the_parser_finds_markers_and_indented_blocks():
    text = (
        "<!-- not run: installs packages -->\n```bash\npip install x\n```\n\n"
        "- a list item:\n  ```python\n  print(1)\n  ```\n"
        "<!-- not run: -->\n\n```bash\nls\n```\n"
        "<!-- not run: a -->\ntext between\n```bash\necho\n```\n"
    )
    found = blocks(text)
    assert [(b.language, b.code, b.not_run) for b in found] == [
        ("bash", "pip install x\n", "installs packages"),
        ("python", "print(1)\n", None),
        ("bash", "ls\n", ""),
        ("bash", "echo\n", None),
    ]
    assert [b.line for b in found] == [2, 7, 12, 17]


# Links: [text](target) and ![alt](target), outside code; targets relative to the page.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*(?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.*?)[ \t]*#*[ \t]*$", re.M)
INLINE_CODE = re.compile(r"(`+)(?P<code>.+?)\1", re.S)


def without_code(text: str) -> str:
    """The text with its fenced blocks blanked: their `#` lines are no headings, their links
    no links. Lines keep their numbers."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(title: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation removed
    (letters, digits, `_`, `-` and spaces stay), each space a `-`."""
    text = re.sub(r"!?\[((?:[^\]\\]|\\.)*)\]\([^)]*\)", r"\1", title)  # a link: its text
    text = INLINE_CODE.sub(lambda m: m["code"], text)
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, a repeated one numbered as GitHub numbers it (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(without_code(page.read_text())):
        base = slug(match["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", without_code(page.read_text()))
    return [m["target"] for m in LINK.finditer(text)]


def test_github_anchors_are_made_as_github_makes_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Config (YAML)\n## `mlp inspect`\n## Sweeps on a Ray cluster\n### --boundary\n"
        "## Safety\n## Safety\n```bash\n# not a heading\n```\n## Overrides, seeds and names\n"
    )
    assert anchors(page) == {
        "config-yaml",
        "mlp-inspect",
        "sweeps-on-a-ray-cluster",
        "--boundary",
        "safety",
        "safety-1",
        "overrides-seeds-and-names",
    }


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The page's relative links whose file, or whose anchor in that file, does not exist."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no file {file.relative_to(root)}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading of {file.relative_to(root)} has this anchor")
    return broken


def test_a_missing_file_or_anchor_is_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n## Two words\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#two-words) [ok](#top) [web](https://example.org/x#y)\n# Top\n"
        "[gone](docs/b.md) [no anchor](docs/a.md#three) `[code](docs/c.md)`\n"
        "```\n[fenced](docs/d.md)\n```\n![image](../outside.png)\n"
    )
    assert broken_links(page, tmp_path) == [
        "docs/b.md: no file docs/b.md",
        "docs/a.md#three: no heading of docs/a.md has this anchor",
        "../outside.png: outside the repository",
    ]


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *PAGES],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_relative_link_and_anchor_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_index_and_the_readme_link_every_page():
    pages = {p.name for p in PAGES} - {"README.md"}
    assert set(links(DOCS / "README.md")) >= pages, "docs/README.md misses a page"
    from_readme = {t.removeprefix("docs/") for t in links(ROOT / "README.md")}
    assert from_readme >= pages, "README.md misses a page of docs/"

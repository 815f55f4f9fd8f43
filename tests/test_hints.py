"""Every `--option` a command's messages name is one that command accepts.

A hint is written once in a library function and shown by whichever commands reach it, so a
helper shared by several commands can name an option only some of them take ("pass the
labelled rows with --data" reached `mlp inspect` and `mlp plot` before they had --data). The
commands run here in one process, on their usual paths and on a run whose data file has changed
or gone, and two things are checked against the options typer registered for each command:
what they printed, and every string literal of every mlpcli function they executed (a message
in a function that runs is one it can raise). An option after `mlp CMD` in a message is CMD's;
one inside backticks that quote another program (`ray start --head`) is that program's.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import mlpcli
from mlpcli.cli import app

PACKAGE = Path(mlpcli.__file__).parent
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
TICKED = re.compile(r"`([^`]*)`")
runner = CliRunner()


def accepted_options() -> dict[str, set[str]]:
    """Command name ('eval', 'config show') -> the options typer registered for it."""
    group = typer.main.get_command(app)
    common = {"--help", *(o for p in group.params for o in [*p.opts, *p.secondary_opts])}
    found: dict[str, set[str]] = {}

    def walk(command: Any, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            if getattr(sub, "commands", None):
                walk(sub, f"{prefix}{name} ")
            else:
                options = {o for p in sub.params for o in [*p.opts, *p.secondary_opts]}
                found[f"{prefix}{name}"] = common | {o for o in options if o.startswith("--")}

    walk(group, "")
    return found


ACCEPTED = accepted_options()
NAMED = re.compile(
    r"\bmlp\s+(" + "|".join(sorted(map(re.escape, ACCEPTED), key=len, reverse=True)) + r")\b"
)


def options_by_command(text: str, command: str) -> Iterator[tuple[str, str]]:
    """(command, option) for each option a message names: after `mlp CMD`, CMD's; inside
    backticks that quote another program, none; otherwise the running command's."""
    for i, part in enumerate(TICKED.split(text)):
        quoted = i % 2 == 1
        if quoted and not part.lstrip().startswith("mlp "):
            continue  # `ray start --head`: another program's options
        owner, start = command, 0
        for mention in [*NAMED.finditer(part), None]:
            stop = mention.start() if mention else len(part)
            for option in OPTION.findall(part[start:stop]):
                yield owner, option
            if mention:
                owner, start = mention.group(1), mention.end()


# ---------------------------------------------------------------- the string literals of mlpcli


def literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):  # an f-string: its fields as {}
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    assert isinstance(node, ast.Constant) and isinstance(node.value, str)
    return node.value


def literals(nodes: list[ast.AST]) -> list[str]:
    """The strings in these nodes, f-strings whole, leaving out documentation (a string on its
    own line) and nested functions and classes (which are code of their own)."""
    found: list[str] = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr)):
            continue
        if isinstance(node, ast.JoinedStr) or (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
        ):
            found.append(literal_text(node))
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def module_strings(path: Path) -> dict[int, tuple[str, list[str]]]:
    """A module's functions, by the first line of their code (a decorator's, if any): their
    qualified name and their strings, with those of their default values and of the module's
    constants they read (EXECUTORS = {...} in a message)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {
        target.id: literals([node.value])
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    functions: dict[int, tuple[str, list[str]]] = {}
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            read = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            used = [text for name in sorted(read & set(constants)) for text in constants[name]]
            functions[first] = (f"{prefix}{node.name}", [*literals([*defaults, *node.body]), *used])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            prefix = f"{prefix}{node.name}."
        stack.extend((prefix, child) for child in ast.iter_child_nodes(node))
    return functions


STRINGS = {path: module_strings(path) for path in PACKAGE.rglob("*.py")}

# Where a function a command runs names an option the command lacks, yet the command cannot meet
# that message: (command, module:function) -> why. Each entry must still be needed.
UNREACHABLE = {
    ("sweep", "insight/boundary.py:choose_features"): "a sweep's panels take the default features; "
    "its --features messages answer features given to mlp plot",
    (
        "sweep",
        "training/run.py:_run",
    ): "a trial trains in one process; the resume hint's --nproc is that of mlp train --nproc N",
    ("plot", "sweeps/baseline.py:check_baseline_key"): "the plan.yaml of a sweep folder was "
    "checked when mlp sweep wrote it",
}


# ---------------------------------------------------------------- the commands, traced


class Tracer:
    """The mlpcli functions a block of code runs, in every thread (sys.settrace)."""

    def __init__(self) -> None:
        self.codes: set[CodeType] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if code.co_filename.startswith(str(PACKAGE)) and not code.co_name.startswith("<"):
            self.codes.add(code)
        return None  # no line events: only each call's first

    def __enter__(self) -> Tracer:
        self.previous = sys.gettrace()
        threading.settrace(self)
        sys.settrace(self)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)
        threading.settrace(self.previous)

    def strings(self) -> Iterator[tuple[str, str]]:
        """(module:function, string) for the string literals of every function run."""
        for code in self.codes:
            path = Path(code.co_filename)
            name, texts = STRINGS[path].get(code.co_firstlineno, ("", []))
            where = f"{path.relative_to(PACKAGE).as_posix()}:{name}"
            yield from ((where, text) for text in texts)


def table(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = np.where(frame["a"] * frame["b"] > 0, "same", "other")
    return frame


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, Tracer]]:
    """(command, what it printed, the functions it ran) for every command, on the usual paths
    and on the refusals a run whose data file changed or went away meets."""
    root = tmp_path_factory.mktemp("hints")
    table().to_csv(root / "data.csv", index=False)
    table(seed=1).to_csv(root / "rows.csv", index=False)
    config = root / "exp.yaml"
    config.write_text(
        f"name: exp\ndata: {{source: csv, path: {root / 'data.csv'}, target: y}}\n"
        "model: {hidden: [4, 4], norm: batch}\ntrain: {epochs: 2, diagnostics: {every: 1}}\n"
    )
    run, runs = root / "runs" / "r", root / "runs"
    found: list[tuple[str, str, Tracer]] = []

    def mlp(*args: Any) -> None:
        with Tracer() as tracer:
            result = runner.invoke(app, [str(a) for a in args])
        assert "Traceback" not in result.output, result.output
        name = " ".join(args[:2]) if args[0] == "config" else args[0]
        found.append((name, result.output, tracer))

    mlp("train", config, "--out", runs, "--name", "r", "-q")
    mlp("train", config, "--out", runs, "--name", "r", "-q")  # exists
    mlp("train", config, "--resume", run, "-q")  # completed
    mlp("config", "show", config)
    mlp("lr-find", config, "--out", runs)
    mlp("lr-find", config, "--out", runs, "--start", "1", "--end", "0.1")  # refused
    mlp("train", config, "optim.lr=auto", "--out", runs, "-q")
    for target in (config, run):
        mlp("summary", target)
    mlp("eval", run)
    mlp("eval", run, "--data", root / "rows.csv")
    mlp("eval", run / "model.safetensors")  # a model file alone
    mlp("eval", config)  # a config where a run belongs
    mlp("predict", run, root / "rows.csv")
    mlp("predict", run, root / "rows.csv", "--proba")
    for at in ("init", "best", "last"):
        mlp("inspect", run, "--at", at)
    mlp("plot", run, "--boundary", "--neurons")
    mlp("plot", run, "--detectors")  # no image shape
    mlp("plot", run / "model.safetensors", "--boundary")
    mlp("export", run)
    mlp("sweep", config, "--hidden", "2", "--workers", "1", "--out", runs, "--name", "s", "-q")
    mlp("plot", runs / "s", "--boundary")
    mlp("plot", runs / "s", "--boundary", "--features", "a,b")  # refused for a sweep folder
    for change in ("changed", "gone"):
        if change == "changed":
            table(seed=2).to_csv(root / "data.csv", index=False)
        else:
            (root / "data.csv").unlink()
        mlp("eval", run)
        mlp("inspect", run)
        mlp("inspect", run, "--data", root / "rows.csv")
        mlp("plot", run, "--boundary")
        mlp("plot", run, "--boundary", "--data", root / "rows.csv")
        mlp("export", run, "-o", root / f"{change}.onnx")
        mlp("summary", config)
        mlp("train", config, "--out", runs, "-q")
    return found


def wrong_options(pairs: Iterator[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(command, option) for command, option in pairs if option not in ACCEPTED[command]}


def test_every_option_a_command_prints_is_one_it_accepts(sessions):
    printed = {(c, o) for name, output, _ in sessions for c, o in options_by_command(output, name)}
    assert ("inspect", "--data") in printed and ("plot", "--data") in printed  # the hints ran
    assert wrong_options(iter(printed)) == set()


def test_every_option_named_in_the_code_a_command_runs_is_one_it_accepts(sessions):
    wrong: dict[tuple[str, str], str] = {}
    for name, _, tracer in sessions:
        for where, text in tracer.strings():
            for command, option in wrong_options(options_by_command(text, name)):
                wrong.setdefault((command, where), f"{option} in {text!r}")
    unexplained = {k: v for k, v in wrong.items() if k not in UNREACHABLE}
    assert unexplained == {}, "\n".join(f"{c} runs {f}: {v}" for (c, f), v in unexplained.items())
    assert set(UNREACHABLE) <= set(wrong), f"no longer needed: {set(UNREACHABLE) - set(wrong)}"


def test_the_trace_sees_the_shared_helpers_each_command_runs(sessions):
    ran: dict[str, set[str]] = {}
    for name, _, tracer in sessions:
        ran.setdefault(name, set()).update(c.co_name for c in tracer.codes)
    for command in ("eval", "inspect", "plot"):
        assert "check_files" in ran[command], command
    assert "with_data_hint" in ran["eval"] and "with_data_hint" in ran["inspect"]
    assert "with_data_hint" not in ran["export"]  # which falls back on other rows instead


@pytest.mark.parametrize(
    ("text", "command", "expected"),
    [
        ("--data: no such file", "eval", {("eval", "--data")}),
        ("continue it with mlp train X --resume X", "plot", {("train", "--resume")}),
        (
            "`mlp inspect R --at last` shows it; or --quiet",
            "train",
            {("inspect", "--at"), ("train", "--quiet")},
        ),
        ("start one with `ray start --head --port 1`", "sweep", set()),
        ("mlp config show C --json", "eval", {("config show", "--json")}),
    ],
)
def test_options_are_read_as_the_commands_they_follow(text, command, expected):
    assert set(options_by_command(text, command)) == expected

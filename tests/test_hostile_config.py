"""Hostile names, configs and overrides: refused with exit 2 and a message naming the rule, before
any folder is made, before memory or the stack is spent, and without echoing what was given whole.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpcli.cli import app
from mlpcli.config.bounded_yaml import MAX_DEPTH, MAX_NODES
from mlpcli.config.schema import MAX_NAME_BYTES, load_config
from mlpcli.errors import ConfigError

runner = CliRunner()

GOOD = "data: {source: moons, n_samples: 120}\nmodel: {hidden: [4]}\ntrain: {epochs: 1}\n"


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def invoke(tmp_path: Path, argv: list[str], config: str = GOOD) -> tuple[int, str]:
    """`mlp ARGV` on c.yaml in tmp_path/a/b with --out tmp_path/a/b/runs, for train and sweep.

    Asserts that nothing was created anywhere under tmp_path but an empty --out folder.
    """
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True, exist_ok=True)
    (work / "c.yaml").write_text(config)
    out = work / "runs"
    before = tree(tmp_path)
    words = 2 if argv[0] == "config" else 1  # `config show` or the command
    command = [*argv[:words], str(work / "c.yaml"), *argv[words:]]
    if argv[0] in ("train", "sweep"):
        command += ["--out", str(out), "-q"]
    result = runner.invoke(app, command)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    made = tree(tmp_path) - before
    assert made <= {out}, f"created {sorted(made)}"
    assert not out.exists() or not any(out.iterdir())
    return result.exit_code, result.stderr


# ---------------------------------------------------------------- run and sweep names


def bad_names(tmp_path: Path) -> dict[str, str]:
    return {
        "parent": "../../escape",
        "absolute": str(tmp_path / "abs"),
        "separator": "x/y",
        "backslash": "x\\y",
        "dot": ".",
        "dotdot": "..",
        "empty": "",
        "nul": "x\x00y",
        "newline": "x\ny",
        "escape": "x\x1b]2;TITLE\x07",
        "long": "n" * 300,
        "long in bytes": "é" * (MAX_NAME_BYTES // 2 + 1),
    }


NAME_CASES = [
    "parent",
    "absolute",
    "separator",
    "backslash",
    "dot",
    "dotdot",
    "empty",
    "nul",
    "newline",
    "escape",
    "long",
    "long in bytes",
]


def check_name_message(message: str, where: str) -> None:
    assert message.startswith("error: "), message
    assert where in message, message
    assert "one folder name" in message, message
    assert "\x00" not in message and "\x1b" not in message and "n" * 100 not in message


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("case", NAME_CASES)
def test_a_name_option_that_is_not_one_folder_name_is_refused(command, case, tmp_path):
    name = bad_names(tmp_path)[case]
    code, message = invoke(tmp_path, [command, "--name", name])
    assert code == 2, message
    check_name_message(message, "--name")


@pytest.mark.parametrize("command", ["train", "sweep", "config show"])
@pytest.mark.parametrize("case", NAME_CASES)
def test_a_config_name_that_is_not_one_folder_name_is_refused(command, case, tmp_path):
    name = bad_names(tmp_path)[case]
    config = GOOD + f"name: {yaml_string(name)}\n"
    code, message = invoke(tmp_path, command.split(), config)
    assert code == 2, message
    check_name_message(message, "name")
    assert "c.yaml" in message


@pytest.mark.parametrize("case", ["parent", "absolute", "nul", "long"])
def test_a_name_override_that_is_not_one_folder_name_is_refused(case, tmp_path):
    name = bad_names(tmp_path)[case]
    code, message = invoke(tmp_path, ["train", f"name={yaml_string(name)}"])
    assert code == 2, message
    check_name_message(message, "override 'name=")


def yaml_string(text: str) -> str:
    """A double-quoted YAML scalar holding text exactly."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    for char in {c for c in escaped if ord(c) < 32}:
        escaped = escaped.replace(char, f"\\x{ord(char):02x}")
    return f'"{escaped}"'


def test_names_up_to_the_limit_make_their_folders(tmp_path):
    longest = "é" * (MAX_NAME_BYTES // 2)
    out = tmp_path / "runs"
    for argv in (
        ["--name", longest],  # as given
        [f"name={longest}"],  # with the date and time appended
        [f"name={longest}", "--name", "dots..and spaces"],
    ):
        path = tmp_path / "c.yaml"
        path.write_text(GOOD)
        result = runner.invoke(app, ["train", str(path), *argv, "--out", str(out), "-q"])
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and longest in names and "dots..and spaces" in names
    assert all(p.parent == out for p in out.iterdir())


def test_a_sweep_name_up_to_the_limit_gets_its_suffix(tmp_path):
    longest = "s" * MAX_NAME_BYTES
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + f"name: {longest}\n")
    argv = ["sweep", str(path), "--grid", "model.hidden=[2]", "--workers", "1", "-q"]
    result = runner.invoke(app, [*argv, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith(f"{longest}-sweep-")


# ---------------------------------------------------------------- YAML bounds


def bomb(levels: int = 9, leaf: str = "x") -> str:
    """Nested anchors: 10**levels leaves from a few hundred bytes."""
    parts = [f"&a0 [{', '.join([leaf] * 10)}]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "[" + ", ".join(parts) + "]"


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_mapping(depth: int) -> str:
    return "{a: " * depth + "1" + "}" * depth


@pytest.fixture
def write(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        return path

    return write


def test_aliases_and_merge_keys_within_the_bounds_are_read(write):
    path = write(
        "model: {hidden: [4], activation: &act {name: elu, alpha: 0.5}}\n"
        "sweep: {grid: {model.activation: [*act, relu]}}\n"
        "optim: {<<: {name: sgd, lr: 0.5}, lr: 0.25}\n"
    )
    config = load_config(path)
    assert config.sweep.grid["model.activation"] == [{"name": "elu", "alpha": 0.5}, "relu"]
    assert config.optim.name == "sgd" and config.optim.lr == 0.25


@pytest.mark.parametrize(
    "text, fragment",
    [
        (f"name: {bomb()}\n", f"{MAX_NODES:,}"),
        (f"sweep: {{grid: {{model.hidden: {bomb(leaf='1')}}}}}\n", f"{MAX_NODES:,}"),
        (f"name: {deep_list(1000)}\n", f"{MAX_DEPTH}"),
        (f"name: {deep_mapping(5000)}\n", f"{MAX_DEPTH}"),
        ("name: &a [x, *a]\n", "recursive"),
        (f"seed: {'1' * 5000}\n", "not a valid int"),
    ],
    ids=["bomb", "bomb in grid", "deep list", "deep mapping", "recursive", "huge int"],
)
def test_yaml_past_the_bounds_is_refused_while_reading(write, text, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    message = str(info.value)
    assert message.startswith(f"{write('')}") or "c.yaml" in message
    assert fragment in message and len(message) < 600, message


@pytest.mark.parametrize(
    "item, fragment",
    [
        (f"name={bomb()}", f"{MAX_NODES:,}"),
        (f"model.hidden={deep_list(2000)}", f"{MAX_DEPTH}"),
        ("model" + ".a" * 2000 + "=1", f"{MAX_DEPTH}"),
    ],
    ids=["bomb", "deep value", "deep key"],
)
def test_overrides_past_the_bounds_are_refused(write, item, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write(GOOD), [item])
    message = str(info.value)
    assert "override '" in message and fragment in message and len(message) < 600, message


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("optim: {lr: 0.1}\nseed: 1\noptim: {lr: 0.2}\n", "'optim'", "line 3"),
        ("model:\n  hidden: [4]\n  bias: true\n  hidden: [8]\n", "'hidden'", "line 4"),
        ("sweep:\n  grid:\n    optim.lr: [1]\n    optim.lr: [2]\n", "'optim.lr'", "line 4"),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key_and_line(write, text, key, line):
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    message = str(info.value)
    assert "duplicate key" in message and key in message and line in message, message


def test_duplicate_keys_in_an_override_value_are_refused(write):
    with pytest.raises(ConfigError, match=r"override 'model=.*duplicate key 'hidden'"):
        load_config(write(GOOD), ["model={hidden: [4], hidden: [8]}"])


SUBPROCESS_CASES = {
    "bomb in name": ("config show", f"name: {bomb()}\n", [], f"{MAX_NODES:,}"),
    "bomb in grid": (
        "sweep",
        f"sweep: {{grid: {{model.hidden: {bomb(leaf='[1]')}}}}}\n",
        [],
        f"{MAX_NODES:,}",
    ),
    "bomb to train": ("train", f"name: {bomb()}\n", [], f"{MAX_NODES:,}"),
    "bomb in an override": ("config show", GOOD, [f"name={bomb()}"], f"{MAX_NODES:,}"),
    "bomb in --grid": (
        "sweep",
        GOOD,
        ["--grid", "model.hidden=" + bomb(leaf="1")[1:-1]],
        f"{MAX_NODES:,}",
    ),
    "deep list": ("config show", f"name: {deep_list(1000)}\n", [], f"{MAX_DEPTH}"),
    "deep mapping": ("config show", f"model: {deep_mapping(5000)}\n", [], f"{MAX_DEPTH}"),
    "deep override": ("train", GOOD, [f"model.hidden={deep_list(2000)}"], f"{MAX_DEPTH}"),
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_hostile_yaml_is_refused_by_the_command_within_a_memory_limit(case, tmp_path):
    command, config, extra, fragment = SUBPROCESS_CASES[case]
    path = tmp_path / "c.yaml"
    path.write_text(config)
    out = tmp_path / "runs"
    argv = [str(Path(sys.executable).with_name("mlp")), *command.split(), str(path), *extra]
    if command in ("train", "sweep"):
        argv += ["--out", str(out), "-q"]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, preexec_fn=_limit_memory
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr) < 2000, result.stderr[:2000]
    assert not out.exists() or not any(out.iterdir()), "a run folder was left behind"


# ---------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    "argv, key",
    [
        (["seed=-1"], "seed"),
        ([f"seed={2**90}"], "seed"),
        ([f"seed={2**32}"], "seed"),
        (["data.seed=-5"], "data.seed"),
    ],
)
@pytest.mark.parametrize("command", ["config show", "train"])
def test_seeds_outside_what_numpy_and_torch_take_are_refused(command, argv, key, tmp_path):
    code, message = invoke(tmp_path, [*command.split(), *argv])
    assert code == 2, message
    assert f"{key}: " in message and "4294967295" in message, message


def test_seed_option_outside_the_range_is_refused(tmp_path):
    code, message = invoke(tmp_path, ["train", "--seed", "-1"])
    assert code == 2 and "seed" in message and "4294967295" in message, message


def test_the_largest_seed_trains(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    for seed in ("seed=4294967295", "data.seed=4294967295"):
        argv = ["train", str(path), seed, "--out", str(tmp_path / "runs"), "-q"]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "text",
    [
        "train: {device: " + "g" * 100_000 + "}\n",
        "optim: {name: " + "a" * 100_000 + "}\n",
        "task: " + "t" * 100_000 + "\n",
        "model: {activation: {name: " + "r" * 100_000 + "}}\n",
        "model: {activation: [" + ", ".join(["1"] * 50_000) + "]}\n",
        "data: {source: csv, path: d.csv, target: {" + "k" * 100_000 + ": 1}}\n",
        "model: {hidden: [" + ", ".join(["x"] * 50_000) + "]}\n",
        "k" * 100_000 + ": 1\n",
        "sweep: {grid: {" + "k" * 100_000 + ": [1]}}\n",
    ],
    ids=[
        "device",
        "optimiser",
        "task",
        "activation",
        "activation list",
        "target",
        "widths",
        "unknown key",
        "grid key",
    ],
)
def test_messages_echo_values_cut_short(write, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    message = str(info.value)
    assert len(message) < 2000, f"{len(message)} characters: {message[:300]}"


def test_an_override_error_names_the_override_not_the_file(tmp_path):
    code, message = invoke(tmp_path, ["config", "show", "optim.lr=-1"])
    assert code == 2
    assert "override 'optim.lr=-1'" in message and "c.yaml" not in message, message
    assert "optim.lr: " in message


def test_errors_from_a_file_and_an_override_name_each_source(tmp_path):
    config = GOOD + "optim: {weight_decay: -1}\n"
    code, message = invoke(tmp_path, ["train", "optim.lr=-1", "model={dropout: 2}"], config)
    assert code == 2
    lines = message.splitlines()
    by_source = {}
    for line in lines:
        if not line.startswith(" "):
            source = line.removeprefix("error: ")
        else:
            by_source.setdefault(source, []).append(line.strip())
    file_source = next(s for s in by_source if "c.yaml" in s)
    assert [x.split(":")[0] for x in by_source[file_source]] == ["optim.weight_decay"]
    lr = next(s for s in by_source if "override 'optim.lr=-1'" in s)
    assert [x.split(":")[0] for x in by_source[lr]] == ["optim.lr"]
    model = next(s for s in by_source if "override 'model={dropout: 2}'" in s)
    assert [x.split(":")[0] for x in by_source[model]] == ["model.dropout"]


def test_a_later_override_of_a_whole_section_takes_the_blame(tmp_path):
    code, message = invoke(
        tmp_path, ["config", "show", "model.dropout=0.5", "model={hidden: [-1]}"]
    )
    assert code == 2
    assert "override 'model={hidden: [-1]}'" in message and "model.hidden" in message
    assert "model.dropout=0.5" not in message

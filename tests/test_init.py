"""`mlp init`: a starter config from a table, judged by the rules training applies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import assert_exit_2, mlp
from test_imports import exit_code_and_imports

from mlpcli.api import init_config, train
from mlpcli.config.json_schema import SCHEMA_COMMENT
from mlpcli.config.schema import build_config, load_config
from mlpcli.data import preprocess, starter
from mlpcli.data.files import read_table
from mlpcli.data.sources import fit_preprocessor, load_dataset
from mlpcli.errors import DataError


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def mixed_table(n: int = 60) -> dict[str, list]:
    rng = np.random.default_rng(0)
    return {
        "height": list(rng.normal(170, 10, n)),
        "smoker": [bool(i % 3) for i in range(n)],
        "colour": ["red", "green", "blue"][:3] * (n // 3),
        "row": list(range(n)),  # whole numbers, increasing: a row key
        "email": [f"user{i}@x.org" for i in range(n)],  # unique text
        "country": ["NZ"] * n,
        "weight": [None if i % 10 == 0 else float(i) for i in range(n)],
        "code": [str(i) for i in range(n - 1)] + ["oops"],  # numbers with one typo
        "y": [int(i % 2) for i in range(n)],
    }


def test_each_column_gets_a_kind_and_a_reason(tmp_path):
    table = write_csv(tmp_path / "people.csv", mixed_table())
    result = init_config(table, ["y"], tmp_path / "people.yaml")
    kinds = {c.name: (c.kind, c.used) for c in result.columns}
    assert kinds == {
        "height": ("numeric", True),
        "smoker": ("numeric", True),
        "colour": ("categorical", True),
        "row": ("identifier", False),
        "email": ("identifier", False),
        "country": ("constant", False),
        "weight": ("missing", False),
        "code": ("mixed", False),
        "y": ("target", True),
    }
    reasons = {c.name: c.reason for c in result.columns}
    assert reasons["colour"] == "3 distinct strings, one-hot"
    assert reasons["weight"].startswith("6 missing values")
    assert "'oops'" in reasons["code"]
    assert reasons["country"] == "one value, 'NZ'"
    text = (tmp_path / "people.yaml").read_text()
    assert text.splitlines()[0] == SCHEMA_COMMENT
    assert text.splitlines()[-1] == f"# train it: mlp train {tmp_path / 'people.yaml'}"
    assert "# 60 rows, 60 read (every row)." in text
    assert '# left out "weight": missing: 6 missing values' in text
    assert result.task == "binary" and result.task_reason == "2 distinct values 0 and 1: binary"
    assert load_config(tmp_path / "people.yaml").data.features == ["height", "smoker", "colour"]


def test_text_with_more_values_than_training_accepts_is_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(preprocess, "MAX_CATEGORIES", 4)  # training's limit, which init reads
    n = 40
    table = write_csv(
        tmp_path / "t.csv",
        {
            "word": [f"w{i % 6}" for i in range(n)],
            "x": list(range(n))[::-1],
            "y": [0.5 * i for i in range(n)],
        },
    )
    result = init_config(table, ["y"], tmp_path / "t.yaml")
    word = next(c for c in result.columns if c.name == "word")
    assert (word.kind, word.used) == ("free text", False)
    assert "6 distinct strings, more than the 4" in word.reason
    raw = yaml.safe_load((tmp_path / "t.yaml").read_text())
    raw["data"]["features"] = ["word", "x"]
    with pytest.raises(DataError, match="word"):  # training refuses the column too
        dataset = load_dataset(build_config(raw, tmp_path))
        fit_preprocessor(build_config(raw, tmp_path), dataset)


TASKS = {
    "binary": ({"y": [i % 2 for i in range(60)]}, ["y"]),
    "classification": ({"y": ["ab", "cd", "ef"] * 20}, ["y"]),
    "regression": ({"y": [0.37 * i for i in range(60)]}, ["y"]),
    "multilabel": (
        {"a": [i % 2 for i in range(60)], "b": [i // 2 % 2 for i in range(60)]},
        ["a", "b"],
    ),
    "multi-output": (
        {"a": [0.5 * i for i in range(60)], "b": [i * i / 7 for i in range(60)]},
        ["a", "b"],
    ),
}


REASONS = {
    "binary": "2 distinct values 0 and 1: binary",
    "classification": "3 distinct strings: classification",
    "regression": "60 distinct numbers: regression",
    "multilabel": "2 targets, each 0/1: multilabel",
    "multi-output": "2 numeric targets: multi-output regression",
}


@pytest.mark.parametrize("case", TASKS)
def test_the_task_is_what_training_infers(tmp_path, case):
    targets_columns, targets = TASKS[case]
    rng = np.random.default_rng(1)
    table = write_csv(tmp_path / "t.csv", {"x1": list(rng.normal(size=60)), **targets_columns})
    result = init_config(table, targets, tmp_path / "t.yaml")
    raw = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert raw["task"] == result.task
    raw["task"] = "auto"
    inferred = load_dataset(build_config(raw, tmp_path)).task
    assert result.task == inferred
    assert result.task_reason == REASONS[case]


def test_written_config_shows_and_trains_as_it_is(tmp_path):
    rng = np.random.default_rng(2)
    table = write_csv(
        tmp_path / "data.csv",
        {"x": list(rng.normal(size=50)), "c": ["a", "b"] * 25, "y": ["p", "q"] * 25},
    )
    result = mlp("init", table, "--target", "y", "-o", tmp_path / "c.yaml")
    assert result.exit_code == 0, result.output
    assert "mlp train" in result.stderr
    assert mlp("config", "show", tmp_path / "c.yaml").exit_code == 0
    trained = mlp(
        "train",
        tmp_path / "c.yaml",
        "train.epochs=1",
        "train.plots=false",
        "--out",
        tmp_path / "runs",
        "-q",
    )
    assert trained.exit_code == 0, trained.output


def test_an_existing_file_is_replaced_only_with_force(tmp_path):
    table = write_csv(tmp_path / "t.csv", {"x": [1.5, 2.5, 3.5] * 10, "y": [0, 1, 1] * 10})
    out = tmp_path / "t.yaml"
    out.write_text("mine\n")
    refused = mlp("init", table, "--target", "y", "-o", out)
    assert_exit_2(refused, str(out), "--force")
    assert out.read_text() == "mine\n"
    assert mlp("init", table, "--target", "y", "-o", out, "--force").exit_code == 0
    assert load_config(out).data.target == "y"


HOSTILE = [
    "../x",
    "a: b",
    "#c",
    "new\nline",
    "  lead",
    "ünï ☃",
    "q'\"",
    "- dash",
    "[x]",
    "tab\t",
    "\u2028sep",
]


def test_odd_names_round_trip_as_data(tmp_path):
    folder = tmp_path / "in # dir: x"
    folder.mkdir()
    table = folder / "t.parquet"
    rng = np.random.default_rng(3)
    columns = {name: rng.normal(size=30) for name in HOSTILE}
    pd.DataFrame({**columns, "y": rng.normal(size=30)}).to_parquet(table)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "cfg.yaml"
    init_config(table, ["y"], out)
    config = load_config(out)
    names = [c for c in read_table(table).columns if c != "y"]
    assert config.data.features == names
    assert Path(config.data.path) == table.resolve()
    assert yaml.safe_load(out.read_text())["data"]["path"] == "../in # dir: x/t.parquet"
    assert len(out.read_text().splitlines()) == out.read_text().count("\n")  # no stray breaks


def test_a_column_named_like_a_path_as_target(tmp_path):
    table = write_csv(
        tmp_path / "t.csv", {"x": [0.1 * i for i in range(30)], "../y": [1, 2, 3] * 10}
    )
    result = init_config(table, ["../y"], tmp_path / "t.yaml")
    assert load_config(tmp_path / "t.yaml").data.target == "../y"
    assert result.task == "classification"


def test_non_utf8_text_is_refused_as_training_refuses_it(tmp_path):
    table = tmp_path / "latin.csv"
    table.write_bytes("x,y\n1,caf\xe9\n2,th\xe9\n".encode("latin-1") * 1)
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {{source: csv, path: {json.dumps(str(table))}, target: y}}\n")
    trained = mlp("train", config, "--out", tmp_path / "runs")
    assert_exit_2(trained, "not a readable CSV file")
    started = mlp("init", table, "--target", "y", "-o", tmp_path / "i.yaml")
    assert_exit_2(started, "not a readable CSV file")
    assert not (tmp_path / "i.yaml").exists()


def test_a_parquet_list_column_is_left_out_and_the_rest_trains(tmp_path):
    table = tmp_path / "t.parquet"
    frame = pd.DataFrame(
        {"x": [0.1 * i for i in range(30)], "tags": [[1, 2]] * 30, "y": [0, 1] * 15}
    )
    frame.to_parquet(table)
    result = init_config(table, ["y"], tmp_path / "t.yaml")
    tags = next(c for c in result.columns if c.name == "tags")
    assert (tags.kind, tags.used) == ("nested", False) and "list" in tags.reason
    run = train(
        tmp_path / "t.yaml",
        ["train.epochs=1", "train.plots=false"],
        out=tmp_path / "runs",
        quiet=True,
    )
    assert run.summary["task"] == "binary"


def test_a_large_file_is_sampled_uniformly_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(starter, "WHOLE_BYTES", 0)
    monkeypatch.setattr(starter, "SAMPLE_ROWS", 50)
    n = 400
    table = write_csv(
        tmp_path / "sorted.csv",
        {"x": [1.5 * i for i in range(n)], "y": [0.25 * i for i in range(n)]},
    )
    result = init_config(table, ["y"], tmp_path / "s.yaml")
    assert (result.rows_read, result.rows) == (50, 400)
    assert "uniform sample of 50 of 400 rows" in result.sampled
    text = (tmp_path / "s.yaml").read_text()
    assert "400 rows, 50 read (a uniform sample of 50 of 400 rows" in text
    x = next(c for c in result.columns if c.name == "x")
    high = float(x.reason.rpartition(" to ")[2])
    assert high > 450  # rows from the whole file, not its first 50


def test_without_a_target_columns_are_listed_and_nothing_written(tmp_path):
    table = write_csv(tmp_path / "t.csv", mixed_table())
    result = mlp("init", table)
    assert result.exit_code == 0, result.output
    assert "identifier" in result.stdout and "categorical" in result.stdout
    assert "--target y" in result.stderr and "nothing written" in result.stderr
    assert not (tmp_path / "t.yaml").exists() and not Path("t.yaml").exists()
    listed = json.loads(mlp("init", table, "--json").stdout)
    assert listed["path"] is None and listed["likely_target"] == "y"
    assert {c["name"]: c["kind"] for c in listed["columns"]}["email"] == "identifier"


def test_an_unknown_target_names_it_and_lists_the_columns(tmp_path):
    table = write_csv(tmp_path / "t.csv", {"height": [1.0, 2.0] * 10, "label": [0, 1] * 10})
    result = mlp("init", table, "--target", "labl", "-o", tmp_path / "t.yaml")
    assert_exit_2(result, "'labl'", "did you mean 'label'", "'height'")


@pytest.mark.parametrize(
    ("columns", "targets", "needle"),
    [
        ({"x": [1.0] * 20, "y": [None, 1.0] * 10}, ["y"], "missing"),
        ({"x": [1.0, 2.0] * 10, "y": [3] * 20}, ["y"], "one value"),
        (
            {"x": [1.0, 2.0] * 10, "a": ["p", "q"] * 10, "b": ["r", "s"] * 10},
            ["a", "b"],
            "holds text",
        ),
    ],
)
def test_a_target_training_would_refuse_exits_2(tmp_path, columns, targets, needle):
    table = write_csv(tmp_path / "t.csv", columns)
    args = [a for t in targets for a in ("--target", t)]
    result = mlp("init", table, *args, "-o", tmp_path / "t.yaml")
    assert_exit_2(result, needle, targets[0])
    assert not (tmp_path / "t.yaml").exists()


def test_json_result_and_name(tmp_path):
    table = write_csv(tmp_path / "t.csv", {"x": [0.1 * i for i in range(30)], "y": [0, 1, 2] * 10})
    result = mlp("init", table, "-t", "y", "-o", tmp_path / "t.yaml", "--name", "first", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["task"] == "classification" and found["rows_read"] == found["rows"] == 30
    # the target's reason is the task's, as the config's comment states it
    assert found["columns"][1] == {
        "name": "y",
        "kind": "target",
        "reason": found["task_reason"],
        "used": True,
    }
    assert found["task_reason"] == "3 distinct whole numbers: classification"
    assert load_config(found["path"]).name == "first"
    assert_exit_2(
        mlp("init", table, "-t", "y", "-o", tmp_path / "u.yaml", "--name", "a/b"), "--name"
    )


def test_init_never_imports_torch(tmp_path):
    table = write_csv(tmp_path / "t.csv", {"x": [0.5, 1.5] * 10, "y": [0, 1] * 10})
    code, heavy = exit_code_and_imports(
        ["init", str(table), "--target", "y", "-o", str(tmp_path / "t.yaml")]
    )
    assert code == 0 and "torch" not in heavy


def test_a_real_table_trains_well_from_the_starter(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    init_config(tmp_path / "cancer.csv", ["target"], tmp_path / "cancer.yaml")
    run = train(tmp_path / "cancer.yaml", ["train.plots=false"], out=tmp_path / "runs", quiet=True)
    assert run.summary["task"] == "binary"
    assert run.summary["metrics"]["test"]["accuracy"] > 0.94


def test_a_nested_target_exits_2(tmp_path):
    table = tmp_path / "t.parquet"
    pd.DataFrame({"x": [0.5, 1.5] * 10, "y": [[1], [2]] * 10}).to_parquet(table)
    result = mlp("init", table, "--target", "y", "-o", tmp_path / "t.yaml")
    assert_exit_2(result, "'y'", "list", "accepted")


def test_names_alike_once_stripped_exit_2_in_init_and_training(tmp_path):
    table = tmp_path / "dup.csv"
    table.write_text("x, x,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(30)))
    assert_exit_2(mlp("init", table), "' x'", "'x'", "rename one")
    assert_exit_2(mlp("init", table, "-t", "y", "-o", tmp_path / "d.yaml"), "rename one")
    with pytest.raises(DataError, match="both 'x' once spaces are stripped"):
        read_table(table)  # what mlp train reads through
    parquet = tmp_path / "dup.parquet"
    pd.DataFrame({"x ": [1.0, 2.0] * 10, " x": [3.0, 4.0] * 10, "y": [0, 1] * 10}).to_parquet(
        parquet
    )
    assert_exit_2(mlp("init", parquet, "-t", "y", "-o", tmp_path / "p.yaml"), "rename one")


def sampled(monkeypatch):
    monkeypatch.setattr(starter, "WHOLE_BYTES", 0)
    monkeypatch.setattr(starter, "SAMPLE_ROWS", 50)


def test_a_sampled_table_states_the_task_training_infers_on_the_whole_file(tmp_path, monkeypatch):
    sampled(monkeypatch)
    n = 400
    y = [i % 2 for i in range(n)]
    for row in (5, 205, 395):  # a third class, too rare to be in a sample of 50 rows
        y[row] = 2
    rng = np.random.default_rng(3)
    table = write_csv(tmp_path / "t.csv", {"x": list(rng.normal(size=n)), "y": y})
    result = init_config(table, ["y"], tmp_path / "t.yaml")
    assert result.rows_read == 50
    raw = yaml.safe_load((tmp_path / "t.yaml").read_text())
    raw["task"] = "auto"
    assert result.task == load_dataset(build_config(raw, tmp_path)).task == "classification"
    assert result.task_reason == "3 distinct whole numbers: classification"


def test_a_sampled_table_judges_columns_on_every_row(tmp_path, monkeypatch):
    sampled(monkeypatch)
    n = 400
    rng = np.random.default_rng(4)
    table = write_csv(
        tmp_path / "t.csv",
        {
            "w": [None if i == 301 else float(i % 7) for i in range(n)],
            "code": [str(i % 9) for i in range(n - 1)] + ["oops"],
            "nearly": [1.0] * (n - 1) + [2.0],
            "x": list(rng.normal(size=n)),
            "y": list(rng.normal(size=n)),
        },
    )
    result = init_config(table, ["y"], tmp_path / "t.yaml")
    kinds = {c.name: (c.kind, c.reason) for c in result.columns}
    assert kinds["w"][0] == "missing" and kinds["w"][1].startswith("1 missing value,")
    assert kinds["code"] == ("mixed", "numbers, but row 400 holds 'oops'; training refuses it")
    assert kinds["nearly"][0] == "numeric"  # not constant: its 2.0 is in the file
    config = load_config(tmp_path / "t.yaml")
    assert config.data.features == ["nearly", "x"]
    dataset = load_dataset(config)  # what was kept trains
    fit_preprocessor(config, dataset)


def test_a_table_training_would_refuse_for_its_rows_exits_2(tmp_path):
    few = write_csv(tmp_path / "few.csv", {"x": [1.5, 2.5, 3.1, 4.2], "y": [0.1, 0.7, 0.2, 0.9]})
    assert_exit_2(mlp("init", few, "-t", "y", "-o", tmp_path / "few.yaml"), "single row")
    two = write_csv(tmp_path / "two.csv", {"x": [1.5, 2.5], "y": [0.1, 0.7]})
    assert_exit_2(mlp("init", two, "-t", "y", "-o", tmp_path / "two.yaml"), "2 rows are too few")
    assert not (tmp_path / "few.yaml").exists() and not (tmp_path / "two.yaml").exists()


def trained(config: Path, tmp_path: Path):
    return mlp(
        "train", config, "train.epochs=1", "train.plots=false", "--out", tmp_path / "runs", "-q"
    )


def test_a_class_too_rare_for_the_training_split_exits_2(tmp_path):
    y = [0, 1] * 29 + [0, 2]  # one row of class 2, which the split puts in held-out rows
    table = write_csv(tmp_path / "t.csv", {"x": [0.1 * i for i in range(60)], "y": y})
    assert_exit_2(
        mlp("init", table, "-t", "y", "-o", tmp_path / "t.yaml"), "'y'", "too few rows", "'2'"
    )
    config = tmp_path / "hand.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"source": "csv", "path": str(table), "target": "y"}})
    )
    assert_exit_2(trained(config, tmp_path), "'2'")  # training refuses it too


def test_the_table_itself_is_never_the_output(tmp_path):
    table = write_csv(tmp_path / "t.csv", {"x": [1.5, 2.5, 3.5] * 10, "y": [0, 1, 1] * 10})
    before = table.read_bytes()
    assert_exit_2(mlp("init", table, "-t", "y", "-o", table, "--force"), "table itself")
    assert table.read_bytes() == before


def test_only_key_like_names_make_a_numeric_column_an_identifier(tmp_path):
    n = 40
    rng = np.random.default_rng(5)
    shuffled = list(rng.permutation(n) * 10)
    table = write_csv(
        tmp_path / "t.csv",
        {
            "TOTAL_PAID": shuffled,
            "GRID": shuffled,
            "userId": shuffled,
            "ORDER_ID": shuffled,
            "y": list(rng.normal(size=n)),
        },
    )
    kinds = {c.name: c.kind for c in init_config(table, ["y"], tmp_path / "t.yaml").columns}
    assert kinds["TOTAL_PAID"] == kinds["GRID"] == "numeric"
    assert kinds["userId"] == kinds["ORDER_ID"] == "identifier"


def test_the_mixed_reason_comes_from_the_row_not_the_message(tmp_path):
    name = "a is numeric but b"
    table = write_csv(
        tmp_path / "t.csv",
        {
            name: [str(i) for i in range(29)] + ["oops"],
            "x": [0.5 * i for i in range(30)],
            "y": [0, 1] * 15,
        },
    )
    kind = next(c for c in init_config(table, ["y"], tmp_path / "t.yaml").columns if c.name == name)
    assert (kind.kind, kind.reason) == (
        "mixed",
        "numbers, but row 30 holds 'oops'; training refuses it",
    )


def test_an_unexpected_config_is_an_error_line_not_a_traceback(tmp_path, monkeypatch):
    table = write_csv(tmp_path / "t.csv", {"x": [1.5, 2.5, 3.5] * 10, "y": [0, 1, 1] * 10})
    real = starter.starter_lines
    monkeypatch.setattr(starter, "starter_lines", lambda **kw: real(**{**kw, "kinds": []}))
    result = mlp("init", table, "-t", "y", "-o", tmp_path / "t.yaml")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "please report" in result.stderr and not (tmp_path / "t.yaml").exists()


def test_an_npz_table_gets_a_config_that_trains(tmp_path):
    rng = np.random.default_rng(6)
    table = tmp_path / "t.npz"
    x = rng.normal(size=(60, 3))
    np.savez(table, X=x, y=(x[:, 0] > 0).astype(int))
    result = init_config(table, None, tmp_path / "t.yaml")
    assert result.path is None
    names = [c.name for c in result.columns]
    target = names[-1]
    result = init_config(table, [target], tmp_path / "t.yaml")
    assert result.task == "binary"
    config = load_config(tmp_path / "t.yaml")
    assert config.data.source == "npz" and len(load_dataset(config).features) == 3


@pytest.mark.parametrize("row", [-1, -3])  # held out, and in training, with this split
def test_a_category_only_in_held_out_rows_is_left_out(tmp_path, row):
    n = 60
    colour = ["red", "blue"] * (n // 2)
    colour[row] = "green"  # one row: it lands in training or not, as the split decides
    rng = np.random.default_rng(7)
    table = write_csv(
        tmp_path / "t.csv", {"colour": colour, "x": list(rng.normal(size=n)), "y": [0, 1] * 30}
    )
    result = init_config(table, ["y"], tmp_path / "t.yaml")
    kind = next(c for c in result.columns if c.name == "colour")
    raw = yaml.safe_load((tmp_path / "t.yaml").read_text())
    raw["data"]["features"] = ["colour", "x"]
    in_training = "green" in set(load_dataset(build_config(raw, tmp_path)).train["colour"])
    assert kind.kind == ("categorical" if in_training else "rare categories")
    (tmp_path / "hand.yaml").write_text(yaml.safe_dump(raw))
    result = trained(tmp_path / "hand.yaml", tmp_path)
    if in_training:
        assert result.exit_code == 0, result.output
    else:
        assert_exit_2(result, "colour", "green")


@pytest.mark.parametrize(
    ("rows", "hidden", "batch", "epochs"),
    [(300, [64, 64], 16, 158), (6_000, [128, 128], 256, 125), (600_000, [256, 256], 256, 20)],
)
def test_sizing_follows_the_training_rows(rows, hidden, batch, epochs):
    size = starter.sizing(rows)
    assert (size.hidden, size.batch_size, size.epochs) == (hidden, batch, epochs)
    assert -(-rows // batch) * epochs >= 3000 or epochs == 300  # about 3,000 steps at least


def test_written_configs_pass_the_json_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from mlpcli.api import config_schema

    table = write_csv(tmp_path / "people.csv", mixed_table())
    init_config(table, ["y"], tmp_path / "people.yaml", name="people")
    jsonschema.validate(yaml.safe_load((tmp_path / "people.yaml").read_text()), config_schema())

"""Eval and predict on saved runs: the same numbers as training, labels back in their own values."""

from __future__ import annotations

import json
import pickle
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import assert_exit_2, mlp

import mlpcli
from mlpcli.config.schema import build_config
from mlpcli.errors import CheckpointError, DataError
from mlpcli.serving.evaluate import evaluate_run, predict_file, score_run


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A classifier with string labels ('setosa', ...) trained on the bundled iris set."""
    config = build_config(
        {
            "name": "iris",
            "data": {"source": "iris"},
            "model": {"hidden": [16]},
            "optim": {"lr": 0.02},
            "train": {"epochs": 60, "batch_size": 16},
        }
    )
    return mlpcli.train(config, out=tmp_path_factory.mktemp("runs"), quiet=True)


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """Regression from a CSV with a categorical column, a numeric one, and two targets."""
    folder = tmp_path_factory.mktemp("tabular")
    rng = np.random.default_rng(0)
    n = 600
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.uniform(0, 10, size=n)
    offset = pd.Series(colour).map({"red": 0.0, "green": 50.0, "blue": 100.0}).to_numpy()
    frame = pd.DataFrame(
        {
            "colour": colour,
            "size": size,
            "price": 1000 + 20 * size + offset + rng.normal(0, 1, n),
            "weight": 3 * size + rng.normal(0, 0.1, n),
        }
    )
    frame.iloc[:450].to_csv(folder / "train.csv", index=False)
    frame.iloc[450:].to_csv(folder / "test.csv", index=False)
    config = folder / "prices.yaml"
    config.write_text(
        "data: {source: csv, path: train.csv, target: [price, weight], test_split: 0}\n"
        "model: {hidden: [32]}\noptim: {lr: 0.01}\ntrain: {epochs: 80, batch_size: 32}\n"
    )
    result = mlpcli.train(config, out=folder / "runs", quiet=True)
    return result, folder


def test_eval_of_a_run_reproduces_its_test_metrics(iris_run):
    metrics = evaluate_run(iris_run.run_dir)
    assert metrics == pytest.approx(iris_run.summary["metrics"]["test"], rel=1e-6)
    assert metrics["accuracy"] >= 0.85
    val = evaluate_run(iris_run.run_dir, split="val")
    assert val == pytest.approx(iris_run.summary["metrics"]["val"], rel=1e-6)


def test_eval_of_the_model_file_alone(iris_run):
    metrics = evaluate_run(iris_run.run_dir / "model.safetensors")
    assert metrics == pytest.approx(iris_run.summary["metrics"]["test"], rel=1e-6)


def test_predict_restores_string_labels_and_matches_columns_by_name(iris_run, tmp_path):
    model = mlpcli.load(iris_run.run_dir)
    test = model.split("test")
    shuffled = test[list(reversed(test.columns))].drop(columns="y")
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out = predict_file(iris_run.run_dir, tmp_path / "new.csv", proba=True)
    assert list(out.columns[: len(shuffled.columns)]) == list(shuffled.columns)
    assert set(out["y"]) <= {"setosa", "versicolor", "virginica"}
    assert (out["y"].to_numpy() == test["y"].to_numpy()).mean() >= 0.85
    probs = out[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (
        probs.argmax(axis=1)
        == pd.Series(out["y"]).map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    ).all()


def test_predict_keeps_a_target_column_that_is_already_there(iris_run):
    model = mlpcli.load(iris_run.run_dir)
    out = model.predict(model.split("test"))
    assert "y" in out and "predicted_y" in out
    assert (out["y"] == out["predicted_y"]).mean() >= 0.85


def test_csv_regression_with_categories_and_two_targets(tabular_run):
    result, folder = tabular_run
    metrics = evaluate_run(result.run_dir, data=folder / "test.csv")
    assert metrics["r2"] >= 0.95
    assert "test" not in result.summary["metrics"]
    new = pd.read_csv(folder / "test.csv").drop(columns=["price", "weight"])
    out = mlpcli.load(result.run_dir).predict(new)
    truth = pd.read_csv(folder / "test.csv")
    # Predictions come back in the targets' own units (prices around 1000-1300).
    assert np.abs(out["price"] - truth["price"]).mean() < 15
    assert np.abs(out["weight"] - truth["weight"]).mean() < 1.5


def test_predict_errors_name_the_column(tabular_run, tmp_path):
    result, _ = tabular_run
    model = mlpcli.load(result.run_dir)
    with pytest.raises(DataError, match="'size'"):
        model.predict(pd.DataFrame({"colour": ["red"]}))
    with pytest.raises(DataError, match="'purple'.*accepted: blue, green, red"):
        model.predict(pd.DataFrame({"colour": ["purple"], "size": [1.0]}))
    with pytest.raises(DataError, match="size"):
        model.predict(pd.DataFrame({"colour": ["red"], "size": [np.nan]}))
    with pytest.raises(DataError, match="--proba"):
        model.predict(pd.DataFrame({"colour": ["red"], "size": [1.0]}), proba=True)


class Marker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["model.safetensors", "run/model.safetensors", "model.pt"])
def test_a_crafted_pickle_is_refused_and_never_run(tmp_path, name):
    marker = tmp_path / "marker"
    target = tmp_path / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(CheckpointError, match="not a model file"):
        mlpcli.load(target.parent if name.startswith("run/") else target)
    assert not marker.exists()


def test_random_bytes_and_missing_paths_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        mlpcli.load(junk)
    with pytest.raises(CheckpointError, match="no such run folder"):
        mlpcli.load(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        mlpcli.load(tmp_path)


# ------------------------------------------------------------ per-class results


def sklearn_scores(true, pred, labels):
    """The oracle: scikit-learn's confusion matrix and per-class scores, NaN where 0/0."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    matrix = confusion_matrix(true, pred, labels=labels)
    scores = precision_recall_fscore_support(true, pred, labels=labels, zero_division=np.nan)
    return matrix, dict(zip(("precision", "recall", "f1", "support"), scores))


def assert_matches_sklearn(result, true, pred):
    matrix, scores = sklearn_scores(list(true), list(pred), result.labels)
    np.testing.assert_array_equal(result.confusion, matrix)
    for key, expected in scores.items():
        ours = [np.nan if s[key] is None else s[key] for s in result.per_class]
        np.testing.assert_allclose(ours, expected, rtol=1e-12, err_msg=key)


def test_confusion_and_per_class_scores_match_scikit_learn(iris_run):
    result = score_run(iris_run.run_dir)
    assert result.labels == ["setosa", "versicolor", "virginica"]  # as the model stores them
    assert result.metrics == evaluate_run(iris_run.run_dir)  # the flat metrics are unchanged
    model = mlpcli.load(iris_run.run_dir)
    test = model.split("test")
    assert_matches_sklearn(result, test["y"], model.predict(test)["predicted_y"])
    assert sum(map(sum, result.confusion)) == len(test)
    assert_f1_macro_is_the_mean_of_the_defined(result)


def assert_f1_macro_is_the_mean_of_the_defined(result):
    defined = [s["f1"] for s in result.per_class if s["f1"] is not None]
    assert result.metrics["f1_macro"] == pytest.approx(np.mean(defined), rel=1e-9)


def test_a_class_absent_from_the_rows_has_no_recall_rather_than_a_zero(iris_run, tmp_path):
    model = mlpcli.load(iris_run.run_dir)
    rows = model.split("test")
    rows = rows[rows["y"] == "setosa"]
    rows.to_csv(tmp_path / "setosa.csv", index=False)
    result = score_run(iris_run.run_dir, data=tmp_path / "setosa.csv")
    assert_matches_sklearn(result, rows["y"], model.predict(rows)["predicted_y"])
    by_label = dict(zip(result.labels, result.per_class))
    assert by_label["virginica"]["support"] == 0 and by_label["virginica"]["recall"] is None
    assert by_label["setosa"]["recall"] == 1.0
    assert_f1_macro_is_the_mean_of_the_defined(result)


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    """A binary classifier with text labels, one class three times as common as the other."""
    folder = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(1)
    n = 400
    weight = rng.normal(0, 1, n)
    label = np.where(weight + rng.normal(0, 0.7, n) > 0.7, "dog", "cat")
    pd.DataFrame({"weight": weight, "pet": label}).to_csv(folder / "pets.csv", index=False)
    (folder / "pets.yaml").write_text(
        "data: {source: csv, path: pets.csv, target: pet}\nmodel: {hidden: [8]}\n"
        "train: {epochs: 10}\n"
    )
    return mlpcli.train(folder / "pets.yaml", out=folder / "runs", name="pets", quiet=True)


def test_binary_confusion_matches_scikit_learn(pets_run):
    result = score_run(pets_run.run_dir)
    assert result.labels == ["cat", "dog"]
    model = mlpcli.load(pets_run.run_dir)
    test = model.split("test")
    assert_matches_sklearn(result, test["pet"], model.predict(test)["predicted_pet"])
    assert result.confusion[0][1] + result.confusion[1][0] > 0  # some rows misclassified


def test_regression_has_no_classes(tabular_run):
    result, folder = tabular_run
    scored = score_run(result.run_dir, data=folder / "test.csv")
    assert scored.labels is None and scored.to_dict() == scored.metrics


def test_eval_json_keeps_the_flat_metrics_and_adds_the_classes(iris_run):
    result = mlp("eval", iris_run.run_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    flat = evaluate_run(iris_run.run_dir)
    assert list(report)[: len(flat)] == list(flat)  # the documented keys, first and unchanged
    assert {k: report[k] for k in flat} == flat
    assert set(report) - set(flat) == {"confusion", "per_class"}
    scored = score_run(iris_run.run_dir)
    assert report["confusion"] == {"labels": scored.labels, "matrix": scored.confusion}
    assert [row.pop("label") for row in report["per_class"]] == scored.labels
    assert report["per_class"] == scored.per_class
    assert not (iris_run.run_dir / "plots" / "confusion.png").exists()  # only with --plot


def test_eval_json_of_a_regression_is_the_flat_metrics_alone(tabular_run):
    result, folder = tabular_run
    shown = mlp("eval", result.run_dir, "--data", folder / "test.csv", "--json")
    assert shown.exit_code == 0, shown.output
    assert set(json.loads(shown.stdout)) == {"loss", "r2", "mse", "rmse", "mae"}


def table_rows(text):
    """Each row of the tables rich drew, as its stripped cells."""
    return [[c.strip() for c in re.split("[│┃]", line)] for line in text.splitlines()]


def test_eval_prints_the_classes_and_their_scores(iris_run):
    shown = mlp("eval", iris_run.run_dir)
    assert shown.exit_code == 0, shown.output
    rows = table_rows(shown.stdout)
    assert ["class", "precision", "recall", "f1", "support"] in rows
    assert ["true class", "setosa", "versicolor", "virginica"] in rows
    scored = score_run(iris_run.run_dir)
    for label, scores, counts in zip(scored.labels, scored.per_class, scored.confusion):
        numbers = [f"{scores[k]:.4f}" for k in ("precision", "recall", "f1")]
        assert [label, *numbers, str(scores["support"])] in rows
        assert [label, *map(str, counts)] in rows
    assert "confusion matrix (rows: true class, columns: predicted)" in shown.stdout


def test_labels_are_shown_as_written_never_as_markup_or_terminal_codes(tmp_path):
    csv = tmp_path / "labels.csv"
    bad, markup = "\x1b[2Jbad", "[bold red]x[/]"
    csv.write_text(
        "x,label\n" + "".join(f"{i / 10},{bad if i % 2 else markup}\n" for i in range(40))
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {{source: csv, path: {csv}, target: label}}\nmodel: {{hidden: [4]}}\n"
        "train: {epochs: 1}\n"
    )
    assert mlp("train", config, "--out", tmp_path, "--name", "r", "-q").exit_code == 0
    shown = mlp("eval", tmp_path / "r", "--data", csv)
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.stdout
    assert "\\x1b[2Jbad" in shown.stdout and markup in shown.stdout
    report = json.loads(mlp("eval", tmp_path / "r", "--data", csv, "--json").stdout)
    assert set(report["confusion"]["labels"]) == {bad, markup}  # JSON holds the exact text


def test_eval_plot_draws_the_confusion_into_the_run_folder(iris_run, tmp_path):
    import matplotlib.image

    run = tmp_path / "iris"
    shutil.copytree(iris_run.run_dir, run)
    shown = mlp("eval", run, "--plot")
    assert shown.exit_code == 0, shown.output
    figure = run / "plots" / "confusion.png"
    assert f"wrote {figure}" in shown.stderr
    assert matplotlib.image.imread(figure).shape[2] == 4  # a PNG that loads
    # A model file given alone: plots/ beside it, as `mlp plot` does.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model.safetensors", alone / "iris.safetensors")
    shown = mlp("eval", alone / "iris.safetensors", "--plot", "--json")
    assert shown.exit_code == 0, shown.output
    assert (alone / "plots" / "confusion.png").is_file()
    assert "confusion" in json.loads(shown.stdout)  # the JSON stays alone on stdout


def test_eval_plot_refuses_a_link_and_a_model_without_classes(iris_run, tabular_run, tmp_path):
    run = tmp_path / "iris"
    shutil.copytree(iris_run.run_dir, run)
    (run / "plots").mkdir(exist_ok=True)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"mine")
    (run / "plots" / "confusion.png").symlink_to(victim)
    assert_exit_2(mlp("eval", run, "--plot"), "confusion.png")
    assert victim.read_bytes() == b"mine"

    result, folder = tabular_run
    shown = mlp("eval", result.run_dir, "--data", folder / "test.csv", "--plot")
    assert_exit_2(shown, "--plot", "regression")
    assert not (result.run_dir / "plots" / "confusion.png").exists()


def test_the_confusion_figure_draws_each_rows_share_and_count(monkeypatch, tmp_path):
    from mlpcli.serving import confusion_plot

    drawn = {}
    monkeypatch.setattr(confusion_plot, "save_figure", lambda fig, path: drawn.setdefault("f", fig))
    labels, matrix = ["$a$", "b", "c"], [[3, 1, 0], [0, 0, 0], [2, 2, 4]]
    confusion_plot.confusion_figure(labels, matrix, tmp_path / "c.png", "run on $x$")
    ax = drawn["f"].axes[0]
    shares = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shares, [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert all(not t.get_parse_math() for t in ax.get_xticklabels())  # `$a$` drawn as written
    assert [t.get_text() for t in ax.texts] == [str(c) for row in matrix for c in row]
    assert ax.get_title() == "run on $x$\n12 rows, accuracy 0.5833"  # 7 of 12 on the diagonal
    assert not ax.title.get_parse_math()
    drawn["f"].clf()

"""Real tabular data brought as files: the Palmer penguins through `mlp train`, `eval`, `predict`.

String labels and categorical string features, CSV for training and Parquet for scoring, and a
two-column regression target; each result is held against scikit-learn's MLP with the same
preprocessing, network, optimiser, batch size and epochs, trained on the same rows.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

from mlpcli.cli import app

palmerpenguins = pytest.importorskip("palmerpenguins")

runner = CliRunner()

SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
CATEGORICAL = ["species", "island", "sex"]
SIZE_TARGETS = ["body_mass_g", "flipper_length_mm"]
HIDDEN, LR, BATCH, SEED = [16], 1e-3, 32, 0


def mlp(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def penguins():
    """The complete rows (year dropped), split 75/25 stratified by species."""
    frame = palmerpenguins.load_penguins().dropna().drop(columns=["year"])
    train, test = train_test_split(
        frame.reset_index(drop=True), test_size=0.25, random_state=0, stratify=frame["species"]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def write_config(folder, train_file, target, epochs):
    """Train on every row of the file (no val or test split held out), every epoch, no L2."""
    config = {
        "name": "penguins",
        "seed": SEED,
        "data": {
            "source": "csv",
            "path": train_file,
            "target": target,
            "val_split": 0,
            "test_split": 0,
        },
        "model": {"hidden": HIDDEN, "activation": "relu"},
        "optim": {"name": "adam", "lr": LR, "weight_decay": 0},
        "train": {"epochs": epochs, "batch_size": BATCH, "device": "cpu"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sklearn_fit(model_cls, train, test, targets, epochs):
    """scikit-learn's MLP on the same preprocessing; predictions in the targets' own units."""
    features = [c for c in train.columns if c not in targets]
    prep = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(sparse_output=False),
                [c for c in features if c in CATEGORICAL],
            ),
            ("numeric", StandardScaler(), [c for c in features if c not in CATEGORICAL]),
        ]
    )
    model = model_cls(
        hidden_layer_sizes=tuple(HIDDEN),
        activation="relu",
        solver="adam",
        learning_rate_init=LR,
        batch_size=BATCH,
        max_iter=epochs,
        alpha=0.0,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=SEED,
    )
    x_train, x_test = prep.fit_transform(train), prep.transform(test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if model_cls is MLPClassifier:
            return model.fit(x_train, train[targets[0]]).predict(x_test)
        scaler = StandardScaler().fit(train[targets])
        model.fit(x_train, scaler.transform(train[targets]))
        return scaler.inverse_transform(model.predict(x_test))


def test_species_from_csv_scored_on_parquet_matches_sklearn(tmp_path, penguins):
    train, test = penguins
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_parquet(tmp_path / "test.parquet", index=False)
    config = write_config(tmp_path, "train.csv", "species", epochs=50)

    summary = json.loads(
        mlp("train", config, "--out", tmp_path / "runs", "--name", "species", "--json", "-q").stdout
    )
    assert summary["task"] == "classification"
    assert summary["rows"] == {"train": len(train)}
    run = summary["run_dir"]
    metrics = json.loads(mlp("eval", run, "--data", tmp_path / "test.parquet", "--json").stdout)

    reference = accuracy_score(
        test["species"], sklearn_fit(MLPClassifier, train, test, ["species"], epochs=50)
    )
    assert metrics["accuracy"] >= 0.95
    assert metrics["accuracy"] >= reference - 0.02

    mlp("predict", run, tmp_path / "test.parquet", "-o", tmp_path / "pred.csv")
    predicted = pd.read_csv(tmp_path / "pred.csv")
    assert len(predicted) == len(test)
    assert set(predicted["predicted_species"]) <= SPECIES
    assert predicted["species"].tolist() == test["species"].tolist()  # the input rows, in order
    assert accuracy_score(test["species"], predicted["predicted_species"]) == pytest.approx(
        metrics["accuracy"]
    )


def test_body_mass_and_flipper_length_together_match_sklearn(tmp_path, penguins):
    train, test = penguins
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    test.drop(columns=SIZE_TARGETS).to_csv(tmp_path / "unlabelled.csv", index=False)
    config = write_config(tmp_path, "train.csv", SIZE_TARGETS, epochs=60)

    summary = json.loads(
        mlp("train", config, "--out", tmp_path / "runs", "--name", "size", "--json", "-q").stdout
    )
    assert summary["task"] == "regression"
    run = summary["run_dir"]
    metrics = json.loads(mlp("eval", run, "--data", tmp_path / "test.csv", "--json").stdout)

    truth = test[SIZE_TARGETS].to_numpy()
    reference = r2_score(truth, sklearn_fit(MLPRegressor, train, test, SIZE_TARGETS, epochs=60))
    assert metrics["r2"] >= reference - 0.05

    mlp("predict", run, tmp_path / "unlabelled.csv", "-o", tmp_path / "pred.csv")
    predicted = pd.read_csv(tmp_path / "pred.csv")[SIZE_TARGETS].to_numpy()
    # Original units: grams in the thousands and millimetres near 200, not standardised values.
    assert 2000 < predicted[:, 0].min() and predicted[:, 0].max() < 7000
    assert 150 < predicted[:, 1].min() and predicted[:, 1].max() < 250
    assert r2_score(truth, predicted) == pytest.approx(metrics["r2"], abs=1e-4)
    assert np.sqrt(((predicted - truth) ** 2).mean(axis=0)).mean() == pytest.approx(
        metrics["rmse"], rel=1e-4
    )

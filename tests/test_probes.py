"""Linear probes: least squares against a closed-form fit, logistic probes on separable and on
circular rows, and `mlp inspect --probes` on concentric circles, where the input is not
linearly separable and the last hidden layer is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import mlp, saved_figures

import mlpcli
from mlpcli.data.synthetic import make_circles
from mlpcli.insight.probes import PENALTY, fit_probe, pca_2d, ridge, score, standardised

CIRCLES = Path(__file__).parent.parent / "configs" / "circles.yaml"


@pytest.fixture(scope="module")
def circles_run(tmp_path_factory):
    """configs/circles.yaml as shipped, trained; read-only."""
    return mlpcli.train(CIRCLES, out=tmp_path_factory.mktemp("runs"), quiet=True).run_dir


def test_the_least_squares_probe_is_the_closed_form_ridge_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * [1, 2, 3, 0.5, 1] + 4
    y = x @ rng.normal(size=(5, 2)) + rng.normal(size=(200, 2))
    weight, bias = ridge(torch.from_numpy(x), torch.from_numpy(y))
    # |Xw + b - y|²/(2n) + λ/2·|w|² is |[X 1; sqrt(nλ)·I 0][w; b] - [y; 0]|²/(2n).
    n = len(x)
    design = np.block([[x, np.ones((n, 1))], [np.sqrt(n * PENALTY) * np.eye(5), np.zeros((5, 1))]])
    target = np.vstack([y, np.zeros((5, 2))])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    np.testing.assert_allclose(weight.numpy(), solution[:5], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(bias.numpy(), solution[5], rtol=1e-9, atol=1e-10)


def test_the_regression_probe_scores_r2_as_the_metric_code_does():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(300, 3)))
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)).float()
    weight, bias = fit_probe("regression", *standardised(x), y)
    assert score("regression", standardised(x)[0] @ weight + bias, y, None) > 0.999


def blobs(centres, rows=100, seed=0):
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(c, 0.3, size=(rows, 2)) for c in centres])
    return torch.from_numpy(x), torch.arange(len(centres)).repeat_interleave(rows)


@pytest.mark.parametrize("task", ["binary", "classification", "multilabel"])
def test_the_logistic_probe_separates_separable_rows_exactly(task):
    centres = [(-3, 0), (3, 0)] if task != "classification" else [(-3, 0), (3, 0), (0, 4)]
    x, labels = blobs(centres)
    y = labels if task == "classification" else labels.float()[:, None]
    if task == "multilabel":
        y = torch.cat([y, 1 - y], dim=1)
    (x_std,) = standardised(x)
    weight, bias = fit_probe(task, x_std, y, len(centres))
    assert score(task, x_std @ weight + bias, y, None) == 1.0
    assert torch.isfinite(weight).all()  # the penalty keeps a separable fit finite


def test_the_logistic_fit_is_the_penalised_optimum():
    x, labels = blobs([(-1, 0), (1, 0), (0, 1)], seed=2)  # overlapping: a finite optimum
    (x_std,) = standardised(x)
    weight, bias = fit_probe("classification", x_std, labels, 3)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x_std @ weight + bias, labels)
    loss = loss + PENALTY / 2 * (weight**2).sum()
    grads = torch.autograd.grad(loss, [weight, bias])
    assert max(g.abs().max().item() for g in grads) < 1e-6


def test_a_logistic_probe_on_concentric_circles_scores_about_chance():
    x, y = make_circles(2000, 0.1, 0, factor=0.5)
    x, y = torch.from_numpy(x), torch.from_numpy(y).double()[:, None]
    fit_x, held_x = standardised(x[:1000], x[1000:])
    weight, bias = fit_probe("binary", fit_x, y[:1000])
    assert 0.4 < score("binary", held_x @ weight + bias, y[1000:], None) < 0.6


def test_pca_projects_on_the_direction_of_most_variance():
    rng = np.random.default_rng(3)
    along = rng.normal(size=(500, 1)) * 10
    x = torch.from_numpy(np.hstack([along, rng.normal(size=(500, 1)), along * 0.1]))
    points, share = pca_2d(x)
    # The oracle: the covariance's eigenvectors, largest eigenvalues first, each signed so
    # that its largest loading is positive.
    values, vectors = np.linalg.eigh(np.cov(x.numpy(), rowvar=False))
    top = vectors[:, ::-1][:, :2]
    top = top * np.sign(top[np.abs(top).argmax(axis=0), [0, 1]])
    centred = x.numpy() - x.numpy().mean(axis=0)
    np.testing.assert_allclose(points.numpy(), centred @ top, atol=1e-8)
    np.testing.assert_allclose(share.numpy(), values[::-1][:2] / values.sum(), rtol=1e-8)
    assert share[0] > 0.95
    one, share_one = pca_2d(x[:, :1])
    assert one.shape == (500, 2) and (one[:, 1] == 0).all() and share_one[1] == 0


def run_files(run):
    return {
        p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in run.rglob("*")
        if p.is_file() and p.suffix != ".png" and p.name != "inspect.json"
    }


def test_circles_input_is_at_chance_and_the_last_hidden_layer_is_separable(
    circles_run, monkeypatch
):
    figures = saved_figures(monkeypatch)
    result = mlp("inspect", circles_run, "--probes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    probes = report["probes"]
    assert [p["name"] for p in probes] == ["input", "hidden 1 (relu)", "hidden 2 (relu)"]
    assert [p["width"] for p in probes] == [2, 16, 16]
    assert all(p["metric"] == "accuracy" and set(p) == set(probes[0]) for p in probes)
    assert set(probes[0]) == {"layer", "name", "width", "metric", "train", "val"}
    assert 0.35 < probes[0]["val"] < 0.65 and 0.35 < probes[0]["train"] < 0.65
    assert probes[-1]["val"] > 0.95 and probes[-1]["train"] > 0.95
    assert report["probe_rows"] == {"train": 600, "val": 200, "held_out": "val"}
    assert report["probe_verdict"].startswith("the input is not linearly separable")
    assert any("linear probes fitted on 600" in note for note in report["notes"])
    assert json.loads((circles_run / "inspect.json").read_text()) == report
    # The figure: one panel per layer, each titled with its layer and its probe's score.
    figure = figures["representations.png"]
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert titles == [f"{p['name']}\nval accuracy {p['val']:.2f}" for p in probes]
    import matplotlib.image

    image = matplotlib.image.imread(circles_run / "plots" / "representations.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 200


def test_the_table_and_the_verdict_are_printed(circles_run):
    result = mlp("inspect", circles_run, "--probes", "--at", "last")
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.stdout and "hidden 2 (relu)" in result.stdout
    assert "linear probes: the input is not linearly separable" in result.stdout
    assert "representations.png" in result.stderr


def test_probes_and_noise_change_no_file_of_the_run_and_draw_no_random_number(circles_run):
    before = run_files(circles_run)
    for at in ("init", "best"):
        # Loading a model builds (and so initialises) a network first: compare the random
        # state after a plain inspect with the one after the same call with both flags.
        torch.manual_seed(1)
        mlpcli.inspect(circles_run, at)
        plain = torch.get_rng_state()
        torch.manual_seed(1)
        mlpcli.inspect(circles_run, at, probes=True, noise=True)
        assert torch.equal(torch.get_rng_state(), plain)
    assert run_files(circles_run) == before


def test_without_the_flags_the_report_is_unchanged(circles_run):
    report, written = mlpcli.inspect(circles_run)
    assert not {"probes", "probe_rows", "probe_verdict", "noise_scale"} & set(report.to_dict())
    assert [p.name for p in written] == ["inspect.json", "gradients.png", "units.png"]


def test_a_run_without_validation_rows_holds_out_part_of_the_sample(tmp_path):
    run = mlpcli.train(
        CIRCLES,
        ["data.val_split=0", "data.test_split=0", "train.epochs=5"],
        out=tmp_path,
        quiet=True,
    ).run_dir
    report, _ = mlpcli.inspect(run, probes=True)
    assert report.probes is not None
    assert report.probes.rows == {"train": 750, "val": 250, "held_out": "held-out"}
    assert any("held-out 25% of the sample" in note for note in report.notes)


def test_a_regression_run_is_probed_by_least_squares_with_r2(tmp_path):
    config = Path(__file__).parent.parent / "configs" / "sine.yaml"
    run = mlpcli.train(config, ["train.epochs=3"], out=tmp_path, quiet=True).run_dir
    report, written = mlpcli.inspect(run, probes=True)
    assert report.probes is not None
    assert {p.metric for p in report.probes.probes} == {"r2"}
    assert report.probes.probes[0].width == 1
    assert "predictable" in report.probes.verdict
    assert run / "plots" / "representations.png" in written


def test_a_linear_model_has_its_input_probed_only(tmp_path):
    run = mlpcli.train(
        CIRCLES, ["model.hidden=[]", "train.epochs=2"], out=tmp_path, quiet=True
    ).run_dir
    report, _ = mlpcli.inspect(run, probes=True)
    assert report.probes is not None
    assert [p.name for p in report.probes.probes] == ["input"]
    assert report.probes.verdict.startswith("no layer's representation is linearly separable")


def test_rows_from_data_are_split_into_fitted_and_held_out(circles_run, tmp_path):
    mlpcli.load(circles_run).split("train").to_csv(tmp_path / "rows.csv", index=False)
    result = mlp("inspect", circles_run, "--probes", "--data", tmp_path / "rows.csv", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["probe_rows"] == {"train": 450, "val": 150, "held_out": "held-out"}
    assert any("as the rows are --data's" in note for note in report["notes"])
    assert report["probes"][-1]["val"] > 0.95

"""Streamed scoring: metrics summed chunk by chunk (and across processes) equal the metrics of
all the rows scored at once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlpcli.model.outputs import StreamScore, read_floats, score_chunks, score_outputs
from mlpcli.model.tasks import confusion_matrix

LOSSES = {
    "regression": nn.MSELoss(),
    "binary": nn.BCEWithLogitsLoss(),
    "classification": nn.CrossEntropyLoss(),
    "multilabel": nn.BCEWithLogitsLoss(),
}
CUTS = [0, 1, 7, 8, 150, 151, 400, 523]  # uneven chunks, an empty one and a one-row one


def case(task: str, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = CUTS[-1]
    outputs = torch.randn(n, k, generator=g, dtype=torch.float64).float()
    if task == "regression":
        targets = torch.randn(n, k, generator=g) * 0.5 + 0.3
    elif task == "binary":
        targets = (torch.rand(n, 1, generator=g) > 0.4).float()
    elif task == "classification":
        targets = torch.randint(0, k, (n,), generator=g)
    else:
        targets = (torch.rand(n, k, generator=g) > 0.5).float()
    return outputs, targets


def chunked(score: StreamScore, outputs: torch.Tensor, targets: torch.Tensor, cuts: list[int]):
    for a, b in zip(cuts, cuts[1:]):
        score.add(outputs[a:b], targets[a:b])
    return score


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    """Metrics to 1e-12; the loss to float32's rounding, as score_outputs averages it in
    float32 (test_loss_is_the_float64_mean checks it to 1e-12)."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            rel = 1e-6 if key == "loss" else 1e-12
            assert got[key] == pytest.approx(value, rel=rel, abs=1e-300), key


SCALE = torch.tensor([[3.0e5, 2.5e3], [-7.0, 0.01], [1.0, 1.0]], dtype=torch.float64)
CASES = [
    ("regression", 1, SCALE[:1]),
    ("regression", 3, SCALE),
    ("regression", 2, None),
    ("binary", 1, None),
    ("classification", 5, None),
    ("multilabel", 4, None),
]


@pytest.mark.parametrize(("task", "k", "scale"), CASES)
def test_chunks_equal_all_rows_at_once(task: str, k: int, scale: torch.Tensor | None) -> None:
    outputs, targets = case(task, k)
    want = read_floats(score_outputs(outputs, LOSSES[task], task, targets, scale))
    score = chunked(
        StreamScore(LOSSES[task], task, k, scale, torch.device("cpu")), outputs, targets, CUTS
    )
    assert_close(score.result(), want)
    if task in ("binary", "classification"):
        matrix = confusion_matrix(task, outputs, targets).tolist()
        assert score.confusion(score.vector()) == matrix


@pytest.mark.parametrize(("task", "k", "scale"), CASES)
def test_two_ranks_summed_equal_the_whole(task: str, k: int, scale: torch.Tensor | None) -> None:
    outputs, targets = case(task, k, seed=1)
    want = read_floats(score_outputs(outputs, LOSSES[task], task, targets, scale))
    device = torch.device("cpu")
    ranks = [
        chunked(StreamScore(LOSSES[task], task, k, scale, device), outputs, targets, cuts)
        for cuts in ([0, 100, 151], [151, 152, 523])
    ]
    vector = sum(r.vector() for r in ranks)
    extremes = np.maximum(*(r.extremes() for r in ranks))
    assert_close(ranks[0].result(vector, extremes), want)


def test_constant_target_has_no_r2_and_one_varying_target_has() -> None:
    outputs, targets = case("regression", 2)
    targets[:, 0] = 0.7  # constant: r2 is undefined, and the mean r2 with it
    scale = torch.tensor([[5.0, 2.0], [1.0, 3.0]], dtype=torch.float64)
    want = read_floats(score_outputs(outputs, LOSSES["regression"], "regression", targets, scale))
    assert math.isnan(want["r2"])
    score = chunked(
        StreamScore(LOSSES["regression"], "regression", 2, scale, torch.device("cpu")),
        outputs,
        targets,
        CUTS,
    )
    assert_close(score.result(), want)
    # Constant on each of two ranks but different between them: it varies, as a whole.
    targets[:151, 0], targets[151:, 0] = 0.7, 0.9
    want = read_floats(score_outputs(outputs, LOSSES["regression"], "regression", targets, scale))
    assert not math.isnan(want["r2"])
    ranks = [
        chunked(
            StreamScore(LOSSES["regression"], "regression", 2, scale, torch.device("cpu")),
            outputs,
            targets,
            cuts,
        )
        for cuts in ([0, 151], [151, 523])
    ]
    result = ranks[0].result(
        sum(r.vector() for r in ranks), np.maximum(*(r.extremes() for r in ranks))
    )
    assert_close(result, want)


@pytest.mark.parametrize(("task", "k"), [("regression", 2), ("classification", 3), ("binary", 1)])
def test_score_chunks_of_a_model_equals_evaluate(task: str, k: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, k))
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    outputs, targets = case(task, k)
    targets = targets[:300]
    scale = SCALE[:k] if task == "regression" else None
    cuts = ((0, 64), (64, 65), (65, 300))
    # The same rows in other batches may round differently in float32: the oracle scores the
    # model's outputs of the same chunks, all at once.
    with torch.inference_mode():
        whole = torch.cat([model(torch.from_numpy(x[a:b])) for a, b in cuts])
    want = read_floats(score_outputs(whole, LOSSES[task], task, targets, scale))
    chunks = [(x[a:b], targets[a:b].numpy()) for a, b in cuts]
    got = score_chunks(model, LOSSES[task], task, iter(chunks), scale, torch.device("cpu"))
    assert_close(got, want)


def test_no_rows_scores_nan() -> None:
    score = StreamScore(LOSSES["binary"], "binary", 1, None, torch.device("cpu"))
    result = score.result()
    assert set(result) == {"loss", "accuracy", "f1_macro"}
    assert all(math.isnan(v) for v in result.values())


@pytest.mark.parametrize(("task", "k", "scale"), CASES)
def test_loss_is_the_float64_mean(task: str, k: int, scale: torch.Tensor | None) -> None:
    outputs, targets = case(task, k)
    wide = targets if targets.dtype == torch.int64 else targets.double()
    want = LOSSES[task](outputs.double(), wide).item()
    score = chunked(
        StreamScore(LOSSES[task], task, k, scale, torch.device("cpu")), outputs, targets, CUTS
    )
    assert score.result()["loss"] == pytest.approx(want, rel=1e-12)

"""Per-layer diagnostics: the engines' probes against autograd, the statistics against numpy,
diagnostics.csv while training, and that looking inside changes nothing."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch
from conftest import InterruptAt
from safetensors.torch import load_file
from torch import nn

import mlpcli
from mlpcli.config.schema import ModelConfig, TrainConfig
from mlpcli.model.factory import build_mlp
from mlpcli.training.backprop import Backprop
from mlpcli.training.diagnostics import layer_stats, read_rows, sample_rows, unit_counts
from mlpcli.training.engine import Autograd
from mlpcli.training.probe import probe_model

SPECS = ["sigmoid", "tanh", "relu", {"name": "leaky_relu", "negative_slope": 0.2}, "gelu", "elu"]
LOSSES = {
    "bce": (nn.BCEWithLogitsLoss(), 1, lambda g: torch.randint(0, 2, (64, 1), generator=g).float()),
    "cross_entropy": (nn.CrossEntropyLoss(), 3, lambda g: torch.randint(0, 3, (64,), generator=g)),
    "mse": (nn.MSELoss(), 2, lambda g: torch.randn(64, 2, generator=g)),
}


def model_and_batch(spec, loss, dropout=0.0, hidden=(16, 12, 8)):
    config = ModelConfig(hidden=list(hidden), activation=spec, dropout=dropout)
    torch.manual_seed(0)
    loss_fn, outputs, targets = LOSSES[loss]
    model = build_mlp(config, 5, outputs)
    g = torch.Generator().manual_seed(1)
    return model, loss_fn, torch.randn(64, 5, generator=g), targets(g)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_both_engines_probe_the_same_per_layer_gradients(spec, loss, dropout):
    model, loss_fn, x, y = model_and_batch(spec, loss, dropout)
    twin = copy.deepcopy(model)
    train = TrainConfig()
    by_autograd = Autograd(model, loss_fn, train, torch.device("cpu")).probe(x, y)
    by_backprop = Backprop(twin, loss_fn).probe(x, y)
    assert len(by_autograd) == len(by_backprop) == 4
    for a, b in zip(by_autograd, by_backprop):
        for name in ("pre", "post", "grad_pre", "grad_weight", "weight"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-6)


def test_the_probe_is_the_chain_rule_of_the_batch_mean_loss():
    """dL/dz of each layer against autograd on the plain model, with hooks as the oracle."""
    model, loss_fn, x, y = model_and_batch("tanh", "cross_entropy")
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in model if isinstance(m, nn.Linear)]
    model.eval()
    loss_fn(model(x), y).backward()
    for h in hooks:
        h.remove()
    probes = probe_model(model, loss_fn, x, y)
    for out, probe, linear in zip(outputs, probes, [m for m in model if isinstance(m, nn.Linear)]):
        torch.testing.assert_close(probe.grad_pre, out.grad)
        torch.testing.assert_close(probe.grad_weight, linear.weight.grad)


def test_probing_leaves_weights_gradients_mode_and_random_state_alone():
    model, loss_fn, x, y = model_and_batch("relu", "mse", dropout=0.5)
    engine = Backprop(model, loss_fn)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    engine.probe(x, y)
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_batch_norm_is_probed_on_the_batch_statistics_with_dropout_off():
    """The oracle: autograd through the model in training mode, its dropout modules alone in
    eval mode; the probe must also leave the running statistics as they were."""
    config = ModelConfig(hidden=[16, 12, 8], activation="sigmoid", norm="batch", dropout=0.3)
    torch.manual_seed(0)
    model = build_mlp(config, 5, 3)
    loss_fn, _, targets = LOSSES["cross_entropy"]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 5, generator=g) * 3 + 1, targets(g)
    oracle = copy.deepcopy(model).train()
    for module in oracle:
        if isinstance(module, nn.Dropout):
            module.eval()
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    linears = [m for m in oracle if isinstance(m, nn.Linear)]
    hooks = [m.register_forward_hook(keep) for m in linears]
    loss_fn(oracle(x), y).backward()
    for h in hooks:
        h.remove()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probes = probe_model(model, loss_fn, x, y)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # running_mean, running_var, num_batches_tracked
    for out, probe, linear in zip(outputs, probes, linears, strict=True):
        torch.testing.assert_close(probe.grad_pre, out.grad)
        torch.testing.assert_close(probe.grad_weight, linear.weight.grad)
    eval_mode = model(x)  # the running statistics of an untrained layer: mean 0, variance 1
    assert not torch.allclose(oracle(x), eval_mode, atol=1e-3)


def test_diagnostics_see_what_batch_norm_does_to_ten_sigmoid_layers(tmp_path):
    """Recorded while training, as `mlp inspect` probes: with batch norm the first layer's
    gradient is not a vanishing fraction of the last one's at epoch 0, as it is without."""

    def first_over_last(*overrides):
        overrides = ["model.hidden=[16,16,16,16,16,16,16,16,16,16]", "model.activation=sigmoid",
                     "train.epochs=1", "train.diagnostics={every: 1}", *overrides]  # fmt: skip
        run = mlpcli.train(write(tmp_path), overrides, out=tmp_path, quiet=True).run_dir
        rows = read_rows(run / "diagnostics.csv")
        grad = {r["layer"]: r["value"] for r in rows if r["epoch"] == 0 and r["name"] == "grad_rms"}
        return grad[1] / grad[10]

    plain, normed = first_over_last(), first_over_last("model.norm=batch")
    assert plain < 1e-3 and normed > 0.1


def test_statistics_match_numpy():
    model, loss_fn, x, y = model_and_batch("sigmoid", "bce")
    probes = probe_model(model, loss_fn, x, y)
    previous = [p.weight * 0.9 for p in probes[:3]]
    stats = layer_stats(probes, ["sigmoid"] * 3, previous, epochs=2)
    for probe, layer in zip(probes, stats):
        rows = len(probe.pre)
        dz, w, a = probe.grad_pre.numpy(), probe.weight.numpy(), probe.post.numpy()
        assert layer["grad_rms"] == pytest.approx(np.sqrt(np.mean((dz * rows) ** 2)), rel=1e-5)
        assert layer["weight_grad_rms"] == pytest.approx(
            np.sqrt(np.mean(probe.grad_weight.numpy() ** 2)), rel=1e-5
        )
        assert layer["weight_rms"] == pytest.approx(np.sqrt(np.mean(w**2)), rel=1e-5)
        assert layer["update_ratio"] == pytest.approx(0.1 / 2, rel=1e-4)  # of the current weights
        assert layer["act_mean"] == pytest.approx(a.mean(), rel=1e-5)
        assert layer["act_std"] == pytest.approx(a.std(), rel=1e-4)
        near = (np.abs(a - 0.5) >= 0.47).mean(axis=0) > 0.5
        assert layer["saturated"] == pytest.approx(near.mean())
        assert "dead" not in layer


def test_huge_weights_saturate_every_sigmoid_and_tanh_unit():
    for spec in ("sigmoid", "tanh"):
        model, loss_fn, x, y = model_and_batch(spec, "mse", hidden=(32,))
        with torch.no_grad():
            model[0].weight.mul_(200)
        probes = probe_model(model, loss_fn, x, y)
        assert int(unit_counts(probes[0], spec)["saturated"]) == 32
        a = probes[0].post
        bound = 0.97 if spec == "tanh" else 0.47
        centre = 0.0 if spec == "tanh" else 0.5
        assert ((a - centre).abs() >= bound).float().mean() > 0.95


def test_a_first_layer_with_bias_minus_100_is_all_dead():
    model, loss_fn, x, y = model_and_batch("relu", "mse")
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    probes = probe_model(model, loss_fn, x, y)
    stats = layer_stats(probes, ["relu"] * 3)
    assert stats[0]["dead"] == 1.0
    assert stats[0]["grad_rms"] == 0.0 and stats[0]["act_mean"] == 0.0


def test_the_sample_is_fixed_and_touches_no_global_random_state():
    state = torch.get_rng_state()
    first, again = sample_rows(5000, 1024, 7), sample_rows(5000, 1024, 7)
    assert torch.equal(first, again) and len(first) == 1024 and len(set(first.tolist())) == 1024
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(sample_rows(300, 1024, 7), torch.arange(300))


CONFIG = """\
name: d
data: {source: moons, n_samples: 300}
model: {hidden: [16, 8], activation: tanh}
optim: {lr: 0.01}
train: {epochs: 6, checkpoint_seconds: 0}
"""


def write(tmp_path, text=CONFIG):
    path = tmp_path / "d.yaml"
    path.write_text(text)
    return path


def test_diagnostics_csv_is_long_form_per_hidden_layer(tmp_path):
    result = mlpcli.train(
        write(tmp_path), ["train.diagnostics={every: 2, rows: 100}"], out=tmp_path, quiet=True
    )
    with open(result.run_dir / "diagnostics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "layer", "name", "value"]
    assert sorted({int(r["epoch"]) for r in rows}) == [0, 2, 4, 6]
    assert {int(r["layer"]) for r in rows} == {1, 2}
    names = {r["name"] for r in rows if r["epoch"] == "2"}
    assert names == {
        "grad_rms",
        "weight_grad_rms",
        "weight_rms",
        "update_ratio",
        "act_mean",
        "act_std",
        "saturated",
    }
    assert all(np.isfinite(float(r["value"])) for r in rows)


def test_looking_inside_does_not_change_training(tmp_path):
    config = write(tmp_path)
    on = mlpcli.train(config, ["train.diagnostics={every: 1}"], out=tmp_path, quiet=True)
    off = mlpcli.train(config, ["train.diagnostics=false"], out=tmp_path, quiet=True)
    assert on.summary["metrics"] == off.summary["metrics"]
    weights_on = load_file(on.run_dir / "model.safetensors")
    weights_off = load_file(off.run_dir / "model.safetensors")
    assert all(torch.equal(weights_on[k], weights_off[k]) for k in weights_off)
    assert not (off.run_dir / "diagnostics.csv").exists()


def test_auto_records_the_untrained_first_and_last_epochs(tmp_path):
    result = mlpcli.train(write(tmp_path), out=tmp_path, quiet=True)
    epochs = {r["epoch"] for r in read_rows(result.run_dir / "diagnostics.csv")}
    assert {0, 1, 6} <= epochs <= set(range(7))


def test_a_linear_model_has_no_hidden_layer_rows(tmp_path):
    result = mlpcli.train(write(tmp_path), ["model.hidden=[]"], out=tmp_path, quiet=True)
    assert (result.run_dir / "diagnostics.csv").read_text() == "epoch,layer,name,value\n"


def test_resume_drops_rows_past_the_checkpoint_and_writes_what_an_uninterrupted_run_does(
    tmp_path,
):
    config = write(tmp_path)
    overrides = ["train.diagnostics={every: 1}"]
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(
            config, overrides, out=tmp_path, name="r", quiet=True, callbacks=[InterruptAt(3)]
        )
    run = tmp_path / "r"
    # Rows a killed process wrote after its last checkpoint.
    with open(run / "diagnostics.csv", "a") as f:
        f.write("5,1,grad_rms,123\n")
    mlpcli.train(config, overrides, out=tmp_path, resume=run, quiet=True)
    rows = read_rows(run / "diagnostics.csv")
    assert sorted({r["epoch"] for r in rows}) == list(range(7))
    uninterrupted = mlpcli.train(config, overrides, out=tmp_path, name="u", quiet=True)
    assert rows == read_rows(uninterrupted.run_dir / "diagnostics.csv")


def test_every_n_also_records_the_last_epoch(tmp_path):
    result = mlpcli.train(
        write(tmp_path), ["train.diagnostics={every: 4}"], out=tmp_path, quiet=True
    )
    epochs = {r["epoch"] for r in read_rows(result.run_dir / "diagnostics.csv")}
    assert epochs == {0, 4, 6}


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.engine=autograd", "model.norm=batch", "model.dropout=0.3"],
        ["model.activation={name: swish, learnable: true}", "model.norm=layer"],
        ["train.engine=backprop", "model.dropout=0.5", "model.activation=relu"],
    ],
    ids=["autograd-batchnorm-dropout", "learnable-swish-layernorm", "backprop-dropout"],
)
def test_looking_inside_leaves_every_engine_and_layer_kind_alone(tmp_path, overrides):
    """Batch norm's running statistics, dropout's random masks, the optimiser: all as without."""
    config = write(tmp_path)
    on = mlpcli.train(
        config, [*overrides, "train.diagnostics={every: 1}"], out=tmp_path, quiet=True
    )
    off = mlpcli.train(config, [*overrides, "train.diagnostics=false"], out=tmp_path, quiet=True)
    assert on.summary["metrics"] == off.summary["metrics"]
    weights_on = load_file(on.run_dir / "model.safetensors")
    weights_off = load_file(off.run_dir / "model.safetensors")
    assert weights_on.keys() == weights_off.keys()
    assert all(torch.equal(weights_on[k], weights_off[k]) for k in weights_off)


def test_leaky_relu_and_elu_units_are_never_called_dead():
    for spec in ({"name": "leaky_relu", "negative_slope": 0.1}, "elu"):
        model, loss_fn, x, y = model_and_batch(spec, "mse", hidden=(8,))
        with torch.no_grad():
            model[0].bias.fill_(-100.0)  # every unit below 0 on every row: still a slope there
        stats = layer_stats(
            probe_model(model, loss_fn, x, y), [spec if isinstance(spec, str) else spec["name"]]
        )
        assert "dead" not in stats[0] and "saturated" not in stats[0]

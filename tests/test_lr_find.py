"""The learning-rate range test: its rates, smoothing, stopping and suggestion rules against hand
computations, `mlp lr-find` and its options, and `optim.lr: auto` in training, resume and sweeps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import pytest
import torch
import yaml
from conftest import InterruptAt, assert_exit_2, mlp, saved_figures
from safetensors.torch import load_file

import mlpcli
from mlpcli.config.schema import build_config, load_config
from mlpcli.errors import ConfigError, TrainingError
from mlpcli.sweeps import run_sweep
from mlpcli.sweeps.executors.local import InlineExecutor
from mlpcli.training import lr_find

ROOT = Path(__file__).resolve().parents[1]
MOONS = ROOT / "configs" / "moons.yaml"


def small(**sections):
    raw = {
        "name": "lr",
        "data": {"source": "moons", "n_samples": 600, "noise": 0.2},
        "model": {"hidden": [16, 16]},
        "optim": {"lr": 1e-2},
        "train": {"epochs": 4, "batch_size": 64},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_config(raw)


# ------------------------------------------------------------ the rules, by hand


def test_the_rates_grow_exactly_exponentially_from_start_to_end():
    rates = lr_find.rates(1e-7, 10.0, 100)
    assert len(rates) == 100
    assert rates[0] == 1e-7 and rates[-1] == pytest.approx(10.0, rel=1e-12)
    factor = 1e8 ** (1 / 99)
    assert all(b / a == pytest.approx(factor, rel=1e-12) for a, b in zip(rates, rates[1:]))


def test_the_smoothing_is_fastais_bias_corrected_average():
    smoother = lr_find.Smoother(0.98)
    got = [smoother.add(loss) for loss in (1.0, 0.5, 2.0)]
    # avg_n = 0.98 avg_(n-1) + 0.02 loss_n, divided by 1 - 0.98^n
    a1 = 0.02 * 1.0
    a2 = 0.98 * a1 + 0.02 * 0.5
    a3 = 0.98 * a2 + 0.02 * 2.0
    expected = [a1 / 0.02, a2 / (1 - 0.98**2), a3 / (1 - 0.98**3)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[0] == 1.0  # the first value is the loss itself, not 2% of it
    assert expected[1] == pytest.approx((0.98 * 1.0 + 0.5) / 1.98)


def test_the_steepest_descent_is_found_where_the_curve_falls_fastest():
    lrs = lr_find.rates(1e-6, 1.0, 61)  # ten points per decade
    centre = -3.0  # log10(lr) of the fastest fall
    losses = [1 - math.tanh((math.log10(lr) - centre) / 0.5) for lr in lrs]
    assert lrs[lr_find.steepest(lrs, losses)] == pytest.approx(1e-3)
    # Against the rate, not the step: on a grid twice as fine, the same point.
    fine = lr_find.rates(1e-6, 1.0, 121)
    losses = [1 - math.tanh((math.log10(lr) - centre) / 0.5) for lr in fine]
    assert fine[lr_find.steepest(fine, losses)] == pytest.approx(1e-3)


def test_the_valley_rule_suggests_halfway_down_the_longest_descent():
    # Flat until 30, falling to 70, then rising: the longest decreasing run spans 28..70 as
    # fastai counts it (its length, 42 points, back from its end), and a third plus a sixth
    # of that span past its start is 28 + 14 + 7.
    losses = [1.0] * 30 + [1.0 - 0.01 * (i - 29) for i in range(30, 71)]
    losses += [losses[-1] + 0.05 * k for k in range(1, 30)]
    assert lr_find.valley(losses) == 49
    lrs = lr_find.rates(1e-7, 10.0, len(losses))
    suggested, _ = lr_find.suggest(lrs, losses, len(losses))
    assert suggested == lrs[49]


class Rows:
    def __init__(self, rows):
        self.x, self.y = torch.zeros(rows, 2), torch.zeros(rows)

    def __len__(self):
        return len(self.x)


def test_a_curve_that_blows_up_at_once_is_refused_rather_than_read():
    assert lr_find.window(100, 100) == (10, 95)
    assert lr_find.window(12, 100) == (0, 12)  # too short to leave points out: read whole
    for count in (1, 2, 4):  # a suggestion from so few points would only echo --start
        with pytest.raises(TrainingError, match="no curve to read"):
            lr_find.window(count, 100)
    assert lr_find.window(5, 100) == (0, 5)


def fake_trainer(losses, batch_size=4, rows=10):
    """A trainer whose engine returns the given losses in turn; each step's rate and batch
    size are recorded."""
    group = {"lr": 0.0}
    seen = []
    steps = iter(losses)

    class Engine:
        model = SimpleNamespace(train=lambda: None)

        def context(self):
            return torch.no_grad()

        def loss(self, x, y):
            seen.append((group["lr"], len(x)))
            return torch.tensor(next(steps))

        def update(self, optimizer, clip, share=1.0):
            pass

    trainer = SimpleNamespace(
        engine=Engine(),
        optimizer=SimpleNamespace(param_groups=[group]),
        train_data=Rows(rows),
        config=SimpleNamespace(train=SimpleNamespace(batch_size=batch_size, grad_clip=None)),
        generator=torch.Generator().manual_seed(0),
        threads=None,
    )
    return trainer, seen


def test_the_test_stops_once_the_smoothed_loss_passes_four_times_its_best():
    raw = [1.0, 1.0, 1.0, 0.5, 0.5, 40.0, 300.0] + [1.0] * 30
    smoother, best, stop_at = lr_find.Smoother(), math.inf, None
    for i, loss in enumerate(raw):
        value = smoother.add(loss)
        if value > 4 * best:
            stop_at = i
            break
        best = min(best, value)
    assert stop_at is not None
    trainer, seen = fake_trainer(raw)
    found = lr_find.range_test(lambda lr: trainer, 1e-3, 1.0, 30)
    assert found.stopped_early
    assert len(found.lrs) == stop_at + 1  # the point that passed is drawn, then it stops
    assert found.losses[-1] > 4 * min(found.losses[:-1])
    assert all(found.losses[i] <= 4 * min(found.losses[: i + 1]) for i in range(stop_at))
    assert [lr for lr, _ in seen] == found.lrs == lr_find.rates(1e-3, 1.0, 30)[: stop_at + 1]


def test_a_loss_that_is_not_finite_stops_the_test_and_is_left_out():
    raw = [1.0] * 12 + [math.nan] + [1.0] * 30
    trainer, _ = fake_trainer(raw)
    found = lr_find.range_test(lambda lr: trainer, 1e-3, 1.0, 30)
    assert found.stopped_early and len(found.lrs) == 12
    assert all(math.isfinite(v) for v in found.losses)


def test_batches_cycle_through_shuffled_epochs_when_the_split_is_short():
    trainer, seen = fake_trainer([1.0] * 40, batch_size=4, rows=10)
    found = lr_find.range_test(lambda lr: trainer, 1e-4, 1e-2, 25)
    assert len(found.lrs) == 25 and not found.stopped_early
    assert [rows for _, rows in seen] == [4, 4, 2] * 8 + [4]  # 10 rows: 3 batches an epoch


@pytest.mark.parametrize(
    "start, end, steps, option",
    [
        (0, 10, 100, "--start"),
        (1e-3, -1, 100, "--end"),
        (1.0, 0.1, 100, "--start 1"),
        (1e-7, 10, 5, "--steps 5"),
        (1e-7, 10, 100_000, "--steps 100000"),
        (1e-7, math.inf, 100, "--end"),
    ],
)
def test_a_range_that_makes_no_curve_is_refused_naming_the_option(start, end, steps, option):
    with pytest.raises(ConfigError, match=option):
        lr_find.check_range(start, end, steps)


# ------------------------------------------------------------ on a real config


def test_the_suggestion_is_within_ten_times_a_good_hand_picked_rate():
    config = load_config(MOONS)  # adam, optim.lr 1e-2: trains the moons to 0.98
    found = mlpcli.lr_find(config, plot=False)
    assert config.optim.lr / 10 <= found.suggested_lr <= config.optim.lr * 10
    assert found.suggested_lr in found.lrs and found.steepest_lr in found.lrs
    assert len(found.lrs) == len(found.losses) == len(found.raw_losses)


def test_the_callers_random_state_and_config_are_untouched_and_no_run_folder_is_made(tmp_path):
    config = small()
    before = config.to_dict()
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    found = mlpcli.lr_find(config, out=tmp_path / "runs")
    assert torch.equal(torch.get_rng_state(), state)
    assert config.to_dict() == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["lr-lr_find.png"]
    assert found.figure == tmp_path / "runs" / "lr-lr_find.png"
    # The same test again gives the same curve: the model is seeded from the config.
    again = mlpcli.lr_find(config, out=tmp_path / "runs")
    assert again.losses == found.losses and again.suggested_lr == found.suggested_lr
    assert again.figure == tmp_path / "runs" / "lr-lr_find-2.png"  # never overwritten


def test_both_engines_give_the_same_curve():
    curves = {
        engine: mlpcli.lr_find(small(train={"engine": engine}), plot=False, steps=60)
        for engine in ("autograd", "backprop")
    }
    a, b = curves["autograd"], curves["backprop"]
    assert a.lrs == b.lrs
    assert a.losses == pytest.approx(b.losses, rel=1e-4)
    assert a.suggested_lr == b.suggested_lr


def test_the_figure_draws_the_smoothed_loss_on_a_log_axis_with_the_suggestion(
    tmp_path, monkeypatch
):
    figures = saved_figures(monkeypatch)
    found = mlpcli.lr_find(small(), output=tmp_path / "curve.png")
    image = matplotlib.image.imread(found.figure)
    assert found.figure == tmp_path / "curve.png" and image.ndim == 3 and image.shape[0] > 200
    (ax,) = figures["curve.png"].axes
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"
    smoothed = [line for line in ax.get_lines() if line.get_label().startswith("smoothed")]
    assert list(smoothed[0].get_ydata()) == found.losses
    marks = {tuple(line.get_xdata()) for line in ax.get_lines() if line.get_linestyle() == "--"}
    assert (found.suggested_lr, found.suggested_lr) in marks
    assert "the config's optim.lr: 0.01" in [t.get_text() for t in ax.get_legend().get_texts()]


# ------------------------------------------------------------ mlp lr-find


def test_mlp_lr_find_prints_the_suggestion_and_writes_a_fresh_figure(tmp_path):
    out = tmp_path / "runs"
    result = mlp("lr-find", MOONS, "--out", out)
    assert result.exit_code == 0, result.output
    assert "suggested optim.lr" in result.stdout and "100 steps" in result.stdout
    assert f"wrote {out / 'moons-lr_find.png'}" in result.stderr
    data = mlp("lr-find", MOONS, "--out", out, "--json")
    found = json.loads(data.stdout)  # nothing else on stdout
    assert set(found) == {"suggested_lr", "lrs", "losses", "stopped_early", "figure"}
    assert len(found["lrs"]) == len(found["losses"]) and found["suggested_lr"] in found["lrs"]
    assert isinstance(found["stopped_early"], bool)
    assert found["figure"] == str(out / "moons-lr_find-2.png")
    assert sorted(p.name for p in out.iterdir()) == ["moons-lr_find-2.png", "moons-lr_find.png"]


def test_mlp_lr_find_refuses_bad_options_naming_them(tmp_path):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    cases = [
        (["--start", "0"], "--start"),
        (["--start", "1", "--end", "0.1"], "--start must be below --end"),
        (["--steps", "3"], "--steps 3"),
        (["-o", taken], "already exists"),
        (["optim.lrr=0.1"], "optim.lrr"),
    ]
    for args, needle in cases:
        assert_exit_2(mlp("lr-find", MOONS, "--out", tmp_path / "runs", *args), needle)
    assert taken.read_bytes() == b"mine" and not (tmp_path / "runs").exists()
    assert_exit_2(mlp("lr-find", MOONS, "--out", taken), f"--out {taken}: not a folder")
    assert taken.read_bytes() == b"mine"


def test_a_test_that_blows_up_in_its_first_steps_suggests_nothing(tmp_path):
    args = ["--start", "10", "--end", "1e6", "--steps", "20", "--out", tmp_path / "runs"]
    result = mlp("lr-find", MOONS, *args)
    assert result.exit_code == 1 and "no curve to read" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_option_and_config_errors_come_before_torch(tmp_path):
    from test_imports import exit_code_and_imports

    out = str(tmp_path / "runs")
    for args in (["--start", "1", "--end", "1"], ["--steps", "10"], ["optim.lr=fast"]):
        code, heavy = exit_code_and_imports(["lr-find", str(MOONS), "--out", out, *args])
        assert code == 2 and "torch" not in heavy, args


# ------------------------------------------------------------ optim.lr: auto


def test_config_show_keeps_auto_and_a_bad_rate_names_both_forms():
    result = mlp("config", "show", MOONS, "optim.lr=auto")
    assert yaml.safe_load(result.stdout)["optim"]["lr"] == "auto"
    assert_exit_2(mlp("config", "show", MOONS, "optim.lr=fastest"), "optim.lr", "auto")


def test_auto_trains_with_the_suggested_rate_and_records_it(tmp_path):
    sections = {"train": {"epochs": 40}}
    auto = mlpcli.train(small(optim={"lr": "auto"}, **sections), out=tmp_path / "a", quiet=True)
    found = auto.summary["lr_find"]
    lr = found["suggested_lr"]
    assert isinstance(lr, float) and set(found) >= {"suggested_lr", "stopped_early"}
    saved = yaml.safe_load((auto.run_dir / "config.yaml").read_text())
    assert saved["optim"]["lr"] == lr
    assert json.loads((auto.run_dir / "summary.json").read_text())["lr_find"] == found
    assert matplotlib.image.imread(auto.run_dir / "plots" / "lr_find.png").ndim == 3
    assert mlpcli.load(auto.run_dir).config.optim.lr == lr  # the model file's config too
    # The oracle: a run given that number trains bitwise the same.
    fixed = mlpcli.train(small(optim={"lr": lr}, **sections), out=tmp_path / "f", quiet=True)
    a, b = (load_file(r.run_dir / "model.safetensors") for r in (auto, fixed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert auto.summary["metrics"] == fixed.summary["metrics"]
    assert auto.summary["metrics"]["val"]["accuracy"] > 0.9


def test_a_resumed_auto_run_keeps_its_rate(tmp_path):
    config = small(optim={"lr": "auto"}, train={"epochs": 4, "checkpoint_seconds": 0})
    whole = mlpcli.train(config, out=tmp_path / "whole", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        mlpcli.train(config, out=tmp_path, name="cut", quiet=True, callbacks=[InterruptAt(2)])
    cut = tmp_path / "cut"
    lr = yaml.safe_load((cut / "config.yaml").read_text())["optim"]["lr"]
    assert lr == whole.summary["lr_find"]["suggested_lr"]
    recorded = json.loads((cut / "summary.json").read_text())["lr_find"]
    resumed = mlpcli.train(config, resume=cut, quiet=True)  # the config still says auto
    assert yaml.safe_load((cut / "config.yaml").read_text())["optim"]["lr"] == lr
    assert resumed.summary["lr_find"] == recorded  # no second test
    assert resumed.summary["metrics"] == whole.summary["metrics"]
    # From the command line, with the run's own config.yaml, and with more epochs.
    more = mlp("train", "--resume", cut, "train.epochs=5", "-q", "--json")
    assert more.exit_code == 0, more.output
    assert yaml.safe_load((cut / "config.yaml").read_text())["optim"]["lr"] == lr


def test_a_quiet_auto_run_says_nothing_and_a_loud_one_names_the_rate(tmp_path):
    args = ["train", MOONS, "optim.lr=auto", "train.epochs=1", "--out", tmp_path]
    loud = mlp(*args)
    assert loud.exit_code == 0 and "optim.lr auto:" in loud.stderr
    quiet = mlp(*args, "-q", "--json")
    assert "optim.lr auto" not in quiet.stderr
    assert json.loads(quiet.stdout)["lr_find"]["suggested_lr"] > 0


def test_a_sweep_with_auto_finds_a_rate_for_each_trial(tmp_path):
    config = small(optim={"lr": "auto"}, train={"epochs": 2})
    result = run_sweep(config, hidden=[4, 32], out=tmp_path, quiet=True, executor=InlineExecutor())
    assert result.summary["completed"] == 2
    for trial in sorted((result.sweep_dir / "trials").iterdir()):
        lr = yaml.safe_load((trial / "config.yaml").read_text())["optim"]["lr"]
        summary = json.loads((trial / "summary.json").read_text())
        assert lr == summary["lr_find"]["suggested_lr"]  # each trial's own test
        assert (trial / "plots" / "lr_find.png").is_file()

"""The search's figures, drawn from synthetic trials and checked on the figure objects: each
line where its values lie on each key's axis, a log key on decade ticks, the best trial the
brightest, pruned trials grey and ending where they stopped, failed ones left out and counted,
importances sorted, and no label running off the figure."""

from __future__ import annotations

import math

import pytest
from conftest import TICK_POWER, log_tick_labels, saved_figures, tick_value
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.image import imread
from matplotlib.text import Text

from mlpcli.sweeps.grid import format_value
from mlpcli.sweeps.search import plots
from mlpcli.sweeps.search.plots import SearchPoint, shorten
from mlpcli.sweeps.search.space import Dim

SWISH = {"name": "swish", "beta": 2.0, "learnable": True}  # a choice with a long label
DIMS = {
    "optim.lr": Dim("optim.lr", "log", 1e-4, 1e-1, log=True),
    "model.dropout": Dim("model.dropout", "uniform", 0.0, 0.5),
    "model.hidden": Dim("model.hidden", "choice", choices=([16], [64, 64], SWISH)),
    "train.batch_size": Dim("train.batch_size", "int", 16, 256, log=True),
    "train.patience": Dim("train.patience", "int", 2, 10),
}
PRUNED = {2: 1, 6: 4, 9: 4}  # trial -> the epoch it was stopped after
FAILED = {4}
BEST = 7
EPOCHS = 8


def trial(i: int) -> SearchPoint:
    """Trial i of twelve: values spread over each key's range, the objective (an accuracy)
    highest at trial 7."""
    params = {
        "optim.lr": 10 ** (-4 + 3 * i / 11),
        "model.dropout": 0.04 * i,
        "model.hidden": DIMS["model.hidden"].choices[i % 3],
        "train.batch_size": (16, 32, 64, 128, 256)[i % 5],
        "train.patience": 2 + i % 9,
    }
    final = 0.9 - 0.03 * abs(i - BEST) - 0.001 * i  # no two alike
    if i in FAILED:
        return SearchPoint(f"trial-{i:03d}", "failed", params, None, [])
    stop = PRUNED.get(i)
    curve = [(e, final - 0.25 * (EPOCHS - e) / EPOCHS) for e in range(1, (stop or EPOCHS) + 1)]
    status = "pruned" if stop else "completed"
    return SearchPoint(f"trial-{i:03d}", status, params, curve[-1][1], curve, pruned_at=stop)


POINTS = [trial(i) for i in range(12)]


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert height > 200 and width > 200


def drawn_texts(fig) -> list[Text]:
    """The figure's titles, labels, annotations, legend entries and the tick labels in view."""
    texts = [*fig.texts, *(t for legend in fig.legends for t in legend.get_texts())]
    texts += [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    texts += [tick.label1, tick.label2]
    return [t for t in texts if t.get_visible() and t.get_text()]


def assert_texts_inside(fig) -> None:
    """Every label drawn lies within the figure: none runs off its edge."""
    canvas = FigureCanvasAgg(fig)  # a closed figure's canvas no longer draws
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = drawn_texts(fig)
    assert len(texts) > 5
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = box.x0 >= -1 and box.y0 >= -1
        inside = inside and box.x1 <= fig.bbox.width + 1 and box.y1 <= fig.bbox.height + 1
        assert inside, (text.get_text(), box, fig.bbox)


def key_axes(fig, key):
    (found,) = [ax for ax in fig.axes if ax.get_label() == key]
    return found


def tick_texts(ax, minor=False):
    """The y tick labels in view, bottom to top."""
    low, high = sorted(ax.get_ylim())
    ticks = ax.yaxis.get_minor_ticks() if minor else ax.yaxis.get_major_ticks()
    shown = [(t.get_loc(), t.label1.get_text()) for t in ticks if low <= t.get_loc() <= high]
    return [text for _, text in sorted(shown) if text]


@pytest.fixture
def figures(monkeypatch):
    return saved_figures(monkeypatch)


def test_parallel_lines_lie_on_each_keys_axis(tmp_path, figures):
    path = plots.parallel_figure(POINTS, DIMS, "val_accuracy", True, tmp_path / "p.png", "s")
    assert_png(path)
    fig = figures["p.png"]
    main = fig.axes[0]
    lines, pruned = [], []
    for c in main.collections:
        assert isinstance(c, LineCollection)
        (pruned if c.get_array() is None else lines).append(c)
    drawn = [p for p in POINTS if p.status == "completed"]
    assert len(lines[0].get_segments()) == len(drawn)
    assert len(pruned[0].get_segments()) == len(PRUNED)
    assert pruned[0].get_zorder() < lines[0].get_zorder()  # grey underneath
    assert pruned[0].get_colors()[0][:3] == pytest.approx([0.62] * 3)
    fig.canvas.draw()
    by_value = dict(zip(lines[0].get_array(), lines[0].get_segments()))
    for point in drawn:  # each vertex where the key's own axes shows its value
        segment = by_value[point.value]
        for i, key in enumerate([*DIMS, "val_accuracy"]):
            ax = key_axes(fig, key)
            value = point.value if key == "val_accuracy" else point.params[key]
            if key == "model.hidden":
                value = [format_value(c) for c in DIMS[key].choices].index(format_value(value))
            drawn_at = main.transData.transform(segment[i])[1]
            shown_at = ax.transData.transform((0, value))[1]
            assert drawn_at == pytest.approx(shown_at, abs=0.01), key
    assert (
        "12 trials: 8 completed, 3 pruned (grey), 1 failed, not drawn" in fig._suptitle.get_text()
    )


def test_parallel_axes_show_decades_integers_and_choices(tmp_path, figures):
    plots.parallel_figure(POINTS, DIMS, "val_accuracy", True, tmp_path / "p.png", "s")
    fig = figures["p.png"]
    lr = key_axes(fig, "optim.lr")
    assert lr.get_yscale() == "log"
    decades = [t for t in tick_texts(lr) if TICK_POWER.match(t)]
    assert len(decades) == 4  # 10^-4 ... 10^-1
    for place, value in log_tick_labels(fig):  # each log label the number at its place
        assert value == pytest.approx(place, rel=1e-6)
    batch = key_axes(fig, "train.batch_size")
    assert batch.get_yscale() == "log"
    shown = [float(t) for t in tick_texts(batch) + tick_texts(batch, minor=True)]
    assert 100 in shown and all(v == int(v) and 16 <= v <= 256 for v in shown)
    patience = [tick_value(t) for t in key_axes(fig, "train.patience").get_yticklabels()]
    assert patience and all(v == int(v) for v in patience)
    assert (
        key_axes(fig, "model.dropout").get_ylim()[0]
        < 0
        < 0.5
        < key_axes(fig, "model.dropout").get_ylim()[1]
    )
    hidden = tick_texts(key_axes(fig, "model.hidden"))
    assert hidden[:2] == ["[16]", "[64,64]"]
    assert len(format_value(SWISH)) > 18 and hidden[2] == shorten(format_value(SWISH))
    assert hidden[2].endswith("\u2026") and len(hidden[2]) == 18
    names = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert names == [*DIMS, "val_accuracy"]
    assert_texts_inside(fig)


@pytest.mark.parametrize("maximise", [True, False])
def test_parallel_colours_the_best_trial_brightest(tmp_path, figures, maximise):
    # minimised, the objective is a loss: its best is the lowest
    points = [
        SearchPoint(p.name, p.status, p.params, None if p.value is None else 1 - p.value, [])
        for p in POINTS
    ]
    objective = "val_accuracy" if maximise else "val_loss"
    chosen = POINTS if maximise else points
    plots.parallel_figure(chosen, DIMS, objective, maximise, tmp_path / "p.png", "s")
    fig = figures["p.png"]
    lines = next(c for c in fig.axes[0].collections if c.get_array() is not None)
    colours = lines.to_rgba(lines.get_array())
    values = list(lines.get_array())
    best = values.index(max(values) if maximise else min(values))
    assert best == len(values) - 1  # drawn last, on top
    bright = lines.get_cmap()(lines.norm(values[best]))
    assert tuple(colours[best]) == pytest.approx(bright)
    assert bright[:3] == pytest.approx((0.993, 0.906, 0.144), abs=0.01)  # viridis' yellow end
    assert max(lines.get_linewidths()) == lines.get_linewidths()[best]
    bar = fig.axes[-1]
    direction = "higher" if maximise else "lower"
    assert bar.get_ylabel() == f"{objective} ({direction} is better)"


def test_intermediate_pruned_grey_ending_where_stopped(tmp_path, figures):
    path = plots.intermediate_figure(
        POINTS, "val_accuracy", True, tmp_path / "i.png", "s", rungs=(1, 4, 16)
    )
    assert_png(path)
    fig = figures["i.png"]
    ax = fig.axes[0]
    grey = [line for line in ax.get_lines() if line.get_color() == plots.PRUNED]
    ends = sorted(int(line.get_xdata()[-1]) for line in grey)
    assert ends == sorted(PRUNED.values())
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    stops = {(int(c.get_xdata()[0]), c.get_ydata()[0]) for c in crosses}
    assert stops == {(POINTS[i].pruned_at, POINTS[i].value) for i in PRUNED}
    names = {line.get_label() for line in ax.get_lines()}
    completed = {p.name for p in POINTS if p.status == "completed"}
    assert completed <= names and POINTS[4].name not in names  # the failed one left out
    best = next(line for line in ax.get_lines() if line.get_label() == POINTS[BEST].name)
    assert best.get_linewidth() == max(line.get_linewidth() for line in ax.get_lines())
    assert any(POINTS[BEST].name in t.get_text() for t in ax.texts)  # the best named
    rungs = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
    assert rungs == [1, 4]  # 16 lies past the last epoch
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert any("final val_accuracy" in a.get_ylabel() for a in fig.axes[1:])  # the colour bar
    assert "1 failed, not drawn" in fig._suptitle.get_text()
    assert_texts_inside(fig)


def test_importance_bars_sorted_with_their_values(tmp_path, figures):
    shares = {"model.dropout": 0.2, "optim.lr": 0.62, "train.patience": 0.03, "model.hidden": 0.15}
    note = "fANOVA over 8 completed trials"
    path = plots.importance_figure(shares, "val_accuracy", tmp_path / "m.png", "s", note=note)
    assert_png(path)
    fig = figures["m.png"]
    ax = fig.axes[0]
    bars = sorted(ax.patches, key=lambda b: -b.get_y())  # top first
    assert [b.get_width() for b in bars] == sorted(shares.values(), reverse=True)
    top_down = [
        t.get_text() for t in sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])
    ]
    assert top_down == sorted(shares, key=lambda k: -shares[k])
    assert {t.get_text() for t in ax.texts} == {f"{v:.2f}" for v in shares.values()}
    assert ax.get_xlim() == (0, 1)
    assert "variance" in ax.get_xlabel() and note in ax.get_title()
    assert_texts_inside(fig)


def test_figures_of_a_search_with_nothing_completed(tmp_path, figures):
    only = [POINTS[4], POINTS[2]]  # one failed, one pruned
    plots.parallel_figure(only, DIMS, "val_loss", False, tmp_path / "p.png", "s")
    plots.intermediate_figure(only, "val_loss", False, tmp_path / "i.png", "s")
    plots.importance_figure({}, "val_loss", tmp_path / "m.png", "s")
    for name in ("p.png", "i.png", "m.png"):
        assert_png(tmp_path / name)
    assert "2 trials: 0 completed, 1 pruned" in figures["p.png"]._suptitle.get_text()


def test_shorten():
    assert shorten("[64,64]") == "[64,64]"
    assert shorten("x" * 30) == "x" * 17 + "\u2026"
    assert math.isnan(plots._Axis("k", 1e-3, 1.0, log=True).unit(0.0))

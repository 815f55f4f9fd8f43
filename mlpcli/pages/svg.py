"""Small SVG line charts drawn from numbers alone, for pages whose run has no loss figure.

An SVG of a few hundred points weighs a few KB where a PNG weighs tens, and it needs no
matplotlib: a page of a sweep with hundreds of trials stays small and quick to build. Every text
goes through `markup.clean` and `html.escape`, and the drawing holds no link, script or
reference, so it is safe as an image's data URI.
"""

from __future__ import annotations

import html
import math

from .markup import clean

# matplotlib's tab10, in its order, so an SVG chart matches the PNG figures beside it.
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_FAMILY = 'font-family="system-ui,sans-serif"'
_FONT = f'{_FAMILY} font-size="11"'


def _text(value: str) -> str:
    """Text as XML accepts it: controls and lone surrogates as U+FFFD (as on the page), then
    escaped."""
    return html.escape(clean(value))


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """3-5 round values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 1e-9 and len(ticks) < 6:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value = first + step * len(ticks)
    return ticks


def _label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.0e}"
    return f"{value:.6g}"


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 520,
    height: int = 280,
    log_y: bool = False,
) -> bytes:
    """A line per series (x, y points), axes with ticks, a legend and a title, as UTF-8 SVG.
    Points that are not finite (or not positive on a log axis) are left out; a series with one
    point is a dot, and a chart without any point says so."""

    def usable(x: float, y: float) -> bool:
        return math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)

    clean = {
        name: [(float(x), math.log10(y) if log_y else float(y)) for x, y in points if usable(x, y)]
        for name, points in series.items()
    }
    left, right, top, bottom = 62, 14, 28, 44
    legend_rows = len(clean)
    bottom += 14 * legend_rows
    plot_w, plot_h = max(width - left - right, 10), max(height - top - bottom, 10)
    total_h = top + plot_h + bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        f'viewBox="0 0 {width} {total_h}" role="img">',
        f"<title>{_text(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{total_h}" fill="#ffffff"/>',
        f'<text x="{width / 2:.1f}" y="17" text-anchor="middle" {_FAMILY} font-size="13" '
        f'font-weight="600">{_text(title)}</text>',
    ]
    points = [p for pts in clean.values() for p in pts]
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
        if y1 == y0:
            pad = abs(y0) * 0.1 or 1.0
            y0, y1 = y0 - pad, y1 + pad
        else:
            pad = (y1 - y0) * 0.05
            y0, y1 = y0 - pad, y1 + pad

        def px(x: float) -> float:
            return left + (x - x0) / (x1 - x0) * plot_w

        def py(y: float) -> float:
            return top + plot_h - (y - y0) / (y1 - y0) * plot_h

        y_ticks = (
            [float(t) for t in range(math.ceil(y0), math.floor(y1) + 1)] if log_y else []
        ) or _ticks(y0, y1)
        if len(y_ticks) > 6:
            y_ticks = y_ticks[:: math.ceil(len(y_ticks) / 5)]
        for tick in _ticks(x0, x1):
            out.append(
                f'<line x1="{px(tick):.1f}" y1="{top + plot_h}" x2="{px(tick):.1f}" '
                f'y2="{top + plot_h + 4}" stroke="#444"/>'
                f'<text x="{px(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f"{_FONT}>{_text(_label(tick))}</text>"
            )
        for tick in y_ticks:
            shown = 10**tick if log_y else tick
            out.append(
                f'<line x1="{left}" y1="{py(tick):.1f}" x2="{left + plot_w}" y2="{py(tick):.1f}" '
                f'stroke="#e3e6ea"/>'
                f'<text x="{left - 5}" y="{py(tick) + 4:.1f}" text-anchor="end" '
                f"{_FONT}>{_text(_label(shown))}</text>"
            )
        for index, pts in enumerate(clean.values()):
            colour = COLOURS[index % len(COLOURS)]
            if len(pts) == 1:
                out.append(
                    f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" '
                    f'fill="{colour}"/>'
                )
            elif pts:
                coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
                out.append(
                    f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.6"/>'
                )
    else:
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
            f'{_FONT} fill="#5b6672">no finite values to draw</text>'
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#444"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" text-anchor="middle" '
        f"{_FONT}>{_text(x_label)}</text>"
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" {_FONT} '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">'
        f"{_text(y_label + (' (log scale)' if log_y else ''))}</text>"
    )
    for index, name in enumerate(clean):
        colour = COLOURS[index % len(COLOURS)]
        y = top + plot_h + 46 + 14 * index
        out.append(
            f'<line x1="{left}" y1="{y - 4}" x2="{left + 18}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{left + 24}" y="{y}" {_FONT}>{_text(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out).encode("utf-8")

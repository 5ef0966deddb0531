"""Inline SVG charts for the report: a line chart (loss, learning rate) and overlaid histograms (lengths on vs
off). SVG text inside the page needs no image file and no network, and stays a few kilobytes per chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

MODE_COLOURS = {"on": "#d95f02", "off": "#1b9e77"}  # the dataset card's colours (curation/plots.py)
WIDTH, HEIGHT = 520, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str, body: list[str], ticks: list[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="chart-title">{escape(title)}</text>'
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" class="axis"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" class="axis"/>'
        + "".join(ticks)
        + "".join(body)
        + f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="12" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + HEIGHT - BOTTOM) / 2})">{escape(y_label)}</text></svg>'
    )


def _scale(low: float, high: float, start: float, end: float):
    span = (high - low) or 1.0
    return lambda v: start + (v - low) / span * (end - start)


class _YScale:
    def __init__(self, low: float, high: float) -> None:
        self.map = _scale(low, high, HEIGHT - BOTTOM, TOP)
        self.labels = [(low + (high - low) * i / 4, _fmt(low + (high - low) * i / 4)) for i in range(5)]

    def __call__(self, v: float) -> float:
        return self.map(v)


def _ticks(low: float, high: float, to_x, to_y: _YScale, log_x: bool = False) -> list[str]:
    """Four ticks on each axis, labelled with the value (x in data units, 10**x when log_x)."""
    out = []
    for i in range(5):
        x = low + (high - low) * i / 4
        label = _fmt(10**x) if log_x else _fmt(x)
        px = to_x(x)
        out.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">{label}</text>')
    return out + [
        f'<text x="{LEFT - 4}" y="{to_y(v) + 4:.1f}" text-anchor="end" class="tick">{escape(text)}</text>'
        for v, text in to_y.labels
    ]


def line_chart(xs: Sequence[float], ys: Sequence[float], title: str, x_label: str, y_label: str) -> str:
    """One series as a polyline (steps on x)."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    if not points:
        return f'<p class="empty">{escape(title)}: no values</p>'
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    to_x, to_y = _scale(x_low, x_high, LEFT, WIDTH - RIGHT), _YScale(y_low, y_high * 1.05 or 1.0)
    path = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in points)
    body = [f'<polyline points="{path}" class="series"/>']
    return _frame(title, x_label, y_label, body, _ticks(x_low, x_high, to_x, to_y))


def histogram(series: dict[str, Sequence[int]], title: str, x_label: str, bins: int = 30) -> str:
    """Overlaid histograms per mode on log-spaced bins (an on answer is often 10x an off one)."""
    values = [v for vs in series.values() for v in vs if v > 0]
    if not values:
        return f'<p class="empty">{escape(title)}: no rows</p>'
    low, high = math.log10(min(values)), math.log10(max(values))
    high = max(high, low + 1e-6)
    width = (high - low) / bins
    counts = {}
    for mode, vs in series.items():
        row = [0] * bins
        for v in vs:
            if v > 0:
                row[min(bins - 1, int((math.log10(v) - low) / width))] += 1
        counts[mode] = row
    top = max(max(row) for row in counts.values())
    to_x, to_y = _scale(low, high, LEFT, WIDTH - RIGHT), _YScale(0, top)
    body = []
    for mode, row in counts.items():
        colour = MODE_COLOURS.get(mode, "#7570b3")
        for i, n in enumerate(row):
            if n:
                x0, x1 = to_x(low + i * width), to_x(low + (i + 1) * width)
                body.append(
                    f'<rect x="{x0:.1f}" y="{to_y(n):.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                    f'height="{to_y(0) - to_y(n):.1f}" fill="{colour}" fill-opacity="0.6"><title>{escape(mode)}: {n}'
                    "</title></rect>"
                )
    for i, mode in enumerate(counts):
        colour = MODE_COLOURS.get(mode, "#7570b3")
        n = sum(1 for v in series[mode] if v > 0)
        body.append(
            f'<rect x="{WIDTH - 150}" y="{TOP + 4 + i * 16}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{WIDTH - 136}" y="{TOP + 13 + i * 16}" class="tick">thinking {escape(mode)} (n={n})</text>'
        )
    return _frame(title, x_label, "rows", body, _ticks(low, high, to_x, to_y, log_x=True))

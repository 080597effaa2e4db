"""Server-side SVG charts for the analytics page: no JavaScript, no build step, no CDN.

Each chart is inline SVG drawn in a fixed coordinate space (``viewBox``) that scales with
the page. Colours come from CSS classes (``static/dashboard/analytics.css``) built on the
admin's own variables, and text uses ``currentColor``, so the charts follow the admin's
light and dark themes. Each ``<svg>`` is ``role="img"`` with a ``<title>`` and a ``<desc>``
that says the numbers in words; the page also shows the same numbers as tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 900
_ids = count(1)


@dataclass(frozen=True)
class Series:
    """One stacked layer of a bar chart: a key (its CSS class), a label and its values."""

    key: str
    label: str
    values: Sequence[float]


@dataclass(frozen=True)
class Bar:
    """One bar of a horizontal bar chart."""

    label: str
    value: float
    text: str
    key: str = "primary"


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def _join(parts: Sequence[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((p,) for p in parts))


def _frame(
    title: str, desc: str, height: int, body: SafeString, css: str, width: int = WIDTH
) -> SafeString:
    n = next(_ids)
    return format_html(
        '<svg class="ta-chart {}" viewBox="0 0 {} {}" role="img" '
        'aria-labelledby="ta-svg-{}-t ta-svg-{}-d" xmlns="http://www.w3.org/2000/svg">'
        '<title id="ta-svg-{}-t">{}</title><desc id="ta-svg-{}-d">{}</desc>{}</svg>',
        css, width, height, n, n, n, title, n, desc, body,
    )  # fmt: skip


def _y_axis(top: float, left: int, right: int, y0: int, h: int, fmt: str) -> SafeString:
    ticks = [top * i / 4 for i in range(5)]
    return format_html_join(
        "",
        '<line class="ta-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="ta-tick" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (left, right, y, y, left - 6, y + 4, fmt.format(t))
            for t in ticks
            for y in [round(y0 - h * t / top, 1)]
        ),
    )


def stacked_bars(
    title: str, desc: str, labels: Sequence[str], series: Sequence[Series], label_every: int
) -> SafeString:
    """Vertical bars, one per bucket, each stacked from ``series`` (bottom first)."""
    height, left, right, top_pad, bottom = 260, 48, WIDTH - 8, 12, 222
    n = max(1, len(labels))
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = nice_max(max(totals, default=0))
    slot = (right - left) / n
    bar_w = max(1.0, slot * 0.78)
    parts = [_y_axis(top, left, right, bottom, bottom - top_pad, "{:g}")]
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(bottom)
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            h = (bottom - top_pad) * v / top
            y -= h
            parts.append(format_html(
                '<rect class="ta-fill--{}" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {} {}</title></rect>",
                s.key, round(x, 2), round(y, 2), round(bar_w, 2), round(h, 2), label, v, s.label,
            ))  # fmt: skip
        if i % label_every == 0:
            parts.append(format_html(
                '<text class="ta-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                round(x + bar_w / 2, 1), bottom + 16, label,
            ))  # fmt: skip
    parts.append(_legend(series, height - 8))
    return _frame(title, desc, height, _join(parts), "ta-chart--bars")


def _legend(series: Sequence[Series], y: int) -> SafeString:
    return format_html_join(
        "",
        '<rect class="ta-fill--{}" x="{}" y="{}" width="10" height="10"/>'
        '<text class="ta-legend" x="{}" y="{}">{}</text>',
        ((s.key, 48 + i * 130, y - 9, 62 + i * 130, y, s.label) for i, s in enumerate(series)),
    )


def line(title: str, desc: str, labels: Sequence[str], values: Sequence[float | None],
         label_every: int) -> SafeString:  # fmt: skip
    """A 0-100 % line (gaps where a value is None), with a dot on each point."""
    height, left, right, top_pad, bottom = 200, 48, WIDTH - 8, 12, 172
    n = max(1, len(labels))
    slot = (right - left) / n
    parts = [_y_axis(100, left, right, bottom, bottom - top_pad, "{:g}%")]
    points: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        x = round(left + i * slot + slot / 2, 1)
        if i % label_every == 0:
            parts.append(format_html(
                '<text class="ta-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                x, bottom + 16, labels[i],
            ))  # fmt: skip
        if v is None:
            points.append([])
            continue
        y = round(bottom - (bottom - top_pad) * v, 1)
        points[-1].append((x, y))
        parts.append(format_html(
            '<circle class="ta-dot" cx="{}" cy="{}" r="2.5"><title>{}: {}%</title></circle>',
            x, y, labels[i], round(v * 100, 1),
        ))  # fmt: skip
    for run in points:
        if len(run) > 1:
            coords = " ".join(f"{x},{y}" for x, y in run)
            parts.insert(1, format_html('<polyline class="ta-line" points="{}"/>', coords))
    return _frame(title, desc, height, _join(parts), "ta-chart--line")


def hbars(title: str, desc: str, bars: Sequence[Bar], width: int = 480) -> SafeString:
    """Horizontal bars with their label on the left and their value written after them
    (narrower than the other charts: they sit in a half-width column)."""
    row, label_w, right = 30, 180, width - 70
    height = max(1, len(bars)) * row + 8
    top = max((b.value for b in bars), default=0) or 1.0
    parts = []
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = round((right - label_w) * b.value / top, 2)
        parts.append(format_html(
            '<text class="ta-label" x="{}" y="{}" text-anchor="end">{}</text>'
            '<rect class="ta-fill--{}" x="{}" y="{}" width="{}" height="{}" rx="2"/>'
            '<text class="ta-value" x="{}" y="{}">{}</text>',
            label_w - 8, y + 17, b.label, b.key, label_w, y + 4, w, row - 10,
            label_w + w + 6, y + 17, b.text,
        ))  # fmt: skip
    return _frame(title, desc, height, _join(parts), "ta-chart--hbars", width)

"""Server-rendered SVG charts: no CDN, no JavaScript, readable by a screen reader.

Every piece of text that reaches the SVG (titles, series names, axis labels, which may hold a
model version's or a moderator's name) goes through `escape`; only the markup built here is
marked safe. Each chart carries a <title> and a <desc>, and every point a <title> with its
value, so the figures are there without the picture (the pages also show them as tables).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe categorical palette (Okabe–Ito), darkened a little for white backgrounds.
PALETTE = ("#2f5bd3", "#d55e00", "#009e73", "#cc79a7", "#8a6a00", "#56b4e9", "#6b21a8")
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    """One line: a name and a value per x position (None leaves a gap)."""

    name: str
    values: Sequence[float | None]
    colour: str | None = None
    dashed: bool = False


def _number(value: float, percent: bool) -> str:
    if percent:
        text = f"{100 * value:.1f}" if value < 0.1 else f"{100 * value:.0f}"
        return f"{text.removesuffix('.0')}%"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}"


def _tick_texts(ticks: Sequence[float], percent: bool) -> list[str]:
    """The y axis's tick labels: as `_number` writes them, unless two would read the same (a
    DCM rate of a tenth of a percent, ticks 0.02% apart), then with as many decimals as tell
    them apart."""
    texts = [_number(tick, percent) for tick in ticks]
    if len(set(texts)) == len(texts) or len(ticks) < 2:
        return texts
    step = (100 if percent else 1) * (ticks[1] - ticks[0])
    decimals = max(0, math.ceil(-math.log10(step)))
    unit = "%" if percent else ""
    return [f"{(100 if percent else 1) * tick:.{decimals}f}{unit}" for tick in ticks]


def _axis_top(value: float, percent: bool) -> tuple[float, int]:
    """A round top for the y axis at or above `value`, and how many ticks divide it evenly."""
    if value <= 0:
        return 1.0, 4
    magnitude = 10 ** math.floor(math.log10(value))
    for step, ticks in ((1, 5), (2, 4), (2.5, 5), (5, 5), (10, 5)):
        top = step * magnitude
        if top >= value:
            if percent and value <= 1 and top > 1:
                return 1.0, 5
            return top, ticks
    return value, 4


def _ticks(top: float, count: int) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _svg_open(width: int, height: int, title: str, desc: str) -> list[str]:
    uid = f"chart-{next(_ids)}"
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{uid}-title {uid}-desc" '
        f'preserveAspectRatio="xMidYMid meet">',
        f'<title id="{uid}-title">{escape(title)}</title>',
        f'<desc id="{uid}-desc">{escape(desc)}</desc>',
    ]
    return parts


def _y_axis(
    parts: list[str],
    *,
    left: int,
    right: int,
    top: int,
    bottom: int,
    y_max: float,
    ticks: int,
    percent: bool,
    y_label: str,
) -> None:
    values = _ticks(y_max, ticks)
    for tick, text in zip(values, _tick_texts(values, percent), strict=True):
        y = bottom - (bottom - top) * tick / y_max
        parts.append(
            f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    if y_label:
        middle = (top + bottom) / 2
        parts.append(
            f'<text class="axis-label" transform="translate(14 {middle:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )


# About how wide a character of an 11px tick label is: enough to keep labels apart.
TICK_CHAR_PX = 6.6


def _label_width(label: str) -> float:
    return TICK_CHAR_PX * max((len(line) for line in label.split("\n")), default=0)


def _x_labels(
    labels: Sequence[str],
    xs: Sequence[float],
    y: float,
    every: int = 1,
    *,
    shown: Sequence[int] | None = None,
    anchor_edges: bool = False,
) -> list[str]:
    """The x axis's labels, under their points: every `every`th, or those `shown`. With
    `anchor_edges` the first label starts at its point and the last ends at its own, so
    neither runs past the plot's edge into the axis or the chart beside it."""
    indices = range(0, len(labels), every) if shown is None else shown
    parts = []
    for i in indices:
        label, x = labels[i], xs[i]
        anchor = "middle"
        if anchor_edges and len(labels) > 1 and i in (0, len(labels) - 1):
            anchor = "start" if i == 0 else "end"
        # A label may hold a line break: each line is its own <tspan>.
        lines = "".join(
            f'<tspan x="{x:.1f}" dy="{0 if k == 0 else 13}">{escape(line)}</tspan>'
            for k, line in enumerate(label.split("\n"))
        )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{lines}</text>'
        )
    return parts


def x_labels_shown(labels: Sequence[str], step: float) -> list[int]:
    """Which of a line chart's x labels fit, `step` apart, without touching: always the first
    and the last (anchored at the edges, each runs a whole width inwards), and between them
    as many, evenly spaced, as have room. The points keep their labels in their tooltips."""
    n = len(labels)
    if n <= 1:
        return list(range(n))
    width = max(_label_width(label) for label in labels) + 12  # a gap between neighbours
    if (n - 1) * step < 2 * width:  # the first and the last alone would touch: the latest
        return [n - 1]
    every = max(1, math.ceil(width / step))
    edge = 1.5 * width  # from an edge label's point to the middle of the next one's
    middle = [
        i for i in range(every, n - 1, every) if i * step >= edge and (n - 1 - i) * step >= edge
    ]
    return [0, *middle, n - 1]


def line_chart(
    series: Sequence[Series],
    *,
    x_labels: Sequence[str],
    title: str,
    y_label: str = "",
    percent: bool = True,
    y_max: float | None = None,
    width: int = 720,
    height: int = 280,
    point_labels: Sequence[str] | None = None,
) -> SafeString:
    """A line chart: one polyline per series over shared x positions, with axes, a grid,
    a legend and a <title> on every point. Values are rates (0-1) when `percent`.

    The x labels are drawn where they fit (`x_labels_shown`); each point's <title> names it
    by its `point_labels` entry (by default its x label), so a hidden label is not lost."""
    left, right, top, bottom = 56, width - 16, 16, height - 58
    values = [v for s in series for v in s.values if v is not None]
    if y_max is None:
        y_max, ticks = _axis_top(max(values, default=0.0), percent)
    else:
        ticks = 4
    parts = _svg_open(
        width,
        height,
        title,
        f"{len(series)} series over {len(x_labels)} points: "
        + "; ".join(
            f"{s.name}: "
            + ", ".join("none" if v is None else _number(v, percent) for v in s.values)
            for s in series
        ),
    )
    _y_axis(
        parts,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        y_max=y_max,
        ticks=ticks,
        percent=percent,
        y_label=y_label,
    )
    n = len(x_labels)
    step = (right - left - 24) / max(n - 1, 1)
    xs = [left + 12 + step * i if n > 1 else (left + right) / 2 for i in range(n)]
    shown = x_labels_shown(x_labels, step)
    parts += _x_labels(x_labels, xs, bottom + 18, shown=shown, anchor_edges=True)
    tooltips = [label.replace("\n", " · ") for label in point_labels or x_labels]

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * min(value, y_max) / y_max

    for k, s in enumerate(series):
        colour = escape(s.colour or PALETTE[k % len(PALETTE)])
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        segment: list[str] = []
        segments: list[list[str]] = []
        for x, value in zip(xs, s.values, strict=True):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x:.1f},{y_of(value):.1f}")
        if segment:
            segments.append(segment)
        parts.append(f'<g class="series" aria-label="{escape(s.name)}">')
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dash} '
                    f'stroke-linejoin="round" points="{" ".join(points)}"/>'
                )
        for x, label, value in zip(xs, tooltips, s.values, strict=True):
            if value is None:
                continue
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y_of(value):.1f}" r="3.5" fill="#fff" '
                f'stroke="{colour}" stroke-width="2"><title>{escape(s.name)}, {escape(label)}: '
                f"{escape(_number(value, percent))}</title></circle>"
            )
        parts.append("</g>")
    # Legend below the x labels, left to right.
    x = left
    for k, s in enumerate(series):
        colour = escape(s.colour or PALETTE[k % len(PALETTE)])
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        y = height - 14
        parts.append(
            f'<line x1="{x}" x2="{x + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="2.5"{dash}/><text class="legend" x="{x + 28}" y="{y}">'
            f"{escape(s.name)}</text>"
        )
        x += 40 + 7 * len(s.name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text went through escape()


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    y_label: str = "",
    percent: bool = False,
    colour: str = PALETTE[0],
    width: int = 720,
    height: int = 240,
) -> SafeString:
    """A vertical bar chart of (label, value) pairs with axes, a grid and a <title> per bar."""
    left, right, top, bottom = 48, width - 12, 14, height - 30
    y_max, ticks = _axis_top(max((v for _, v in bars), default=0.0), percent)
    parts = _svg_open(
        width,
        height,
        title,
        ", ".join(f"{label}: {_number(value, percent)}" for label, value in bars) or "no data",
    )
    _y_axis(
        parts,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        y_max=y_max,
        ticks=ticks,
        percent=percent,
        y_label=y_label,
    )
    n = max(len(bars), 1)
    slot = (right - left) / n
    bar_width = max(2.0, slot * 0.7)
    xs = [left + slot * (i + 0.5) for i in range(len(bars))]
    fill = escape(colour)
    for x, (label, value) in zip(xs, bars, strict=True):
        h = (bottom - top) * min(value, y_max) / y_max
        parts.append(
            f'<rect class="bar-rect" x="{x - bar_width / 2:.1f}" y="{bottom - h:.1f}" '
            f'width="{bar_width:.1f}" height="{h:.1f}" fill="{fill}" rx="2">'
            f"<title>{escape(label)}: {escape(_number(value, percent))}</title></rect>"
        )
    every = max(1, math.ceil(len(bars) / max(1, (right - left) // 70)))
    parts += _x_labels([label for label, _ in bars], xs, bottom + 18, every)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text went through escape()

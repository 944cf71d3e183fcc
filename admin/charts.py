"""Small server-rendered SVG charts for the panel: no JavaScript, no CDN, readable without colour.

Each chart is an ``<svg role="img">`` with a title and a text description of its data, scaled to its
container through ``viewBox``. Two shapes cover the reports: bars (one or more series on one axis)
and bars with a line on a second axis (e.g. outreach delivered against sales it earned).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 560, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 60, 14, 34, 30
MAX_X_LABELS = 6
INK, MUTED, GRID = "#1d1d1f", "#6b6b73", "#e4e2dc"
PALETTE = ("#5b3cc4", "#1f7a4d", "#c26a00", "#2f6db3")

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str = PALETTE[0]


def plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value`` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value * (1 - 1e-9):
            return float(top)
    return float(10 ** (exponent + 1))


def _text(x: float, y: float, content: str, *, anchor: str = "middle", color: str = MUTED, size: int = 12) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{color}">'
        f"{escape(content)}</text>"
    )


class _Frame:
    """Plot area, horizontal grid lines with a value axis, and thinned category labels."""

    def __init__(self, labels: Sequence[str], top: float, *, pad_right: int = PAD_RIGHT) -> None:
        self.labels = list(labels)
        self.top = top
        self.x0, self.x1 = PAD_LEFT, WIDTH - pad_right
        self.y0, self.y1 = HEIGHT - PAD_BOTTOM, PAD_TOP
        self.slot = (self.x1 - self.x0) / max(1, len(self.labels))

    def y(self, value: float) -> float:
        return self.y0 - (self.y0 - self.y1) * (value / self.top if self.top else 0)

    def centre(self, i: int) -> float:
        return self.x0 + self.slot * (i + 0.5)

    def grid(self, fmt: Format, *, right: tuple[float, Format] | None = None) -> list[str]:
        parts = []
        for step in range(5):
            value = self.top * step / 4
            y = self.y(value)
            parts.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="{GRID}"/>')
            parts.append(_text(self.x0 - 6, y + 4, fmt(value), anchor="end"))
            if right is not None:
                top, rfmt = right
                parts.append(_text(self.x1 + 4, y + 4, rfmt(top * step / 4), anchor="start"))
        every = max(1, math.ceil(len(self.labels) / MAX_X_LABELS))
        for i, label in enumerate(self.labels):
            if i % every == 0:
                parts.append(_text(self.centre(i), self.y0 + 16, label))
        return parts


def _legend(series: Sequence[tuple[str, str, str]]) -> list[str]:
    """(name, colour, shape) swatches along the top."""
    parts, x = [], PAD_LEFT
    for name, color, shape in series:
        if shape == "line":
            parts.append(f'<line x1="{x}" y1="12" x2="{x + 14}" y2="12" stroke="{color}" stroke-width="3"/>')
        else:
            parts.append(f'<rect x="{x}" y="6" width="12" height="12" rx="2" fill="{color}"/>')
        parts.append(_text(x + 18, 16, name, anchor="start", color=INK, size=13))
        x += 32 + 7 * len(name)
    return parts


def _svg(title: str, description: str, body: list[str], *, klass: str = "chart") -> Markup:
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-") or "chart"
    return Markup(
        f'<svg class="{klass}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{slug}-t {slug}-d" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif">'
        f'<title id="{slug}-t">{escape(title)}</title><desc id="{slug}-d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _describe(labels: Sequence[str], series: Sequence[Series], fmts: Sequence[Format]) -> str:
    parts = []
    for s, fmt in zip(series, fmts, strict=True):
        values = ", ".join(f"{label}: {fmt(v)}" for label, v in zip(labels, s.values, strict=True))
        parts.append(f"{s.name} — {values}")
    return "; ".join(parts)


def bar_chart(labels: Sequence[str], series: Sequence[Series], *, title: str, fmt: Format = plain) -> Markup:
    """Grouped bars, one group per label, on one value axis."""
    top = nice_max(max((v for s in series for v in s.values), default=0))
    frame = _Frame(labels, top)
    body = frame.grid(fmt)
    group = frame.slot * 0.7
    width = group / max(1, len(series))
    for j, s in enumerate(series):
        for i, value in enumerate(s.values):
            if value <= 0:
                continue
            x = frame.centre(i) - group / 2 + j * width
            y = frame.y(value)
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(1.0, width - 1):.1f}" height="{frame.y0 - y:.1f}" '
                f'fill="{s.color}"><title>{escape(f"{labels[i]}: {fmt(value)}")}</title></rect>'
            )
    if len(series) > 1:
        body += _legend([(s.name, s.color, "bar") for s in series])
    else:
        body.append(_text(PAD_LEFT, 16, title, anchor="start", color=INK, size=13))
    return _svg(title, _describe(labels, series, [fmt] * len(series)), body)


def bar_line_chart(
    labels: Sequence[str],
    bars: Series,
    line: Series,
    *,
    title: str,
    bar_fmt: Format = plain,
    line_fmt: Format = plain,
) -> Markup:
    """Bars on the left axis and a line (with dots) on the right one: two measures of different size."""
    top = nice_max(max(bars.values, default=0))
    line_top = nice_max(max(line.values, default=0))
    frame = _Frame(labels, top, pad_right=PAD_LEFT)
    body = frame.grid(bar_fmt, right=(line_top, line_fmt))
    width = frame.slot * 0.6
    for i, value in enumerate(bars.values):
        if value > 0:
            y = frame.y(value)
            body.append(
                f'<rect x="{frame.centre(i) - width / 2:.1f}" y="{y:.1f}" width="{max(1.0, width):.1f}" '
                f'height="{frame.y0 - y:.1f}" fill="{bars.color}" opacity="0.75">'
                f"<title>{escape(f'{labels[i]}: {bar_fmt(value)} {bars.name.lower()}')}</title></rect>"
            )
    line_frame = _Frame(labels, line_top, pad_right=PAD_LEFT)
    points = [(frame.centre(i), line_frame.y(v)) for i, v in enumerate(line.values)]
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{line.color}" stroke-width="2.5"/>')
        for (x, y), label, v in zip(points, labels, line.values, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{line.color}">'
                f"<title>{escape(f'{label}: {line_fmt(v)} {line.name.lower()}')}</title></circle>"
            )
    body += _legend([(bars.name, bars.color, "bar"), (line.name + " (right axis)", line.color, "line")])
    return _svg(title, _describe(labels, [bars, line], [bar_fmt, line_fmt]), body)

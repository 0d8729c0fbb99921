"""Plain SVG charts for the HTML report: axes with ticks, points, lines, budget lines.

Hand-written rather than a plotting library, so that the page is a few tens of KB,
needs nothing from the network and renders without its script. A mark with `tip`
text gets a `data-tip` attribute (the page's script shows it on hover); `key` (a
trial id) ties the marks of one trial across the charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable

WIDTH, HEIGHT = 440, 300
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 30, 44
#: Data coordinates -> SVG coordinates along one axis.
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Mark:
    """One point: where, its CSS colour, its hover text, its trial and whether it is
    highlighted (a Pareto point: larger, outlined and labelled with `label`)."""

    x: float
    y: float
    colour: str
    tip: str = ""
    key: int | None = None
    strong: bool = False
    label: str = ""


@dataclass
class Chart:
    """A chart of marks and lines on linear axes; `svg` draws it."""

    title: str
    xlabel: str
    ylabel: str
    marks: list[Mark] = field(default_factory=list)
    #: polylines: (points, CSS colour, dashed)
    lines: list[tuple[list[tuple[float, float]], str, bool]] = field(default_factory=list)
    #: vertical budget lines: (x, text)
    limits: list[tuple[float, str]] = field(default_factory=list)
    diagonal: bool = False

    def svg(self) -> str:
        """The chart as an `<svg>` element."""
        xs = [m.x for m in self.marks] + [x for x, _ in self.limits] + [
            x for line, _, _ in self.lines for x, _ in line]
        ys = [m.y for m in self.marks] + [y for line, _, _ in self.lines for _, y in line]
        if self.diagonal:
            xs = ys = xs + ys
        (x0, x1), (y0, y1) = _span(xs), _span(ys)
        sx = _scale(x0, x1, LEFT, WIDTH - RIGHT)
        sy = _scale(y0, y1, HEIGHT - BOTTOM, TOP)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
                 f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(self.title)}">',
                 f'<text x="{WIDTH / 2}" y="18" class="title">{escape(self.title)}</text>']
        parts += _axes(x0, x1, y0, y1, sx, sy, self.xlabel, self.ylabel)
        if self.diagonal:
            low, high = max(x0, y0), min(x1, y1)
            parts.append(f'<line x1="{sx(low):.1f}" y1="{sy(low):.1f}" x2="{sx(high):.1f}" '
                         f'y2="{sy(high):.1f}" class="diag"><title>test = validation</title>'
                         '</line>')
        for x, text in self.limits:
            parts.append(f'<line x1="{sx(x):.1f}" y1="{TOP}" x2="{sx(x):.1f}" '
                         f'y2="{HEIGHT - BOTTOM}" class="limit"/>'
                         f'<text x="{sx(x) - 3:.1f}" y="{TOP + 10}" class="limit-text">'
                         f'{escape(text)}</text>')
        for points, colour, dashed in self.lines:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.6"{dash}/>')
        for mark in sorted(self.marks, key=lambda m: m.strong):
            parts.append(_mark(mark, sx(mark.x), sy(mark.y)))
        return "\n".join([*parts, "</svg>"])


def _mark(mark: Mark, x: float, y: float) -> str:
    attributes = (f' class="pt{" front" if mark.strong else ""}'
                  f'{f" t{mark.key}" if mark.key is not None else ""}"'
                  f'{f" data-tip={_quoted(mark.tip)}" if mark.tip else ""}')
    circle = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5.5 if mark.strong else 3.5}" '
              f'fill="{mark.colour}"{attributes}/>')
    if mark.label:
        circle += f'<text x="{x + 7:.1f}" y="{y - 5:.1f}" class="id">{escape(mark.label)}</text>'
    return circle


def _quoted(text: str) -> str:
    return '"' + escape(text, quote=True).replace("\n", "&#10;") + '"'


def _span(values: list[float]) -> tuple[float, float]:
    """The axis range: the values' range with a margin (a unit range when flat)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.06 or max(abs(high) * 0.1, 1e-9)
    return low - pad, high + pad


def _scale(low: float, high: float, to_low: float, to_high: float) -> Scale:
    return lambda v: to_low + (v - low) / (high - low) * (to_high - to_low)


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [low, high]."""
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step) + 1)]


def _axes(x0: float, x1: float, y0: float, y1: float, sx: Scale, sy: Scale,
          xlabel: str, ylabel: str) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}" '
             'class="frame"/>']
    for v in ticks(x0, x1):
        parts.append(f'<line x1="{sx(v):.1f}" y1="{TOP}" x2="{sx(v):.1f}" y2="{bottom}" '
                     f'class="grid"/><text x="{sx(v):.1f}" y="{bottom + 14}" class="tick">'
                     f'{v:g}</text>')
    for v in ticks(y0, y1):
        parts.append(f'<line x1="{LEFT}" y1="{sy(v):.1f}" x2="{right}" y2="{sy(v):.1f}" '
                     f'class="grid"/><text x="{LEFT - 5}" y="{sy(v) + 4:.1f}" '
                     f'class="tick y">{v:g}</text>')
    parts.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 8}" class="label">'
                 f'{escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(14 {(TOP + bottom) / 2}) rotate(-90)" '
                 f'class="label">{escape(ylabel)}</text>')
    return parts

"""Line charts as SVG text: the one place the load tools draw (curves.py, soak.py).

Standard library only, no I/O: ``chart()`` takes panels of series and returns the SVG
as a string; the caller writes it. Each panel has its own axes (ticks, labels, a log
scale where asked) and a legend to the right of the plot area; panels stack top to
bottom and share the figure's width. Every series is one ``<path class="series">``
(with a ``<title>`` naming it, so the file can be checked and hovered), plus a small
circle per point (``dots``). A missing value (None, NaN, or not positive on a log
axis) breaks the line instead of pretending it is zero.

    svg = chart([Panel([Series("service", [(1000, 2.1), (2000, 2.0)])], y_label="CPU s")], "title")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

# One colour and dash per series, in order, unless a series names its own.
PALETTE = ("#2471a3", "#7d3c98", "#c0392b", "#1e8449", "#b9770e", "#566573")
DASHES = ("6 3", "2 3", "", "8 3 2 3", "", "")

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    colour: str = ""
    dash: str = ""  # stroke-dasharray; "" for a solid line


@dataclass(frozen=True)
class Panel:
    series: Sequence[Series]
    y_label: str
    x_label: str = ""
    x_log: bool = False
    y_log: bool = False
    x_ticks: Sequence[float] = ()  # explicit ticks (e.g. the sizes measured), else nice ones
    y_ticks: Sequence[float] = ()
    markers: Sequence[tuple[float, str]] = ()  # dashed vertical lines at x, with a label
    title: str = ""
    dots: bool = True  # a circle per point (off for long time series)


@dataclass(frozen=True)
class Axis:
    """Maps values to pixels: ``lo`` at ``start``, ``hi`` at ``end`` (either may be the larger pixel)."""

    lo: float
    hi: float
    log: bool
    ticks: list[float] = field(default_factory=list)

    def usable(self, value: float | None) -> bool:
        return value is not None and math.isfinite(value) and (value > 0 or not self.log)

    def fraction(self, value: float) -> float:
        if self.log:
            return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def pixel(self, value: float, start: float, end: float) -> float:
        return start + (end - start) * self.fraction(value)


def nice_step(span: float, target: int = 5) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten giving about ``target`` intervals."""
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw * (1 - 1e-9):
            return m * magnitude
    return 10 * magnitude  # not reached: 10 * magnitude >= raw always


def linear_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Evenly spaced nice ticks from at or below ``lo`` to at or above ``hi``."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = nice_step(hi - lo, target)
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    count = round((last - first) / step)
    # round() keeps 0.1 + 0.2 from printing as 0.30000000000000004
    return [round(first + k * step, 12) for k in range(count + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten from at or below ``lo`` to at or above ``hi`` (both > 0); with two
    decades or fewer, 2 and 5 times each power too, so a short axis gets enough ticks."""
    if lo <= 0 or hi <= 0:
        raise ValueError("a log axis needs positive bounds")
    first, last = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    if last == first:
        last += 1
    ticks = [10.0**e for e in range(first, last + 1)]
    if last - first <= 2:
        ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= 10.0**last)
        # Then trim to the ticks just around the values: 2..16 gets 2, 5, 10, 20.
        # (A single value keeps a tick either side, so the axis has a length.)
        below = max(i for i, t in enumerate(ticks) if t <= lo * (1 + 1e-9))
        above = min(i for i, t in enumerate(ticks) if t >= hi * (1 - 1e-9))
        if below == above:
            below, above = max(0, below - 1), min(len(ticks) - 1, above + 1)
        ticks = ticks[below : above + 1]
    return ticks


def make_axis(values: Sequence[float | None], log: bool, ticks: Sequence[float] = (), zero: bool = True) -> Axis:
    """An axis covering ``values`` (and ``ticks``, if given); a linear one starts at 0
    when ``zero`` and every value is positive, since costs read best against zero."""
    usable = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if ticks:
        tick_list = sorted(float(t) for t in ticks if t > 0 or not log)
        span = usable + tick_list
        return Axis(min(span), max(span), log, tick_list) if min(span) < max(span) else make_axis(span, log)
    if log:
        lo, hi = (min(usable), max(usable)) if usable else (1.0, 10.0)
        tick_list = log_ticks(lo, hi)
        return Axis(tick_list[0], tick_list[-1], True, tick_list)
    lo, hi = (min(usable), max(usable)) if usable else (0.0, 1.0)
    if zero and lo > 0:
        lo = 0.0
    tick_list = linear_ticks(lo, hi)
    return Axis(tick_list[0], tick_list[-1], False, tick_list)


def tick_label(value: float) -> str:
    """Short labels: 12k, 2.5k, 250, 0.25, 1e-05."""
    if value == 0:
        return "0"
    if abs(value) >= 1000 and abs(value) < 1e7:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """SVG path data; a None starts a new sub-path (a gap in the line)."""
    parts: list[str] = []
    pen_down = False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def _panel(panel: Panel, top: float, width: int, height: int) -> list[str]:
    left, right, bottom = 70, 150, 40  # room for tick labels, the legend and the x label
    x0, x1, y0, y1 = left, width - right, top + height - bottom, top + 20
    xs = [x for s in panel.series for x, _ in s.points]
    ys = [y for s in panel.series for _, y in s.points]
    x_axis = make_axis(xs, panel.x_log, panel.x_ticks, zero=False)
    y_axis = make_axis(ys, panel.y_log, panel.y_ticks)
    out = ['<g class="panel">']
    if panel.title:
        out.append(f'<text x="{x0}" y="{top + 12}" font-weight="bold">{escape(panel.title)}</text>')
    out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999"/>')
    for t in x_axis.ticks:
        px = x_axis.pixel(t, x0, x1)
        out.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" stroke="#eee"/>')
        out.append(f'<text x="{px:.1f}" y="{y0 + 14}" text-anchor="middle">{escape(tick_label(t))}</text>')
    for t in y_axis.ticks:
        py = y_axis.pixel(t, y0, y1)
        out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 5}" y="{py + 4:.1f}" text-anchor="end">{escape(tick_label(t))}</text>')
    scale = ", log scale"
    x_text = panel.x_label + (scale if panel.x_log and panel.x_label else "")
    y_text = panel.y_label + (scale if panel.y_log else "")
    out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 30}" text-anchor="middle">{escape(x_text)}</text>')
    mid = (y0 + y1) / 2
    out.append(
        f'<text x="{x0 - 50}" y="{mid}" text-anchor="middle" transform="rotate(-90 {x0 - 50} {mid})">'
        f"{escape(y_text)}</text>"
    )
    for x, label in panel.markers:
        if x_axis.usable(x) and x_axis.lo <= x <= x_axis.hi:
            px = x_axis.pixel(x, x0, x1)
            out.append(
                f'<line class="marker" x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" '
                f'stroke="#999" stroke-dasharray="4"/>'
            )
            out.append(f'<text x="{px + 3:.1f}" y="{y1 + 12}" fill="#777">{escape(label)}</text>')
    for n, series in enumerate(panel.series):
        colour = series.colour or PALETTE[n % len(PALETTE)]
        dash = series.dash if series.colour else DASHES[n % len(DASHES)]
        pixels = [
            (x_axis.pixel(x, x0, x1), y_axis.pixel(y, y0, y1)) if x_axis.usable(x) and y_axis.usable(y) else None
            for x, y in sorted(series.points, key=lambda p: p[0])
        ]
        stroke = f"stroke={quoteattr(colour)}" + (f" stroke-dasharray={quoteattr(dash)}" if dash else "")
        out.append(
            f'<path class="series" d="{_path(pixels)}" fill="none" {stroke} stroke-width="1.8">'
            f"<title>{escape(series.label)}</title></path>"
        )
        for point in pixels if panel.dots else []:
            if point is not None:
                out.append(f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="2.5" fill={quoteattr(colour)}/>')
        ly = y1 + 10 + 16 * n
        out.append(f'<line x1="{x1 + 10}" y1="{ly}" x2="{x1 + 34}" y2="{ly}" {stroke} stroke-width="1.8"/>')
        out.append(f'<text x="{x1 + 38}" y="{ly + 4}">{escape(series.label)}</text>')
    out.append("</g>")
    return out


def chart(panels: Sequence[Panel], title: str, width: int = 760, panel_height: int = 240) -> str:
    """The panels stacked under ``title``, as a standalone SVG document."""
    height = 30 + panel_height * len(panels)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="13">{escape(title)}</text>',
    ]
    for n, panel in enumerate(panels):
        parts += _panel(panel, 30 + n * panel_height, width, panel_height)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

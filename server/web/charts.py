"""Charts drawn on the server as inline SVG: bar, line and weekday×hour heatmap.

Why our own ~150 lines instead of a charting library: the pages must work without committing third-party
JavaScript, print cleanly, and render identically in the browser test; three chart shapes with labelled
axes are all the reports need. Every chart carries a ``<title>`` and a ``<desc>`` listing its numbers, so
a screen reader (and a test) can read the values, and each bar or cell has its own tooltip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

logger = logging.getLogger(__name__)

ACCENT = "#b3261e"
MUTED = "#5c6670"
GRID = "#dde1e6"
FONT = 'font-family="Noto Sans CJK SC, sans-serif"'


def _nice_max(value: float) -> float:
    """The smallest 1/2/5×10ⁿ at or above ``value``, so the axis shows round numbers."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def _frame(width: int, height: int, title: str, values: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px" role="img" {FONT} font-size="12">'
        f"<title>{escape(title)}</title><desc>{escape(values)}</desc>{''.join(body)}</svg>"
    )


def _axis(left: int, top: int, plot_w: int, plot_h: int, top_value: float, unit: str) -> list[str]:
    parts = []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{_fmt(top_value * i / 4)}</text>"
        )
    if unit:
        parts.append(f'<text x="{left}" y="{top - 8}" fill="{MUTED}">{escape(unit)}</text>')
    return parts


def bar_chart(
    labels: Sequence[str], values: Sequence[float], *, title: str, unit: str = "", width: int = 720
) -> Markup:
    """Vertical bars, one per label, with the value above each bar (long lists: labels are rotated)."""
    height, left, top, bottom = 280, 56, 28, 64
    plot_w, plot_h = width - left - 12, height - top - bottom
    top_value = _nice_max(max(values, default=0))
    parts = _axis(left, top, plot_w, plot_h, top_value, unit)
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = min(max(2.0, slot * 0.7), 64.0)  # one or two bars stay bars, not walls
    rotate = n > 12
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top_value
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h - h
        tip = f"{label}: {_fmt(value)}{unit}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{ACCENT}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if not rotate and value:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_fmt(value)}</text>'
            )
        cx, ly = x + bar_w / 2, top + plot_h + 14
        text = escape(label if len(label) <= 10 else label[:9] + "…")
        if rotate:
            parts.append(
                f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="end" fill="{MUTED}" '
                f'transform="rotate(-45 {cx:.1f} {ly:.1f})">{text}</text>'
            )
        else:
            parts.append(f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="middle" fill="{MUTED}">{text}</text>')
    desc = "; ".join(f"{label}: {_fmt(v)}" for label, v in zip(labels, values, strict=True))
    return _frame(width, height, title, desc, parts)


def line_chart(
    labels: Sequence[str], values: Sequence[float], *, title: str, unit: str = "", width: int = 720
) -> Markup:
    """A line with a dot per point: a trend over months reads better as a line than as bars."""
    height, left, top, bottom = 260, 56, 28, 36
    plot_w, plot_h = width - left - 20, height - top - bottom
    top_value = _nice_max(max(values, default=0))
    parts = _axis(left, top, plot_w, plot_h, top_value, unit)
    n = max(len(values), 1)
    step = plot_w / max(n - 1, 1)
    points = [(left + i * step, top + plot_h - plot_h * v / top_value) for i, v in enumerate(values)]
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2.5"/>')
    for (x, y), label, value in zip(points, labels, values, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{ACCENT}">'
            f"<title>{escape(f'{label}: {_fmt(value)}{unit}')}</title></circle>"
        )
        if n <= 12 or labels.index(label) % 5 == 0:  # a month of days: every fifth day is enough
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
            )
    desc = "; ".join(f"{label}: {_fmt(v)}" for label, v in zip(labels, values, strict=True))
    return _frame(width, height, title, desc, parts)


def heatmap(
    rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]], *, title: str
) -> Markup:
    """A grid of cells shaded by count (white → accent), e.g. weekdays × hours of check-ins."""
    cell, left, top = 26, 64, 22
    width, height = left + cell * len(columns) + 8, top + cell * len(rows) + 8
    peak = max((max(r, default=0) for r in counts), default=0) or 1
    parts = []
    for j, label in enumerate(columns):
        if j % 2 == 0:
            parts.append(
                f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" text-anchor="middle" '
                f'fill="{MUTED}">{escape(label)}</text>'
            )
    for i, label in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(label)}</text>')
        for j, count in enumerate(counts[i]):
            share = count / peak
            # Interpolate white (255,255,255) → accent (179,38,30); empty cells keep a faint outline.
            r, g, b = (round(255 + (c - 255) * share) for c in (179, 38, 30))
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" '
                f'fill="rgb({r},{g},{b})" stroke="{GRID}"><title>{escape(label)} '
                f"{escape(columns[j])}: {count}</title></rect>"
            )
    desc = "; ".join(
        f"{rows[i]} {columns[j]}: {c}" for i, row in enumerate(counts) for j, c in enumerate(row) if c
    )
    return _frame(width, height, title, desc or "0", parts)

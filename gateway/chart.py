"""A small SVG bar chart of opt-outs and opt-ins per day. Pure logic.

Server-rendered markup, no scripts: it works under a strict Content Security
Policy and with no front-end build step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape


def daily_series(counts: Sequence[tuple[str, str, int]], end: date, days: int) -> list[tuple[str, int, int]]:
    """(day, opt_outs, opt_ins) for each of the ``days`` days up to ``end``, zeros included.

    ``counts`` holds (ISO day, event, count) rows, event ``opt_out`` or ``opt_in``.
    """
    table = {(day, event): count for day, event, count in counts}
    series = []
    for offset in range(days - 1, -1, -1):
        day = (end - timedelta(days=offset)).isoformat()
        series.append((day, table.get((day, "opt_out"), 0), table.get((day, "opt_in"), 0)))
    return series


def axis_ticks(maximum: int, most: int = 5) -> list[int]:
    """Round values from 0 to at least ``maximum``: steps of 1, 2 or 5 times a power of ten, at most ``most``."""
    maximum = max(1, maximum)
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if -(-maximum // step) <= most:
                return list(range(0, -(-maximum // step) * step + 1, step))
        scale *= 10


def bar_chart(series: Sequence[tuple[str, int, int]], width: int = 720, height: int = 180, name: str = "chart") -> str:
    """Paired bars per day (opt-outs, opt-ins) on labelled axes, with an accessible title and description.

    Drawn for one shape (``width`` x ``height`` units): a page shows a wide
    one on a desktop and a narrow one on a phone, each ``name`` d apart.
    """
    ticks = axis_ticks(max([0, *(max(out, into) for _, out, into in series)]))
    top = ticks[-1]
    left, bottom, upper = 52, 38, 8
    inner_height = height - bottom - upper
    base = height - bottom
    slot = (width - left) / max(1, len(series))
    bar = max(1.0, slot * 0.38)
    total_out = sum(out for _, out, _ in series)
    total_in = sum(into for _, _, into in series)
    first, last = (series[0][0], series[-1][0]) if series else ("", "")
    parts = [
        f'<svg class="chart {name}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{name}-title">Opt-outs and opt-ins per day</title>',
        f'<desc id="{name}-desc">{escape(first)} to {escape(last)}: {total_out} opt-outs, {total_in} opt-ins.</desc>',
    ]
    for value in ticks:
        y = base - inner_height * value / top
        parts.append(
            f'<line class="{"axis" if value == 0 else "grid"}" x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 3:.1f}" text-anchor="end">{value}</text>')
    parts.append(
        f'<text class="axis-title" x="12" y="{upper + inner_height / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {upper + inner_height / 2:.1f})">Changes per day</text>'
    )
    parts.append(
        f'<text class="axis-title" x="{left + (width - left) / 2:.1f}" y="{height - 2}" text-anchor="middle">'
        "Day (UTC)</text>"
    )
    for index, (day, out, into) in enumerate(series):
        x = left + index * slot + slot * 0.1
        for shift, value, css, label in ((0, out, "bar-out", "opt-outs"), (bar, into, "bar-in", "opt-ins")):
            h = inner_height * value / top
            parts.append(
                f'<rect class="{css}" x="{x + shift:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{escape(day)}: {value} {label}</title></rect>'
            )
        if index % max(1, len(series) // 6) == 0:
            parts.append(f'<text class="tick" x="{x:.1f}" y="{base + 14}">{escape(day[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)

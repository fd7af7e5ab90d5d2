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


def bar_chart(series: Sequence[tuple[str, int, int]], width: int = 720, height: int = 160) -> str:
    """Paired bars per day (opt-outs, opt-ins), with an accessible title and description."""
    top = max([1, *(max(out, into) for _, out, into in series)])
    left, bottom, inner_height = 32, 20, height - 30
    slot = (width - left) / max(1, len(series))
    bar = max(1.0, slot * 0.38)
    total_out = sum(out for _, out, _ in series)
    total_in = sum(into for _, _, into in series)
    first, last = (series[0][0], series[-1][0]) if series else ("", "")
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Opt-outs and opt-ins per day</title>',
        f'<desc id="chart-desc">{escape(first)} to {escape(last)}: {total_out} opt-outs, {total_in} opt-ins.</desc>',
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}"/>',
        f'<text class="tick" x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
        f'<text class="tick" x="{left - 6}" y="{height - bottom - inner_height + 8}" text-anchor="end">{top}</text>',
    ]
    for index, (day, out, into) in enumerate(series):
        x = left + index * slot + slot * 0.1
        for shift, value, css, label in ((0, out, "bar-out", "opt-outs"), (bar, into, "bar-in", "opt-ins")):
            h = inner_height * value / top
            parts.append(
                f'<rect class="{css}" x="{x + shift:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{escape(day)}: {value} {label}</title></rect>'
            )
        if index % max(1, len(series) // 6) == 0:
            parts.append(f'<text class="tick" x="{x:.1f}" y="{height - 4}">{escape(day[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)

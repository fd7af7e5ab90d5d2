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


# Layout, in the SVG's own units: room for the y labels and title on the left,
# for the date labels and the x title below, a little above the top tick.
LEFT, BOTTOM, UPPER = 52, 38, 8
LABEL_GAP = 6  # between a y label and the plot
BASELINE = 3  # moves a label's baseline so its text is centred on its grid line
DATE_DROP = 14  # from the axis down to the date labels' baseline
TITLE_INSET = 12  # the y title's centre from the left edge
TITLE_LIFT = 2  # the x title's baseline above the bottom edge: room for descenders
BAR_SHARE = 0.38  # of a day's slot, per bar; two bars and the gaps fill the slot
DATE_LABELS = 6  # at most, spread evenly


def bar_chart(series: Sequence[tuple[str, int, int]], width: int = 720, height: int = 180, name: str = "chart") -> str:
    """Paired bars per day (opt-outs, opt-ins) on labelled axes, with an accessible title and description.

    Drawn for one shape (``width`` x ``height`` units): a page shows a wide
    one on a desktop and a narrow one on a phone, ``name`` keeping their ids apart.
    """
    ticks = axis_ticks(max([0, *(max(out, into) for _, out, into in series)]))
    top = ticks[-1]
    plot_height = height - BOTTOM - UPPER
    base = height - BOTTOM
    slot = (width - LEFT) / max(1, len(series))
    bar = slot * BAR_SHARE
    total_out = sum(out for _, out, _ in series)
    total_in = sum(into for _, _, into in series)
    summary = (
        f"{escape(series[0][0])} to {escape(series[-1][0])}: {total_out} opt-outs, {total_in} opt-ins."
        if series
        else "No days to show."
    )
    middle = UPPER + plot_height / 2
    parts = [
        f'<svg class="chart {name}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{name}-title">Opt-outs and opt-ins per day</title>',
        f'<desc id="{name}-desc">{summary}</desc>',
    ]
    for value in ticks:
        y = base - plot_height * value / top
        line = "axis" if value == 0 else "grid"
        parts.append(f'<line class="{line}" x1="{LEFT}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - LABEL_GAP}" y="{y + BASELINE:.1f}" text-anchor="end">{value}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{TITLE_INSET}" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 {TITLE_INSET} {middle:.1f})">Changes per day</text>'
    )
    parts.append(
        f'<text class="axis-title" x="{LEFT + (width - LEFT) / 2:.1f}" y="{height - TITLE_LIFT}" text-anchor="middle">'
        "Day (UTC)</text>"
    )
    every = max(1, len(series) // DATE_LABELS)
    for index, (day, out, into) in enumerate(series):
        x = LEFT + index * slot + (slot - 2 * bar) / 2
        for shift, value, css, label in ((0, out, "bar-out", "opt-outs"), (bar, into, "bar-in", "opt-ins")):
            h = plot_height * value / top
            parts.append(
                f'<rect class="{css}" x="{x + shift:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{escape(day)}: {value} {label}</title></rect>'
            )
        if index % every == 0:
            parts.append(f'<text class="tick" x="{x:.1f}" y="{base + DATE_DROP}">{escape(day[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)

import re
from datetime import date

import pytest

from gateway.chart import axis_ticks, bar_chart, daily_series


def test_daily_series_fills_gaps():
    counts = [("2026-11-21", "opt_out", 3), ("2026-11-23", "opt_in", 1), ("2026-11-23", "opt_out", 2)]
    assert daily_series(counts, date(2026, 11, 23), 4) == [
        ("2026-11-20", 0, 0),
        ("2026-11-21", 3, 0),
        ("2026-11-22", 0, 0),
        ("2026-11-23", 2, 1),
    ]


def test_bar_chart_is_accessible_svg():
    svg = bar_chart([("2026-11-22", 4, 0), ("2026-11-23", 2, 1)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert (
        'role="img"' in svg and '<title id="chart-title">' in svg and 'aria-labelledby="chart-title chart-desc"' in svg
    )
    assert "2026-11-22 to 2026-11-23: 6 opt-outs, 1 opt-ins." in svg
    assert svg.count('class="bar-out"') == 2 and svg.count('class="bar-in"') == 2
    assert "<title>2026-11-22: 4 opt-outs</title>" in svg
    assert "script" not in svg and "style=" not in svg  # works under a strict CSP


def test_tallest_bar_reaches_the_top_tick():
    svg = bar_chart([("d1", 10, 5)], height=180)  # 134 px between the axis and the top
    assert 'height="134.0"' in svg and 'height="67.0"' in svg
    assert ">10</text>" in svg


def test_axes_are_labelled_with_round_ticks():
    svg = bar_chart([("2026-11-22", 7, 0), ("2026-11-23", 2, 1)])
    labels = re.findall(r'<text class="tick"[^>]*text-anchor="end">(\d+)</text>', svg)
    assert labels == ["0", "2", "4", "6", "8"]
    assert svg.count('class="grid"') == 4 and svg.count('class="axis"') == 1
    assert ">Changes per day</text>" in svg and ">Day (UTC)</text>" in svg
    assert ">11-22</text>" in svg


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (5, [0, 1, 2, 3, 4, 5]),
        (6, [0, 2, 4, 6]),
        (7, [0, 2, 4, 6, 8]),
        (11, [0, 5, 10, 15]),
        (37, [0, 10, 20, 30, 40]),
        (100, [0, 20, 40, 60, 80, 100]),
        (101, [0, 50, 100, 150]),
        (123_456, [0, 50_000, 100_000, 150_000]),
    ],
)
def test_axis_ticks(maximum, ticks):
    assert axis_ticks(maximum) == ticks


def test_empty_chart():
    assert "0 opt-outs, 0 opt-ins" in bar_chart([])


def test_two_shapes_of_one_chart_keep_their_ids_apart():
    series = [("2026-11-22", 4, 0)]
    wide, narrow = bar_chart(series, name="wide"), bar_chart(series, 380, 240, name="narrow")
    assert 'id="wide-title"' in wide and 'aria-labelledby="narrow-title narrow-desc"' in narrow
    assert 'viewBox="0 0 380 240"' in narrow and 'class="chart narrow"' in narrow

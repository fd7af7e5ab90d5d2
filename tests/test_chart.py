from datetime import date

from gateway.chart import bar_chart, daily_series


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
    assert 'role="img"' in svg and '<title id="chart-title">' in svg
    assert "2026-11-22 to 2026-11-23: 6 opt-outs, 1 opt-ins." in svg
    assert svg.count('class="bar-out"') == 2 and svg.count('class="bar-in"') == 2
    assert "<title>2026-11-22: 4 opt-outs</title>" in svg
    assert "script" not in svg and "style=" not in svg  # works under a strict CSP


def test_tallest_bar_fills_the_height():
    svg = bar_chart([("d1", 10, 5)], height=160)
    assert 'height="130.0"' in svg and 'height="65.0"' in svg


def test_empty_chart():
    assert "0 opt-outs, 0 opt-ins" in bar_chart([])

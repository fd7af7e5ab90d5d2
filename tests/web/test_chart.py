import re
import xml.etree.ElementTree as ET
from datetime import date

import pytest

from gateway.web.chart import BOTTOM, LEFT, UPPER, axis_ticks, bar_chart, daily_series

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    """The chart as an XML tree: it must be well-formed to be parsed at all."""
    return ET.fromstring(svg)


def boxes(root: ET.Element, css: str) -> list[dict]:
    return [
        {
            "x": float(r.get("x")),
            "y": float(r.get("y")),
            "w": float(r.get("width")),
            "h": float(r.get("height")),
            "title": r.find(f"{SVG}title").text,
        }
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == css
    ]


def texts(root: ET.Element, css: str) -> list[dict]:
    return [
        {"x": float(t.get("x")), "y": float(t.get("y")), "text": t.text, "anchor": t.get("text-anchor")}
        for t in root.iter(f"{SVG}text")
        if t.get("class") == css
    ]


def lines(root: ET.Element) -> list[dict]:
    return [
        {"class": ln.get("class"), "x1": float(ln.get("x1")), "x2": float(ln.get("x2")), "y": float(ln.get("y1"))}
        for ln in root.iter(f"{SVG}line")
        if ln.get("y1") == ln.get("y2")
    ]


def days(count: int, out=lambda n: n % 4, into=lambda n: n % 3) -> list[tuple[str, int, int]]:
    """``count`` days up to 2026-11-30 with counts from ``out`` and ``into`` of the day's index."""
    return [(day, out(n), into(n)) for n, (day, _, _) in enumerate(daily_series([], date(2026, 11, 30), count))]


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
    root = parsed(svg)
    assert root.get("viewBox") == "0 0 720 180" and root.get("class") == "chart chart"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "chart-title chart-desc"
    assert root.find(f"{SVG}title").text == "Opt-outs and opt-ins per day"
    assert root.find(f"{SVG}desc").text == "2026-11-22 to 2026-11-23: 6 opt-outs, 1 opt-ins."
    assert [b["title"] for b in boxes(root, "bar-out")] == ["2026-11-22: 4 opt-outs", "2026-11-23: 2 opt-outs"]
    assert [b["title"] for b in boxes(root, "bar-in")] == ["2026-11-22: 0 opt-ins", "2026-11-23: 1 opt-ins"]
    assert "script" not in svg and "style=" not in svg  # works under a strict CSP
    assert not (root.text or "").strip() and all(not (el.tail or "").strip() for el in root.iter())  # no stray text


def test_text_in_the_chart_is_escaped():
    root = parsed(bar_chart([("<b>&", 1, 0)]))
    assert root.find(f"{SVG}desc").text.startswith("<b>& to <b>&:")


@pytest.mark.parametrize(("width", "height"), [(720, 180), (380, 240)])
@pytest.mark.parametrize("count", [1, 7, 30, 200])
def test_bars_stand_on_the_axis_inside_the_plot_in_day_order(width, height, count):
    series = days(count)
    root = parsed(bar_chart(series, width, height))
    outs, ins = boxes(root, "bar-out"), boxes(root, "bar-in")
    assert len(outs) == len(ins) == count
    base, top_y = height - BOTTOM, UPPER
    tallest = max(max(o, i) for _, o, i in series)
    scale = (base - top_y) / axis_ticks(tallest)[-1]
    slot = (width - LEFT) / count
    for n, ((_, out, into), o, i) in enumerate(zip(series, outs, ins, strict=True)):
        for box, value in ((o, out), (i, into)):
            assert box["y"] + box["h"] == pytest.approx(base, abs=0.11)  # on the axis
            assert box["h"] == pytest.approx(value * scale, abs=0.11)  # to scale
            assert box["y"] >= top_y - 0.1  # never above the top tick
        assert i["x"] == pytest.approx(o["x"] + o["w"], abs=0.11)  # opt-ins right beside opt-outs
        assert o["w"] == i["w"] == pytest.approx(slot * 0.38, abs=0.06)
        day_start, day_end = LEFT + n * slot, LEFT + (n + 1) * slot
        assert day_start < o["x"] and i["x"] + i["w"] < day_end  # a gap each side, within its day
        assert o["x"] - day_start == pytest.approx(day_end - (i["x"] + i["w"]), abs=0.11)  # centred


@pytest.mark.parametrize(("tallest", "ticks"), [(2, [0, 1, 2]), (7, [0, 2, 4, 6, 8]), (37, [0, 10, 20, 30, 40])])
def test_y_axis_has_round_ticks_on_evenly_spaced_grid_lines(tallest, ticks):
    root = parsed(bar_chart([("2026-11-29", tallest, 0), ("2026-11-30", 0, 1)], 720, 180))
    grid = lines(root)
    assert [g["class"] for g in grid] == ["axis"] + ["grid"] * (len(ticks) - 1)
    assert grid[0]["y"] == 180 - BOTTOM and grid[-1]["y"] == UPPER  # the axis at the bottom, the top tick on top
    steps = {round(b["y"] - a["y"], 1) for a, b in zip(grid, grid[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() < 0  # evenly spaced, upwards
    assert all(g["x1"] == LEFT and g["x2"] == 720 for g in grid)  # across the whole plot
    labels = [t for t in texts(root, "tick") if t["anchor"] == "end"]
    assert [t["text"] for t in labels] == [str(t) for t in ticks]
    for label, line in zip(labels, grid, strict=True):
        assert line["y"] < label["y"] <= line["y"] + 4  # centred on its line (baseline a little below)
        assert 0 < label["x"] < LEFT  # left of the plot, right-aligned
    assert max(b["y"] for b in boxes(root, "bar-out") if b["h"]) == pytest.approx(
        UPPER + (1 - tallest / ticks[-1]) * (180 - BOTTOM - UPPER), abs=0.11
    )


@pytest.mark.parametrize(("count", "every"), [(30, 5), (7, 1), (12, 2), (1, 1)])
def test_dates_are_labelled_below_the_axis_evenly(count, every):
    series = days(count)
    root = parsed(bar_chart(series, 720, 180))
    dates = [t for t in texts(root, "tick") if t["anchor"] is None]
    assert [d["text"] for d in dates] == [day[5:] for day, _, _ in series[::every]]
    outs = boxes(root, "bar-out")
    for label, bar in zip(dates, outs[::every], strict=True):
        assert label["x"] == pytest.approx(bar["x"], abs=0.11)  # under its day
        assert 180 - BOTTOM < label["y"] < 180 - 14  # below the axis, above the x title


@pytest.mark.parametrize(("width", "height"), [(720, 180), (380, 240)])
def test_both_axes_are_titled_inside_the_drawing(width, height):
    root = parsed(bar_chart(days(30), width, height))
    y_title, x_title = texts(root, "axis-title")
    assert y_title["text"] == "Changes per day" and x_title["text"] == "Day (UTC)"
    assert x_title["x"] == pytest.approx(LEFT + (width - LEFT) / 2, abs=0.11)  # centred under the plot
    assert height - 4 <= x_title["y"] <= height  # at the bottom, inside
    assert y_title["y"] == pytest.approx(UPPER + (height - BOTTOM - UPPER) / 2, abs=0.11)  # centred beside it
    rotation = next(t for t in root.iter(f"{SVG}text") if t.text == "Changes per day").get("transform")
    assert rotation == f"rotate(-90 {y_title['x']:g} {y_title['y']:.1f})"  # turned about its own centre
    assert 0 < y_title["x"] < LEFT - 20  # clear of the tick labels


def test_two_shapes_of_one_chart_keep_their_ids_apart():
    series = [("2026-11-22", 4, 0)]
    wide, narrow = bar_chart(series, name="wide"), bar_chart(series, 380, 240, name="narrow")
    assert 'id="wide-title"' in wide and 'aria-labelledby="narrow-title narrow-desc"' in narrow
    assert 'viewBox="0 0 380 240"' in narrow and 'class="chart narrow"' in narrow


def test_empty_chart():
    root = parsed(bar_chart([]))
    assert root.find(f"{SVG}desc").text == "No days to show."
    assert boxes(root, "bar-out") == [] and [t["text"] for t in texts(root, "tick")] == ["0", "1"]


def test_an_all_zero_month_still_has_a_scale():
    root = parsed(bar_chart(days(30, out=lambda n: 0, into=lambda n: 0)))
    assert [t["text"] for t in texts(root, "tick") if t["anchor"] == "end"] == ["0", "1"]
    assert all(b["h"] == 0 for b in boxes(root, "bar-out") + boxes(root, "bar-in"))


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (-3, [0, 1]),
        (0, [0, 1]),
        (1, [0, 1]),
        (5, [0, 1, 2, 3, 4, 5]),
        (6, [0, 2, 4, 6]),
        (7, [0, 2, 4, 6, 8]),
        (10, [0, 2, 4, 6, 8, 10]),
        (11, [0, 5, 10, 15]),
        (25, [0, 5, 10, 15, 20, 25]),
        (26, [0, 10, 20, 30]),
        (37, [0, 10, 20, 30, 40]),
        (100, [0, 20, 40, 60, 80, 100]),
        (101, [0, 50, 100, 150]),
        (123_456, [0, 50_000, 100_000, 150_000]),
    ],
)
def test_axis_ticks(maximum, ticks):
    assert axis_ticks(maximum) == ticks


@pytest.mark.parametrize(("maximum", "most", "ticks"), [(7, 7, list(range(8))), (7, 3, [0, 5, 10]), (3, 1, [0, 5])])
def test_axis_ticks_respect_the_most_steps(maximum, most, ticks):
    assert axis_ticks(maximum, most) == ticks
    assert re.fullmatch(r"[125]0*", str(ticks[1]))

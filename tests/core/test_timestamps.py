import re
import time
from datetime import UTC, datetime

import pytest

from gateway.core.timestamps import parse, parse_bound, readable, utcnow


def test_utcnow_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utcnow())


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-11-01", False, "2026-11-01T00:00:00.000000Z"),
        ("2026-11-01", True, "2026-11-01T23:59:59.999999Z"),
        ("2026-11-01T12:30", False, "2026-11-01T12:30:00.000000Z"),
        ("2026-11-01T12:30:00Z", True, "2026-11-01T12:30:00.000000Z"),
        ("2026-11-01T12:30:00+02:00", False, "2026-11-01T10:30:00.000000Z"),
        (" 2026-11-01T00:00:00.5z ", False, "2026-11-01T00:00:00.500000Z"),
    ],
)
def test_parse_bound(text, end, expected):
    assert parse_bound(text, end) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "11/01/2026", ""])
def test_parse_bound_rejects(text):
    with pytest.raises(ValueError, match="not a date or ISO 8601 date-time"):
        parse_bound(text)


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-12-01T00:05:38.512749Z", "1 Dec 2026, 00:05:38 UTC"),
        ("2024-01-31T23:59:59.999999Z", "31 Jan 2024, 23:59:59 UTC"),
        ("2026-11-09T07:03:04.000000Z", "9 Nov 2026, 07:03:04 UTC"),
        ("not a time", "not a time"),
        ("", ""),
        (None, ""),
    ],
)
def test_readable(stamp, shown):
    assert readable(stamp) == shown


def test_parse_gives_an_aware_utc_datetime():
    assert parse("2026-12-01T00:05:38.512749Z") == datetime(2026, 12, 1, 0, 5, 38, 512749, tzinfo=UTC)
    assert parse("2026-12-01T00:05:38.512749Z").tzinfo is UTC


def test_a_bare_date_means_its_start_unless_asked_for_its_end():
    assert parse_bound("2026-11-01") == "2026-11-01T00:00:00.000000Z"


@pytest.fixture
def new_york(monkeypatch):
    """The machine's local time zone is not UTC: nothing may depend on it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T12:30", "2026-11-01T12:30:00.000000Z"),
        ("2026-11-01T12:30:00+02:00", "2026-11-01T10:30:00.000000Z"),
        ("2026-07-01T12:30:00Z", "2026-07-01T12:30:00.000000Z"),
        ("2026-11-01", "2026-11-01T00:00:00.000000Z"),
    ],
)
def test_the_local_time_zone_plays_no_part(new_york, text, expected):
    assert time.strftime("%Z") in ("EST", "EDT")  # the zone really changed
    assert parse_bound(text) == expected

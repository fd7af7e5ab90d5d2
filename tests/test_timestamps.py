import re

import pytest

from gateway.timestamps import parse_bound, utcnow


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

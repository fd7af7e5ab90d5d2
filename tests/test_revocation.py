from datetime import date

import pytest

from gateway.config import CONFIG_DIR, load_revocation
from gateway.revocation import Detector, add_business_days, business_days_between

DETECTOR = load_revocation(CONFIG_DIR / "revocation.toml")


@pytest.mark.parametrize(
    "body",
    [
        "stop!!",
        "STOP!!!",
        "unsubscribe!!",
        "please stop texting me",
        "Please STOP texting me.",
        "stop messaging me",
        "opt me out",
        "Opt me out please",
        "opt-out",
        "remove me from your list",
        "Please take me off this list",
        "unsubscribe me",
        "no more texts",
        "No more messages please",
        "stop the texts",
        "don't text me again",
        "Do not contact me",
        "leave me alone",
        "ok thanks. stop",
        "Stop please",
        "please stop",
        "I want to unsubscribe",
    ],
)
def test_candidates(body):
    assert DETECTOR.match(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        "don't stop the reminders",
        "what time do you stop serving lunch",
        "Never stop sending me deals!",
        "can I stop by tomorrow?",
        "the bus didn't stop",
        "yes",
        "hello",
        "What time is my appointment?",
        "I'll stop at the store",
        "",
    ],
)
def test_not_candidates(body):
    assert DETECTOR.match(body) is None


def test_bad_pattern_is_named():
    with pytest.raises(ValueError, match="pattern 'broken' is not a valid regular expression"):
        Detector.build({"broken": "(unclosed"}, {})


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (date(2026, 11, 23), date(2026, 11, 23), 0),  # Monday, same day
        (date(2026, 11, 23), date(2026, 11, 24), 1),
        (date(2026, 11, 27), date(2026, 11, 30), 1),  # Friday to Monday
        (date(2026, 11, 28), date(2026, 11, 30), 1),  # Saturday to Monday
        (date(2026, 11, 23), date(2026, 12, 7), 10),  # two weeks
        (date(2026, 11, 23), date(2026, 11, 20), 0),  # backwards
    ],
)
def test_business_days_between(start, end, days):
    assert business_days_between(start, end) == days


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (date(2026, 11, 23), 10, date(2026, 12, 7)),
        (date(2026, 11, 27), 1, date(2026, 11, 30)),
        (date(2026, 11, 28), 10, date(2026, 12, 11)),
    ],
)
def test_add_business_days(start, days, due):
    assert add_business_days(start, days) == due
    assert business_days_between(start, due) == days

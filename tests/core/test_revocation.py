from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.core import revocation
from gateway.core.revocation import (
    Detector,
    add_business_days,
    business_days_between,
    with_deadline,
    with_deadlines,
)
from gateway.settings import DEFAULTS_DIR, load_revocation

DETECTOR = load_revocation(DEFAULTS_DIR / "revocation.toml")


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


@pytest.mark.parametrize(
    ("patterns", "exclusions", "message"),
    [
        ({"broken": "(unclosed"}, {}, "pattern 'broken' is not a valid regular expression: missing ), unterminated"),
        ({"ok": "stop"}, {"bad": "[z-a]"}, "exclusion 'bad' is not a valid regular expression: bad character range"),
        ({"number": 42}, {}, "pattern 'number' is not a valid regular expression: first argument must be"),
    ],
)
def test_a_bad_expression_is_named(patterns, exclusions, message):
    with pytest.raises(ValueError) as info:
        Detector.build(patterns, exclusions)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("days", [1, 10, 60])
def test_the_days_to_honour_may_be_one_to_sixty(days):
    assert Detector.build({"p": "stop"}, {}, days).business_days_to_honour == days


@pytest.mark.parametrize("days", [0, -1, 61])
def test_days_to_honour_outside_one_to_sixty_are_refused(days):
    with pytest.raises(ValueError) as info:
        Detector.build({"p": "stop"}, {}, days)
    assert str(info.value) == "business_days_to_honour must be between 1 and 60"


def test_the_first_matching_pattern_names_the_candidate():
    detector = Detector.build({"first": "stop", "second": "stop it", "third": "quit"}, {})
    assert detector.match("Stop it!") == "first"
    assert detector.match("I quit") == "third"
    assert detector.any_pattern.pattern == "(?:stop)|(?:stop it)|(?:quit)"


def test_exclusions_clear_a_match_and_read_curly_apostrophes_as_straight():
    detector = Detector.build({"stop": "stop"}, {"keep": "don't stop"})
    assert detector.match("stop") == "stop"
    assert detector.match("don't stop") is None
    assert detector.match("don\u2019t stop") is None  # as phones type it
    assert detector.exclusions["keep"].pattern == "don't stop"


def test_no_patterns_flag_nothing():
    detector = Detector.build({}, {"keep": "x"})
    assert detector.any_pattern is None and detector.match("stop texting me") is None


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


def _counted(start: date, end: date) -> int:
    """Business days after ``start`` up to ``end``, one day at a time."""
    return sum((start + timedelta(days=n)).weekday() < 5 for n in range(1, (end - start).days + 1))


@pytest.mark.parametrize("start", [date(2026, 11, 23) + timedelta(days=n) for n in range(7)])  # each weekday
def test_business_days_between_agrees_with_counting_day_by_day(start):
    for span in range(0, 120):  # up to 17 weeks, every weekday to every weekday
        end = start + timedelta(days=span)
        assert business_days_between(start, end) == _counted(start, end), (start, end)
    assert add_business_days(start, 0) == start
    for days in range(1, 61):  # the due date is the business day on which the count reaches ``days``
        due = add_business_days(start, days)
        assert due.weekday() < 5 and _counted(start, due) == days
        assert _counted(start, due - timedelta(days=1)) == days - 1


ROW = {"id": 7, "received_at": "2026-11-20T23:59:59.999999Z", "status": "open", "body": "stop texting"}  # a Friday


def test_a_candidate_gets_its_age_due_date_and_overdue_flag():
    assert with_deadline(ROW, date(2026, 11, 23), 10) == {
        **ROW,
        "age_business_days": 1,
        "due_by": "2026-12-04",
        "overdue": False,
    }


@pytest.mark.parametrize(
    ("today", "age", "overdue"),
    [
        (date(2026, 11, 20), 0, False),  # the day it came
        (date(2026, 12, 4), 10, False),  # its due date exactly: still in time
        (date(2026, 12, 5), 10, True),  # the day after (a Saturday): late
        (date(2026, 12, 7), 11, True),
    ],
)
def test_overdue_only_after_the_due_date(today, age, overdue):
    row = with_deadline(ROW, today, 10)
    assert (row["age_business_days"], row["overdue"]) == (age, overdue)


@pytest.mark.parametrize("status", ["confirmed", "dismissed"])
def test_a_resolved_candidate_is_never_overdue(status):
    assert with_deadline({**ROW, "status": status}, date(2027, 1, 1), 10)["overdue"] is False


def test_with_deadlines_is_as_of_today_in_utc_by_default():
    today = datetime.now(UTC).date()
    rows = [{**ROW, "received_at": f"{today.isoformat()}T00:00:00.000000Z"}, ROW]
    aged = with_deadlines(rows, 1)
    assert aged[0]["age_business_days"] == 0 and aged[0]["due_by"] == add_business_days(today, 1).isoformat()
    assert aged[1] == with_deadline(ROW, today, 1)
    assert with_deadlines(rows, 60, today=date(2026, 11, 23))[1] == with_deadline(ROW, date(2026, 11, 23), 60)
    assert with_deadlines([], 10) == []


def test_a_detector_without_settings_honours_within_ten_business_days_and_flags_nothing():
    detector = Detector.build({}, {})
    assert detector.business_days_to_honour == 10
    assert detector.match("please stop texting me") is None


def test_deadlines_default_to_today_in_utc_not_the_machines_zone(monkeypatch):
    instant = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # Tuesday in UTC, already Wednesday in Kiribati

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return (
                instant.astimezone(tz)
                if tz
                else instant.astimezone(ZoneInfo("Pacific/Kiritimati")).replace(tzinfo=None)
            )

    monkeypatch.setattr(revocation, "datetime", Clock)
    candidate = {"received_at": "2026-11-30T10:00:00Z", "status": "open"}
    (found,) = revocation.with_deadlines([candidate], 1)
    assert (found["due_by"], found["age_business_days"], found["overdue"]) == ("2026-12-01", 1, False)

"""The shared retry schedule, as plain functions."""

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.retries import MAX_DELAY, next_attempt, parse_retry_after

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), ("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), (" 2 ", 2.0)],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(("attempts", "low", "high"), [(1, 0.5, 1.0), (3, 2.0, 4.0), (30, MAX_DELAY / 2, MAX_DELAY)])
def test_backoff_doubles_with_jitter_and_a_ceiling(attempts, low, high):
    when, delay = next_attempt(1.0, attempts, None, NOW, DAY, NOW)
    assert low <= delay <= high and when == NOW + timedelta(seconds=delay)


def test_retry_after_is_a_floor():
    assert next_attempt(1.0, 1, 120.0, NOW, DAY, NOW)[1] == 120.0


def test_gives_up_past_the_maximum_age():
    assert next_attempt(1.0, 1, 120.0, NOW - DAY + timedelta(seconds=60), DAY, NOW) is None


def test_an_attempt_exactly_at_the_maximum_age_is_still_made():
    since = NOW - timedelta(seconds=10)
    max_age = timedelta(seconds=10 + 400)  # the retry lands on its last moment
    assert next_attempt(1.0, 1, 400.0, since, max_age, NOW) == (NOW + timedelta(seconds=400), 400.0)
    assert next_attempt(1.0, 1, 400.001, since, max_age, NOW) is None

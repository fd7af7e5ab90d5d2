"""When to try a failed hand-off again, shared by the SMS sender and the agent forwarder. Pure logic."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_DELAY = 300.0  # seconds
# How long a worker holds an outbound message it is sending before another worker may take it.
SEND_LEASE_SECONDS = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, if it holds a number."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # empty, or an HTTP date: no number to wait for
        return None


def next_attempt(
    base: float,
    attempts: int,
    retry_after: float | None,
    since: datetime,
    max_age: timedelta,
    now: datetime,
) -> tuple[datetime, float] | None:
    """(when, delay) for the next attempt, or None once it would fall past ``since + max_age``.

    Exponential backoff from ``base`` seconds, doubled per attempt up to five
    minutes, with jitter; never sooner than the server's Retry-After.
    """
    delay = min(MAX_DELAY, base * 2.0 ** (attempts - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
    if retry_after is not None:
        delay = max(delay, retry_after)
    when = now + timedelta(seconds=delay)
    return None if when - since > max_age else (when, delay)

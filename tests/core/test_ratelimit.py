"""Token buckets, as plain functions."""

import pytest

from gateway.core.ratelimit import Limit, retry_after

LIMIT = Limit(rate=10.0, burst=20)


@pytest.mark.parametrize(
    ("tokens", "updated", "now", "left", "wait"),
    [
        (None, None, 100.0, 19.0, 0.0),  # a new bucket starts full
        (None, 90.0, 100.0, 19.0, 0.0),  # half a record is a new bucket too
        (3.0, None, 100.0, 19.0, 0.0),
        (1.0 - 1e-9, 100.0, 100.0, 0.0, 0.0),  # a token due but for float rounding is granted
        (1.0 - 1e-6, 100.0, 100.0, 1.0 - 1e-6, 1e-7),
        (20.0, 100.0, 100.0, 19.0, 0.0),
        (1.0, 100.0, 100.0, 0.0, 0.0),  # the last token
        (0.0, 100.0, 100.0, 0.0, 0.1),  # empty: wait for one token
        (0.5, 100.0, 100.0, 0.5, 0.05),
        (0.0, 100.0, 100.1, 0.0, 0.0),  # refilled one token in 0.1 s, and took it
        (0.0, 100.0, 1000.0, 19.0, 0.0),  # never more than the burst
        (5.0, 100.0, 50.0, 4.0, 0.0),  # a clock that went backwards refills nothing
    ],
)
def test_take(tokens, updated, now, left, wait):
    got_left, got_wait = LIMIT.take(tokens, updated, now)
    assert got_left == pytest.approx(left) and got_wait == pytest.approx(wait)


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (30.0, 30)])
def test_retry_after_is_whole_seconds(wait, header):
    assert retry_after(wait) == header

"""Token buckets for per-key rate limits. Pure logic; the store keeps the state.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per
second; each request takes one. Kept in the database, so every gunicorn
worker draws from the same bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size

    def take(self, tokens: float | None, updated: float | None, now: float) -> tuple[float, float]:
        """Take one token from a bucket last seen holding ``tokens`` at ``updated``.

        Returns (tokens left, seconds to wait). A wait of 0 means allowed;
        otherwise nothing was taken and the caller may retry after the wait.
        A new bucket (``tokens`` None) starts full; a clock that went
        backwards refills nothing.
        """
        if tokens is None or updated is None:
            tokens, updated = float(self.burst), now
        tokens = min(float(self.burst), tokens + max(0.0, now - updated) * self.rate)
        if tokens >= 1.0 - 1e-9:  # float rounding must not refuse a token that is due
            return max(0.0, tokens - 1.0), 0.0
        return tokens, (1.0 - tokens) / self.rate


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header (never 0 while waiting)."""
    return max(1, math.ceil(wait))

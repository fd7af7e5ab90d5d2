"""Outbound delivery statistics from per-status counts. Pure logic.

Each message counts once, by its current status:

- ``sent``: handed to Twilio (it has a MessageSid), whatever happened next;
- ``delivered`` / ``undelivered``: as Twilio's status callbacks last said;
- ``failed``: refused by Twilio, given up after retries, or failed later;
- ``suppressed``: not sent because the recipient opted out;
- ``pending``: waiting for the dispatcher (queued or retrying);
- ``logged``: printed by the console SMS backend (development), never sent.

``delivery_rate`` is delivered / (delivered + undelivered + failed): the
share of messages whose fate is known that arrived; None before any is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

COUNTS = ("sent", "delivered", "undelivered", "failed", "suppressed", "pending", "logged")
FIELDS = (*COUNTS, "segments", "delivery_rate")


def _empty() -> dict[str, Any]:
    return {name: 0 for name in (*COUNTS, "segments")}


def _add(totals: dict[str, Any], status: str, handed: bool, count: int, segments: int) -> None:
    if handed:
        totals["sent"] += count
        totals["segments"] += segments
    if status in ("delivered", "read"):
        totals["delivered"] += count
    elif status in ("undelivered", "failed", "suppressed", "logged"):
        totals[status] += count
    elif status in ("queued", "retrying") and not handed:
        totals["pending"] += count


def _finish(totals: dict[str, Any]) -> dict[str, Any]:
    known = totals["delivered"] + totals["undelivered"] + totals["failed"]
    totals["delivery_rate"] = round(totals["delivered"] / known, 4) if known else None
    return totals


def summarise(rows: Iterable[tuple[str, str, str, bool, int, int]]) -> dict[str, Any]:
    """Totals, per Twilio number and per day from (day, sender, status, handed, count, segments) rows."""
    totals = _empty()
    by_number: dict[str, dict[str, Any]] = {}
    by_day: dict[str, dict[str, Any]] = {}
    for day, sender, status, handed, count, segments in rows:
        for bucket in (totals, by_number.setdefault(sender, _empty()), by_day.setdefault(day, _empty())):
            _add(bucket, status, bool(handed), count, segments or 0)
    return {
        "totals": _finish(totals),
        "by_twilio_number": [{"twilio_number": k, **_finish(v)} for k, v in sorted(by_number.items())],
        "by_day": [{"day": k, **_finish(v)} for k, v in sorted(by_day.items())],
    }

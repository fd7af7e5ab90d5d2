"""UTC timestamps as the gateway stores them: sortable ISO 8601 text. Pure logic."""

from __future__ import annotations

from datetime import UTC, date, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> str:
    """Current UTC time, e.g. ``2026-11-23T07:36:38.863423Z`` (:data:`FORMAT`, built the fast way)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse(stamp: str) -> datetime:
    """A stored timestamp as an aware UTC datetime."""
    return datetime.strptime(stamp, FORMAT).replace(tzinfo=UTC)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def readable(stamp: str | None) -> str:
    """A stored timestamp as people read it: ``1 Dec 2026, 00:05:38 UTC``.

    The same in every locale (the exact value stays in the page's markup, the
    CSV and the export). Text that is not a stored timestamp comes back as is.
    """
    try:
        moment = parse(stamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return stamp or ""
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}, {moment:%H:%M:%S} UTC"


def parse_bound(text: str, end_of_day: bool = False) -> str:
    """Turn a user's date or date-time into the stored form, for range filters.

    Accepts ``2026-11-01``, ``2026-11-01T12:00``, ``2026-11-01T12:00:00Z`` or an
    explicit offset; a time without an offset is taken as UTC. Raises
    ValueError with a readable message. With ``end_of_day`` a bare date means
    its last microsecond, so an inclusive "until 2026-11-01" covers that day.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            moment = datetime.max.time() if end_of_day else datetime.min.time()
            parsed = datetime.combine(date.fromisoformat(value), moment)  # a day is taken as UTC
        else:
            parsed = datetime.fromisoformat(value.upper())  # Python reads a trailing Z, not z
            if parsed.tzinfo is not None:  # an explicit offset: convert; none: the time is UTC already
                parsed = parsed.astimezone(UTC)
    except ValueError:
        raise ValueError(f"not a date or ISO 8601 date-time: {text!r}") from None
    return parsed.strftime(FORMAT)

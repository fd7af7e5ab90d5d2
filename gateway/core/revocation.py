"""Revocation candidates: messages that read like a revocation without being
an exact keyword. Pure logic: pattern matching and business-day arithmetic."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .keywords import normalize

STATUSES = ("open", "confirmed", "dismissed", "all")


@dataclass(frozen=True)
class Detector:
    """Named patterns that flag a message, and exclusions that clear it."""

    patterns: Mapping[str, re.Pattern[str]]
    exclusions: Mapping[str, re.Pattern[str]]
    business_days_to_honour: int = 10
    # All patterns in one expression: most messages match none, and one search tells.
    any_pattern: re.Pattern[str] | None = None

    @classmethod
    def build(
        cls, patterns: Mapping[str, str], exclusions: Mapping[str, str], business_days_to_honour: int = 10
    ) -> Detector:
        """Compile patterns; a bad one raises ValueError naming it."""

        def compile_all(kind: str, table: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
            compiled = {}
            for name, expression in table.items():
                try:
                    compiled[name] = re.compile(expression)
                except (re.error, TypeError) as exc:
                    raise ValueError(f"{kind} {name!r} is not a valid regular expression: {exc}") from None
            return compiled

        if not 1 <= business_days_to_honour <= 60:
            raise ValueError("business_days_to_honour must be between 1 and 60")
        compiled = compile_all("pattern", patterns)
        anything = re.compile("|".join(f"(?:{p.pattern})" for p in compiled.values())) if compiled else None
        return cls(compiled, compile_all("exclusion", exclusions), business_days_to_honour, anything)

    def match(self, body: str) -> str | None:
        """Name of the first pattern that flags ``body``, or None."""
        text = normalize(body).replace("\u2019", "'")
        if self.any_pattern is not None and not self.any_pattern.search(text):
            return None
        if any(exclusion.search(text) for exclusion in self.exclusions.values()):
            return None
        return next((name for name, pattern in self.patterns.items() if pattern.search(text)), None)


def business_days_between(start: date, end: date) -> int:
    """Whole business days (Monday to Friday) after ``start`` up to and including ``end``.

    Public holidays are not known here, so the count can only run early,
    never late: a deadline computed from it is never missed because of it.
    """
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + timedelta(days=weeks * 7 + offset)).weekday() < 5:
            count += 1
    return count


def add_business_days(start: date, days: int) -> date:
    """The date ``days`` business days after ``start``."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def with_deadline(candidate: Mapping[str, object], today: date, days_to_honour: int) -> dict[str, object]:
    """Add the candidate's age in business days, its due date and whether it is overdue."""
    received = date.fromisoformat(str(candidate["received_at"])[:10])
    due = add_business_days(received, days_to_honour)
    age = business_days_between(received, today)
    return {
        **candidate,
        "age_business_days": age,
        "due_by": due.isoformat(),
        "overdue": candidate.get("status") == "open" and today > due,
    }


def with_deadlines(
    candidates: Iterable[Mapping[str, object]], days_to_honour: int, today: date | None = None
) -> list[dict[str, object]]:
    """:func:`with_deadline` for each candidate, as of ``today`` (UTC) by default."""
    today = today or datetime.now(UTC).date()
    return [with_deadline(candidate, today, days_to_honour) for candidate in candidates]

"""Validation of opt-out lists and consent records brought in from elsewhere (CSV). Pure logic.

Every row is checked before anything is written; errors name the line.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import consent, numbers
from .timestamps import parse_bound

REQUIRED = ("number", "twilio_number", "opted_out_at")
CONSENT_REQUIRED = ("number", "sender", "category", "method", "wording")  # and optional given_at, evidence
Row = TypeVar("Row")
MAX_ERRORS = 20


@dataclass(frozen=True)
class ImportRow:
    line: int
    number: str
    twilio_number: str
    opted_out_at: str


class ImportError_(ValueError):
    """The file is rejected; ``errors`` lists every problem found, by line."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def _parse(lines: Iterable[str], required: Sequence[str], convert: Callable[[int, dict], Row]) -> list[Row]:
    """Every row of CSV text through ``convert`` (which raises ValueError saying what is wrong with a row);
    raise ImportError_ listing the bad lines, or for a file without rows."""
    reader = csv.DictReader(lines)
    missing = [name for name in required if name not in (reader.fieldnames or [])]
    if missing:
        raise ImportError_([f"line 1: missing column(s): {', '.join(missing)} (need {', '.join(required)})"])
    rows, errors = [], []
    for record in reader:
        try:
            rows.append(convert(reader.line_num, record))
        except ValueError as exc:
            errors.append(f"line {reader.line_num}: {exc}")
            if len(errors) >= MAX_ERRORS:
                errors.append(f"(stopped after {MAX_ERRORS} bad lines)")
                break
    if errors:
        raise ImportError_(errors)
    if not rows:
        raise ImportError_(["the file has no rows"])
    return rows


def parse(lines: Iterable[str]) -> list[ImportRow]:
    """Parse and validate an opt-out list; raise ImportError_ listing bad lines."""
    return _parse(lines, REQUIRED, _opt_out)


def parse_consents(lines: Iterable[str], categories: Sequence[str], now: str, recorded_by: str) -> list[consent.Grant]:
    """Parse and validate consent records (see :func:`gateway.consent.grant`); raise ImportError_ listing bad
    lines. Columns: number, sender, category, method, wording, and optionally given_at and evidence (JSON)."""

    def convert(line: int, record: Mapping[str | None, object]) -> consent.Grant:
        if None in record:  # the wording is evidence: a comma that split it must not cut it short
            raise ValueError("more cells than the header has columns: quote a value that holds a comma")
        return consent.grant(record, categories, now, recorded_by)

    return _parse(lines, CONSENT_REQUIRED, convert)


def _opt_out(line: int, record: Mapping[str, str | None]) -> ImportRow:
    problems = []
    number = (record.get("number") or "").strip()
    twilio_number = (record.get("twilio_number") or "").strip()
    for name, value in (("number", number), ("twilio_number", twilio_number)):
        reason = numbers.problem(value)
        if reason:
            problems.append(f"{name} {value!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
    try:
        at = parse_bound(record.get("opted_out_at") or "")
    except ValueError as exc:
        raise ValueError("; ".join([*problems, f"opted_out_at: {exc}"])) from None
    if problems:
        raise ValueError("; ".join(problems))
    return ImportRow(line, number, twilio_number, at)

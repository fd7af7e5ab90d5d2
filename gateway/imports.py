"""Validation of an opt-out list brought in from elsewhere (CSV). Pure logic.

Every row is checked before anything is written; errors name the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass

from . import numbers
from .timestamps import parse_bound

REQUIRED = ("number", "twilio_number", "opted_out_at")
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


def parse(lines: Iterable[str]) -> list[ImportRow]:
    """Parse and validate CSV text; raise ImportError_ listing bad lines."""
    reader = csv.DictReader(lines)
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        raise ImportError_([f"line 1: missing column(s): {', '.join(missing)} (need {', '.join(REQUIRED)})"])
    rows, errors = [], []
    for record in reader:
        line = reader.line_num
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
            problems.append(f"opted_out_at: {exc}")
        if problems:
            errors.append(f"line {line}: " + "; ".join(problems))
            if len(errors) >= MAX_ERRORS:
                errors.append("(stopped after 20 bad lines)")
                break
            continue
        rows.append(ImportRow(line, number, twilio_number, at))
    if errors:
        raise ImportError_(errors)
    if not rows:
        raise ImportError_(["the file has no rows"])
    return rows

"""CSV meant for people, safe to open in a spreadsheet. Pure logic.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or with a tab or a
carriage return, which some spreadsheets skip before reading on) is taken
for a formula by Excel, LibreOffice and Google Sheets: a texter who sends
``=HYPERLINK("https://evil.example","click")`` would plant a live link (or
worse) in the auditor's sheet (OWASP: CSV injection). Such a cell gets a
leading ``'``, which spreadsheets read as "this is text" and do not show.
Leading whitespace does not hide a formula from this check. A plain number
(``+14155550100``, ``-5``) is left as it is: nothing in it can run.

The hash-verified ledger export (``gateway optouts export``) is not
neutralised: its cells are the hashed values byte for byte, or the chain
could not be checked against it. It shares :data:`LINE_END` only.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# RFC 4180's line end. Python's csv module quotes a cell holding a character of the line end, and only those:
# with "\n" alone, a carriage return in a message body went out unquoted and split the row in two.
LINE_END = "\r\n"
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


_RISKY_FIRST = frozenset("".join(FORMULA_STARTS) + " \n")  # a cell starting otherwise is safe: the common case


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet must get it: nested values (an event's detail) as JSON text, and text that
    would start a formula begins with ``'``."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str) or not value or value[0] not in _RISKY_FIRST:
        return value
    if value[0] in "+-" and value[1:].isdigit():  # an E.164 number, a signed count: a plain number
        return value
    if value.lstrip(" \n").startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def lines(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], batch: int = 500) -> Iterator[str]:
    """CSV text (a header, then ``columns`` of each row, every cell through :func:`cell`), ``batch`` rows at a
    time: a 100,000-row download never sits whole in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_END)
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(row.get(column)) for column in columns])
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The whole CSV of :func:`lines` as one string."""
    return "".join(lines(rows, columns))

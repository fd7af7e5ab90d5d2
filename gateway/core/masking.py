"""Partial masking of phone numbers for logs: never log a number in full."""

from __future__ import annotations


def mask_number(number: str | None) -> str:
    """Keep a short prefix and the last two digits: ``+1********09``.

    Enough to tell numbers apart while reading a log, not enough to dial one.
    """
    if not number:
        return "-"
    if number.startswith(("whatsapp:", "messenger:")):
        channel, _, rest = number.partition(":")
        return f"{channel}:{mask_number(rest)}"
    if len(number) <= 4:
        return "*" * len(number)
    keep_head = 2 if number.startswith("+") else 1
    keep_head = min(keep_head, len(number) - 4)
    return number[:keep_head] + "*" * (len(number) - keep_head - 2) + number[-2:]

"""SMS encoding and segment counting. Pure logic.

A message that fits the GSM 03.38 alphabet is sent as GSM-7: 160 septets in
one segment, 153 per segment when split (each extension character such as
``€`` or ``{`` takes two, and a pair is never split). Anything else goes as
UCS-2: 70 UTF-16 units in one segment, 67 per segment when split (a
surrogate pair is never split).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Encoding:
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def is_gsm(text: str) -> bool:
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def _split(sizes: list[int], single: int, multi: int) -> int:
    total = sum(sizes)
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return segments


def analyse(text: str) -> Encoding:
    """Encoding and segment count of ``text`` as Twilio would send it."""
    if is_gsm(text):
        sizes = [2 if char in GSM_EXTENSION else 1 for char in text]
        return Encoding("GSM-7", _split(sizes, 160, 153), sum(sizes))
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Encoding("UCS-2", _split(sizes, 70, 67), sum(sizes))

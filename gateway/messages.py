"""The gateway's message types, shared by the web layer, the worker and the storage layer. Pure.

They say what a message is, not how it is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class InboundMessage:
    """One inbound webhook as received, before any interpretation."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    params: Sequence[tuple[str, str]]  # every form field, repeats kept, in order

    def param(self, name: str) -> str | None:
        """The first non-empty value of form field ``name``."""
        return next((value for key, value in self.params if key == name and value), None)


@dataclass(frozen=True)
class Processed:
    """What became of one inbound message (the first delivery's, for a retried MessageSid)."""

    outcome: str
    reply: str | None
    duplicate: bool
    logged: bool = False  # an event was written (a compliance record)


@dataclass(frozen=True)
class OutboundText:
    """A text ready to queue: its body and its shape on the wire."""

    body: str
    encoding: str
    segments: int

"""The gateway's message types, shared by the web layer, the worker and the storage layer. Pure.

They say what a message is, not how it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` as every database keeps it: NUL, which PostgreSQL cannot store, becomes U+FFFD.

    Used on what Twilio sends, which must never be refused (a refused webhook
    is a lost message); text a person types is refused instead (see
    :func:`has_nul`).
    """
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def unstorable(text: str) -> str | None:
    """Why a person's ``text`` cannot be stored as it is (NUL; a lone surrogate, which is not UTF-8), or None."""
    if NUL in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def has_nul(*texts: str | None) -> bool:
    """Whether any of ``texts`` could not be stored as it is (see :func:`unstorable`)."""
    return any(text is not None and unstorable(text) for text in texts)


@dataclass(frozen=True)
class InboundMessage:
    """One inbound webhook as received, before any interpretation."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    params: Sequence[tuple[str, str]]  # every form field, repeats kept, in order

    @classmethod
    def received(
        cls, message_sid: str, from_number: str, to_number: str, body: str, params: Iterable
    ) -> InboundMessage:
        """The message as it will be stored (:func:`storable` text throughout)."""
        return cls(
            storable(message_sid),
            storable(from_number),
            storable(to_number),
            storable(body),
            [(storable(key), storable(value)) for key, value in params],
        )

    @property
    def account(self) -> str | None:
        """The Twilio account the message came through: its ``AccountSid``, which Twilio signed."""
        return self.param("AccountSid")

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

"""Conversation sessions' inactivity timeout, run by ``gateway worker``.

A session belongs to one (user number, Twilio number) pair and is opened by
the first message forwarded to the agent or by an outbound send; it is
``engaged`` once the user has written. An engaged session idle for
``session_idle_seconds`` is ``warned``: the warning text is queued through
the outbound path (so an opt-out suppresses it). A user message within
``session_grace_seconds`` makes it ``active`` again; otherwise it is
``closed`` and the agent receives ``session.closed``. The user's next message
opens a new session. The store does the transitions, each in one
transaction, so several workers may sweep at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..core.masking import mask_number
from ..store import Store
from .outbound import Outbound

log = logging.getLogger(__name__)


class Sessions:
    """The timeout policy for one configuration and database."""

    def __init__(self, store: Store, outbound: Outbound, config: Mapping[str, Any]):
        self.store = store
        self.outbound = outbound
        self.idle = config["SESSION_IDLE_SECONDS"]
        self.grace = config["SESSION_GRACE_SECONDS"]
        self.warning = config["SESSION_WARNING"]

    def sweep(self, limit: int = 100) -> tuple[int, int]:
        """Warn idle sessions and close expired ones; return how many of each."""
        text = self.outbound.text(self.warning) if self.outbound.can_send else None
        warned = self.store.warn_idle_sessions(self.idle, self.grace, text, limit)
        for session in warned:
            log.info(
                "session %s with %s warned after %ds idle%s",
                session["id"],
                mask_number(session["number"]),
                self.idle,
                "" if text else f"; no warning SMS: {self.outbound.why_disabled()}",
            )
        closed = self.store.close_expired_sessions(limit)
        for session in closed:
            log.info(
                "session %s with %s closed: no reply to the warning", session["id"], mask_number(session["number"])
            )
        return len(warned), len(closed)

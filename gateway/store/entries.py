"""Entries of the agent queue, written inside a caller's transaction: whether a pair has something waiting,
an entry's place (the pair's head or behind it), a session event joining the queue, an entry leaving it.

The lowest of the store's transaction helpers: :mod:`.conversations`, :mod:`.sending` and the record areas
build on it, and it builds on none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import Tx

# Whether something of the pair (from, to: two parameters) waits for the agent.
WAITING = "EXISTS (SELECT 1 FROM inbound_messages WHERE from_number = ? AND to_number = ? AND status = 'pending')"
# 1 when nothing of the pair waits yet: a new entry is then the pair's head.
HEAD = f"CASE WHEN {WAITING} THEN 0 ELSE 1 END"


def queue_session_event(tx: Tx, kind: str, session_id: int, number: str, twilio_number: str, at: str) -> None:
    """Queue a session event for the agent, due now, behind the pair's earlier messages."""
    tx.execute(
        "INSERT INTO inbound_messages (message_sid, kind, from_number, to_number, received_at, status, "  # noqa: S608
        f"next_attempt_at, session_id, head, account) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, {HEAD}, "
        "(SELECT account FROM sessions WHERE id = ?))",
        (f"{kind}:{session_id}", kind, number, twilio_number, at, at, session_id, number, twilio_number, session_id),
    )


def leave_queue(tx: Tx, queue_id: int, assignments: str, values: Sequence[Any]) -> None:
    """Take a delivery out of the pending queue (``assignments`` sets its new status) and promote the pair's next."""
    from_number, to_number = tx.one(
        f"UPDATE inbound_messages SET {assignments}, head = 0, lease_until = NULL WHERE id = ? "  # noqa: S608
        "RETURNING from_number, to_number",
        (*values, queue_id),
    )
    promote_head(tx, from_number, to_number)


def promote_head(tx: Tx, from_number: str, to_number: str) -> None:
    tx.execute(
        "UPDATE inbound_messages SET head = 1 WHERE id = (SELECT MIN(id) FROM inbound_messages "
        "WHERE from_number = ? AND to_number = ? AND status = 'pending')",
        (from_number, to_number),
    )

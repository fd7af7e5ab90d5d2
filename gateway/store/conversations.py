"""A conversation's session, written inside a caller's transaction: read one, open or resume the pair's,
close it (queueing ``session.closed`` for the agent behind the pair's earlier messages).

Builds on :mod:`.entries` only; :mod:`.sending` and the record areas build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import Tx
from .entries import queue_session_event

SESSION_COLUMNS = (
    "id, number, twilio_number, state, engaged, opened_at, last_activity_at, warned_at, close_at, closed_at, "
    "close_reason, warning_outbound_id"
)
_SESSION_NAMES = [column.strip() for column in SESSION_COLUMNS.split(",")]


def session_dict(row: Sequence[Any]) -> dict[str, Any]:
    session = dict(zip(_SESSION_NAMES, row, strict=True))
    session["engaged"] = bool(session["engaged"])
    return session


def session_row(tx: Tx, session_id: int) -> dict[str, Any] | None:
    row = tx.one(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))  # noqa: S608
    return session_dict(row) if row else None


def _open_session_id(tx: Tx, number: str, twilio_number: str) -> int | None:
    return tx.scalar(
        "SELECT id FROM sessions WHERE number = ? AND twilio_number = ? AND state != 'closed'", (number, twilio_number)
    )


def open_session(tx: Tx, number: str, twilio_number: str, at: str, engaged: bool, account: str | None = None) -> int:
    """The pair's open session, resumed at ``at``, or a new one.

    ``engaged`` means the user wrote: the session is engaged, and a warned
    session is active again.
    """
    session_id = _open_session_id(tx, number, twilio_number)
    later = "last_activity_at = CASE WHEN last_activity_at < ? THEN ? ELSE last_activity_at END"
    if session_id is not None:
        if engaged:
            tx.execute(
                f"UPDATE sessions SET {later}, engaged = 1, state = 'active', "  # noqa: S608
                "warned_at = NULL, close_at = NULL WHERE id = ?",
                (at, at, session_id),
            )
        else:
            tx.execute(f"UPDATE sessions SET {later} WHERE id = ?", (at, at, session_id))  # noqa: S608
        return session_id
    return tx.scalar(
        "INSERT INTO sessions (number, twilio_number, state, engaged, opened_at, last_activity_at, account) "
        "VALUES (?, ?, 'active', ?, ?, ?, ?) RETURNING id",
        (number, twilio_number, int(engaged), at, at, account),
    )


def close_open_session(tx: Tx, number: str, twilio_number: str, at: str, reason: str) -> None:
    session_id = _open_session_id(tx, number, twilio_number)
    if session_id is not None:
        close_session(tx, session_id, number, twilio_number, at, reason)


def close_session(tx: Tx, session_id: int, number: str, twilio_number: str, at: str, reason: str) -> None:
    """Close a session and queue ``session.closed`` for the agent, behind the pair's earlier messages."""
    tx.execute(
        "UPDATE sessions SET state = 'closed', closed_at = ?, close_reason = ?, close_at = NULL WHERE id = ?",
        (at, reason, session_id),
    )
    queue_session_event(tx, "session.closed", session_id, number, twilio_number, at)

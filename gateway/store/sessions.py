"""Conversation sessions per (user number, Twilio number) pair: active, warned, closed.

At most one open session per pair (a unique partial index). A session is
opened by the first message delivered to the agent or by a queued send, and
closed by the inactivity timeout or replaced by an API send; closing queues
``session.closed`` for the agent behind the pair's earlier messages. Every
transition holds the user's number lock and re-checks its condition, so
sweeps by several workers on several machines warn and close each session
once.
"""

from __future__ import annotations

from typing import Any

from ..core import events
from ..core.messages import OutboundText
from . import sending
from .backend import Tx
from .base import Records, plus_seconds
from .conversations import SESSION_COLUMNS, close_session, session_dict, session_row

# No message from the session's user still waiting for the agent: a waiting
# reply is activity the session has not seen yet.
_NOTHING_WAITING = (
    "NOT EXISTS (SELECT 1 FROM inbound_messages AS q WHERE q.from_number = s.number AND q.to_number = s.twilio_number "
    "AND q.status = 'pending' AND q.kind = 'message')"
)
_IDLE = f"state = 'active' AND engaged = 1 AND last_activity_at <= ? AND {_NOTHING_WAITING}"
_EXPIRED = f"state = 'warned' AND close_at <= ? AND {_NOTHING_WAITING}"


class SessionRecords(Records):
    def session(self, session_id: int) -> dict[str, Any] | None:
        with self.backend.read() as tx:
            return session_row(tx, session_id)

    def sessions(self, state: str | None = None, number: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Sessions, newest first; optionally only one state or one user number."""
        conditions = [(clause, value) for clause, value in (("state = ?", state), ("number = ?", number)) if value]
        clause = " WHERE " + " AND ".join(c for c, _ in conditions) if conditions else ""
        with self.backend.read() as tx:
            rows = tx.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions{clause} ORDER BY id DESC LIMIT ?",  # noqa: S608
                [*(value for _, value in conditions), limit],
            ).fetchall()
        return [session_dict(row) for row in rows]

    def session_state_counts(self) -> dict[str, int]:
        """How many sessions are in each state now."""
        with self.backend.read() as tx:
            return dict(tx.execute("SELECT state, COUNT(*) FROM sessions GROUP BY state").fetchall())

    def _due(self, tx: Tx, condition: str, order: str, cutoff: str, limit: int) -> list[tuple[int, str, str, str]]:
        return tx.execute(
            f"SELECT id, number, twilio_number, account FROM sessions AS s WHERE {condition} "  # noqa: S608
            f"ORDER BY {order} LIMIT ?",
            (cutoff, limit),
        ).fetchall()

    def _claimed(self, tx: Tx, session_id: int, number: str, condition: str, cutoff: str) -> bool:
        """Hold the user's records and check the session is still due (another worker may have been first)."""
        return tx.try_lock_number(number) and bool(
            tx.one(f"SELECT 1 FROM sessions AS s WHERE id = ? AND {condition}", (session_id, cutoff))  # noqa: S608
        )

    def warn_idle_sessions(
        self, idle_seconds: float, grace_seconds: float, warning: OutboundText | None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Warn engaged sessions idle for ``idle_seconds``: state ``warned``, closing ``grace_seconds`` later.

        The warning SMS (when given) is queued from the session's Twilio
        number like any outbound message, so an opt-out suppresses it; it
        does not count as activity. A session whose user has a message still
        waiting for the agent is not idle. Returns the warned sessions.
        """
        with self.backend.read() as tx:
            if not self._due(tx, _IDLE, "last_activity_at", plus_seconds(self.clock(), -idle_seconds), 1):
                return []
        warned = []
        with self.backend.write() as tx:
            now = self.clock()
            cutoff, close_at = plus_seconds(now, -idle_seconds), plus_seconds(now, grace_seconds)
            for session_id, number, twilio_number, account in self._due(tx, _IDLE, "last_activity_at", cutoff, limit):
                if not self._claimed(tx, session_id, number, _IDLE, cutoff):
                    continue
                outbound_id = None
                if warning is not None:
                    outbound_id, _, _ = sending.insert_outbound(
                        tx, self.scope, now, number, twilio_number, warning, events.SESSION_WARNING, None, account
                    )
                tx.execute(
                    "UPDATE sessions SET state = 'warned', warned_at = ?, close_at = ?, warning_outbound_id = ? "
                    "WHERE id = ?",
                    (now, close_at, outbound_id, session_id),
                )
                warned.append(session_row(tx, session_id))
        return warned

    def close_expired_sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Close warned sessions whose grace ran out with no reply; queue ``session.closed`` for the agent."""
        with self.backend.read() as tx:
            if not self._due(tx, _EXPIRED, "close_at", self.clock(), 1):
                return []
        closed = []
        with self.backend.write() as tx:
            now = self.clock()
            for session_id, number, twilio_number, _ in self._due(tx, _EXPIRED, "close_at", now, limit):
                if not self._claimed(tx, session_id, number, _EXPIRED, now):
                    continue
                close_session(tx, session_id, number, twilio_number, now, "inactivity")
                closed.append(session_row(tx, session_id))
        return closed

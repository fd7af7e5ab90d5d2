"""The queue of deliveries to the agent: inbound messages and session events, in order per pair.

The queue lives in ``inbound_messages``: a message's claim row is its queue
entry (``status`` pending, delivered, dead or dropped; no status for a
message that was never for the agent, such as a STOP), and session events
are rows of their own kind.

Only a pair's oldest pending delivery (its ``head``) is ever eligible, so
delivery is in order per pair (and so per session): a later message waits
while an earlier one is leased or waiting to be retried. A head is due when
``next_attempt_at`` has passed: at once when queued, then when its lease
runs out or its retry is due, so a backlog behind an unreachable agent costs
nothing to look at (a partial index holds exactly the due heads). Every
change to a pair's queue holds that person's number lock, so the head stays
unique with several workers and instances.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..core import events
from ..core.messages import OutboundText
from . import conversations, sending
from .base import Records, plus_seconds
from .entries import leave_queue, promote_head
from .ledger import append_event
from .optouts import covering

# Pairs' oldest pending deliveries that are due (the partial index inbound_due holds exactly these).
_DUE_HEADS = (
    "SELECT {columns} FROM inbound_messages {hint} WHERE status = 'pending' AND head = 1 AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at LIMIT ?"
)
_CLAIM_COLUMNS = (
    "id, message_sid, from_number, to_number, body, params, received_at, flags, attempts, "
    "COALESCE(retry_from, received_at), kind, session_id, account"
)


class QueueRecords(Records):
    def queued_messages(self) -> list[dict[str, Any]]:
        """Messages waiting for the agent session handler, oldest first."""
        with self.backend.read() as tx:
            rows = tx.query(
                "SELECT id, message_sid, from_number, to_number, body, params, received_at, status, flags "
                "FROM inbound_messages WHERE status IS NOT NULL ORDER BY id"
            )
        return [
            {**row, "params": [tuple(pair) for pair in json.loads(row["params"])], "flags": json.loads(row["flags"])}
            for row in rows
        ]

    def claim_deliveries(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease the oldest pending delivery of each pair that is due, at most ``limit``.

        The opt-out state is checked again: a message from a sender who
        opted out since it was queued is dropped (a chained ``dropped``
        event), not delivered. Each leased message is attached to the pair's
        open session (one is opened if needed). A pair another worker is
        working on is skipped, not waited for.
        """
        claimed: list[dict[str, Any]] = []
        with self.backend.read() as tx:
            if not tx.one(_DUE_HEADS.format(columns="1", hint=tx.index_hint("inbound_due")), (self.clock(), 1)):
                return claimed  # idle: no write transaction
        # Not fsynced: a claim lost with the machine only means the message is claimed again.
        with self.backend.write(durable=False) as tx:
            now = self.clock()
            hint = tx.index_hint("inbound_due")
            due = tx.execute(_DUE_HEADS.format(columns="id, from_number", hint=hint), (now, limit)).fetchall()
            until = plus_seconds(now, lease_seconds)
            for queue_id, from_number in due:
                if not tx.try_lock_number(from_number):
                    continue  # another worker holds this person's records: their turn
                row = tx.one(  # again, now that nobody else can change the pair's queue
                    f"SELECT {_CLAIM_COLUMNS} FROM inbound_messages WHERE id = ? AND status = 'pending' "  # noqa: S608
                    "AND head = 1 AND next_attempt_at <= ?",
                    (queue_id, now),
                )
                if row is None:
                    continue
                queue_id, sid, from_number, to_number, body, params, received_at, flags, attempts, since = row[:10]
                kind, session_id, account = row[10:]
                params = [tuple(pair) for pair in json.loads(params)]
                session = None
                service = next((value for key, value in params if key == "MessagingServiceSid" and value), None)
                if kind != "message":  # a session event: nothing from the user, so no opt-out check
                    session = conversations.session_row(tx, session_id)
                elif covering(tx, self.scope, from_number, to_number, service):
                    leave_queue(tx, queue_id, "status = 'dropped'", ())
                    append_event(
                        tx,
                        event=events.DROPPED,
                        number=from_number,
                        twilio_number=to_number,
                        body=body,
                        message_sid=sid,
                        source=events.OPTED_OUT,
                        state_changed=False,
                        at=now,
                        detail=json.dumps({"at_delivery": True}),
                        account=account,
                    )
                    continue
                else:
                    session_id = conversations.open_session(
                        tx, from_number, to_number, received_at, engaged=True, account=account
                    )
                tx.execute(
                    "UPDATE inbound_messages SET lease_until = ?, next_attempt_at = ?, attempts = attempts + 1, "
                    "session_id = ? WHERE id = ?",
                    (until, until, session_id, queue_id),
                )
                claimed.append(
                    {
                        "id": queue_id,
                        "message_sid": sid,
                        "from_number": from_number,
                        "to_number": to_number,
                        "body": body,
                        "params": params,
                        "received_at": received_at,
                        "flags": json.loads(flags),
                        "attempts": attempts + 1,
                        "session_id": session_id,
                        "retry_from": since,
                        "kind": kind,
                        "session": session,
                    }
                )
        return claimed

    def finish_delivery(
        self,
        queue_id: int,
        outcome: str,
        error: str | None = None,
        retry_at: str | None = None,
        reply: tuple[str, str, OutboundText] | None = None,
    ) -> dict[str, Any] | None:
        """Record a delivery attempt: ``delivered``, ``retry`` (at ``retry_at``) or ``dead`` (dead-lettered).

        A delivered message's ``reply`` (to, from, text) is queued in the
        same transaction, so a crash cannot lose it; returns the queued reply.
        Not fsynced: if the machine loses this commit, the message is simply
        delivered again (at least once), and the agent answers it again.
        """
        if outcome not in ("delivered", "retry", "dead"):
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        with self.backend.write(durable=False) as tx:
            number, account = tx.one("SELECT from_number, account FROM inbound_messages WHERE id = ?", (queue_id,))
            tx.lock_numbers(number)
            if outcome == "delivered":
                leave_queue(tx, queue_id, "status = 'delivered', delivered_at = ?, last_error = NULL", (self.clock(),))
                if reply is not None:
                    to_number, sender, text = reply
                    return sending.queue_message(
                        tx,
                        self.scope,
                        self.clock(),
                        to_number,
                        sender,
                        text,
                        events.AGENT,
                        None,
                        new_session=False,
                        account=account or self.account_of(sender),
                    )
            elif outcome == "retry":
                tx.execute(
                    "UPDATE inbound_messages SET next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?",
                    (retry_at, error, queue_id),
                )
            else:
                leave_queue(tx, queue_id, "status = 'dead', last_error = ?", (error,))
        return None

    def outbox(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Queued messages for the agent, oldest first; ``status`` pending, delivered, dead or dropped."""
        clause = " WHERE status = ?" if status else " WHERE status IS NOT NULL"
        with self.backend.read() as tx:
            return tx.query(
                "SELECT id, kind, message_sid, from_number, to_number, body, received_at, status, attempts, "  # noqa: S608
                f"next_attempt_at, delivered_at, last_error, session_id, flags FROM inbound_messages{clause} "
                "ORDER BY id LIMIT ?",
                [*([status] if status else []), limit],
            )

    def retry_dead(self, ids: Sequence[int] | None = None) -> int:
        """Put dead-lettered messages (all, or these ids) back in the queue, due now, with a fresh maximum age."""
        with self.backend.write() as tx:
            tx.lock_all()
            now = self.clock()
            if ids is None:
                ids = [row[0] for row in tx.execute("SELECT id FROM inbound_messages WHERE status = 'dead'").fetchall()]
            pairs, changed = set(), 0
            for queue_id in ids:
                row = tx.one(
                    "UPDATE inbound_messages SET status = 'pending', next_attempt_at = ?, retry_from = ?, "
                    "last_error = NULL WHERE status = 'dead' AND id = ? RETURNING from_number, to_number",
                    (now, now, queue_id),
                )
                if row:
                    pairs.add(tuple(row))
                    changed += 1
            for from_number, to_number in sorted(pairs):  # a replayed message may now be its pair's oldest
                tx.execute(
                    "UPDATE inbound_messages SET head = 0 WHERE from_number = ? AND to_number = ? AND head = 1",
                    (from_number, to_number),
                )
                promote_head(tx, from_number, to_number)
            return changed

    def purge_outbox(self, status: str, before: str) -> int:
        """Delete delivered, dead or dropped queue rows received before ``before``; pending ones never."""
        if status not in ("delivered", "dead", "dropped"):
            raise ValueError(f"only delivered, dead or dropped messages can be purged, not {status!r}")
        with self.backend.write() as tx:
            return tx.execute(
                "DELETE FROM inbound_messages WHERE status = ? AND received_at < ?", (status, before)
            ).rowcount

    def agent_queue_counts(self) -> tuple[dict[tuple[str, str], int], str | None]:
        """Queue rows per (kind, status), and when the oldest pending one was queued (None if none)."""
        with self.backend.read() as tx:
            counts = {
                (kind, status): count
                for kind, status, count in tx.execute(
                    "SELECT kind, status, COUNT(*) FROM inbound_messages WHERE status IS NOT NULL GROUP BY kind, status"
                ).fetchall()
            }
            oldest = tx.scalar(  # the lowest id: queued first (a replayed dead letter keeps its place); always a head
                f"SELECT received_at FROM inbound_messages {tx.index_hint('inbound_due')} "  # noqa: S608
                "WHERE status = 'pending' AND head = 1 ORDER BY id LIMIT 1"
            )
        return counts, oldest

"""Outbound messages: queued or suppressed, leased for sending, and their delivery status.

A message to a person an opt-out covers is recorded as ``suppressed`` with a
chained event, never queued. Sends are leased row by row (``FOR UPDATE SKIP
LOCKED`` where the database has it), so several workers on several machines
never send one message twice, and a dead worker's lease runs out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core import events
from ..core.messages import OutboundText
from .base import Records, in_accounts, plus_seconds, where
from .optouts import record_change
from .sending import queue_message, suppressed_event, suppression

_CLAIMABLE = "status IN ('queued', 'retrying') AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"


class OutboundRecords(Records):
    def queue_outbound(
        self,
        to_number: str,
        sender: str,
        text: OutboundText,
        source: str,
        template: str | None = None,
        new_session: bool = False,
        category: str | None = None,
    ) -> dict[str, Any]:
        """Queue one outbound message, or record it as suppressed when an opt-out covers it or, for a
        ``category`` that ``require_consent`` names, no current consent allows it.

        A queued message resumes the pair's open session, or with
        ``new_session`` closes it (reason ``replaced``) and opens a new one.
        """
        with self.backend.write() as tx:
            tx.lock_numbers(to_number)
            return queue_message(
                tx,
                self.scope,
                self.clock(),
                to_number,
                sender,
                text,
                source,
                template,
                new_session,
                self.account_of(sender),
                category,
                self.consent_rules.needs_consent(category),
            )

    def pair(self, number: str, twilio_number: str) -> dict[str, Any] | None:
        """What the gateway knows of one conversation pair (its latest outbound message)."""
        with self.backend.read() as tx:
            rows = tx.query("SELECT * FROM pairs WHERE number = ? AND twilio_number = ?", [number, twilio_number])
        return rows[0] if rows else None

    def claim_outbound(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease due messages for sending; re-check opt-outs and suppress those that opted out since."""
        claimed: list[dict[str, Any]] = []
        now = self.clock()
        with self.backend.read() as tx:
            if not tx.one(f"SELECT 1 FROM outbound_messages WHERE {_CLAIMABLE} LIMIT 1", (now, now)):  # noqa: S608
                return claimed  # idle: no write transaction
        with self.backend.write() as tx:
            now = self.clock()
            rows = tx.execute(
                "SELECT id, to_number, sender, body, attempts, created_at, account, category FROM outbound_messages "  # noqa: S608
                f"WHERE {_CLAIMABLE} ORDER BY id LIMIT ?{tx.skip_locked}",
                (now, now, limit),
            ).fetchall()
            until = plus_seconds(now, lease_seconds)
            for message_id, to_number, sender, body, attempts, created_at, account, category in rows:
                needs = self.consent_rules.needs_consent(category)
                blocked, reason = suppression(tx, self.scope, to_number, sender, category, needs)
                if reason:
                    tx.execute(
                        "UPDATE outbound_messages SET status = 'suppressed', suppressed_reason = ?, updated_at = ?, "
                        "lease_until = NULL WHERE id = ?",
                        (reason, now, message_id),
                    )
                    suppressed_event(
                        tx,
                        now,
                        message_id,
                        to_number,
                        sender,
                        blocked,
                        body,
                        events.OUTBOUND,
                        reason,
                        category,
                        account,
                        at_send_time=True,
                    )
                    continue
                tx.execute(
                    "UPDATE outbound_messages SET lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                    (until, message_id),
                )
                claimed.append(
                    {
                        "id": message_id,
                        "to_number": to_number,
                        "sender": sender,
                        "body": body,
                        "attempts": attempts + 1,
                        "created_at": created_at,
                    }
                )
        return claimed

    def finish_outbound(
        self,
        message_id: int,
        status: str,
        message_sid: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
        retry_at: str | None = None,
    ) -> None:
        """Record the result of a send attempt: handed to Twilio, to retry at ``retry_at``, or failed."""
        with self.backend.write() as tx:
            tx.execute(
                "UPDATE outbound_messages SET status = ?, message_sid = COALESCE(?, message_sid), error_code = ?, "
                "error_message = ?, next_attempt_at = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
                (status, message_sid, error_code, error_message, retry_at, self.clock(), message_id),
            )

    def outbound_by_sid(self, message_sid: str) -> dict[str, Any] | None:
        with self.backend.read() as tx:
            rows = tx.query("SELECT * FROM outbound_messages WHERE message_sid = ?", [message_sid])
        return rows[0] if rows else None

    def outbound(self, message_id: int) -> dict[str, Any] | None:
        with self.backend.read() as tx:
            rows = tx.query("SELECT * FROM outbound_messages WHERE id = ?", [message_id])
        return rows[0] if rows else None

    def status_history(self, message_sid: str) -> list[dict[str, Any]]:
        """Status callbacks recorded for one message, in arrival order."""
        with self.backend.read() as tx:
            return tx.query(
                "SELECT status, error_code, received_at FROM status_callbacks WHERE message_sid = ? "
                "ORDER BY received_at, status",
                [message_sid],
            )

    def list_outbound(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Outbound messages, newest first, optionally of one status."""
        clause, params = where(("status = ?", status))
        with self.backend.read() as tx:
            return tx.query(
                f"SELECT * FROM outbound_messages{clause} ORDER BY id DESC LIMIT ?",  # noqa: S608
                [*params, limit],
            )

    def outbound_counts(
        self, since: str | None = None, until: str | None = None, accounts: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, bool, int, int]]:
        """(day, sender, status, handed to Twilio, messages, segments) for messages created in the range."""
        clause, params = where(("created_at >= ?", since), ("created_at <= ?", until), in_accounts(accounts))
        with self.backend.read() as tx:
            rows = tx.execute(
                "SELECT substr(created_at, 1, 10) AS day, sender, status, "  # noqa: S608
                "CASE WHEN message_sid IS NULL THEN 0 ELSE 1 END AS handed, COUNT(*), SUM(segments) "
                f"FROM outbound_messages{clause} GROUP BY substr(created_at, 1, 10), sender, status, "
                "CASE WHEN message_sid IS NULL THEN 0 ELSE 1 END ORDER BY day, sender",
                params,
            ).fetchall()
        return [
            (day, sender, status, bool(handed), count, segments)
            for day, sender, status, handed, count, segments in rows
        ]

    def outbound_status_counts(self) -> dict[tuple[str, str | None], int]:
        """How many outbound messages are in each (status, account) now."""
        with self.backend.read() as tx:
            rows = tx.execute("SELECT status, account, COUNT(*) FROM outbound_messages GROUP BY status, account")
            return {(status, account): count for status, account, count in rows.fetchall()}

    def record_status(
        self, message_sid: str, status: str, error_code: int | None, rank: Callable[[str], int]
    ) -> dict[str, Any]:
        """Record one status callback, once per (sid, status); never move a message backwards.

        A 21610 error (recipient unsubscribed upstream) opts the pair out, source ``carrier``.
        """
        with self.backend.write() as tx:
            number = tx.scalar("SELECT to_number FROM outbound_messages WHERE message_sid = ?", (message_sid,))
            if number is not None:
                tx.lock_numbers(number)
            now = self.clock()
            fresh = tx.one(
                "INSERT INTO status_callbacks (message_sid, status, error_code, received_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
                (message_sid, status, error_code, now),
            )
            row = tx.one(
                "SELECT id, to_number, sender, status, account FROM outbound_messages WHERE message_sid = ?",
                (message_sid,),
            )
            moved = False
            if fresh and row and rank(status) > rank(row[3]):
                tx.execute(
                    "UPDATE outbound_messages SET status = ?, error_code = COALESCE(?, error_code), "
                    "updated_at = ? WHERE id = ?",
                    (status, error_code, now, row[0]),
                )
                moved = True
            opted_out = False
            if fresh and row and error_code == 21610 and row[2].startswith("+"):
                opted_out = record_change(
                    tx,
                    self.scope,
                    row[1],
                    row[2],
                    True,
                    events.CARRIER,
                    now,
                    {"error_code": 21610},
                    message_sid,
                    account=row[4],
                )["state_changed"]
        return {"duplicate": not fresh, "known": row is not None, "moved": moved, "opted_out": opted_out}

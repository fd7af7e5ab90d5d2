"""The outbox of consent changes for Twilio's Consent Management API (``twilio_consent_sync``).

A change Twilio did not see (a manual or imported opt-out, a confirmed
candidate, a consent grant, a STOP that ``business`` scope spreads to other
senders) is queued here in the transaction that records it, so it is pushed
at least once. Each item's correlation id is fixed by its event and sender:
queued twice, it is one row; pushed twice, Twilio upserts it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core import consent
from .backend import Tx
from .base import Records, plus_seconds

SYNC_COLUMNS = [
    "id",
    "correlation_id",
    "account",
    "contact_id",
    "sender_id",
    "status",
    "source",
    "date_of_consent",
    "event_id",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "sent_at",
]
MAX_ITEM_ATTEMPTS = 5  # an item Twilio refuses this often is ``failed`` (shown, retried on request)


class ConsentSyncRecords(Records):
    consent_sync: bool

    def queue_for_twilio(
        self,
        tx: Tx,
        number: str,
        via: str,
        status: str,
        source: str,
        at: str,
        event_id: int,
        seen_by_twilio: bool = False,
    ) -> int:
        """Queue the change for every configured sender it covers (when ``twilio_consent_sync`` is on)."""
        if not self.consent_sync:
            return 0
        senders = consent.sync_senders(self.scope, self.accounts.senders, via, seen_by_twilio)
        items = [consent.SyncItem(number, sender, status, source, at, event_id) for sender in senders]
        return self._enqueue(tx, items)

    def _enqueue(self, tx: Tx, items: Iterable[consent.SyncItem]) -> int:
        now, queued = self.clock(), 0
        for item in items:
            queued += tx.execute(
                "INSERT INTO consent_sync (correlation_id, account, contact_id, sender_id, status, source, "
                "date_of_consent, event_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (correlation_id) DO NOTHING",
                (
                    item.correlation_id,
                    self.account_of(item.sender_id),
                    item.contact_id,
                    item.sender_id,
                    item.status,
                    item.source,
                    item.date_of_consent,
                    item.event_id,
                    now,
                    now,
                ),
            ).rowcount
        return queued

    def claim_sync(self, lease_seconds: float = 60.0, limit: int = consent.BATCH) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due items of one account (the account of the oldest due item), oldest first."""
        now = self.clock()
        due = "state = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
        with self.backend.read() as tx:
            if tx.one(f"SELECT 1 FROM consent_sync WHERE {due} LIMIT 1", (now, now)) is None:  # noqa: S608
                return []  # idle: no write transaction
        with self.backend.write(durable=False) as tx:  # a lease lost with the machine: the item goes again
            first = tx.one(f"SELECT account FROM consent_sync WHERE {due} ORDER BY id LIMIT 1", (now, now))  # noqa: S608
            if first is None:
                return []
            same = "account IS NULL" if first[0] is None else "account = ?"
            rows = tx.query(
                f"SELECT {', '.join(SYNC_COLUMNS)} FROM consent_sync WHERE {due} AND {same} "  # noqa: S608
                f"ORDER BY id LIMIT ?{tx.skip_locked}",
                [now, now, *([] if first[0] is None else [first[0]]), limit],
            )
            until = plus_seconds(now, lease_seconds)
            for row in rows:
                tx.execute(
                    "UPDATE consent_sync SET lease_until = ?, attempts = attempts + 1 WHERE id = ?", (until, row["id"])
                )
        return rows

    def finish_sync(self, sent: Iterable[int], refused: Mapping[int, tuple[str, str]]) -> None:
        """Record a push: ``sent`` items are done; each ``refused`` item (id -> Twilio's reason and when to try
        it again, by its own attempts) goes again then, or is ``failed`` after :data:`MAX_ITEM_ATTEMPTS`."""
        now = self.clock()
        with self.backend.write() as tx:
            for item_id in sent:
                tx.execute(
                    "UPDATE consent_sync SET state = 'sent', sent_at = ?, lease_until = NULL, last_error = NULL "
                    "WHERE id = ?",
                    (now, item_id),
                )
            for item_id, (reason, retry_at) in refused.items():
                tx.execute(
                    "UPDATE consent_sync SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END, "
                    "next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?",
                    (MAX_ITEM_ATTEMPTS, retry_at, reason, item_id),
                )

    def release_sync(self, ids: Iterable[int], retry_at: str, error: str) -> None:
        """A request that failed whole (429, 5xx, no answer): its items go again at ``retry_at``, their
        attempts not counted against them (the request failed, not the items)."""
        with self.backend.write() as tx:
            for item_id in ids:
                tx.execute(
                    "UPDATE consent_sync SET next_attempt_at = ?, lease_until = NULL, last_error = ?, "
                    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = ?",
                    (retry_at, error, item_id),
                )

    def sync_status(self) -> dict[str, Any]:
        """Counts per state, the oldest pending item's age, and the failed items."""
        with self.backend.read() as tx:
            counts = dict(tx.execute("SELECT state, COUNT(*) FROM consent_sync GROUP BY state").fetchall())
            oldest = tx.scalar("SELECT MIN(created_at) FROM consent_sync WHERE state = 'pending'")
            failed = tx.query(
                f"SELECT {', '.join(SYNC_COLUMNS)} FROM consent_sync WHERE state = 'failed' ORDER BY id"  # noqa: S608
            )
            retrying = tx.query(
                f"SELECT {', '.join(SYNC_COLUMNS)} FROM consent_sync "  # noqa: S608
                "WHERE state = 'pending' AND last_error IS NOT NULL ORDER BY id"
            )
        return {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "oldest_pending": oldest,
            "failed_items": failed,
            "retrying_items": retrying,
        }

    def retry_failed_sync(self) -> int:
        """Put every failed item back in the queue, due now, with its attempts reset."""
        with self.backend.write() as tx:
            return tx.execute(
                "UPDATE consent_sync SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE state = 'failed'",
                (self.clock(),),
            ).rowcount

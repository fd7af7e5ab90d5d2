"""The hash-chained event log: append under the chain head, read, export, verify.

The ``events`` table is append-only (triggers refuse UPDATE and DELETE on
both backends). An append reads the head row with ``for_update`` and moves
it in the same transaction, so concurrent writers, on any number of
machines, still produce one unbroken chain.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from ..core import events, ledger
from .backend import Tx
from .base import Records, in_accounts, where

# What the read functions return, in display order.
EVENT_COLUMNS = [
    "id",
    "event",
    "number",
    "twilio_number",
    "at",
    "source",
    "state_changed",
    "message_sid",
    "body",
    "detail",
    "hash",
]
EXPORT_COLUMNS = [*ledger.FIELDS, *ledger.ACCOUNT_FIELDS, "prev_hash", "hash"]
_STATE_EVENTS = "event IN ('" + "', '".join(events.STATE_EVENTS) + "')"
# The head as an append reads it: the last id (or a copied event's above it) and the hash to chain from.
_HEAD = "SELECT last_event_id, hash, (SELECT COALESCE(MAX(id), 0) FROM events) FROM ledger_head WHERE id = 1"
_HELD = "ledger head"  # the key of Tx.memo: (last id, hash) of the head this transaction holds locked


def _held(tx: Tx, row: tuple) -> tuple[int, str]:
    last_id, head_hash, max_id = row
    tx.memo[_HELD] = (max(last_id, max_id), head_hash)
    return tx.memo[_HELD]


def insert_and_lock_head(tx: Tx, sql: str, params: Sequence[Any]) -> int | None:
    """``tx.inserted_id(sql, params)`` and the chain head locked for an append later in the transaction, in
    one round trip where the backend can send both: for a transaction that will append after this insert.

    Takes the head's lock, the last one (see ``backend.py``): nothing after it may lock a number.
    """
    inserted, head = tx.results([(sql + " RETURNING id", params), (_HEAD + tx.for_update, ())])
    _held(tx, head[0])
    return inserted[0][0] if inserted else None


def append_event(tx: Tx, **fields: Any) -> int:
    """Append one event to the chain and move the head; returns its id.

    Must be the last lock a transaction takes (see ``backend.py``). A
    second append in the transaction chains from the first without reading
    the head again.
    """
    last_id, prev_hash = tx.memo.get(_HELD) or _held(tx, tx.one(_HEAD + tx.for_update))
    event = {name: fields.get(name) for name in (*ledger.FIELDS, *ledger.ACCOUNT_FIELDS)}
    event["id"] = last_id + 1
    event["salt"] = secrets.token_hex(16)
    event["state_changed"] = int(bool(event["state_changed"]))
    event["hash"] = ledger.event_hash(event, prev_hash)
    event["prev_hash"] = prev_hash
    tx.defer(
        f"INSERT INTO events ({', '.join(EXPORT_COLUMNS)}) VALUES ({', '.join('?' * len(EXPORT_COLUMNS))})",  # noqa: S608
        [event[name] for name in EXPORT_COLUMNS],
    )
    tx.defer("UPDATE ledger_head SET last_event_id = ?, hash = ? WHERE id = 1", (event["id"], event["hash"]))
    tx.memo[_HELD] = (event["id"], event["hash"])
    return event["id"]


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(row["detail"]) if row.get("detail") else None
    return {**row, "state_changed": bool(row["state_changed"]), "detail": detail}


def _batches(tx: Tx, batch: int) -> Iterator[dict[str, Any]]:
    """Every event with its chain hashes, oldest first, a batch at a time (bounded memory on any backend)."""
    last_id = 0
    while True:
        rows = tx.execute(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM events WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
            (last_id, batch),
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield dict(zip(EXPORT_COLUMNS, row, strict=True))
        last_id = rows[-1][0]


class LedgerRecords(Records):
    def history(self, number: str, accounts: Sequence[str] | None = None, links: bool = False) -> list[dict[str, Any]]:
        """Every event for ``number`` across all Twilio numbers (of ``accounts``, if given), oldest first;
        with ``links``, each event's ``prev_hash`` too."""
        clause, params = where(("number = ?", number), in_accounts(accounts))
        columns = [*EVENT_COLUMNS, "prev_hash"] if links else EVENT_COLUMNS
        with self.backend.read() as tx:
            rows = tx.query(f"SELECT {', '.join(columns)} FROM events{clause} ORDER BY id", params)  # noqa: S608
        return [_event_row(row) for row in rows]

    def events(self) -> list[dict[str, Any]]:
        """The whole event log in the order it was written."""
        with self.backend.read() as tx:
            rows = tx.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id")  # noqa: S608
        return [_event_row(row) for row in rows]

    def count_events(self) -> int:
        with self.backend.read() as tx:
            return tx.scalar("SELECT COUNT(*) FROM events")

    def iter_events(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every event with its chain hashes, oldest first, in bounded memory."""
        with self.backend.read() as tx:
            yield from _batches(tx, batch)

    def ledger_proof(self, accounts: Sequence[str] | None = None, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """A proof for ``accounts`` from one snapshot: the head and the accounts first, then every event,
        whole if it is theirs, else by its digest (see :func:`gateway.ledger.shown`). Bounded memory."""
        with self.backend.snapshot() as tx:
            last_id, head_hash = tx.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1")
            accounts = sorted(accounts) if accounts is not None else None
            yield {"head": {"last_event_id": last_id, "hash": head_hash}, "accounts": accounts}
            for event in _batches(tx, batch):
                yield ledger.shown(event, accounts)

    def ledger_head(self) -> tuple[int, str]:
        """(last event id, its hash) as recorded."""
        with self.backend.read() as tx:
            return tuple(tx.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1"))

    def verify_ledger(self, batch: int = 5000, accounts: Sequence[str] | None = None) -> ledger.Verification:
        """Walk the whole hash chain in one read snapshot, in bounded memory.

        With ``accounts``, only their events' contents are checked; every link still is (see :func:`ledger.verify`).
        """
        with self.backend.snapshot() as tx:
            head = tx.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1")
            return ledger.verify(_batches(tx, batch), tuple(head) if head else None, accounts)

    def verify_ledger_end(self, count: int = 1000) -> ledger.Verification:
        """Check the newest ``count`` events' hashes and links and the recorded head, taking the event before
        them on trust: recent tampering, found in one short read (the whole walk is :meth:`verify_ledger`)."""
        with self.backend.snapshot() as tx:
            recorded = tx.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1")
            rows = tx.query(
                f"SELECT {', '.join(EXPORT_COLUMNS)} FROM events WHERE id > "  # noqa: S608
                "(SELECT COALESCE(MAX(id), 0) FROM events) - ? ORDER BY id",
                [count + 1],
            )
        head = tuple(recorded) if recorded else None
        if len(rows) <= count:  # the whole chain is this short: walk it from the start
            return ledger.verify(rows, head)
        first = rows[0]
        return ledger.verify(rows[1:], head, after=(first["id"], first["hash"]))

    def daily_state_changes(self, since_day: str, accounts: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
        """(day, event, count) of opt-outs and opt-ins that changed a pair's state, from ``since_day``."""
        clause, params = where(("at >= ?", since_day), ("state_changed = 1", ()), in_accounts(accounts))
        with self.backend.read() as tx:
            rows = tx.execute(
                "SELECT substr(at, 1, 10) AS day, event, COUNT(*) FROM events "  # noqa: S608
                f"{clause} AND {_STATE_EVENTS} GROUP BY substr(at, 1, 10), event ORDER BY day",
                params,
            ).fetchall()
        return [tuple(row) for row in rows]

    def state_change_counts(self) -> dict[tuple[str, str, str | None], int]:
        """{(opt_out | opt_in, source, account): count} of events that changed a pair's state, ever."""
        with self.backend.read() as tx:
            rows = tx.execute(
                "SELECT event, source, account, COUNT(*) FROM events "  # noqa: S608
                f"WHERE state_changed = 1 AND {_STATE_EVENTS} GROUP BY event, source, account"
            ).fetchall()
        return {(event, source, account): count for event, source, account, count in rows}

"""The SQLite schema: each version's changes, applied in order inside one transaction.

``PRAGMA user_version`` holds the version. Tables are declared with
sqlite-utils; an older database is migrated keeping every record.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ...core import ledger
from . import ACCOUNTS_ADDED_TO

VERSION = 9


def migrate(db: sqlite_utils.Database, version: int) -> None:
    """Bring a database at ``version`` (0: empty) to :data:`VERSION`."""
    steps = (
        _create_v1,
        _migrate_v2,
        _migrate_v3,
        _migrate_v4,
        _migrate_v5,
        _migrate_v6,
        _migrate_v7,
        _migrate_v8,
        _migrate_v9,
    )
    for number, step in enumerate(steps, start=1):
        if version < number:
            step(db)


def _create_v1(db: sqlite_utils.Database) -> None:
    db["events"].create(
        {
            "id": int,
            "event": str,
            "number": str,
            "twilio_number": str,
            "body": str,
            "message_sid": str,
            "source": str,
            "state_changed": int,
            "at": str,
        },
        pk="id",
        not_null=["event", "number", "twilio_number", "source", "state_changed", "at"],
        if_not_exists=True,
    )
    db["opt_outs"].create(
        {
            "number": str,
            "twilio_number": str,
            "opted_out_at": str,
            "source": str,
            "message_sid": str,
            "event_id": int,
        },
        pk=("number", "twilio_number"),
        not_null=["number", "twilio_number", "opted_out_at", "source"],
        if_not_exists=True,
    )
    db["processed_messages"].create(
        {
            "message_sid": str,
            "from_number": str,
            "to_number": str,
            "outcome": str,
            "reply": str,
            "processed_at": str,
        },
        pk="message_sid",
        not_null=["from_number", "to_number", "outcome", "processed_at"],
        if_not_exists=True,
    )
    db["agent_queue"].create(
        {
            "id": int,
            "message_sid": str,
            "from_number": str,
            "to_number": str,
            "body": str,
            "params": str,
            "received_at": str,
            "status": str,
        },
        pk="id",
        not_null=["message_sid", "from_number", "to_number", "params", "received_at", "status"],
        defaults={"status": "pending"},
        if_not_exists=True,
    )
    db["events"].create_index(["number", "id"], index_name="events_by_number", if_not_exists=True)
    db["events"].create_index(["at"], index_name="events_by_time", if_not_exists=True)
    db["agent_queue"].create_index(["message_sid"], unique=True, if_not_exists=True)
    _protect_events(db)


def _protect_events(db: sqlite_utils.Database) -> None:
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS events_append_only_{action.lower()} "
            f"BEFORE {action} ON events "
            "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        )


def _migrate_v2(db: sqlite_utils.Database) -> None:
    """Add the hash chain (and a detail column) and build it over existing events, in order."""
    _add_columns(db["events"], {"detail": str, "prev_hash": str, "hash": str})
    db["ledger_head"].create({"id": int, "last_event_id": int, "hash": str}, pk="id", if_not_exists=True)
    db["api_keys"].create(
        {"id": int, "key_hash": str, "role": str, "label": str, "created_at": str, "revoked_at": str},
        pk="id",
        not_null=["key_hash", "role", "created_at"],
        if_not_exists=True,
    )
    db["api_keys"].create_index(["key_hash"], unique=True, if_not_exists=True)
    db["revocation_candidates"].create(
        {
            "id": int,
            "message_sid": str,
            "number": str,
            "twilio_number": str,
            "body": str,
            "pattern": str,
            "received_at": str,
            "event_id": int,
            "status": str,
            "resolved_by": str,
            "resolved_at": str,
            "resolution_note": str,
            "resolution_event_id": int,
        },
        pk="id",
        not_null=["message_sid", "number", "twilio_number", "pattern", "received_at", "status"],
        defaults={"status": "open"},
        if_not_exists=True,
    )
    db["revocation_candidates"].create_index(["status", "id"], if_not_exists=True)
    db["outbound_messages"].create(
        {
            "id": int,
            "to_number": str,
            "sender": str,
            "body": str,
            "template": str,
            "encoding": str,
            "segments": int,
            "status": str,
            "message_sid": str,
            "error_code": int,
            "error_message": str,
            "attempts": int,
            "next_attempt_at": str,
            "lease_until": str,
            "source": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null=["to_number", "sender", "body", "status", "attempts", "source", "created_at", "updated_at"],
        defaults={"attempts": 0},
        if_not_exists=True,
    )
    db["outbound_messages"].create_index(["message_sid"], unique=True, if_not_exists=True)
    db["outbound_messages"].create_index(["status", "next_attempt_at"], if_not_exists=True)
    db["status_callbacks"].create(
        {"message_sid": str, "status": str, "error_code": int, "received_at": str},
        pk=("message_sid", "status"),
        not_null=["received_at"],
        if_not_exists=True,
    )
    _add_columns(db["agent_queue"], {"flags": str}, {"flags": "[]"})
    db.execute("DROP TRIGGER IF EXISTS events_append_only_update")
    prev, last_id = ledger.GENESIS, 0
    rows = db.execute(f"SELECT {', '.join(ledger.FIELDS)} FROM events ORDER BY id").fetchall()  # noqa: S608
    for row in rows:
        event = dict(zip(ledger.FIELDS, row, strict=True))
        digest = ledger.event_hash(event, prev)
        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, event["id"]))
        prev, last_id = digest, event["id"]
    db.execute("INSERT OR REPLACE INTO ledger_head (id, last_event_id, hash) VALUES (1, ?, ?)", (last_id, prev))
    _protect_events(db)


def _migrate_v3(db: sqlite_utils.Database) -> None:
    """Opt-outs remember their Messaging Service; pairs remember their last outbound; rate-limit buckets."""
    _add_columns(db["opt_outs"], {"messaging_service_sid": str})
    db["opt_outs"].create_index(["number", "messaging_service_sid"], if_not_exists=True)
    db.execute(  # metrics count state changes often; a partial index keeps that cheap on a long ledger
        "CREATE INDEX IF NOT EXISTS events_state_changes ON events (event, source) WHERE state_changed = 1"
    )
    db["pairs"].create(
        {"number": str, "twilio_number": str, "last_outbound_id": int, "last_outbound_at": str},
        pk=("number", "twilio_number"),
        if_not_exists=True,
    )
    db["rate_buckets"].create({"bucket": str, "tokens": float, "updated": float}, pk="bucket", if_not_exists=True)
    queue = db["agent_queue"]
    _add_columns(
        queue,
        {
            "attempts": int,
            "next_attempt_at": str,
            "lease_until": str,
            "retry_from": str,
            "delivered_at": str,
            "last_error": str,
            "session_id": int,
        },
        {"attempts": 0},
    )
    queue.create_index(["from_number", "to_number", "status", "id"], if_not_exists=True)
    queue.create_index(["status", "id"], if_not_exists=True)
    db["sessions"].create(
        {
            "id": int,
            "number": str,
            "twilio_number": str,
            "state": str,
            "engaged": int,
            "opened_at": str,
            "last_activity_at": str,
        },
        pk="id",
        not_null=["number", "twilio_number", "state", "engaged", "opened_at", "last_activity_at"],
        if_not_exists=True,
    )
    db.execute(  # at most one open session per pair
        "CREATE UNIQUE INDEX IF NOT EXISTS sessions_open_pair ON sessions (number, twilio_number) "
        "WHERE state != 'closed'"
    )


def _migrate_v4(db: sqlite_utils.Database) -> None:
    """Sessions time out (warned, then closed); the agent queue also carries session events."""
    sessions = db["sessions"]
    _add_columns(
        sessions, {"warned_at": str, "close_at": str, "closed_at": str, "close_reason": str, "warning_outbound_id": int}
    )
    sessions.create_index(["state", "last_activity_at"], if_not_exists=True)
    sessions.create_index(["state", "close_at"], if_not_exists=True)
    if "head" in _add_columns(db["agent_queue"], {"kind": str, "head": int}, {"kind": "message", "head": 0}):
        db.execute(  # due: when queued, or when the lease or the retry wait ends
            "UPDATE agent_queue SET next_attempt_at = MAX(COALESCE(next_attempt_at, received_at), "
            "COALESCE(lease_until, received_at)) WHERE status = 'pending'"
        )
        db.execute(
            "UPDATE agent_queue SET head = 1 WHERE id IN (SELECT MIN(id) FROM agent_queue WHERE status = 'pending' "
            "GROUP BY from_number, to_number)"
        )
    db.execute(
        "CREATE INDEX IF NOT EXISTS agent_queue_due ON agent_queue (next_attempt_at) "
        "WHERE status = 'pending' AND head = 1"
    )


def _migrate_v5(db: sqlite_utils.Database) -> None:
    """One row per inbound message: the MessageSid claim, its outcome and its place in the agent queue.

    ``processed_messages`` and ``agent_queue`` become ``inbound_messages``, so
    a plain message is one insert (the claim is the queue entry) instead of
    two rows in two tables with five indexes. Queue rows keep their ids (the
    agent deduplicates on ``dlv_<id>``); messages that were never queued
    (keywords, drops) follow, with no queue status.
    """
    db.execute(
        """CREATE TABLE inbound_messages (
            id INTEGER PRIMARY KEY,
            message_sid TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'message',
            from_number TEXT NOT NULL,
            to_number TEXT NOT NULL,
            body TEXT,
            params TEXT NOT NULL DEFAULT '[]',
            received_at TEXT NOT NULL,
            outcome TEXT,
            reply TEXT,
            status TEXT,
            flags TEXT NOT NULL DEFAULT '[]',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            lease_until TEXT,
            retry_from TEXT,
            delivered_at TEXT,
            last_error TEXT,
            session_id INTEGER,
            head INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute(
        "INSERT INTO inbound_messages (id, message_sid, kind, from_number, to_number, body, params, received_at, "
        "outcome, reply, status, flags, attempts, next_attempt_at, lease_until, retry_from, delivered_at, last_error, "
        "session_id, head) SELECT q.id, q.message_sid, q.kind, q.from_number, q.to_number, q.body, q.params, "
        "q.received_at, p.outcome, p.reply, q.status, q.flags, q.attempts, q.next_attempt_at, q.lease_until, "
        "q.retry_from, q.delivered_at, q.last_error, q.session_id, q.head FROM agent_queue AS q "
        "LEFT JOIN processed_messages AS p ON p.message_sid = q.message_sid ORDER BY q.id"
    )
    db.execute(
        "INSERT INTO inbound_messages (message_sid, from_number, to_number, received_at, outcome, reply) "
        "SELECT message_sid, from_number, to_number, processed_at, outcome, reply FROM processed_messages AS p "
        "WHERE NOT EXISTS (SELECT 1 FROM agent_queue AS q WHERE q.message_sid = p.message_sid) "
        "ORDER BY processed_at, message_sid"
    )
    db.execute("DROP TABLE agent_queue")
    db.execute("DROP TABLE processed_messages")
    _inbound_indexes(db)


def _migrate_v6(db: sqlite_utils.Database) -> None:
    """A one-row table /healthz writes to: can this database store right now?"""
    db.execute(HEALTH_PROBE)


def _migrate_v7(db: sqlite_utils.Database) -> None:
    db.execute(OPT_OUTS_IN_ORDER)


def _migrate_v8(db: sqlite_utils.Database) -> None:
    """Each record's Twilio account (an Account SID)."""
    for table in ACCOUNTS_ADDED_TO:
        _add_columns(db[table], {"account": str})
    _add_columns(db["events"], {"salt": str})  # an account's event's salt (see gateway.ledger)
    _add_columns(db["api_keys"], {"accounts": str})  # the accounts a key may see (JSON list; empty: all)


def _migrate_v9(db: sqlite_utils.Database) -> None:
    """Consent records and their outbox to Twilio; an outbound message's category and, when suppressed, why."""
    db.execute(CONSENTS)
    db.execute(CONSENTS_BY_NUMBER)
    db.execute(CONSENT_SYNC)
    db.execute(CONSENT_SYNC_DUE)
    db.execute(CLARIFICATIONS)
    _add_columns(db["outbound_messages"], {"category": str, "suppressed_reason": str})


# Who agreed to receive which messages, when, how, to what wording (see gateway.consent).
CONSENTS = """CREATE TABLE IF NOT EXISTS consents (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL,
    sender TEXT NOT NULL,
    category TEXT NOT NULL,
    method TEXT NOT NULL,
    given_at TEXT NOT NULL,
    wording TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    event_id INTEGER,
    ended_at TEXT,
    ended_by_event_id INTEGER,
    account TEXT
)"""
CONSENTS_BY_NUMBER = "CREATE INDEX IF NOT EXISTS consents_by_number ON consents (number, category)"

# Consent changes Twilio did not see, waiting to be pushed to its Consent Management API (an outbox).
CONSENT_SYNC = """CREATE TABLE IF NOT EXISTS consent_sync (
    id INTEGER PRIMARY KEY,
    correlation_id TEXT NOT NULL UNIQUE,
    account TEXT,
    contact_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    date_of_consent TEXT,
    event_id INTEGER,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
)"""
# A clarification text sent instead of a STOP confirmation, and its answer (see gateway.consent).
CLARIFICATIONS = """CREATE TABLE IF NOT EXISTS clarifications (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL,
    twilio_number TEXT NOT NULL,
    revocation_event_id INTEGER NOT NULL,
    categories TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    answered_at TEXT,
    answer TEXT,
    answer_event_id INTEGER,
    account TEXT
)"""
CONSENT_SYNC_DUE = "CREATE INDEX IF NOT EXISTS consent_sync_due ON consent_sync (state, next_attempt_at)"


HEALTH_PROBE = "CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, probed_at TEXT NOT NULL)"


# The opt-out list's order (``LIST_KEY``): any page of it is an index range, not a sort of every row.
OPT_OUTS_IN_ORDER = "CREATE INDEX IF NOT EXISTS opt_outs_in_order ON opt_outs (opted_out_at, number, twilio_number)"


def _inbound_indexes(db: sqlite_utils.Database) -> None:
    for statement in INBOUND_INDEXES:
        db.execute(statement)


# The claim, and the queue's two partial indexes: only pending rows are in them, so they stay small.
INBOUND_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS inbound_by_sid ON inbound_messages (message_sid)",
    "CREATE INDEX IF NOT EXISTS inbound_pending_by_pair ON inbound_messages (from_number, to_number, id) "
    "WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS inbound_due ON inbound_messages (next_attempt_at) "
    "WHERE status = 'pending' AND head = 1",
)


def _add_columns(
    table: sqlite_utils.db.Table, columns: dict[str, type], defaults: dict[str, Any] | None = None
) -> set[str]:
    """Add the ``columns`` a table lacks (NOT NULL with a default where ``defaults`` gives one); return them."""
    added = {name for name in columns if name not in table.columns_dict}
    for name in columns:  # in the given order
        if name in added:
            table.add_column(name, columns[name], not_null_default=(defaults or {}).get(name))
    return added

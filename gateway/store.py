"""Durable storage: the only module that knows the database is SQLite.

Every SQL statement of the gateway lives here, behind named functions.
Writes run in ``BEGIN IMMEDIATE`` transactions on a WAL database, queued on a
writer lock so several gunicorn workers write without "database is locked"
errors. Durability, before any caller gets an answer:

- a transaction holding a STOP/START/HELP commits with ``synchronous=FULL``;
- any other transaction commits with ``synchronous=NORMAL`` and the WAL is
  then fsynced outside the writer lock, which is what FULL does in WAL mode,
  but lets the fsyncs of concurrent workers overlap instead of queueing.
  With ``durability="compliance"`` that fsync is skipped unless the
  transaction logged an event (a drop): plain queued messages then survive a
  crash or restart of the gateway but the latest can be lost to a power cut.
The ``events`` table is append-only, enforced by triggers.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from . import ledger
from .compliance import Decision
from .ratelimit import Limit
from .scope import ANY, Cover, Scope
from .timestamps import FORMAT as TIMESTAMP_FORMAT
from .timestamps import utcnow

SCHEMA_VERSION = 4
DURABILITY = ("full", "compliance")

# What the read functions return, in display order.
OPT_OUT_COLUMNS = ["number", "twilio_number", "opted_out_at", "source", "message_sid"]
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
EXPORT_COLUMNS = [*ledger.FIELDS, "prev_hash", "hash"]
_PREFIX = "sqlite:///"


def default_url(instance_path: str | os.PathLike[str]) -> str:
    return _PREFIX + str(Path(instance_path).resolve() / "gateway.db")


def database_path(url: str) -> Path:
    """Parse an SQLAlchemy-style ``sqlite:///`` URL into a file path."""
    if not url.startswith(_PREFIX):
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ValueError(f"unsupported database URL {scheme!r}: expected sqlite:///path/to/file.db")
    path = url[len(_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError("an in-memory database would lose every record: give a file path")
    return Path(path).resolve()


def from_settings(settings: Any) -> Store:
    """A store for validated settings (see :mod:`gateway.config`)."""
    return Store(
        settings["DATABASE_URL"],
        settings["BUSY_TIMEOUT_MS"],
        durability=settings["DURABILITY"],
        scope=settings["SCOPE"],
    )


@dataclass(frozen=True)
class InboundMessage:
    """One inbound webhook as received, before any interpretation."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    params: Sequence[tuple[str, str]]  # every form field, repeats kept, in order


@dataclass(frozen=True)
class Processed:
    """The result of :meth:`Store.process_inbound`."""

    outcome: str
    reply: str | None
    duplicate: bool
    logged: bool = False  # an event was written (a compliance record)


@dataclass
class _Job:
    """One message waiting for a group commit."""

    message: InboundMessage
    decide: Callable[[bool], Decision]
    keyword: bool
    result: Processed | None = None
    error: BaseException | None = None
    done: bool = False


class Store:
    """A handle on one database file; connections are per thread and process."""

    def __init__(
        self,
        url: str,
        busy_timeout_ms: int = 30000,
        clock: Callable[[], str] = utcnow,
        durability: str = "full",
        scope: Scope | None = None,
    ):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}")
        self.path = database_path(url)
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self.durability = durability
        self.busy_timeout = busy_timeout_ms / 1000
        self.clock = clock
        self.scope = scope or Scope()
        self._local = threading.local()
        self._pending: list[_Job] = []
        self._pending_lock = threading.Lock()
        self._leader_lock = threading.Lock()

    # -- connections -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _db(self) -> sqlite_utils.Database:
        """This thread's connection; a forked worker never reuses its parent's."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.db = sqlite_utils.Database(self._open(), execute_plugins=False)
            # One descriptor per thread: flock() excludes other descriptors,
            # so threads and processes queue on the writer lock alike.
            local.lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            local.pid = os.getpid()
            local.synchronous = None  # set by the first write
        return local.db

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + "-writer.lock")

    def close(self) -> None:
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            local.db.close()
            os.close(local.lock)
        local.pid = None

    @contextmanager
    def _write(self, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
        """One write transaction that takes the write lock up front.

        Writers first queue on a blocking flock(): the kernel wakes the next
        one the moment the lock is free, where SQLite's busy handler would
        poll with sleeps of up to 100 ms. BEGIN IMMEDIATE still guards against
        writers outside the gateway (they are covered by the busy timeout).
        """
        conn = self._db().conn
        level = "FULL" if synchronous == "FULL" else "NORMAL"
        if self._local.synchronous != level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._local.synchronous = level
        with self._writer_lock():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                if conn.in_transaction:  # a caller may have rolled back on purpose
                    conn.execute("COMMIT")

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        fcntl.flock(self._local.lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._local.lock, fcntl.LOCK_UN)

    # -- schema ------------------------------------------------------------

    def init_schema(self) -> int:
        """Create or migrate the schema; safe to run from many workers at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._db()
        with self._writer_lock():  # switching to WAL needs the database to itself
            db.conn.execute("PRAGMA journal_mode=WAL")
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema version {version} is newer than this gateway ({SCHEMA_VERSION})")
            if version < 1:
                _create_v1(db)
            if version < 2:
                _migrate_v2(db)
            if version < 3:
                _migrate_v3(db)
            if version < 4:
                _migrate_v4(db)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return SCHEMA_VERSION

    def ping(self) -> None:
        """Raise if the database cannot answer a query on its schema."""
        self._db().conn.execute("SELECT 1 FROM opt_outs LIMIT 1").fetchall()

    # -- inbound -----------------------------------------------------------

    def process_inbound(
        self, message: InboundMessage, decide: Callable[[bool], Decision], keyword: bool = False
    ) -> Processed:
        """Apply the compliance decision for ``message`` at most once, durably.

        Returns only after the transaction holding it has committed (fsync).
        Concurrent calls in one process share a commit (group commit): the
        caller that gets the writer lock commits every pending message, each
        in its own savepoint so one failure cannot spoil the others.
        """
        job = _Job(message, decide, keyword)
        with self._pending_lock:
            self._pending.append(job)
        with self._leader_lock:
            if not job.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit_batch(batch)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _commit_batch(self, batch: list[_Job]) -> None:
        full = any(job.keyword for job in batch)
        try:
            with self._write("FULL" if full else "NORMAL") as conn:
                for job in batch:
                    conn.execute("SAVEPOINT inbound")
                    try:
                        job.result = self._process_one(conn, job.message, job.decide)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO inbound")
                        job.error = exc
                    conn.execute("RELEASE inbound")
            if not full and (self.durability == "full" or any(job.result and job.result.logged for job in batch)):
                self._flush_wal()
        except BaseException as exc:  # the commit failed: nothing in the batch is durable
            for job in batch:
                job.result, job.error = None, job.error or exc
        finally:
            for job in batch:
                job.done = True

    def _flush_wal(self) -> None:
        """Make every committed transaction durable, as ``synchronous=FULL`` would.

        In WAL mode FULL means: fsync the WAL after the commit. A WAL that is
        gone was checkpointed into the database file, which SQLite synced.
        """
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            # Data only, like SQLite's own syncs: the WAL is rewritten in place, so
            # its size rarely changes and mtime need not reach the disk.
            getattr(os, "fdatasync", os.fsync)(fd)
        finally:
            os.close(fd)

    def _process_one(
        self, conn: sqlite3.Connection, message: InboundMessage, decide: Callable[[bool], Decision]
    ) -> Processed:
        """Read the pair's state, decide, claim the MessageSid atomically, write.

        A duplicate finds the MessageSid taken (the insert is ignored) and gets
        the first delivery's outcome and reply back; nothing else is written.
        """
        now = self.clock()
        service = _param(message.params, "MessagingServiceSid")
        blocked = self._covered(conn, message.from_number, message.to_number, service)
        decision = decide(blocked is not None)
        claimed = conn.execute(
            "INSERT OR IGNORE INTO processed_messages "
            "(message_sid, from_number, to_number, outcome, reply, processed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (message.message_sid, message.from_number, message.to_number, decision.outcome, decision.reply, now),
        ).rowcount
        if not claimed:
            first = conn.execute(
                "SELECT outcome, reply FROM processed_messages WHERE message_sid = ?", (message.message_sid,)
            ).fetchone()
            return Processed(outcome=first[0], reply=first[1], duplicate=True)
        self._apply(conn, message, decision, now, service)
        return Processed(decision.outcome, decision.reply, duplicate=False, logged=decision.event is not None)

    def _apply(
        self, conn: sqlite3.Connection, message: InboundMessage, decision: Decision, now: str, service: str | None
    ) -> None:
        event_id = None
        if decision.event:
            event_id = _append_event(
                conn,
                event=decision.event,
                number=message.from_number,
                twilio_number=message.to_number,
                body=message.body,
                message_sid=message.message_sid,
                source=decision.source,
                state_changed=decision.state_changed,
                at=now,
                detail=json.dumps({"pattern": decision.candidate}) if decision.candidate else None,
            )
        if decision.candidate:
            conn.execute(
                "INSERT INTO revocation_candidates (message_sid, number, twilio_number, body, pattern, received_at, "
                "event_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.message_sid,
                    message.from_number,
                    message.to_number,
                    message.body,
                    decision.candidate,
                    now,
                    event_id,
                ),
            )
        if decision.state_changed:
            self._set_state(
                conn,
                message.from_number,
                message.to_number,
                decision.opted_out,
                now,
                decision.source,
                message.message_sid,
                event_id,
                service,
            )
        if decision.enqueue:
            _queue_delivery(
                conn,
                message.message_sid,
                "message",
                message.from_number,
                message.to_number,
                now,
                body=message.body,
                params=json.dumps(list(message.params)),
                flags=json.dumps(["revocation_candidate"] if decision.candidate else []),
            )

    # -- reads -------------------------------------------------------------

    def is_opted_out(self, number: str, via: str) -> bool:
        """Whether an opt-out covers ``number`` through ``via`` (a Twilio number or MG SID), per the scope."""
        return self._covered(self._db().conn, number, via) is not None

    def _covered(self, conn: sqlite3.Connection, number: str, via: str, service_hint: str | None = None) -> str | None:
        """The Twilio number of an opt-out that covers ``number`` through ``via``, if any."""
        cover = self.scope.cover(via, service_hint)
        return _covering_opt_out(conn, number, cover)

    def _set_state(
        self,
        conn: sqlite3.Connection,
        number: str,
        twilio_number: str,
        opted_out: bool,
        at: str,
        source: str | None,
        message_sid: str | None,
        event_id: int | None,
        service_hint: str | None = None,
    ) -> None:
        """Opt the pair out (remembering its Messaging Service), or clear every opt-out covering it."""
        if opted_out:
            conn.execute(
                "INSERT OR IGNORE INTO opt_outs (number, twilio_number, opted_out_at, source, message_sid, event_id, "
                "messaging_service_sid) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    twilio_number,
                    at,
                    source,
                    message_sid,
                    event_id,
                    self.scope.service_of(twilio_number, service_hint),
                ),
            )
            return
        cover = self.scope.cover(twilio_number, service_hint)
        where, params = _cover_clause(cover)
        conn.execute(f"DELETE FROM opt_outs WHERE number = ? AND {where}", [number, *params])  # noqa: S608

    def _record_manual(
        self,
        conn: sqlite3.Connection,
        number: str,
        twilio_number: str,
        opted_out: bool,
        now: str,
        detail: dict[str, Any],
    ) -> dict[str, Any]:
        changed = (self._covered(conn, number, twilio_number) is not None) != opted_out
        event_id = _append_event(
            conn,
            event="opt_out" if opted_out else "opt_in",
            number=number,
            twilio_number=twilio_number,
            source="manual",
            state_changed=changed,
            at=now,
            detail=json.dumps(detail, ensure_ascii=False),
        )
        if changed:
            self._set_state(conn, number, twilio_number, opted_out, now, "manual", None, event_id)
        return {"event_id": event_id, "state_changed": changed, "at": now}

    def _record_carrier(
        self, conn: sqlite3.Connection, number: str, twilio_number: str, message_sid: str | None, detail: dict
    ) -> bool:
        """Twilio says the recipient opted out upstream (21610): an opt-out with source ``carrier``."""
        now = self.clock()
        changed = self._covered(conn, number, twilio_number) is None
        event_id = _append_event(
            conn,
            event="opt_out",
            number=number,
            twilio_number=twilio_number,
            message_sid=message_sid,
            source="carrier",
            state_changed=changed,
            at=now,
            detail=json.dumps(detail),
        )
        if changed:
            self._set_state(conn, number, twilio_number, True, now, "carrier", message_sid, event_id)
        return changed

    def current_opt_outs(
        self,
        number: str | None = None,
        twilio_number: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Current opt-outs, oldest first; ``since``/``until`` are inclusive stored timestamps."""
        clauses, params = [], []
        for clause, value in (
            ("number = ?", number),
            ("twilio_number = ?", twilio_number),
            ("opted_out_at >= ?", since),
            ("opted_out_at <= ?", until),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        params += [-1 if limit is None else limit, offset]
        return list(
            self._db().query(
                f"SELECT {', '.join(OPT_OUT_COLUMNS)} FROM opt_outs"  # noqa: S608
                f"{where} ORDER BY opted_out_at, number, twilio_number LIMIT ? OFFSET ?",
                params,
            )
        )

    # -- records made by people ----------------------------------------------

    def record_manual(self, number: str, twilio_number: str, opted_out: bool, reason: str, by: str) -> dict[str, Any]:
        """Record a revocation (or re-consent) received by other means: a call, an email."""
        with self._write() as conn:
            return self._record_manual(
                conn, number, twilio_number, opted_out, self.clock(), {"reason": reason, "by": by}
            )

    # -- revocation candidates ---------------------------------------------

    def revocation_candidates(self, status: str = "open") -> list[dict[str, Any]]:
        """Candidates, oldest first; ``status`` open, confirmed, dismissed or all."""
        status = None if status == "all" else status
        return list(
            self._db().query(
                "SELECT id, number, twilio_number, body, pattern, message_sid, received_at, status, resolved_by, "
                "resolved_at, resolution_note FROM revocation_candidates WHERE ? IS NULL OR status = ? ORDER BY id",
                [status, status],
            )
        )

    def resolve_candidate(self, candidate_id: int, confirm: bool, by: str, note: str | None = None) -> dict[str, Any]:
        """Confirm (a manual opt-out of the pair) or dismiss a candidate, once.

        Raises LookupError for an unknown id and ValueError when it was
        already resolved. Both outcomes are chained events naming who.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT number, twilio_number, status, resolved_by, resolved_at FROM revocation_candidates "
                "WHERE id = ?",
                (candidate_id,),
            ).fetchone()
            if row is None:
                raise LookupError(f"no revocation candidate {candidate_id}")
            number, twilio_number, status, resolved_by, resolved_at = row
            if status != "open":
                raise ValueError(f"candidate {candidate_id} was already {status} by {resolved_by} at {resolved_at}")
            now = self.clock()
            detail = {"candidate": candidate_id, "by": by, "reason": note or ("confirmed" if confirm else "dismissed")}
            if confirm:
                result = self._record_manual(conn, number, twilio_number, True, now, detail)
            else:
                event_id = _append_event(
                    conn,
                    event="candidate_dismissed",
                    number=number,
                    twilio_number=twilio_number,
                    source="manual",
                    state_changed=False,
                    at=now,
                    detail=json.dumps(detail, ensure_ascii=False),
                )
                result = {"event_id": event_id, "state_changed": False, "at": now}
            conn.execute(
                "UPDATE revocation_candidates SET status = ?, resolved_by = ?, resolved_at = ?, resolution_note = ?, "
                "resolution_event_id = ? WHERE id = ?",
                ("confirmed" if confirm else "dismissed", by, now, note, result["event_id"], candidate_id),
            )
        return {**result, "candidate": candidate_id, "status": "confirmed" if confirm else "dismissed"}

    def import_opt_outs(self, rows: Sequence[Any], name: str) -> dict[str, int]:
        """Record imported opt-outs in one transaction: all rows or none.

        Each row becomes an ``opt_out`` event with source ``import``; a pair
        that is already opted out keeps its earlier record.
        """
        added = 0
        with self._write() as conn:
            now = self.clock()
            for row in rows:
                changed = self._covered(conn, row.number, row.twilio_number) is None
                event_id = _append_event(
                    conn,
                    event="opt_out",
                    number=row.number,
                    twilio_number=row.twilio_number,
                    source="import",
                    state_changed=changed,
                    at=now,
                    detail=json.dumps({"import": name, "line": row.line, "opted_out_at": row.opted_out_at}),
                )
                if changed:
                    self._set_state(
                        conn, row.number, row.twilio_number, True, row.opted_out_at, "import", None, event_id
                    )
                    added += 1
        return {"rows": len(rows), "opted_out": added, "already_opted_out": len(rows) - added}

    def daily_state_changes(self, since_day: str) -> list[tuple[str, str, int]]:
        """(day, event, count) of opt-outs and opt-ins that changed a pair's state, from ``since_day``."""
        return (
            self._db()
            .conn.execute(
                "SELECT substr(at, 1, 10) AS day, event, COUNT(*) FROM events "
                "WHERE at >= ? AND state_changed = 1 AND event IN ('opt_out', 'opt_in') "
                "GROUP BY day, event ORDER BY day",
                (since_day,),
            )
            .fetchall()
        )

    def state_change_counts(self) -> dict[tuple[str, str], int]:
        """{(opt_out | opt_in, source): count} of events that changed a pair's state, ever."""
        rows = self._db().conn.execute(
            "SELECT event, source, COUNT(*) FROM events WHERE state_changed = 1 AND event IN ('opt_out', 'opt_in') "
            "GROUP BY event, source"
        )
        return {(event, source): count for event, source, count in rows}

    def count_events(self) -> int:
        return self._db().conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def iter_events(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every event with its chain hashes, oldest first, in bounded memory."""
        columns = EXPORT_COLUMNS
        last_id = 0
        conn = self._db().conn
        while True:
            rows = conn.execute(
                f"SELECT {', '.join(columns)} FROM events WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
                (last_id, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield dict(zip(columns, row, strict=True))
            last_id = rows[-1][0]

    # -- outbound ------------------------------------------------------------

    def queue_outbound(
        self,
        to_number: str,
        sender: str,
        text: OutboundText,
        source: str,
        template: str | None = None,
        new_session: bool = False,
    ) -> dict[str, Any]:
        """Queue one outbound message, or record it as suppressed when an opt-out covers it.

        A queued message resumes the pair's open session, or with
        ``new_session`` closes it (reason ``replaced``) and opens a new one.
        """
        with self._write() as conn:
            return self._queue(conn, to_number, sender, text, source, template, new_session)

    def _queue(
        self,
        conn: sqlite3.Connection,
        to_number: str,
        sender: str,
        text: OutboundText,
        source: str,
        template: str | None,
        new_session: bool,
    ) -> dict[str, Any]:
        now = self.clock()
        message_id, status = self._insert_outbound(conn, now, to_number, sender, text, source, template)
        if status == "queued":
            if new_session:
                _close_open_session(conn, to_number, sender, now, "replaced")
            _open_session(conn, to_number, sender, now, engaged=False)
        return {"id": message_id, "status": status, "created_at": now}

    def _insert_outbound(
        self,
        conn: sqlite3.Connection,
        now: str,
        to_number: str,
        sender: str,
        text: OutboundText,
        source: str,
        template: str | None,
    ) -> tuple[int, str]:
        """Insert one outbound message, ``queued`` or, when an opt-out covers the pair, ``suppressed``."""
        blocked = self._covered(conn, to_number, sender)
        status = "suppressed" if blocked else "queued"
        message_id = conn.execute(
            "INSERT INTO outbound_messages (to_number, sender, body, template, encoding, segments, status, "
            "next_attempt_at, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                to_number,
                sender,
                text.body,
                template,
                text.encoding,
                text.segments,
                status,
                None if blocked else now,
                source,
                now,
                now,
            ),
        ).lastrowid
        if blocked:
            _append_event(
                conn,
                event="suppressed",
                number=to_number,
                twilio_number=blocked,
                body=text.body,
                source=source,
                state_changed=False,
                at=now,
                detail=json.dumps({"outbound_id": message_id, "sender": sender}),
            )
        else:
            conn.execute(
                "INSERT INTO pairs (number, twilio_number, last_outbound_id, last_outbound_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (number, twilio_number) DO UPDATE SET last_outbound_id = excluded.last_outbound_id, "
                "last_outbound_at = excluded.last_outbound_at",
                (to_number, sender, message_id, now),
            )
        return message_id, status

    def pair(self, number: str, twilio_number: str) -> dict[str, Any] | None:
        """What the gateway knows of one conversation pair (its latest outbound message)."""
        rows = list(
            self._db().query("SELECT * FROM pairs WHERE number = ? AND twilio_number = ?", [number, twilio_number])
        )
        return rows[0] if rows else None

    def claim_outbound(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease due messages for sending; re-check opt-outs and suppress those that opted out since."""
        claimed: list[dict[str, Any]] = []
        now = self.clock()
        if (
            not self._db().conn
            .execute(
                "SELECT 1 FROM outbound_messages WHERE status IN ('queued', 'retrying') AND next_attempt_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) LIMIT 1",
                (now, now),
            )
            .fetchone()
        ):
            return claimed  # idle: no write transaction
        with self._write() as conn:
            now = self.clock()
            rows = conn.execute(
                "SELECT id, to_number, sender, body, attempts, created_at FROM outbound_messages "
                "WHERE status IN ('queued', 'retrying') AND next_attempt_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            until = _plus_seconds(now, lease_seconds)
            for message_id, to_number, sender, body, attempts, created_at in rows:
                blocked = self._covered(conn, to_number, sender)
                if blocked:
                    conn.execute(
                        "UPDATE outbound_messages SET status = 'suppressed', updated_at = ?, "
                        "lease_until = NULL WHERE id = ?",
                        (now, message_id),
                    )
                    _append_event(
                        conn,
                        event="suppressed",
                        number=to_number,
                        twilio_number=blocked,
                        body=body,
                        source="outbound",
                        state_changed=False,
                        at=now,
                        detail=json.dumps({"outbound_id": message_id, "sender": sender, "at_send_time": True}),
                    )
                    continue
                conn.execute(
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
        with self._write() as conn:
            conn.execute(
                "UPDATE outbound_messages SET status = ?, message_sid = COALESCE(?, message_sid), error_code = ?, "
                "error_message = ?, next_attempt_at = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
                (status, message_sid, error_code, error_message, retry_at, self.clock(), message_id),
            )

    def record_carrier_opt_out(self, number: str, twilio_number: str, detail: dict[str, Any]) -> bool:
        """Twilio refused a send with 21610: the recipient opted out upstream. Record it (source carrier)."""
        with self._write() as conn:
            return self._record_carrier(conn, number, twilio_number, None, detail)

    def outbound_by_sid(self, message_sid: str) -> dict[str, Any] | None:
        rows = list(self._db().query("SELECT * FROM outbound_messages WHERE message_sid = ?", [message_sid]))
        return rows[0] if rows else None

    def status_history(self, message_sid: str) -> list[dict[str, Any]]:
        """Status callbacks recorded for one message, in arrival order."""
        return list(
            self._db().query(
                "SELECT status, error_code, received_at FROM status_callbacks WHERE message_sid = ? ORDER BY rowid",
                [message_sid],
            )
        )

    def list_outbound(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Outbound messages, newest first, optionally of one status."""
        return list(
            self._db().query(
                "SELECT * FROM outbound_messages WHERE ? IS NULL OR status = ? ORDER BY id DESC LIMIT ?",
                [status, status, limit],
            )
        )

    def outbound_counts(
        self, since: str | None = None, until: str | None = None
    ) -> list[tuple[str, str, str, bool, int, int]]:
        """(day, sender, status, handed to Twilio, messages, segments) for messages created in the range."""
        rows = self._db().conn.execute(
            "SELECT substr(created_at, 1, 10) AS day, sender, status, message_sid IS NOT NULL AS handed, "
            "COUNT(*), SUM(segments) FROM outbound_messages "
            "WHERE (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at <= ?) "
            "GROUP BY day, sender, status, handed ORDER BY day, sender",
            (since, since, until, until),
        )
        return [
            (day, sender, status, bool(handed), count, segments)
            for day, sender, status, handed, count, segments in rows
        ]

    def outbound_status_counts(self) -> dict[str, int]:
        """How many outbound messages are in each status now."""
        rows = self._db().conn.execute("SELECT status, COUNT(*) FROM outbound_messages GROUP BY status")
        return dict(rows.fetchall())

    def outbound(self, message_id: int) -> dict[str, Any] | None:
        rows = list(self._db().query("SELECT * FROM outbound_messages WHERE id = ?", [message_id]))
        return rows[0] if rows else None

    def record_status(
        self, message_sid: str, status: str, error_code: int | None, rank: Callable[[str], int]
    ) -> dict[str, Any]:
        """Record one status callback, once per (sid, status); never move a message backwards.

        A 21610 error (recipient unsubscribed upstream) opts the pair out, source ``carrier``.
        """
        with self._write() as conn:
            now = self.clock()
            fresh = conn.execute(
                "INSERT OR IGNORE INTO status_callbacks (message_sid, status, error_code, received_at) "
                "VALUES (?, ?, ?, ?)",
                (message_sid, status, error_code, now),
            ).rowcount
            row = conn.execute(
                "SELECT id, to_number, sender, status FROM outbound_messages WHERE message_sid = ?", (message_sid,)
            ).fetchone()
            moved = False
            if fresh and row and rank(status) > rank(row[3]):
                conn.execute(
                    "UPDATE outbound_messages SET status = ?, error_code = COALESCE(?, error_code), "
                    "updated_at = ? WHERE id = ?",
                    (status, error_code, now, row[0]),
                )
                moved = True
            opted_out = False
            if fresh and row and error_code == 21610 and row[2].startswith("+"):
                opted_out = self._record_carrier(conn, row[1], row[2], message_sid, {"error_code": 21610})
        return {"duplicate": not fresh, "known": row is not None, "moved": moved, "opted_out": opted_out}

    # -- rate limits -----------------------------------------------------------

    def take_token(self, bucket: str, limit: Limit, now: float) -> float:
        """Take one token from ``bucket`` atomically across processes; return seconds to wait (0: allowed)."""
        with self._write("NORMAL") as conn:  # not a compliance record: no fsync
            row = conn.execute("SELECT tokens, updated FROM rate_buckets WHERE bucket = ?", (bucket,)).fetchone()
            tokens, wait = limit.take(*(row or (None, None)), now)
            conn.execute(
                "INSERT INTO rate_buckets (bucket, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
                (bucket, tokens, now),
            )
        return wait

    # -- API keys ------------------------------------------------------------

    def add_api_key(self, key_hash: str, role: str, label: str | None = None) -> int:
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO api_keys (key_hash, role, label, created_at) VALUES (?, ?, ?, ?)",
                (key_hash, role, label, self.clock()),
            ).lastrowid

    def active_api_keys(self) -> list[tuple[str, str]]:
        """(hash, role) of every key that is not revoked."""
        return self._db().conn.execute("SELECT key_hash, role FROM api_keys WHERE revoked_at IS NULL").fetchall()

    def list_api_keys(self) -> list[dict[str, Any]]:
        return list(self._db().query("SELECT id, role, label, created_at, revoked_at FROM api_keys ORDER BY id"))

    def revoke_api_key(self, key_id: int) -> bool:
        with self._write() as conn:
            return bool(
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (self.clock(), key_id)
                ).rowcount
            )

    def history(self, number: str) -> list[dict[str, Any]]:
        """Every event for ``number`` across all Twilio numbers, oldest first."""
        return [
            _event_row(row)
            for row in self._db().query(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE number = ? ORDER BY id",  # noqa: S608
                [number],
            )
        ]

    def events(self) -> list[dict[str, Any]]:
        """The whole event log in the order it was written."""
        return [
            _event_row(row)
            for row in self._db().query(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id"  # noqa: S608
            )
        ]

    def verify_ledger(self) -> ledger.Verification:
        """Walk the whole hash chain in one read snapshot, in bounded memory."""
        conn = self._db().conn
        conn.execute("BEGIN")  # one snapshot for the head and the events
        try:
            head = conn.execute("SELECT last_event_id, hash FROM ledger_head WHERE id = 1").fetchone()
            columns = EXPORT_COLUMNS
            cursor = conn.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY id")  # noqa: S608
            rows = (dict(zip(columns, row, strict=True)) for row in cursor)
            return ledger.verify(rows, tuple(head) if head else None)
        finally:
            conn.execute("COMMIT")

    def queued_messages(self) -> list[dict[str, Any]]:
        """Messages waiting for the agent session handler, oldest first."""
        rows = self._db().query(
            "SELECT id, message_sid, from_number, to_number, body, params, received_at, status, flags "
            "FROM agent_queue ORDER BY id"
        )
        return [
            {**row, "params": [tuple(pair) for pair in json.loads(row["params"])], "flags": json.loads(row["flags"])}
            for row in rows
        ]

    # -- forwarding to the agent ----------------------------------------------

    def claim_deliveries(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease the oldest pending message of each pair that is due, at most ``limit``.

        Only a pair's oldest pending message (its ``head``) is ever eligible,
        so delivery is in order per pair (and so per session): a later
        message waits while an earlier one is leased or waiting to be
        retried. A head is due when ``next_attempt_at`` has passed: at once
        when queued, then when its lease runs out or its retry is due, so a
        backlog behind an unreachable agent costs nothing to look at. The
        opt-out state is checked again: a message from a sender who opted out
        since it was queued is dropped (a chained ``dropped`` event), not
        delivered. Each leased message is attached to the pair's open session
        (one is opened if needed).
        """
        claimed: list[dict[str, Any]] = []
        if not self._db().conn.execute(_DUE_HEADS.format(columns="1"), (self.clock(), 1)).fetchone():
            return claimed  # idle: no write transaction
        # Not fsynced: a claim lost with the machine only means the message is claimed again.
        with self._write("NORMAL") as conn:
            now = self.clock()
            columns = (
                "id, message_sid, from_number, to_number, body, params, received_at, flags, attempts, "
                "COALESCE(retry_from, received_at), kind, session_id"
            )
            rows = conn.execute(_DUE_HEADS.format(columns=columns), (now, limit)).fetchall()
            until = _plus_seconds(now, lease_seconds)
            for row in rows:
                queue_id, sid, from_number, to_number, body, params, received_at, flags, attempts, since = row[:10]
                kind, session_id = row[10:]
                params = [tuple(pair) for pair in json.loads(params)]
                session = None
                if kind != "message":  # a session event: nothing from the user, so no opt-out check
                    session = self._session_row(conn, session_id)
                elif self._covered(conn, from_number, to_number, _param(params, "MessagingServiceSid")):
                    _leave_queue(conn, queue_id, "status = 'dropped'", ())
                    _append_event(
                        conn,
                        event="dropped",
                        number=from_number,
                        twilio_number=to_number,
                        body=body,
                        message_sid=sid,
                        source="opted_out",
                        state_changed=False,
                        at=now,
                        detail=json.dumps({"at_delivery": True}),
                    )
                    continue
                else:
                    session_id = _open_session(conn, from_number, to_number, received_at, engaged=True)
                conn.execute(
                    "UPDATE agent_queue SET lease_until = ?, next_attempt_at = ?, attempts = attempts + 1, "
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
        with self._write("NORMAL") as conn:
            if outcome == "delivered":
                _leave_queue(
                    conn, queue_id, "status = 'delivered', delivered_at = ?, last_error = NULL", (self.clock(),)
                )
                if reply is not None:
                    to_number, sender, text = reply
                    return self._queue(conn, to_number, sender, text, "agent", None, new_session=False)
            elif outcome == "retry":
                conn.execute(
                    "UPDATE agent_queue SET next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?",
                    (retry_at, error, queue_id),
                )
            elif outcome == "dead":
                _leave_queue(conn, queue_id, "status = 'dead', last_error = ?", (error,))
            else:
                raise ValueError(f"unknown delivery outcome {outcome!r}")
        return None

    def outbox(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Queued messages for the agent, oldest first; ``status`` pending, delivered, dead or dropped."""
        return list(
            self._db().query(
                "SELECT id, kind, message_sid, from_number, to_number, body, received_at, status, attempts, "
                "next_attempt_at, delivered_at, last_error, session_id, flags FROM agent_queue "
                "WHERE ? IS NULL OR status = ? ORDER BY id LIMIT ?",
                [status, status, limit],
            )
        )

    def retry_dead(self, ids: Sequence[int] | None = None) -> int:
        """Put dead-lettered messages (all, or these ids) back in the queue, due now, with a fresh maximum age."""
        with self._write() as conn:
            now = self.clock()
            if ids is None:
                ids = [row[0] for row in conn.execute("SELECT id FROM agent_queue WHERE status = 'dead'")]
            pairs, changed = set(), 0
            for queue_id in ids:
                row = conn.execute(
                    "UPDATE agent_queue SET status = 'pending', next_attempt_at = ?, retry_from = ?, "
                    "last_error = NULL WHERE status = 'dead' AND id = ? RETURNING from_number, to_number",
                    (now, now, queue_id),
                ).fetchone()
                if row:
                    pairs.add(row)
                    changed += 1
            for from_number, to_number in pairs:  # a replayed message may now be its pair's oldest
                conn.execute(
                    "UPDATE agent_queue SET head = 0 WHERE from_number = ? AND to_number = ? AND head = 1",
                    (from_number, to_number),
                )
                _promote_head(conn, from_number, to_number)
            return changed

    def purge_outbox(self, status: str, before: str) -> int:
        """Delete delivered, dead or dropped queue rows received before ``before``; pending ones never."""
        if status not in ("delivered", "dead", "dropped"):
            raise ValueError(f"only delivered, dead or dropped messages can be purged, not {status!r}")
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM agent_queue WHERE status = ? AND received_at < ?", (status, before)
            ).rowcount

    def agent_queue_counts(self) -> tuple[dict[tuple[str, str], int], str | None]:
        """Queue rows per (kind, status), and when the oldest pending one was queued (None if none)."""
        conn = self._db().conn
        counts = {
            (kind, status): count
            for kind, status, count in conn.execute(
                "SELECT kind, status, COUNT(*) FROM agent_queue GROUP BY kind, status"
            )
        }
        oldest = conn.execute(  # the lowest id: queued first (a replayed dead letter keeps its place)
            "SELECT received_at FROM agent_queue WHERE status = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        return counts, oldest[0] if oldest else None

    # -- sessions --------------------------------------------------------------

    def session(self, session_id: int) -> dict[str, Any] | None:
        return self._session_row(self._db().conn, session_id)

    @staticmethod
    def _session_row(conn: sqlite3.Connection, session_id: int) -> dict[str, Any] | None:
        cursor = conn.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))  # noqa: S608
        row = cursor.fetchone()
        return _session_dict(row) if row else None

    def sessions(self, state: str | None = None, number: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Sessions, newest first; optionally only one state or one user number."""
        rows = self._db().conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE (? IS NULL OR state = ?) "  # noqa: S608
            "AND (? IS NULL OR number = ?) ORDER BY id DESC LIMIT ?",
            (state, state, number, number, limit),
        )
        return [_session_dict(row) for row in rows]

    def session_state_counts(self) -> dict[str, int]:
        """How many sessions are in each state now."""
        return dict(self._db().conn.execute("SELECT state, COUNT(*) FROM sessions GROUP BY state").fetchall())

    def warn_idle_sessions(
        self, idle_seconds: float, grace_seconds: float, warning: OutboundText | None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Warn engaged sessions idle for ``idle_seconds``: state ``warned``, closing ``grace_seconds`` later.

        The warning SMS (when given) is queued from the session's Twilio
        number like any outbound message, so an opt-out suppresses it; it
        does not count as activity. A session whose user has a message still
        waiting for the agent is not idle. Returns the warned sessions.
        """
        if not self._idle(self._db().conn, idle_seconds, 1):
            return []
        warned = []
        with self._write() as conn:
            now = self.clock()
            close_at = _plus_seconds(now, grace_seconds)
            for session_id, number, twilio_number in self._idle(conn, idle_seconds, limit):
                outbound_id = None
                if warning is not None:
                    outbound_id, _ = self._insert_outbound(
                        conn, now, number, twilio_number, warning, "session_warning", None
                    )
                conn.execute(
                    "UPDATE sessions SET state = 'warned', warned_at = ?, close_at = ?, warning_outbound_id = ? "
                    "WHERE id = ?",
                    (now, close_at, outbound_id, session_id),
                )
                warned.append(self._session_row(conn, session_id))
        return warned

    def _idle(self, conn: sqlite3.Connection, idle_seconds: float, limit: int) -> list[tuple[int, str, str]]:
        cutoff = _plus_seconds(self.clock(), -idle_seconds)
        return conn.execute(_IDLE_SESSIONS, (cutoff, limit)).fetchall()

    def close_expired_sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Close warned sessions whose grace ran out with no reply; queue ``session.closed`` for the agent."""
        if not self._expired(self._db().conn, 1):
            return []
        closed = []
        with self._write() as conn:
            now = self.clock()
            for session_id, number, twilio_number in self._expired(conn, limit):
                _close_session(conn, session_id, number, twilio_number, now, "inactivity")
                closed.append(self._session_row(conn, session_id))
        return closed

    def _expired(self, conn: sqlite3.Connection, limit: int) -> list[tuple[int, str, str]]:
        return conn.execute(_EXPIRED_SESSIONS, (self.clock(), limit)).fetchall()

    def processed(self, message_sid: str) -> dict[str, Any] | None:
        rows = list(
            self._db().query(
                "SELECT message_sid, from_number, to_number, outcome, reply, processed_at "
                "FROM processed_messages WHERE message_sid = ?",
                [message_sid],
            )
        )
        return rows[0] if rows else None


# Pairs' oldest pending deliveries that are due (a partial index holds exactly these).
_DUE_HEADS = (
    "SELECT {columns} FROM agent_queue INDEXED BY agent_queue_due "
    "WHERE status = 'pending' AND head = 1 AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at LIMIT ?"
)
SESSION_COLUMNS = (
    "id, number, twilio_number, state, engaged, opened_at, last_activity_at, warned_at, close_at, closed_at, "
    "close_reason, warning_outbound_id"
)
# No message from the session's user still waiting for the agent: a waiting
# reply is activity the session has not seen yet.
_NOTHING_WAITING = (
    "NOT EXISTS (SELECT 1 FROM agent_queue AS q WHERE q.from_number = s.number AND q.to_number = s.twilio_number "
    "AND q.status = 'pending' AND q.kind = 'message')"
)
_IDLE_SESSIONS = (
    "SELECT id, number, twilio_number FROM sessions AS s WHERE state = 'active' AND engaged = 1 "  # noqa: S608
    f"AND last_activity_at <= ? AND {_NOTHING_WAITING} ORDER BY last_activity_at LIMIT ?"
)
_EXPIRED_SESSIONS = (
    "SELECT id, number, twilio_number FROM sessions AS s WHERE state = 'warned' AND close_at <= ? "  # noqa: S608
    f"AND {_NOTHING_WAITING} ORDER BY close_at LIMIT ?"
)


@dataclass(frozen=True)
class OutboundText:
    """A text ready to queue: its body and its shape on the wire."""

    body: str
    encoding: str
    segments: int


def _session_dict(row: Sequence[Any]) -> dict[str, Any]:
    session = dict(zip([c.strip() for c in SESSION_COLUMNS.split(",")], row, strict=True))
    session["engaged"] = bool(session["engaged"])
    return session


def _append_event(conn: sqlite3.Connection, **fields: Any) -> int:
    """Append one event to the hash-chained log and move the chain head.

    Runs inside the caller's write transaction, which holds the writer lock,
    so concurrent writers still produce one unbroken chain.
    """
    last_id, prev_hash = conn.execute("SELECT last_event_id, hash FROM ledger_head WHERE id = 1").fetchone()
    max_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    event = {name: fields.get(name) for name in ledger.FIELDS}
    event["id"] = max(last_id, max_id) + 1
    event["state_changed"] = int(bool(event["state_changed"]))
    event["hash"] = ledger.event_hash(event, prev_hash)
    event["prev_hash"] = prev_hash
    columns = [*ledger.FIELDS, "prev_hash", "hash"]
    conn.execute(
        f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",  # noqa: S608
        [event[name] for name in columns],
    )
    conn.execute("UPDATE ledger_head SET last_event_id = ?, hash = ? WHERE id = 1", (event["id"], event["hash"]))
    return event["id"]


def _param(params: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in params if key == name and value), None)


def _cover_clause(cover: Cover) -> tuple[str, list[str]]:
    """SQL condition on opt_outs rows matching ``cover``, with its parameters."""
    if ANY in cover.numbers:
        return "1", []
    parts = [f"twilio_number IN ({', '.join('?' * len(cover.numbers))})"]
    params = list(cover.numbers)
    if cover.services:
        parts.append(f"messaging_service_sid IN ({', '.join('?' * len(cover.services))})")
        params += cover.services
    return "(" + " OR ".join(parts) + ")", params


def _covering_opt_out(conn: sqlite3.Connection, number: str, cover: Cover) -> str | None:
    where, params = _cover_clause(cover)
    row = conn.execute(
        f"SELECT twilio_number FROM opt_outs WHERE number = ? AND {where} LIMIT 1",  # noqa: S608
        [number, *params],
    ).fetchone()
    return row[0] if row else None


def _open_session(conn: sqlite3.Connection, number: str, twilio_number: str, at: str, engaged: bool) -> int:
    """The pair's open session, resumed at ``at``, or a new one.

    ``engaged`` means the user wrote: the session is engaged, and a warned
    session is active again.
    """
    row = _open_session_id(conn, number, twilio_number)
    if row:
        if engaged:
            conn.execute(
                "UPDATE sessions SET last_activity_at = MAX(last_activity_at, ?), engaged = 1, state = 'active', "
                "warned_at = NULL, close_at = NULL WHERE id = ?",
                (at, row[0]),
            )
        else:
            conn.execute("UPDATE sessions SET last_activity_at = MAX(last_activity_at, ?) WHERE id = ?", (at, row[0]))
        return row[0]
    return conn.execute(
        "INSERT INTO sessions (number, twilio_number, state, engaged, opened_at, last_activity_at) "
        "VALUES (?, ?, 'active', ?, ?, ?)",
        (number, twilio_number, int(engaged), at, at),
    ).lastrowid


def _open_session_id(conn: sqlite3.Connection, number: str, twilio_number: str) -> tuple[int] | None:
    return conn.execute(
        "SELECT id FROM sessions WHERE number = ? AND twilio_number = ? AND state != 'closed'", (number, twilio_number)
    ).fetchone()


def _close_open_session(conn: sqlite3.Connection, number: str, twilio_number: str, at: str, reason: str) -> None:
    row = _open_session_id(conn, number, twilio_number)
    if row:
        _close_session(conn, row[0], number, twilio_number, at, reason)


def _close_session(
    conn: sqlite3.Connection, session_id: int, number: str, twilio_number: str, at: str, reason: str
) -> None:
    """Close a session and queue ``session.closed`` for the agent, behind the pair's earlier messages."""
    conn.execute(
        "UPDATE sessions SET state = 'closed', closed_at = ?, close_reason = ?, close_at = NULL WHERE id = ?",
        (at, reason, session_id),
    )
    _queue_delivery(
        conn, f"session.closed:{session_id}", "session.closed", number, twilio_number, at, session_id=session_id
    )


def _queue_delivery(
    conn: sqlite3.Connection,
    message_sid: str,
    kind: str,
    from_number: str,
    to_number: str,
    at: str,
    body: str | None = None,
    params: str = "[]",
    flags: str = "[]",
    session_id: int | None = None,
) -> None:
    """Queue one delivery for the agent, due now; it is its pair's head if nothing else of the pair waits."""
    conn.execute(
        "INSERT INTO agent_queue (message_sid, kind, from_number, to_number, body, params, received_at, flags, "
        "session_id, next_attempt_at, head) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM "
        "agent_queue WHERE from_number = ? AND to_number = ? AND status = 'pending')",
        (message_sid, kind, from_number, to_number, body, params, at, flags, session_id, at, from_number, to_number),
    )


def _leave_queue(conn: sqlite3.Connection, queue_id: int, assignments: str, values: Sequence[Any]) -> None:
    """Take a message out of the pending queue (``assignments`` sets its new status) and promote the pair's next."""
    from_number, to_number = conn.execute(
        f"UPDATE agent_queue SET {assignments}, head = 0, lease_until = NULL WHERE id = ? "  # noqa: S608
        "RETURNING from_number, to_number",
        (*values, queue_id),
    ).fetchone()
    _promote_head(conn, from_number, to_number)


def _promote_head(conn: sqlite3.Connection, from_number: str, to_number: str) -> None:
    conn.execute(
        "UPDATE agent_queue SET head = 1 WHERE id = (SELECT MIN(id) FROM agent_queue "
        "WHERE from_number = ? AND to_number = ? AND status = 'pending')",
        (from_number, to_number),
    )


def _plus_seconds(stamp: str, seconds: float) -> str:
    moment = datetime.strptime(stamp, TIMESTAMP_FORMAT) + timedelta(seconds=seconds)
    return moment.strftime(TIMESTAMP_FORMAT)


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(row["detail"]) if row.get("detail") else None
    return {**row, "state_changed": bool(row["state_changed"]), "detail": detail}


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


def _add_columns(
    table: sqlite_utils.db.Table, columns: dict[str, type], defaults: dict[str, Any] | None = None
) -> set[str]:
    """Add the ``columns`` a table lacks (NOT NULL with a default where ``defaults`` gives one); return them."""
    added = {name for name in columns if name not in table.columns_dict}
    for name in columns:  # in the given order
        if name in added:
            table.add_column(name, columns[name], not_null_default=(defaults or {}).get(name))
    return added

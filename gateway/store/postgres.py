"""The PostgreSQL backend: one database shared by several gateway instances and workers.

Everything here is specific to PostgreSQL (psycopg 3 and psycopg_pool):

- a connection pool per process (made after a fork, never shared with the
  parent), connections in autocommit mode with explicit transactions;
- isolation: READ COMMITTED, set by each write transaction whatever the
  database's or role's default (at REPEATABLE READ a transaction that waits
  for a person's lock would read from a snapshot taken before the wait, and
  miss an opt-out committed meanwhile), with transaction-scoped advisory
  locks where the records of one person must change one transaction at a
  time (their opt-outs, their queue to the agent, their sessions): ``lock_numbers``
  waits, ``try_lock_number`` passes over a person another worker holds,
  ``lock_all`` excludes them all for bulk work. Numbers are locked in a
  fixed order (sorted keys) and before the ledger head, so writers never
  deadlock. Leases on outbound sends take ``FOR UPDATE SKIP LOCKED``;
- durability: every write transaction sets ``synchronous_commit`` itself
  (``SET LOCAL``), on whatever the server's or the role's default, so a
  compliance record is on disk before the answer; only bookkeeping that
  can be repeated safely (the worker's claims and results, rate-limit
  buckets, and with ``durability=compliance`` plain queued messages)
  commits with it off;
- connection poolers: nothing depends on the server session lasting
  longer than one transaction, so the gateway also works through a pooler
  in transaction mode (PgBouncer, a platform's pooled URL), which hands
  each transaction to whichever server connection is free: no session
  settings (a read-only command's transactions are ``BEGIN READ ONLY``
  each), no session locks, and no prepared statements on a connection
  that turns out to be pooled (its server process is not the one the
  connection was opened with): there, a statement prepared on one server
  connection is missing on the next, or another client's statement of the
  same name would run instead;
- waits: no write waits for another transaction's lock longer than the
  store's timeout (``lock_timeout``: then 503, and Twilio retries), and a
  write transaction left idle half as long (its instance paused, killed
  without closing its socket, or cut off by the network half-way) is ended
  by the server (``idle_in_transaction_session_timeout``), releasing the
  sender's lock and the ledger's head that every other instance's keywords
  wait for. Each write sets both itself (``SET LOCAL``); on a direct
  connection, where the plain message's routine runs outside an explicit
  transaction, the session's ``lock_timeout`` is set when it connects;
- outages: a connection the server has dropped is noticed before use and
  replaced, and one cut off without a word fails within seconds (TCP
  keepalives and a user timeout); while the server is unreachable every
  operation raises :class:`StoreUnavailable` after at most the pool
  timeout, and the pool reconnects by itself when the server is back;
- migrations run in one transaction under a transaction-scoped advisory
  lock, so instances starting together migrate once.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import select
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg import conninfo

from .backend import Backend, Locked, R, SchemaMismatch, StoreUnavailable, Tx
from .migrations import TABLES
from .migrations import postgres as migrations


def parse_url(url: str) -> dict[str, Any]:
    """The connection parameters of a ``postgresql://`` (or ``postgres://``) URL; ValueError if it is not one.

    Query parameters (``sslmode=require``, ...) pass through to libpq. The
    error never repeats the password.
    """
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a valid PostgreSQL URL: {_scrub(_first_line(exc), url)}") from None
    # Several hosts (``db1,db2:5433``, for a failover) give a port each, or none for the default.
    for port in str(params.get("port", "")).split(","):
        if port and not port.isdigit():
            raise ValueError(f"not a valid PostgreSQL URL: the port must be a number, got {port!r}")
    return params


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def _scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) without the URL's password, whole or in part.

    libpq quotes the token it could not parse: a quoted piece of the
    password is replaced as a whole.
    """
    text = text.replace(url, redact(url))
    userinfo, at, _ = url.partition("://")[2].partition("@")
    password = userinfo.partition(":")[2] if at else ""
    if not password:
        return text
    text = text.replace(password, "***")
    return re.sub(r'"([^"]*)"', lambda m: '"***"' if m.group(1) and m.group(1) in userinfo else m.group(0), text)


def _lock_key(namespace: str, value: str) -> int:
    """A signed 64-bit advisory lock key for ``value`` in ``namespace``."""
    digest = hashlib.blake2b(f"{namespace}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_ALL = _lock_key("gateway", "all numbers")
# Errors that mean "cannot store now": the server unreachable or shutting down, a lost connection, no pool
# connection in time, a lock not granted in time (OperationalError too), a full disk, a server that only
# reads (a replica after a failover), a transaction the server ended because it sat idle too long, or a
# role that may not write (a plan's storage limit reached, a read-only role's credentials).
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg.errors.InsufficientPrivilege,
)
_BACKENDS: weakref.WeakSet[PostgresBackend] = weakref.WeakSet()
_MIGRATIONS = _lock_key("gateway", "migrations")
# How a transaction opens: a write sets its own isolation and durability (never the session's: see the
# module's docstring), and, but for ``db copy``'s load that sits idle while it reads the source, its waits.
_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on"
_READ_ONLY = "BEGIN READ ONLY"


def _durable(timeout: float) -> str:
    """The opening of a write transaction whose lock waits give up after ``timeout`` seconds and which the
    server ends if it sits idle for half that long."""
    waits, idle = _milliseconds(timeout), _half(timeout)
    return f"{_WRITE}; SET LOCAL lock_timeout = {waits}; SET LOCAL idle_in_transaction_session_timeout = {idle}"


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _half(timeout: float) -> int:
    """Half the store's timeout in milliseconds, at least a second: how long a write may sit idle, and a
    migration wait for a table (less would end healthy transactions on a slow network)."""
    return _milliseconds(max(1.0, timeout / 2))


log = logging.getLogger("gateway.store")


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The record areas' ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx(Tx):
    """One pooled connection, in a transaction of :meth:`PostgresBackend.write` or outside one.

    Round trips cost more than anything else a short transaction does, so a
    write transaction's ``BEGIN`` and the statements given to :meth:`defer`
    wait on the client and go with the next statement that returns something,
    or with the ``COMMIT``, as one query string of several statements (each
    with its own snapshot, in order). Their parameters are bound by psycopg's
    client-side binding (``ClientCursor``: the driver quotes each value for
    this connection), never by formatting text here.
    """

    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, conn: psycopg.Connection, begin: str | None = None):
        super().__init__()
        self.conn = conn
        self._pending: list[str] = [begin] if begin else []
        self._unsent_begin = begin is not None
        self._binder: psycopg.ClientCursor | None = None
        self.began = False  # whether BEGIN has reached the server

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        if not self._pending:
            return self.conn.execute(_placeholders(sql), params)
        cursor = self._send(self._bind(sql, params))
        while cursor.nextset():  # the result of the last statement, the caller's
            pass
        return cursor

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._pending.append(self._bind(sql, params))

    def results(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple]]:
        """All of them, with whatever waits, in one round trip."""
        if not statements:
            return []
        cursor = self._send(*(self._bind(sql, params) for sql, params in statements))
        found = [cursor.fetchall() if cursor.description is not None else []]
        while cursor.nextset():
            found.append(cursor.fetchall() if cursor.description is not None else [])
        return found[-len(statements) :]

    def commit_with(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """``sql``'s rows, sent with whatever waits and the COMMIT in one round trip: the transaction's end."""
        rows = self.results([(sql, params), ("COMMIT", ())])[0]
        self.began = False
        return rows

    def flush(self) -> None:
        """Send what waits on the client now (before work that needs the transaction begun on the server)."""
        if self._pending:
            self._send()

    def _bind(self, sql: str, params: Sequence[Any]) -> str:
        if self._binder is None:
            self._binder = psycopg.ClientCursor(self.conn)
        return self._binder.mogrify(_placeholders(sql), params)

    def _send(self, *last: str) -> psycopg.Cursor:
        statements, self._pending = [*self._pending, *last], []
        self.began, self._unsent_begin = self.began or self._unsent_begin, False
        # One simple query; not prepared: the values are in its text, so it never repeats.
        return self.conn.execute("; ".join(statements), prepare=False)

    def commit(self) -> None:
        """COMMIT, with whatever still waits, in one round trip (nothing at all if nothing was sent or asked)."""
        if self._unsent_begin and len(self._pending) == 1:
            self._pending, self._unsent_begin = [], False
        elif self._pending or self.began:
            self._send("COMMIT")

    def rollback(self) -> None:
        """Forget what waits; end the transaction on the server if it began there (a dead connection is the
        pool's to replace)."""
        self._pending, self._unsent_begin = [], False
        if self.began and not self.conn.closed:
            try:
                self.conn.execute("ROLLBACK")
            except _UNAVAILABLE:
                pass

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[tuple]:
        """A server-side cursor (inside the caller's transaction): memory stays bounded on any table size."""
        self.flush()
        with self.conn.cursor(name="gateway_stream") as cursor:
            cursor.itersize = batch
            cursor.execute(_placeholders(sql), params)
            yield from cursor

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """COPY: the fast way to load many rows."""
        self.flush()
        with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def lock_numbers(self, *numbers: str) -> None:
        keys = sorted({_lock_key("number", number) for number in numbers if number})
        if keys:
            locks = ", ".join("pg_advisory_xact_lock(?)" for _ in keys)
            self.defer(f"SELECT pg_advisory_xact_lock_shared(?), {locks}", [_ALL, *keys])

    def try_lock_number(self, number: str) -> bool:
        # CASE fixes the order: the number is only tried once the shared lock is held.
        return self.scalar(
            "SELECT CASE WHEN pg_try_advisory_xact_lock_shared(?) THEN pg_try_advisory_xact_lock(?) ELSE false END",
            (_ALL, _lock_key("number", number)),
        )

    def lock_all(self) -> None:
        self.defer("SELECT pg_advisory_xact_lock(?)", (_ALL,))

    def lock_name(self, namespace: str, name: str) -> None:
        self.defer("SELECT pg_advisory_xact_lock(?)", (_lock_key(namespace, name),))


@contextmanager
def _transaction_on(conn: psycopg.Connection, begin: str) -> Iterator[PostgresTx]:
    """A transaction on ``conn`` that opens with ``begin``: committed when the block ends, else rolled back."""
    tx = PostgresTx(conn, begin=begin)
    try:
        yield tx
        tx.commit()
    except BaseException:
        tx.rollback()
        raise


def _check(conn: psycopg.Connection) -> None:
    """Before a pooled connection is used: if the server sent something while it sat idle
    (a shutdown notice), make one round trip, which fails if the connection is gone."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.execute("")


class PostgresBackend(Backend):
    """One PostgreSQL database; a connection pool per process."""

    kind = "postgresql"

    def __init__(self, url: str, pool_size: int = 4, timeout: float = 5.0, readonly: bool = False):
        self.url = url
        self.params = parse_url(url)
        self.pool_size = pool_size
        self.timeout = timeout
        self.readonly = readonly
        self._begin = _READ_ONLY if readonly else _durable(timeout)
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid: int | None = None
        self._pool_lock = threading.Lock()
        self._noticed = threading.Lock()
        # Whether a pooler stands between this process and the server: the server process that answers is
        # not the one a connection's start-up named (a pooler gives its clients keys of its own).
        self.pooled = False
        self.read_committed = True  # whether the database's (or role's) default isolation is READ COMMITTED
        self.connect_error: str | None = None  # why the pool's last attempt to connect failed, if it did
        _BACKENDS.add(self)

    def describe(self) -> str:
        hosts = (self.params.get("host") or "").split(",")
        ports = (self.params.get("port") or "").split(",")
        ports = ports * len(hosts) if len(ports) == 1 else ports  # one port for every host, as libpq reads it
        where = " or ".join(
            (host or "the local socket") + (f":{port}" if port else "")
            for host, port in itertools.zip_longest(hosts, ports, fillvalue="")
        )
        through = " through a connection pooler" if self.pooled else ""
        return f"the PostgreSQL database {self.params.get('dbname') or '(default)'} on {where}{through}"

    @property
    def latest_version(self) -> int:
        return migrations.VERSION

    # -- connections -------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        """Connection settings the URL does not give itself. TCP keepalives and a user timeout, so that a
        server cut off without a word (a partition, a machine gone: no reset arrives) fails the request that
        waits on it within seconds rather than when TCP gives up, minutes or hours later (libpq ignores them
        on a Unix socket)."""
        defaults: dict[str, Any] = {
            "connect_timeout": max(2, round(self.timeout)),
            "application_name": "sms-gateway",
            "keepalives": 1,
            "keepalives_idle": max(1, round(self.timeout)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": _milliseconds(max(2.0, 2 * self.timeout)),
        }
        return {"autocommit": True, **{key: value for key, value in defaults.items() if key not in self.params}}

    def _configure(self, conn: psycopg.Connection) -> None:
        """A new connection: if a pooler stands between it and the server, it prepares no statement; and
        whether a statement of its own runs at READ COMMITTED (see :meth:`run_locked`). A direct connection's
        session waits for a lock at most the store's timeout (the plain message's routine runs outside an
        explicit transaction there); a pooled one's session is not the gateway's to set."""
        pooled, self.read_committed, _ = conn.execute(
            "SELECT pg_backend_pid() <> %(pid)s, "
            "current_setting('default_transaction_isolation') = 'read committed', "
            "CASE WHEN pg_backend_pid() = %(pid)s THEN set_config('lock_timeout', %(waits)s, false) END",
            {"pid": conn.info.backend_pid, "waits": str(_milliseconds(self.timeout))},
            prepare=False,
        ).fetchone()
        if pooled:
            conn.prepare_threshold = None
            with self._noticed:  # the pool's threads configure its connections, maybe at once
                first, self.pooled = not self.pooled, True
            if first:
                log.info("%s: no prepared statements", self.describe())

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        """This process's pool; a forked worker makes its own."""
        if self._pid != os.getpid():
            with self._pool_lock:
                if self._pid != os.getpid():
                    self._pool = psycopg_pool.ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.pool_size,
                        timeout=self.timeout,
                        kwargs=self._connect_kwargs(),
                        configure=self._configure,
                        check=_check,
                        connection_class=self._connection_class(),
                        # Give up a reconnection round soon, so the next request starts a fresh one
                        # (with short delays) instead of waiting out a long backoff after an outage.
                        reconnect_timeout=max(10.0, self.timeout * 2),
                        name="gateway",
                        open=True,
                    )
                    self._pid = os.getpid()
        assert self._pool is not None
        return self._pool

    def _connection_class(self) -> type[psycopg.Connection]:
        """psycopg's connection, remembering why the pool's last attempt to connect failed: the pool only
        logs it, and says no more than that it got no connection in time."""
        backend = self

        class Connection(psycopg.Connection):
            @classmethod
            def connect(cls, *args: Any, **kwargs: Any) -> Connection:
                try:
                    conn = super().connect(*args, **kwargs)
                except psycopg.Error as exc:
                    backend.connect_error = _connect_failure(exc, backend.url)
                    raise
                backend.connect_error = None
                return conn

        return Connection

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool, self._pid = None, None

    def unsafe_settings(self) -> dict[str, str]:
        """``fsync`` off (a commit is never forced to disk, whatever ``synchronous_commit`` says) and
        ``full_page_writes`` off (a page half-written in a crash cannot be repaired from the WAL)."""
        with self.read() as tx:
            rows = tx.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'full_page_writes') AND setting = 'off'"
            ).fetchall()
        return dict(rows)

    def server_time(self) -> datetime:
        with self.read() as tx:
            return tx.scalar("SELECT clock_timestamp()")

    def pool_stats(self) -> dict[str, int] | None:
        if self._pool is None or self._pid != os.getpid():
            return {"in_use": 0, "idle": 0, "waiting": 0}
        stats = self._pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return {"in_use": size - idle, "idle": idle, "waiting": stats.get("requests_waiting", 0)}

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self._get_pool().connection() as conn:
                try:
                    yield conn
                except psycopg.errors.ReadOnlySqlTransaction:
                    if not self.readonly:  # not our own BEGIN READ ONLY: the server only reads now
                        self._forget(conn)
                    raise
        except _UNAVAILABLE as exc:
            cause = self.connect_error if isinstance(exc, psycopg_pool.PoolTimeout) else None
            raise StoreUnavailable(self.describe(), _scrub(_first_line(exc), self.url), cause) from exc

    def _forget(self, conn: psycopg.Connection) -> None:
        """Close a connection to a server that refused a write as read-only, so the pool opens a new one.

        After a failover the old primary may live on as a standby, and a
        connection opened before it keeps reaching it however long the new
        primary has served: until the pool's connection lifetime (an hour)
        every write on it would answer 503. A new connection follows the
        host name, or ``target_session_attrs=read-write`` with several hosts.
        """
        log.warning("%s refused a write as read-only (a standby?): reconnecting", self.describe())
        conn.close()

    # -- transactions ------------------------------------------------------

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Tx]:
        with self._transaction(self._begin) as tx:
            if not durable:
                tx.defer("SET LOCAL synchronous_commit = off")
            yield tx

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Single statements in autocommit; for a read-only store, a ``BEGIN READ ONLY`` transaction (the
        server refuses a write, without a session setting that a pooler would hand to other clients)."""
        if self.readonly:
            with self._transaction(_READ_ONLY) as tx:
                yield tx
            return
        with self._connection() as conn:
            yield PostgresTx(conn)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PostgresTx]:
        with self._connection() as conn, _transaction_on(conn, begin) as tx:
            yield tx

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresTx(conn)

    def grouped(self, work: Callable[[Tx], R], sync_first: bool, needs_sync: Callable[[R], bool]) -> R:
        """One transaction per call (PostgreSQL groups concurrent commits itself); fsynced where asked."""
        with self.write(durable=True) as tx:
            result = work(tx)
            if not needs_sync(result):
                tx.defer("SET LOCAL synchronous_commit = off")
            return result

    def run_locked(self, number: str, locked: Locked, durable: bool) -> int | None:
        """One round trip: the schema's routine for the work, which takes the lock and does it (without a
        routine: a transaction of single statements).

        On a direct connection at READ COMMITTED by default, one prepared call in a transaction of its own
        (inside the routine each statement then reads what was committed before the lock was granted);
        otherwise the call inside an explicit READ COMMITTED transaction, sent with its COMMIT.
        """
        if locked.routine is None or self.readonly:
            return super().run_locked(number, locked, durable)
        arguments = (_ALL, _lock_key("number", number), durable, *locked.arguments)
        call = f"SELECT {locked.routine}({', '.join('?' * len(arguments))})"
        with self._connection() as conn:
            if self.read_committed and not self.pooled:
                return conn.execute(_placeholders(call), arguments, prepare=True).fetchone()[0]
            with _transaction_on(conn, self._begin) as tx:
                return tx.commit_with(call, arguments)[0][0]

    # -- schema ------------------------------------------------------------

    def migrate(self) -> int:
        """Create or migrate the schema on a connection of its own, one instance at a time."""
        try:
            connect = psycopg.connect(self.url, **self._connect_kwargs(), prepare_threshold=None)
            with connect as conn, conn.transaction():
                # All in one transaction, its lock too: through a pooler, the next one may be another session.
                # READ COMMITTED: what another instance migrated while this one waited for the lock is seen.
                conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                conn.execute("SET LOCAL synchronous_commit = on")
                # An instance frozen half-way would hold every other one's start-up (and, by the tables'
                # locks, every write): the server ends the migration if it sits idle. Waiting for the lock
                # has no limit: another instance's migration may take long.
                conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {_half(self.timeout)}")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATIONS,))
                version = migrations.current_version(conn)
                if version > migrations.VERSION:
                    raise SchemaMismatch(version, migrations.VERSION, self.describe())
                if version < migrations.VERSION:
                    self._migrate_soon(conn, version)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(self.describe(), _scrub(_first_line(exc), self.url)) from exc
        return migrations.VERSION

    def _migrate_soon(self, conn: psycopg.Connection, version: int) -> None:
        """Migrate, giving up soon (and saying why) when a long transaction holds a table: while the
        migration waits for a table's lock, every later reader and writer of the table queues behind it."""
        conn.execute(f"SET LOCAL lock_timeout = {_half(self.timeout)}")
        try:
            migrations.migrate(conn, version)
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreUnavailable(
                self.describe(),
                f"the migration from schema version {version} to {migrations.VERSION} could not lock a table "
                f"within {_half(self.timeout) / 1000:g} s: a long transaction holds it (see pg_stat_activity); "
                "nothing was changed: run it again when that transaction has ended",
            ) from exc

    def schema_version(self) -> int:
        with self._connection() as conn:
            return migrations.current_version(conn)

    def tables(self) -> list[str]:
        return list(TABLES)

    @contextmanager
    def bulk_load(self) -> Iterator[Tx]:
        """Without the idle limit of other writes: between batches the load waits for the source's rows."""
        with self._transaction(_WRITE) as tx:
            yield tx

    def after_load(self, tx: Tx) -> None:
        for table in migrations.IDENTITY_TABLES:
            tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) "  # noqa: S608
                f"FROM {table}"
            )


def close_all_pools() -> None:
    """Close every pool this process opened (an orderly exit; the tests, between tests)."""
    for backend in list(_BACKENDS):
        backend.close()


_FAILED_AT = re.compile(r'^connection failed: connection to server at "([^"]*)", port (\d+) failed: ')


def _connect_failure(exc: BaseException, url: str) -> str:
    """libpq's reason for a failed connection, short: ``host:port: reason`` (``FATAL:  database "x" does not
    exist``), without the password."""
    return " ".join(_scrub(_FAILED_AT.sub(r"\1:\2: ", _first_line(exc)), url).split())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

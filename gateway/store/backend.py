"""The seam between the record areas and a database: transactions, reads, locks, errors.

The record areas (``inbound.py``, ``optouts.py``, ...) write portable SQL
with ``?`` placeholders and run it through a :class:`Tx`; a backend
(``sqlite.py``, ``postgres.py``) supplies the transactions, the locking and
the durability. Locks a transaction may take, always in this order so that
concurrent writers on several machines never deadlock:

1. ``lock_all`` (bulk work) or ``lock_numbers`` / ``try_lock_number``: one
   person's records (their opt-outs, queue, sessions), by their number;
2. row locks taken by the statements themselves;
3. the ledger's head row (``for_update`` on ``ledger_head``), last, held to
   the commit: this is what keeps the event log one hash chain.

On SQLite every write transaction holds the one writer lock, so the lock
calls do nothing there.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

R = TypeVar("R")


class StoreError(Exception):
    """A database problem to report in one line (never with a secret)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written just now: retry later (HTTP 503).

    ``reason`` is the driver's short reason without where the database is
    (safe to show a load balancer); the message adds where, and ``cause``:
    what the last attempt to connect said, when no connection could be had
    (a database or role that does not exist, a refused password, SSL).
    """

    def __init__(self, where: str, reason: str, cause: str | None = None):
        super().__init__(f"{where}: {reason}" + (f" (the last attempt to connect: {cause})" if cause else ""))
        self.reason = reason


class SchemaMismatch(StoreError):
    """The database's schema is not the one this gateway reads and writes."""

    def __init__(self, found: int, expected: int, where: str):
        self.found, self.expected = found, expected
        if found == 0:
            text = f"{where} holds no gateway schema yet: run `gateway init-db` first"
        elif found < expected:
            text = (
                f"{where} is at schema version {found}, older than this gateway's {expected}: "
                "run `gateway init-db` to migrate it"
            )
        else:
            text = (
                f"{where} is at schema version {found}, newer than this gateway's {expected}: "
                "upgrade the gateway (or use the version that migrated it)"
            )
        super().__init__(text)


@dataclass(frozen=True)
class Locked:
    """Work that inserts a row holding a person's lock (:meth:`Backend.run_locked`), returning its id.

    ``work`` is the portable form, run in a transaction that holds the lock.
    ``routine`` optionally names a function of the schema that takes the lock
    and does the same in one call, given the lock's keys, whether to be
    durable, and ``arguments``: a backend that has such functions calls it.
    """

    work: Callable[[Tx], int | None]
    routine: str | None = None
    arguments: tuple = ()


class Tx(abc.ABC):
    """One connection inside a transaction (or a plain read), with portable helpers.

    ``memo`` holds what a record area learned in this transaction and may
    reuse later in it (the ledger's head, which the transaction holds locked
    and has moved): a Tx never outlives its transaction, nor a savepoint
    that could be rolled back without it.
    """

    for_update = ""  # appended to a SELECT that must lock the rows it reads
    skip_locked = ""  # appended to a SELECT that leases rows: lock them, passing over rows others hold

    def __init__(self) -> None:
        self.memo: dict[str, Any] = {}

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); return a DB-API cursor."""

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose result nobody reads, now or with the transaction's next statement (a backend
        may send both in one round trip); its error, if any, comes from that statement or the commit."""
        self.execute(sql, params)

    def results(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple]]:
        """Run ``statements`` in order; the rows of each (none for one that returns none). A backend may send
        them in one round trip: for statements whose parameters do not depend on each other's results."""
        found = []
        for sql, params in statements:
            cursor = self.execute(sql, params)
            found.append(cursor.fetchall() if cursor.description is not None else [])
        return found

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def inserted_id(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run an ``INSERT`` of one row (``ON CONFLICT DO NOTHING``); the new row's ``id``, None if it made none."""
        return self.scalar(sql + " RETURNING id", params)

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[tuple]:
        """Rows one at a time, fetched ``batch`` at a time, in bounded memory."""
        cursor = self.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield from rows

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows as they are (copying between databases)."""
        marks = ", ".join("?" * len(columns))
        for row in rows:
            self.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", row)  # noqa: S608

    def index_hint(self, index: str) -> str:
        """Text after a table name that tells the planner which index to use, where that is needed."""
        return ""

    @abc.abstractmethod
    def lock_numbers(self, *numbers: str) -> None:
        """Serialise this transaction with every other one touching these people's records."""

    @abc.abstractmethod
    def try_lock_number(self, number: str) -> bool:
        """Like :meth:`lock_numbers` for one number, but give up at once if another transaction holds it."""

    @abc.abstractmethod
    def lock_all(self) -> None:
        """Exclude every transaction that locks numbers (bulk work such as an import)."""

    @abc.abstractmethod
    def lock_name(self, namespace: str, name: str) -> None:
        """Serialise on an arbitrary name (a rate-limit bucket)."""


class Backend(abc.ABC):
    """A database the store runs on."""

    kind: str  # "sqlite" or "postgresql"

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the records are, for messages: never a password."""

    @abc.abstractmethod
    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Tx]:
        """One write transaction; committed (and, when ``durable``, on disk) when the block ends."""

    @abc.abstractmethod
    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A connection for reads outside a transaction (each statement sees the latest commits)."""

    @abc.abstractmethod
    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read-only transaction: every statement sees the same moment."""

    def grouped(self, work: Callable[[Tx], R], sync_first: bool, needs_sync: Callable[[R], bool]) -> R:
        """Run ``work`` in a write transaction that may be shared with concurrent callers.

        ``sync_first`` says the work is a compliance record that readers must
        never see before it is on disk; ``needs_sync(result)`` says whether
        the result must be on disk before this returns. The default is one
        transaction per call.
        """
        with self.write(durable=True) as tx:
            return work(tx)

    def run_locked(self, number: str, locked: Locked, durable: bool) -> int | None:
        """Run ``locked`` in a transaction of its own, holding ``number``'s lock; the id of the row it
        inserted (None: none).

        The inbound path's common case, a plain message, is such work; a
        backend may run it in fewer round trips than a transaction of single
        statements takes.
        """

        def work(tx: Tx) -> int | None:
            tx.lock_numbers(number)
            return locked.work(tx)

        return self.grouped(work, sync_first=False, needs_sync=lambda new_id: durable and new_id is not None)

    @abc.abstractmethod
    def migrate(self) -> int:
        """Create or migrate the schema; safe when several processes start at once. Returns the version."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version the database is at (0: none), without writing anything."""

    @property
    @abc.abstractmethod
    def latest_version(self) -> int:
        """The schema version this code reads and writes."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release this process's connections (a forked child opens its own)."""

    def pool_stats(self) -> dict[str, int] | None:
        """Connections in use, idle and requests waiting, where there is a pool."""
        return None

    def network_filesystem(self) -> str | None:
        """The type of network filesystem the database file is on, if it is one (a database server: None)."""
        return None

    def unsafe_settings(self) -> dict[str, str]:
        """The database server's settings that lose acknowledged commits in a crash, with their values (none:
        the gateway sets everything that matters itself, as on SQLite)."""
        return {}

    def server_time(self) -> datetime | None:
        """The database server's clock now (None: the database keeps no clock apart from this machine's)."""
        return None

    def storage_problem(self) -> str | None:
        """Why the storage under the database is about to refuse writes (a nearly full disk), if it is."""
        return None

    @abc.abstractmethod
    def tables(self) -> list[str]:
        """Every table the gateway keeps, in an order that copying can follow."""

    @contextmanager
    def bulk_load(self) -> Iterator[Tx]:
        """A transaction for loading copied rows as they are (``gateway db copy``)."""
        with self.write(durable=True) as tx:
            yield tx

    @abc.abstractmethod
    def after_load(self, tx: Tx) -> None:
        """Bring id generators past the copied rows."""

"""The storage layer: every record the gateway keeps, behind named operations.

Callers (the app, the worker, the CLI) hold a :class:`Store` and call what
they need (``process_inbound``, ``record_manual``, ``claim_deliveries``,
...); they never see a connection, and nothing outside this package knows
which database is in use. Inside:

- one module per area of records, each holding that area's operations and
  SQL: ``inbound`` (MessageSid claims), ``ledger`` (the hash-chained event
  log), ``optouts``, ``candidates`` (revocation candidates), ``queue`` (the
  agent queue), ``sessions``, ``outbound`` (messages and delivery status),
  ``consents`` (consent records), ``consentsync`` (their outbox to Twilio),
  ``keys`` (API keys and rate-limit buckets), and ``copy`` (``gateway db copy``);
- ``backend`` (the seam) and one module per database: ``sqlite`` (the
  zero-configuration default) and ``postgres`` (several instances, managed
  databases);
- ``migrations``: the schema, versioned, per backend.

``DATABASE_URL`` alone picks the backend: ``sqlite:///path.db`` or
``postgresql://user:pass@host:5432/db`` (also ``postgres://``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.accounts import Accounts
from ..core.consent import Clarification, Rules
from ..core.scope import Scope
from ..core.timestamps import parse, utcnow
from .backend import Backend, SchemaMismatch, StoreError, StoreUnavailable
from .candidates import CandidateRecords
from .consents import CONSENT_COLUMNS, ConsentRecords
from .consentsync import SYNC_COLUMNS, ConsentSyncRecords
from .inbound import InboundRecords
from .keys import KeyRecords
from .ledger import EVENT_COLUMNS, EXPORT_COLUMNS, LedgerRecords
from .migrations import TABLES
from .optouts import LIST_KEY, OPT_OUT_COLUMNS, OptOutRecords
from .outbound import OutboundRecords
from .queue import QueueRecords
from .sessions import SessionRecords

__all__ = [
    "DURABILITY",
    "CONSENT_COLUMNS",
    "EVENT_COLUMNS",
    "SYNC_COLUMNS",
    "EXPORT_COLUMNS",
    "LIST_KEY",
    "OPT_OUT_COLUMNS",
    "SchemaMismatch",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "check_url",
    "default_url",
    "from_settings",
    "local_file",
]

DURABILITY = ("full", "compliance")
_POSTGRES = ("postgresql://", "postgres://")
_EXPECTED = "expected sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"


def default_url(instance_path: str | os.PathLike[str]) -> str:
    """The zero-configuration database: ``gateway.db`` in the instance folder."""
    return "sqlite:///" + str(Path(instance_path).resolve() / "gateway.db")


def local_file(url: str) -> Path | None:
    """The file on this machine's disk that holds every record ``url`` names, if one does (SQLite)."""
    if url.startswith("sqlite:///"):
        from .sqlite import database_path

        return database_path(url)
    return None


def check_url(url: str) -> None:
    """Raise ValueError saying what is wrong with a ``DATABASE_URL``, if anything."""
    if url.startswith("sqlite:///"):
        from .sqlite import database_path

        database_path(url)
    elif url.startswith(_POSTGRES):
        from .postgres import parse_url

        parse_url(url)
    elif url.lower().startswith("sqlite:"):  # sqlite://gateway.db, sqlite:/x.db: the slashes, not the scheme
        raise ValueError(
            f"{url!r} is not an SQLite URL the gateway can read: write three slashes before a relative path "
            "(sqlite:///gateway.db) and four before an absolute one (sqlite:////var/lib/gateway/gateway.db)"
        )
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ValueError(f"unsupported database URL {scheme!r}: {_EXPECTED}")


def open_backend(
    url: str,
    busy_timeout_ms: int = 10000,
    pool_size: int = 4,
    pool_timeout: float = 5.0,
    readonly: bool = False,
) -> Backend:
    """The backend ``url`` names (see :func:`check_url`)."""
    check_url(url)
    if url.startswith(_POSTGRES):
        from .postgres import PostgresBackend

        return PostgresBackend(url, pool_size=pool_size, timeout=pool_timeout, readonly=readonly)
    from .sqlite import SQLiteBackend

    return SQLiteBackend(url, busy_timeout_ms, readonly=readonly)


class Store(
    InboundRecords,
    LedgerRecords,
    OptOutRecords,
    CandidateRecords,
    QueueRecords,
    SessionRecords,
    OutboundRecords,
    KeyRecords,
    ConsentRecords,
    ConsentSyncRecords,
):
    """The gateway's records in one database; safe to share between threads, reopened after a fork."""

    def __init__(
        self,
        url: str,
        busy_timeout_ms: int = 10000,
        clock: Callable[[], str] = utcnow,
        durability: str = "full",
        scope: Scope | None = None,
        accounts: Accounts | None = None,
        consent_rules: Rules | None = None,
        consent_sync: bool = False,
        clarification: Clarification | None = None,
        *,
        pool_size: int = 4,
        pool_timeout: float = 5.0,
        readonly: bool = False,
    ):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}")
        self.backend = open_backend(url, busy_timeout_ms, pool_size, pool_timeout, readonly)
        self.durability = durability
        self.clock = clock
        self.scope = scope or Scope()
        self.accounts = accounts or Accounts.single(None, (), ())
        self.consent_rules = consent_rules or Rules()
        self.consent_sync = consent_sync
        self.clarification = clarification

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``: for reports, never for decisions outside this package."""
        return self.backend.kind

    def describe(self) -> str:
        """Where the records are, for messages (never a password)."""
        return self.backend.describe()

    def init_schema(self) -> int:
        """Create or migrate the schema; safe to run from many processes and machines at once."""
        return self.backend.migrate()

    def check_schema(self) -> int:
        """Raise :class:`SchemaMismatch` unless the database is at this gateway's schema version; writes nothing."""
        found, expected = self.backend.schema_version(), self.backend.latest_version
        if found != expected:
            raise SchemaMismatch(found, expected, self.describe())
        return found

    def ping(self) -> None:
        """Raise if the database cannot answer a query on its schema."""
        with self.backend.read() as tx:
            tx.execute("SELECT 1 FROM opt_outs LIMIT 1").fetchall()

    def storage_problem(self) -> str | None:
        """Why the storage under the database is about to refuse writes (SQLite: a nearly full disk), if it is."""
        return self.backend.storage_problem()

    def probe_write(self) -> None:
        """Write one small row (not fsynced): raises :class:`StoreUnavailable` if the database cannot store now."""
        with self.backend.write(durable=False) as tx:
            tx.execute(
                "INSERT INTO health_probe (id, probed_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
                (self.clock(),),
            )

    def table_counts(self) -> dict[str, int]:
        """Rows in every table the gateway keeps."""
        with self.backend.read() as tx:
            return {table: tx.scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}  # noqa: S608

    def pool_stats(self) -> dict[str, int] | None:
        return self.backend.pool_stats()

    def network_filesystem(self) -> str | None:
        """The type of network filesystem (NFS, SMB, ...) the database file is on, if it is on one."""
        return self.backend.network_filesystem()

    def unsafe_settings(self) -> dict[str, str]:
        """The database server's settings that would lose acknowledged records in a crash, with their values."""
        return self.backend.unsafe_settings()

    def clock_offset(self) -> float | None:
        """Seconds the database server's clock is ahead of the clock this store stamps records with (behind:
        negative), to within half a round trip; None where the database has no clock of its own (SQLite).

        Instances on several machines stamp records and compare leases with their own clocks, so those
        must agree: the database server's is the one they share."""
        before = parse(self.clock())
        server = self.backend.server_time()
        after = parse(self.clock())
        return None if server is None else (server - (before + (after - before) / 2)).total_seconds()

    def close(self) -> None:
        """Release this process's connections; the next call opens new ones."""
        self.backend.close()


def from_settings(settings: Mapping[str, Any], readonly: bool = False) -> Store:
    """A store for validated settings (see :mod:`gateway.config`)."""
    return Store(
        settings["DATABASE_URL"],
        settings["BUSY_TIMEOUT_MS"],
        durability=settings["DURABILITY"],
        scope=settings["SCOPE"],
        accounts=settings["ACCOUNTS"],
        consent_rules=settings["CONSENT"],
        consent_sync=settings.get("TWILIO_CONSENT_SYNC", False),
        clarification=settings.get("CLARIFICATION"),
        pool_size=settings.get("DATABASE_POOL_SIZE", 4),
        pool_timeout=settings.get("DATABASE_POOL_TIMEOUT_SECONDS", 5.0),
        readonly=readonly,
    )

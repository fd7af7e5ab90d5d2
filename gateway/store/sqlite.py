"""The SQLite backend: one file on one machine, the zero-configuration default.

Everything here is specific to SQLite:

- a connection per thread and process (a forked worker never reuses its
  parent's), ``foreign_keys`` on, the database in WAL mode;
- one writer at a time: writers take turns on a ``flock`` of a lock file
  beside the database, then ``BEGIN IMMEDIATE``, which still guards against
  writers outside the gateway. The two waits together end after the busy
  timeout: a writer that found the lock taken tries again after sleeps that
  grow from 50 µs to 1 ms (SQLite's own busy handler sleeps up to 100 ms),
  and gives up with :class:`~gateway.store.backend.StoreUnavailable` (a 503)
  rather than wait without limit behind a process stopped half-way through a
  write. So the lock calls of :class:`~gateway.store.backend.Tx` have nothing
  to do here;
- durability: a durable transaction commits with ``synchronous=FULL``; a
  group of inbound messages that holds no opt-in commits with
  ``synchronous=NORMAL`` and the WAL is then fsynced outside the writer
  lock, which is what FULL does in WAL mode, but lets the fsyncs of
  concurrent workers overlap instead of queueing; the WAL is checkpointed
  every 4,000 pages;
- group commit: concurrent inbound messages in one process share one
  transaction, each in its own savepoint so one failure cannot spoil the
  others, and each answered by its own durability rule (a plain message,
  a STOP and a retry may share a batch, whoever leads it).
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from .backend import Backend, R, SchemaMismatch, StoreUnavailable, Tx
from .migrations import TABLES
from .migrations import sqlite as migrations

PREFIX = "sqlite:///"
# A message writes four B-tree pages (the row, its MessageSid, two queue indexes): checkpointing
# the WAL every 4,000 pages instead of SQLite's 1,000 syncs the database file a quarter as often.
WAL_CHECKPOINT_PAGES = 4000
# Below this, /healthz reports that the instance cannot store: a message needs tens of KiB of WAL.
MIN_FREE_BYTES = 1024 * 1024
# After a try that finds the writer lock taken: the first sleep before the next try, and the longest. A
# writer holds it for a fraction of a millisecond (its fsync comes after), so most waits end in a try or two.
LOCK_POLL_FIRST, LOCK_POLL_MOST = 0.00005, 0.001
# Errors that mean "cannot store now" (full disk, I/O, locked, unreadable), not a bug.
_UNAVAILABLE = {
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_PROTOCOL,
}


# Filesystems that other machines may open too. SQLite's locking and its WAL's shared memory need every process
# on one machine, and the file server decides what an fsync means: no place for the only copy of opt-outs.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.glusterfs",
    }
)


def filesystem_of(path: Path, mountinfo: str) -> str | None:
    """The type of the filesystem holding ``path`` (absolute, links resolved): the mount with the longest mount
    point above it, in the text of ``/proc/self/mountinfo``. Pure."""
    best, found = -1, None
    target = str(path)
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            point, fstype = _unescaped(fields[4]), fields[fields.index("-", 6) + 1]
        except (IndexError, ValueError):
            continue
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > best:
            best, found = len(point), fstype
    return found


def _unescaped(field: str) -> str:
    """A mountinfo field with its octal escapes (``\\040`` for a space) undone."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def database_path(url: str) -> Path:
    """Parse an SQLAlchemy-style ``sqlite:///`` URL into a file path."""
    if not url.startswith(PREFIX):
        raise ValueError(f"not an SQLite URL: {url.split(':', 1)[0]!r}")
    path = url[len(PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError("an in-memory database would lose every record: give a file path")
    return Path(path).resolve()


class SQLiteTx(Tx):
    """A connection of this thread. Its write transactions hold the one writer lock, so the finer locks are no-ops."""

    def __init__(self, conn: sqlite3.Connection):
        super().__init__()
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def index_hint(self, index: str) -> str:
        return f"INDEXED BY {index}"

    def inserted_id(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        # The row's id without RETURNING, which SQLite serves through a temporary table (it measures slower).
        cursor = self.conn.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(columns))
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608

    def lock_numbers(self, *numbers: str) -> None:
        pass

    def try_lock_number(self, number: str) -> bool:
        return True

    def lock_all(self) -> None:
        pass

    def lock_name(self, namespace: str, name: str) -> None:
        pass


@dataclass
class _Job:
    """One unit of work waiting for a group commit, with its own durability rule: the batch it joins may
    hold any other kind of work, whose results the rule could not read."""

    work: Callable[[Tx], Any]
    sync_first: bool
    needs_sync: Callable[[Any], bool]
    arrived: float  # time.monotonic(): its wait for the writer lock counts from here, whoever leads
    result: Any = None
    error: BaseException | None = None
    done: bool = False

    def wants_sync(self) -> bool:
        """Whether this job's committed result must reach the disk before it is answered. A rule that fails
        answers yes (the safe side) and fails this job alone: its commit stands, as do the others'."""
        if self.error is not None:
            return False  # rolled back to its savepoint: nothing of it to sync
        try:
            return bool(self.needs_sync(self.result))
        except Exception as exc:
            self.error = exc
            return True


class SQLiteBackend(Backend):
    """One database file; connections are per thread and process."""

    kind = "sqlite"

    def __init__(self, url: str, busy_timeout_ms: int = 10000, readonly: bool = False):
        self.path = database_path(url)
        self.readonly = readonly
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self.lock_path = self.path.with_name(self.path.name + "-writer.lock")
        self.busy_timeout = busy_timeout_ms / 1000
        self._local = threading.local()
        self._pending: list[_Job] = []
        self._pending_lock = threading.Lock()
        self._leader_lock = threading.Lock()

    def describe(self) -> str:
        return f"the SQLite database {self.path}"

    @property
    def latest_version(self) -> int:
        return migrations.VERSION

    def network_filesystem(self) -> str | None:
        """The type of the network filesystem the database is on, if it is on one (Linux; elsewhere None)."""
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
        found = filesystem_of(self.path.parent.resolve(), mountinfo)
        return found if found in NETWORK_FILESYSTEMS else None

    def storage_problem(self) -> str | None:
        """Less than :data:`MIN_FREE_BYTES` free on the filesystem that holds the database.

        A failed write leaves room in the WAL that the next small commit can
        reuse, so a write probe alone can pass while real messages fail.
        """
        try:
            stats = os.statvfs(self.path.parent)
        except OSError as exc:
            return f"the database's folder cannot be examined: {exc.strerror or exc}"
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            return f"the disk holding the database has {free // 1024} KiB free (less than {MIN_FREE_BYTES // 1024})"
        return None

    # -- connections -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise SchemaMismatch(0, migrations.VERSION, self.describe())
            target, uri = f"file:{self.path}?mode=ro", True
        else:
            target, uri = str(self.path), False
        conn = sqlite3.connect(
            target, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
        )
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; a forked worker never reuses its parent's."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._open()
            local.lock = None  # opened by the first write
            local.pid = os.getpid()
            local.synchronous = None  # set by the first write
        return local.conn

    def close(self) -> None:
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            local.conn.close()
            if local.lock is not None:
                os.close(local.lock)
        local.pid = None

    def _unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """The exception to raise instead of ``exc`` when it means "cannot store now"."""
        if isinstance(exc, sqlite3.OperationalError) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _UNAVAILABLE:
            return StoreUnavailable(self.describe(), str(exc))
        if isinstance(exc, OSError):
            return StoreUnavailable(self.describe(), exc.strerror or str(exc))
        return None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            replacement = self._unavailable(exc)
            if replacement is None:
                raise
            raise replacement from exc

    # -- transactions ------------------------------------------------------

    @contextmanager
    def _writer_lock(self, since: float | None = None) -> Iterator[float]:
        """Hold the writer lock, waiting for it until the busy timeout has passed since ``since`` (a
        ``time.monotonic()``; None: now), or without limit when ``since`` is ``math.inf``. Yields that
        deadline (``math.inf``: none)."""
        local = self._local
        if local.lock is None:
            # One descriptor per thread: flock() excludes other descriptors,
            # so threads and processes queue on the writer lock alike.
            local.lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = (time.monotonic() if since is None else since) + self.busy_timeout
        self._acquire(local.lock, deadline)
        try:
            yield deadline
        finally:
            fcntl.flock(local.lock, fcntl.LOCK_UN)

    def _acquire(self, lock: int, deadline: float) -> None:
        """Take the writer lock, trying again after short sleeps until ``deadline`` (``time.monotonic()``;
        ``math.inf``: wait for it as long as it takes).

        A blocking ``flock`` cannot be given a limit, and a writer that stops
        while it holds the lock (a suspended ``gateway`` command, a frozen
        process) would hold every webhook with it until Twilio gave up.
        """
        if deadline == math.inf:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        pause = LOCK_POLL_FIRST
        while True:
            time.sleep(pause)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        self.describe(),
                        f"another writer has held the database for more than {self.busy_timeout:g} s "
                        "(GATEWAY_BUSY_TIMEOUT_MS); is a gateway process stopped half-way through a write?",
                    ) from None
                pause = min(pause * 2, LOCK_POLL_MOST)

    @contextmanager
    def _transaction(self, synchronous: str, since: float | None = None) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise RuntimeError("this store was opened read-only")
        conn = self._conn()
        if self._local.synchronous != synchronous:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            self._local.synchronous = synchronous
        with self._writer_lock(since) as deadline:
            self._begin(conn, deadline)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                if conn.in_transaction:  # a caller may have rolled back on purpose
                    conn.execute("COMMIT")

    def _begin(self, conn: sqlite3.Connection, deadline: float) -> None:
        """``BEGIN IMMEDIATE``, waiting for a writer outside the gateway only for what is left of the busy
        timeout when the writer lock took part of it (else SQLite's busy handler would start it afresh)."""
        left = deadline - time.monotonic()
        if left >= self.busy_timeout - 0.01:  # the usual case: the lock was free
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute(f"PRAGMA busy_timeout={max(1, round(left * 1000))}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute(f"PRAGMA busy_timeout={round(self.busy_timeout * 1000)}")

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Tx]:
        with self._translated(), self._transaction("FULL" if durable else "NORMAL") as conn:
            yield SQLiteTx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._translated():
            yield SQLiteTx(self._conn())

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        with self._translated():
            conn = self._conn()
            conn.execute("BEGIN")  # a read transaction: one snapshot until COMMIT
            try:
                yield SQLiteTx(conn)
            finally:
                conn.execute("COMMIT")

    def grouped(self, work: Callable[[Tx], R], sync_first: bool, needs_sync: Callable[[R], bool]) -> R:
        """Run ``work`` in a transaction shared with concurrent callers of this process (group commit).

        Returns only after the transaction has committed and, where
        ``needs_sync`` asks, reached the disk. The caller that gets the
        writer lock commits every pending unit, each in its own savepoint.
        """
        job = _Job(work, sync_first, needs_sync, time.monotonic())
        with self._pending_lock:
            self._pending.append(job)
        with self._leader_lock:
            if not job.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit_batch(batch)
        if job.error is not None:
            raise job.error
        return job.result

    def _commit_batch(self, batch: list[_Job]) -> None:
        """Commit every job of ``batch`` in one transaction, then fsync the WAL once if any of them wants it
        (each by its own rule); a job's answer never depends on another job's work or rule."""
        full = any(job.sync_first for job in batch)
        try:
            try:
                with self._translated():
                    # Each job waits at most the busy timeout, also when it joined the batch behind another leader.
                    since = min(job.arrived for job in batch)
                    with self._transaction("FULL" if full else "NORMAL", since) as conn:
                        if len(batch) == 1:  # alone, the transaction is its savepoint: a failure rolls it all back
                            batch[0].result = batch[0].work(SQLiteTx(conn))
                        else:
                            self._in_savepoints(conn, batch)
            except BaseException as exc:  # the commit failed: nothing in the batch is stored
                for job in batch:
                    job.result, job.error = None, job.error or exc
                return
            if full:
                return  # synchronous=FULL: the commit itself reached the disk
            waiting = [job for job in batch if job.wants_sync()]  # every rule asked, none skipped
            if not waiting:
                return
            try:
                with self._translated():
                    self._flush_wal()
            except BaseException as exc:  # committed, but not known to be on disk: only those who need it fail
                for job in waiting:
                    job.result, job.error = None, job.error or exc
        finally:
            for job in batch:
                job.done = True

    def _in_savepoints(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Each unit in its own savepoint, so one failure cannot spoil the others (and its own Tx, so what one
        remembered cannot outlive its rollback)."""
        for job in batch:
            conn.execute("SAVEPOINT unit")
            try:
                job.result = job.work(SQLiteTx(conn))
            except Exception as exc:
                job.error = self._unavailable(exc) or exc
                if not conn.in_transaction:  # SQLite rolled everything back (full disk, I/O error)
                    raise job.error from exc
                conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")

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

    # -- schema ------------------------------------------------------------

    def migrate(self) -> int:
        """Create or migrate the schema; the writer lock makes it safe from many processes at once (it waits
        for another process's migration, however long that takes)."""
        with self._translated():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            with self._writer_lock(since=math.inf):  # switching to WAL needs the database to itself
                conn.execute("PRAGMA journal_mode=WAL")
            with self._transaction("FULL", since=math.inf) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > migrations.VERSION:
                    raise SchemaMismatch(version, migrations.VERSION, self.describe())
                migrations.migrate(sqlite_utils.Database(conn, execute_plugins=False), version)
                conn.execute(f"PRAGMA user_version={migrations.VERSION}")
        return migrations.VERSION

    def schema_version(self) -> int:
        if not self.path.exists():
            return 0  # and asking must not create the file
        with self.read() as tx:
            version = tx.scalar("PRAGMA user_version")
            if version == 0 and not tx.scalar("SELECT COUNT(*) FROM sqlite_master"):
                return 0
            return version

    def tables(self) -> list[str]:
        return list(TABLES)

    def after_load(self, tx: Tx) -> None:
        pass  # INTEGER PRIMARY KEY ids continue after the largest one by themselves

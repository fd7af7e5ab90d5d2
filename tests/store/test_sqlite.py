"""The SQLite backend's own mechanics: paths, WAL, migrations from older versions, connections per
thread and process, durability (which commits fsync what), group commit, read-only opening."""

import fcntl
import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlite_utils

from gateway.core import events, ledger
from gateway.core.compliance import decide
from gateway.store import Store, StoreUnavailable
from gateway.store.ledger import append_event
from gateway.store.migrations.sqlite import VERSION as SCHEMA_VERSION
from gateway.store.migrations.sqlite import _create_v1
from gateway.store.sqlite import database_path, filesystem_of

from ..support import syncspy
from ..support.constants import SENDER
from ..support.writers import stopped_writer
from .conftest import REPLIES, message, old_database, process


@pytest.fixture
def db(sqlite_url):
    store = Store(sqlite_url)
    store.init_schema()
    yield store
    store.close()


def record(store, kind, sid, sender="+14155550100", to="+15005550006", body="STOP"):
    process(store, kind, sid, sender=sender, to=to, body=body)


@pytest.mark.parametrize(
    ("url", "path"),
    [("sqlite:////var/lib/gw/gateway.db", "/var/lib/gw/gateway.db"), ("sqlite:////tmp/a.db?mode=rw", "/tmp/a.db")],
)
def test_database_path(url, path):
    assert str(database_path(url)) == path


def test_relative_database_path_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert database_path("sqlite:///data/gw.db") == tmp_path / "data" / "gw.db"


def test_schema_is_created_once_and_versioned(db):
    assert db.init_schema() == SCHEMA_VERSION  # idempotent
    conn = sqlite3.connect(db.backend.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "opt_outs", "inbound_messages", "sessions"} <= tables
    assert not {"processed_messages", "agent_queue"} & tables  # folded into inbound_messages in v5


def chained(db, *events):
    """Append events to an old database's chain, as the gateway then did."""
    prev = db.execute("SELECT hash FROM ledger_head WHERE id = 1").fetchone()[0]
    for event in events:
        event = {"body": None, "message_sid": None, "detail": None, "state_changed": 1, **event}
        digest = ledger.event_hash(event, prev)
        db.execute(
            "INSERT INTO events (id, event, number, twilio_number, body, message_sid, source, state_changed, at, "
            "detail, prev_hash, hash) VALUES (:id, :event, :number, :twilio_number, :body, :message_sid, :source, "
            ":state_changed, :at, :detail, :prev, :hash)",
            {**event, "prev": prev, "hash": digest},
        )
        db.execute("UPDATE ledger_head SET last_event_id = ?, hash = ? WHERE id = 1", (event["id"], digest))
        prev = digest


AT = "2026-10-01T10:00:00.000000Z"
STOP = {
    "id": 1,
    "event": "opt_out",
    "number": "+14155550100",
    "twilio_number": "+15005550006",
    "body": "STOP",
    "message_sid": "SM1",
    "source": "keyword",
    "at": AT,
}


def test_v2_database_is_migrated_keeping_its_records(tmp_path):
    db = old_database(tmp_path / "v2.db", 2)
    chained(db, STOP)
    db.execute("INSERT INTO opt_outs VALUES ('+14155550100', '+15005550006', ?, 'keyword', 'SM1', 1)", (AT,))
    db.execute(
        "INSERT INTO processed_messages VALUES ('SM1', '+14155550100', '+15005550006', 'opt_out', 'bye', ?)", (AT,)
    )
    db.conn.commit()
    db.close()
    migrated = Store(f"sqlite:///{tmp_path / 'v2.db'}")
    assert migrated.init_schema() == SCHEMA_VERSION
    assert migrated.is_opted_out("+14155550100", "+15005550006")
    assert migrated.current_opt_outs()[0]["message_sid"] == "SM1"
    assert migrated.verify_ledger().ok
    assert process(migrated, "start", "SM1").duplicate  # Twilio's retry of an old message is still a duplicate
    migrated.close()


def _queue_v3(db, sid, body, status="pending", session_id=None, lease_until=None):
    db.execute(
        "INSERT INTO agent_queue (message_sid, from_number, to_number, body, params, received_at, status, flags, "
        "attempts, lease_until, session_id) VALUES (?, '+14155550100', '+15005550006', ?, '[]', ?, ?, '[]', ?, ?, ?)",
        (sid, body, AT, status, 1 if lease_until else 0, lease_until, session_id),
    )
    db.execute(
        "INSERT INTO processed_messages VALUES (?, '+14155550100', '+15005550006', 'queued', NULL, ?)", (sid, AT)
    )


def test_v3_database_is_migrated_keeping_its_queue_and_sessions(tmp_path):
    db = old_database(tmp_path / "v3.db", 3)
    db.execute(
        "INSERT INTO sessions (id, number, twilio_number, state, engaged, opened_at, last_activity_at) "
        "VALUES (7, '+14155550100', '+15005550006', 'active', 1, ?, ?)",
        (AT, AT),
    )
    _queue_v3(db, "SM1", "hello", session_id=7, lease_until="2999-01-01T00:00:00.000000Z")  # leased
    _queue_v3(db, "SM2", "again")  # waits behind SM1
    db.conn.commit()
    db.close()
    migrated = Store(f"sqlite:///{tmp_path / 'v3.db'}")
    assert migrated.init_schema() == SCHEMA_VERSION
    first, second = migrated.outbox()
    assert (first["kind"], first["status"], first["session_id"]) == ("message", "pending", 7)
    assert migrated.claim_deliveries(10, 60) == []  # SM1's lease still holds, and SM2 waits behind it
    migrated.finish_delivery(first["id"], "delivered")
    assert [m["message_sid"] for m in migrated.claim_deliveries(10, 60)] == ["SM2"]
    session = migrated.session(7)
    assert session["state"] == "active" and session["engaged"] and session["warned_at"] is None
    migrated.close()


def test_v4_database_becomes_one_row_per_message(tmp_path):
    """v5 folds processed_messages and agent_queue into inbound_messages: queue ids (the agent's dlv_ ids),
    order, heads and leases are kept; messages never queued keep their outcome and reply."""
    db = old_database(tmp_path / "v4.db", 4)
    chained(db, STOP)
    db.execute("INSERT INTO opt_outs VALUES ('+14155550100', '+15005550006', ?, 'keyword', 'SM1', 1, NULL)", (AT,))
    db.execute(
        "INSERT INTO processed_messages VALUES ('SM1', '+14155550100', '+15005550006', 'opt_out', 'bye', ?)", (AT,)
    )
    for n, (sid, status, head) in enumerate(
        [("SM2", "delivered", 0), ("SM3", "dead", 0), ("SM4", "pending", 1), ("SM5", "pending", 0)], start=40
    ):
        db.execute(
            "INSERT INTO agent_queue (id, message_sid, from_number, to_number, body, params, received_at, status, "
            "next_attempt_at, head) VALUES (?, ?, '+14155550199', '+15005550006', ?, '[]', ?, ?, ?, ?)",
            (n, sid, f"body {sid}", AT, status, AT if status == "pending" else None, head),
        )
        db.execute(
            "INSERT INTO processed_messages VALUES (?, '+14155550199', '+15005550006', 'queued', NULL, ?)", (sid, AT)
        )
    db.conn.commit()
    db.close()
    migrated = Store(f"sqlite:///{tmp_path / 'v4.db'}")
    assert migrated.init_schema() == SCHEMA_VERSION
    assert [(m["id"], m["message_sid"], m["status"]) for m in migrated.outbox()] == [
        (40, "SM2", "delivered"),
        (41, "SM3", "dead"),
        (42, "SM4", "pending"),
        (43, "SM5", "pending"),
    ]
    assert migrated.processed("SM1")["outcome"] == "opt_out" and migrated.processed("SM1")["reply"] == "bye"
    assert [m["message_sid"] for m in migrated.claim_deliveries(10, 60)] == ["SM4"]  # SM5 waits behind it
    assert process(migrated, None, "SM6", sender="+14155550100").outcome == "dropped"  # the opt-out holds
    assert process(migrated, None, "SM2", sender="+14155550199").duplicate
    assert migrated.verify_ledger().ok
    migrated.close()


def test_forked_child_opens_its_own_connection(db):
    process(db, "stop", "SM1")
    parent_conn = db.backend._conn()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        queue.put((db.backend._conn() is not parent_conn, db.is_opted_out("+14155550100", "+15005550006")))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(30)
    assert queue.get(timeout=5) == (True, True)


def test_polls_reuse_the_threads_connection(db, monkeypatch):
    """The worker polls every 50 ms; opening a connection (and parsing the schema) each time cost 0.3 ms."""
    db.ping()

    def refuse(*args, **kwargs):
        raise AssertionError("a new connection was opened")

    monkeypatch.setattr(sqlite3, "connect", refuse)
    assert db.claim_outbound(10, 30) == []
    assert db.claim_deliveries(10, 30) == []
    assert db.warn_idle_sessions(60, 60, None) == []
    assert db.close_expired_sessions() == []
    assert db.session_state_counts() == {}
    assert db.agent_queue_counts() == ({}, None)


def test_ping(db):
    db.ping()
    conn = sqlite3.connect(db.backend.path)
    conn.execute("DROP TABLE opt_outs")
    conn.commit()
    with pytest.raises(sqlite3.OperationalError):
        db.ping()


@pytest.fixture
def fsyncs(monkeypatch):
    """Record the files the store fsyncs itself (the real fsync still runs)."""
    calls = []
    real = os.fdatasync

    def spy(fd):
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    return calls


def _synchronous(store):
    return store.backend._conn().execute("PRAGMA synchronous").fetchone()[0]  # 1 NORMAL, 2 FULL


@pytest.mark.parametrize(
    ("durability", "kind", "opted_out_first", "synchronous", "flushed"),
    [
        ("full", "start", True, 2, False),  # an opt-in: SQLite syncs the commit itself (FULL), before anyone sees it
        ("full", "stop", False, 1, True),  # an opt-out: committed NORMAL, the WAL fsynced before the answer
        ("full", "help", False, 1, True),
        ("full", None, False, 1, True),  # plain: the same
        ("full", None, True, 1, True),  # dropped
        ("compliance", "start", True, 2, False),
        ("compliance", "stop", False, 1, True),  # every compliance event is flushed before the answer
        ("compliance", None, False, 1, False),  # plain queued message: crash-safe, not flushed
        ("compliance", None, True, 1, True),  # a drop is a compliance event: flushed
    ],
)
def test_durability(tmp_path, fsyncs, durability, kind, opted_out_first, synchronous, flushed):
    store = Store(f"sqlite:///{tmp_path / 'd.db'}", durability=durability)
    store.init_schema()
    if opted_out_first:
        store.process_inbound(message("SM0", "STOP"), lambda o: decide("stop", o, REPLIES))
    fsyncs.clear()
    store.process_inbound(message("SM1"), lambda o: decide(kind, o, REPLIES), opt_in=kind == "start")
    assert _synchronous(store) == synchronous
    assert fsyncs == ([str(store.backend.path) + "-wal"] if flushed else [])
    store.close()


@pytest.mark.parametrize("durability", ["full", "compliance"])
@pytest.mark.parametrize(
    ("kind", "flushed"),
    [
        ("stop", True),
        ("help", True),
        (None, True),
        ("start", False),  # an opt-in is on disk before anyone, its retry too, can see it (FULL)
    ],
)
def test_a_retry_is_answered_only_once_its_first_delivery_is_on_disk(tmp_path, fsyncs, durability, kind, flushed):
    """Twilio retries a message whose first delivery got no answer: that one may have died after its commit
    and before its fsync, so the retry's answer (the first's, from the record) waits for the WAL's fsync."""
    store = Store(f"sqlite:///{tmp_path / 'd.db'}", durability=durability)
    store.init_schema()
    body = kind.upper() if kind else "hello"
    first = store.process_inbound(message("SM1", body), lambda o: decide(kind, o, REPLIES), opt_in=kind == "start")
    fsyncs.clear()
    retry = store.process_inbound(message("SM1", body), lambda o: decide(kind, o, REPLIES), opt_in=kind == "start")
    assert (retry.duplicate, retry.outcome, retry.reply) == (True, first.outcome, first.reply)
    assert fsyncs == ([str(store.backend.path) + "-wal"] if flushed else [])
    store.close()


def test_unknown_durability_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="durability must be one of full, compliance"):
        Store(f"sqlite:///{tmp_path / 'd.db'}", durability="fast")


def test_group_commit_shares_one_transaction_and_isolates_failures(db):
    """Threads arriving while a commit is in progress are committed together;
    a message whose processing fails is rolled back alone."""
    barrier = threading.Barrier(6)
    results = {}

    def run(i):
        def decide_or_fail(opted_out):
            if i == 3:
                raise RuntimeError("bad message")
            return decide("stop" if i % 2 else None, opted_out, REPLIES)

        barrier.wait()
        try:
            results[i] = db.process_inbound(message(f"SM{i}", sender=f"+1{i}"), decide_or_fail)
        except RuntimeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(results[3], RuntimeError)
    assert {i: r.outcome for i, r in results.items() if i != 3} == {
        0: "queued",
        1: "opt_out",
        2: "queued",
        4: "queued",
        5: "opt_out",
    }
    assert db.processed("SM3") is None
    assert sorted(r["number"] for r in db.current_opt_outs()) == ["+11", "+15"]


def test_v1_database_is_migrated_with_a_chain_in_order(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    _create_v1(db)
    for i, (event, at) in enumerate(
        [
            ("opt_out", "2025-01-01T00:00:00.000000Z"),
            ("opt_in", "2025-02-01T00:00:00.000000Z"),
            ("opt_out", "2025-03-01T00:00:00.000000Z"),
        ],
        start=1,
    ):
        db.execute(
            "INSERT INTO events (id, event, number, twilio_number, body, message_sid, source, state_changed, at)"
            " VALUES (?, ?, '+1', '+2', 'x', ?, 'keyword', 1, ?)",
            (i, event, f"SM{i}", at),
        )
    db.execute("PRAGMA user_version=1")
    db.conn.commit()
    db.close()

    store = Store(f"sqlite:///{path}")
    store.init_schema()
    result = store.verify_ledger()
    assert result.ok and result.checked == 3
    record(store, "start", "SM9", sender="+1", to="+2")
    assert store.verify_ledger().ok and store.verify_ledger().checked == 5  # the opt-in and its consent grant
    assert [e["id"] for e in store.events()] == [1, 2, 3, 4, 5]
    assert [c["event_id"] for c in store.consents("+1")] == [5]  # the consents table came with version 9


def test_read_only_opening_never_creates_the_file(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'none.db'}", readonly=True)
    assert store.backend.schema_version() == 0
    store.close()
    assert not (tmp_path / "none.db").exists()


def test_full_disk_is_unavailable_not_a_crash(db, monkeypatch):
    """SQLite's "database or disk is full" means: cannot store now (the web layer answers 503)."""
    from gateway.store import StoreUnavailable

    conn = db.backend._conn()
    conn.execute("PRAGMA max_page_count = 1")  # this connection may not grow the file any more
    with pytest.raises(StoreUnavailable, match="database or disk is full"):
        for n in range(200):
            process(db, None, f"SM{n}", body="x" * 2000)


def test_a_unit_rolled_back_in_a_group_leaves_no_trace_in_the_next_units_chain(db):
    """Three units committed together, the middle one failing after its append: the third chains from the
    first, not from the head the rolled-back unit had moved (what a unit remembers dies with its savepoint)."""

    def unit(i):
        def work(tx):
            append_event(
                tx,
                event=events.OPT_OUT,
                number=f"+1415555010{i}",
                twilio_number="+15005550006",
                source=events.MANUAL,
                at=f"2026-12-01T00:00:0{i}Z",
            )
            if i == 1:
                raise RuntimeError("failed after its append")
            return i

        return work

    results = {}

    def run(i):
        try:
            results[i] = db.backend.grouped(unit(i), sync_first=True, needs_sync=lambda result: True)
        except RuntimeError as exc:
            results[i] = exc

    threads = []
    with db.backend._leader_lock:  # hold the leader's place until all three wait, in order, for one batch
        for i in range(3):
            threads.append(threading.Thread(target=run, args=(i,)))
            threads[-1].start()
            while len(db.backend._pending) < i + 1:
                time.sleep(0.001)
    for thread in threads:
        thread.join(30)
    assert results[0] == 0 and isinstance(results[1], RuntimeError) and results[2] == 2
    assert [e["number"] for e in db.events()] == ["+14155550100", "+14155550102"]
    assert db.verify_ledger().ok


# -- a writer stopped half-way through a write -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "stop"])
def test_a_write_waits_for_a_stopped_writer_at_most_the_busy_timeout(sqlite_url, kind):
    """Another process stopped while it holds the writer lock: a message is answered unavailable (503) after
    the busy timeout, not held until Twilio gives up, and leaves nothing; once the other process goes on and
    commits, Twilio's retry is processed."""
    store = Store(sqlite_url, busy_timeout_ms=1000)
    store.init_schema()
    try:
        with stopped_writer(sqlite_url) as resume:
            began = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"another writer has held the database for more than 1 s"):
                process(store, kind, "SM1")
            assert 1 <= time.monotonic() - began < 10
            with store.backend.read() as tx:
                assert tx.scalar("SELECT COUNT(*) FROM inbound_messages") == 0
            resume()
        assert process(store, kind, "SM1").duplicate is False
        assert store.verify_ledger().ok
        assert [row["number"] for row in store.current_opt_outs()] == [SENDER]  # the other writer's, committed
    finally:
        store.close()


def test_a_migration_waits_for_another_writer_without_limit(sqlite_url):
    """Start-up waits for another process's migration (or write) however long it takes, beyond the busy
    timeout: an instance must not fail to start because another one is migrating a large database."""
    holder = Store(sqlite_url)
    holder.init_schema()
    starting = Store(sqlite_url, busy_timeout_ms=100)
    try:
        with ThreadPoolExecutor(1) as start:
            with holder.backend.write():
                started = start.submit(starting.init_schema)
                time.sleep(0.5)
                assert not started.done()
            assert started.result(10) == SCHEMA_VERSION
    finally:
        holder.close()
        starting.close()


def test_a_message_that_joins_a_group_behind_a_waiting_leader_waits_at_most_the_busy_timeout(sqlite_url):
    """Threads of one process share a transaction: a message that arrives while another thread leads a
    commit and waits for the writer lock waits its own busy timeout in all, not the leader's and then its own."""
    store = Store(sqlite_url, busy_timeout_ms=2000)
    store.init_schema()

    def timed(sid: str) -> float:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            process(store, None, sid)
        return time.monotonic() - began

    try:
        with stopped_writer(sqlite_url) as resume, ThreadPoolExecutor(2) as threads:
            leader = threads.submit(timed, "SM1")
            time.sleep(1)
            joined = threads.submit(timed, "SM2")
            assert 2 <= leader.result(10) < 3
            assert 2 <= joined.result(10) < 2.75  # behind the leader and then a wait of its own: 3 s
            resume()
    finally:
        store.close()


def test_a_write_waits_for_the_gateways_writers_and_an_outside_one_at_most_the_busy_timeout_in_all(sqlite_url):
    """The writer lock took part of the busy timeout (another gateway process held it), and then a writer
    outside the gateway (the sqlite3 shell) holds the database: the write waits for it only what is left."""
    store = Store(sqlite_url, busy_timeout_ms=2000)
    store.init_schema()
    outside = sqlite3.connect(store.backend.path, isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")
    lock = os.open(store.backend.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    threading.Timer(1, fcntl.flock, (lock, fcntl.LOCK_UN)).start()
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="database is locked"):
            process(store, None, "SM1")
        assert 2 <= time.monotonic() - began < 2.75  # the lock's 1 s, then the outside writer's 2 s: 3 s
        outside.execute("ROLLBACK")
        assert store.backend._conn().execute("PRAGMA busy_timeout").fetchone() == (2000,)  # whole again
        assert process(store, None, "SM1").duplicate is False
    finally:
        outside.close()
        os.close(lock)
        store.close()


MOUNTINFO = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 27 0:45 / /var/lib/gw rw,relatime shared:20 - nfs4 fs-1234.efs.us-east-1.amazonaws.com:/ rw,vers=4.1
41 40 0:46 / /var/lib/gw/local rw,relatime - ext4 /dev/vdb rw
42 27 0:47 / /mnt/My\\040Share rw,relatime master:3 - cifs //nas/share rw
43 27 0:48 / /srv/data rw,relatime - fuse.sshfs me@host:/data rw
44 27 0:49 / /run/user rw - tmpfs tmpfs rw
not a mount line
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/lib/gw/gateway.db", "nfs4"),  # AWS EFS, as containers mount it
        ("/var/lib/gw", "nfs4"),
        ("/var/lib/gw/local/gateway.db", "ext4"),  # a local disk mounted below the share: the deepest mount wins
        ("/var/lib/gwx/gateway.db", "ext4"),  # a name that only starts like the share's is not under it
        ("/mnt/My Share/g.db", "cifs"),  # mountinfo writes a space as \\040
        ("/srv/data/g.db", "fuse.sshfs"),
        ("/home/me/gateway.db", "ext4"),
    ],
)
def test_filesystem_of(path, expected):
    assert filesystem_of(Path(path), MOUNTINFO) == expected


def test_a_database_on_a_local_disk_is_not_on_a_network_filesystem(db):
    assert db.network_filesystem() is None
    assert filesystem_of(db.backend.path.parent.resolve(), Path("/proc/self/mountinfo").read_text()) is not None


# -- group commit: every job by its own durability rule ------------------------------------------------------------


class Gate:
    """A stand-in for the backend's leader lock that lets one chosen thread lead first: which of the threads
    waiting for a plain lock gets it is up to the scheduler, and the test must choose whose work leads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = True  # closed until open_for()
        self._first: str | None = None

    def open_for(self, name: str) -> None:
        with self._cond:
            self._first, self._held = name, False
            self._cond.notify_all()

    def __enter__(self) -> None:
        with self._cond:
            me = threading.current_thread().name
            self._cond.wait_for(lambda: not self._held and self._first in (None, me))
            self._held, self._first = True, None

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


BODIES = {"plain": ("hello", None), "stop": ("STOP", "stop"), "start": ("START", "start"), "help": ("HELP", "help")}


def in_one_batch(backend, calls) -> list:
    """Run each of ``calls`` on a thread of its own, all joining one group commit that the first one leads;
    what each returned, or the exception it raised."""
    gate = Gate()
    backend._leader_lock = gate
    results: list = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(n,), name=f"job{n}") for n in range(len(calls))]
    for n, thread in enumerate(threads):
        thread.start()
        wait_until(lambda n=n: len(backend._pending) == n + 1)
    gate.open_for("job0")
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.parametrize("durability", ["full", "compliance"])
@pytest.mark.parametrize(
    "jobs",
    [
        ["plain", "stop"],  # a plain message leads: its rule (no fsync in compliance mode) must not skip the STOP's
        ["stop", "plain"],  # a keyword leads: its rule must not read the plain message's id as a Processed
        ["stop", "blocked", "plain"],  # a message from someone opted out: a result of None in the batch
        ["plain", "duplicate-stop"],  # Twilio's retry of a STOP: answered only once its first is on disk
        ["duplicate-plain", "plain", "help"],
        ["plain", "plain"],
        ["start", "plain", "stop"],  # an opt-in: the whole batch commits with synchronous=FULL
    ],
)
def test_each_job_in_a_shared_batch_is_answered_by_its_own_durability_rule(tmp_path, monkeypatch, durability, jobs):
    """Concurrent messages of one process share a transaction whatever each is (group commit). Each must be
    answered, none with another's error, and each only once on disk when its own rule says so, whoever leads."""
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", durability=durability)
    store.init_schema()
    spy = syncspy.install(monkeypatch)
    senders = [f"+1415555{n:04d}" for n in range(len(jobs))]
    for job, sender in zip(jobs, senders, strict=True):  # what came before the batch
        if job == "blocked":
            process(store, "stop", f"SMbefore{sender}", sender=sender, body="STOP")
        elif job.startswith("duplicate-"):
            body, kind = BODIES[job.removeprefix("duplicate-")]
            process(store, kind, f"SMdup{sender}", sender=sender, body=body)
    fsyncs_before, answers_before = spy.fsyncs, len(spy.answers)

    def run(job: str, sender: str):
        if job.startswith("duplicate-"):
            body, kind = BODIES[job.removeprefix("duplicate-")]
            return process(store, kind, f"SMdup{sender}", sender=sender, body=body)
        body, kind = BODIES["plain" if job == "blocked" else job]
        return process(store, kind, f"SM{sender}", sender=sender, body=body)

    results = in_one_batch(
        store.backend, [lambda j=job, s=sender: run(j, s) for job, sender in zip(jobs, senders, strict=True)]
    )
    try:
        assert all(not isinstance(result, BaseException) for result in results), results
        answers = spy.answers[answers_before:]
        assert len(answers) == len(jobs)
        assert len({tuple(answer.commits[:1]) for answer in answers}) == 1  # one shared transaction
        for answer in answers:
            assert answer.on_disk or not syncspy.must_be_on_disk(answer, durability), answer
        batch_needs = any(syncspy.must_be_on_disk(answer, durability) for answer in answers if len(answer.commits) == 1)
        # A plain message that inserted nothing in the batch (its sender opted out, or its MessageSid taken) is
        # decided again in a transaction of its own, always flushed: a drop is an event, a retry waits for its first.
        alone = sum(1 for job in jobs if job in ("blocked", "duplicate-plain"))
        expected = (0 if "start" in jobs or not batch_needs else 1) + alone
        assert spy.fsyncs - fsyncs_before == expected  # one fsync serves the batch; none where none is needed
        assert store.verify_ledger().ok
    finally:
        store.close()


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize("durability", ["full", "compliance"])
def test_concurrent_mixed_messages_each_wait_for_the_disk_by_their_own_rule(tmp_path, monkeypatch, durability):
    """Eight threads of one process, each a sender writing plain messages, STOPs, STARTs, HELPs and Twilio's
    retries: every answer is given, and given only once on disk where its own rule asks."""
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", durability=durability)
    store.init_schema()
    spy = syncspy.install(monkeypatch)
    kinds = ["plain", "plain", "plain", "stop", "plain", "start", "help", "plain"]

    def sender_thread(n: int) -> None:
        sender = f"+1415556{n:04d}"
        for step in range(40):
            body, kind = BODIES[kinds[(n + step) % len(kinds)]]
            sid = f"SM{n}x{step}"
            process(store, kind, sid, sender=sender, body=body)
            if step % 5 == 0:
                assert process(store, kind, sid, sender=sender, body=body).duplicate

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(sender_thread, range(8)))
        assert len(spy.answers) == 8 * (40 + 8)
        for answer in spy.answers:
            assert answer.on_disk or not syncspy.must_be_on_disk(answer, durability), answer
        assert store.verify_ledger().ok
    finally:
        store.close()


def test_a_job_whose_rule_fails_fails_alone(tmp_path):
    """A durability rule that raises: its own job is answered with the error (and its commit is flushed, the
    safe side); the others of its batch keep their answers."""
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.init_schema()

    def insert(n):
        def work(tx):
            tx.execute(
                "INSERT INTO revocation_candidates (message_sid, number, twilio_number, body, pattern, "
                "received_at) VALUES (?, '+1', '+2', 'x', 'p', '2026-12-07T00:00:00Z')",
                (f"SM{n}",),
            )
            return n

        return work

    def broken(result):
        raise AttributeError("no such attribute")

    rules = [lambda result: False, broken, lambda result: True]
    results = in_one_batch(
        store.backend,
        [lambda n=n: store.backend.grouped(insert(n), sync_first=False, needs_sync=rules[n]) for n in range(3)],
    )
    assert results[0] == 0 and isinstance(results[1], AttributeError) and results[2] == 2
    with store.backend.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM revocation_candidates") == 3  # every commit stands
    store.close()


def test_a_failed_fsync_fails_only_the_jobs_that_needed_it(tmp_path, monkeypatch):
    """The batch committed, then the fsync of the WAL failed (an I/O error): a job that needed its answer on
    disk is answered unavailable (Twilio retries it, and the retry waits for the disk); one that did not keeps
    its answer."""
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", durability="compliance")
    store.init_schema()

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    plan = [("plain", SENDER), ("stop", "+14155550101")]
    results = in_one_batch(
        store.backend,
        [
            lambda kind=kind, sender=sender, n=n: process(
                store, BODIES[kind][1], f"SM{n}", sender=sender, body=BODIES[kind][0]
            )
            for n, (kind, sender) in enumerate(plan)
        ],
    )
    assert results[0].outcome == "queued"
    assert isinstance(results[1], StoreUnavailable) and "Input/output error" in str(results[1])
    monkeypatch.undo()
    retry = process(store, "stop", "SM1", sender="+14155550101", body="STOP")
    assert retry.duplicate and retry.outcome == "opt_out"
    store.close()

"""The PostgreSQL backend's own mechanics: URLs, locks, durability settings, pools, outages."""

from __future__ import annotations

import logging
import multiprocessing
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from gateway.cli import cli
from gateway.store import Store, StoreUnavailable, check_url
from gateway.store.migrations import postgres as migrations
from gateway.store.postgres import parse_url, redact

from ..support import netns
from ..support.constants import SENDER
from ..support.servers import free_port, wait_for
from ..support.writers import stop_half_way_through_a_stop
from .conftest import process


@pytest.fixture
def pg(pg_url):
    store = Store(pg_url)
    store.init_schema()
    yield store
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://gw:pw@db.example.com:5432/gateway",
            {"host": "db.example.com", "port": "5432", "dbname": "gateway"},
        ),
        ("postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d8?sslmode=require", {"sslmode": "require"}),
        ("postgresql:///gateway", {"dbname": "gateway"}),
        (  # several hosts, for a failover: libpq connects to the first that writes
            "postgresql://gw:pw@db1,db2:5433/gateway?target_session_attrs=read-write",
            {"host": "db1,db2", "port": ",5433", "target_session_attrs": "read-write"},
        ),
    ],
)
def test_urls_heroku_sets_are_accepted(url, expected):
    check_url(url)
    assert expected.items() <= parse_url(url).items()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db:port/x", "the port must be a number, got 'port'"),
        ("postgresql://db1:5432,db2:x/x", "the port must be a number, got 'x'"),
        ("postgresql://gw:hunter22@db/x?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql://gw:hunter22%@db/x", "invalid percent-encoded token"),
    ],
)
def test_bad_urls_are_named_without_the_password(url, message):
    with pytest.raises(ValueError, match=message) as caught:
        check_url(url)
    assert "hunter22" not in str(caught.value)


def test_redact():
    assert redact("postgres://gw:s3cret@db:5432/x") == "postgres://gw:***@db:5432/x"
    assert redact("postgresql://db/x") == "postgresql://db/x"


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("postgresql://gw:s3cret@db.example.com:6543/gateway", "gateway on db.example.com:6543"),
        ("postgresql://gw:s3cret@db1,db2:6543/gateway", "gateway on db1 or db2:6543"),
        ("postgresql://gw:s3cret@db1,db2/gateway?port=6543", "gateway on db1:6543 or db2:6543"),
        ("postgresql:///gateway", "gateway on the local socket"),
    ],
)
def test_describe_names_the_database_not_the_password(url, described):
    assert Store(url).describe() == f"the PostgreSQL database {described}"


def test_with_several_hosts_the_gateway_connects_to_the_one_that_answers(pg_url):
    """A URL naming a standby address first (here: nothing listens there) and the server second."""
    parts = urlsplit(pg_url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not hostport:
        pytest.skip("the test server is reached through a socket, not a host name")
    url = urlunsplit(
        parts._replace(
            netloc=f"{userinfo}{at}127.0.0.1:{free_port()},{hostport}",
            query="&".join(filter(None, (parts.query, "target_session_attrs=read-write"))),
        )
    )
    store = Store(url)
    try:
        store.init_schema()
        process(store, "stop", "SM1")
        assert store.is_opted_out("+14155550100", "+15005550006")
    finally:
        store.close()


def test_unreachable_server_is_unavailable_quickly_and_without_the_password():
    url = f"postgresql://gw:s3cret-pw@127.0.0.1:{free_port()}/gateway"
    store = Store(url, pool_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable) as read:
            store.current_opt_outs()
        with pytest.raises(StoreUnavailable, match="Connection refused|connection failed") as migrate:
            store.init_schema()
    finally:
        store.close()
    for caught in (read, migrate):
        assert "s3cret-pw" not in str(caught.value) and "the PostgreSQL database gateway on 127.0.0.1" in str(
            caught.value
        )
    assert read.value.reason == "couldn't get a connection after 0.50 sec"  # for /healthz: says no more
    assert str(read.value).endswith(
        f"(the last attempt to connect: 127.0.0.1:{urlsplit(url).port}: Connection refused)"
    )


@pytest.mark.parametrize(
    ("user", "database", "said"),
    [
        (None, "gateway_missing", 'FATAL: database "gateway_missing" does not exist'),
        ("gateway_nobody", None, 'FATAL: role "***" does not exist'),  # the URL's user, like its password, masked
    ],
)
def test_why_no_connection_could_be_had_is_said(pg_url, runner, user, database, said):
    """The pool only waits for a connection it cannot get: the message and the CLI's error add what the
    last attempt to connect said, without the password."""
    parts = urlsplit(pg_url)
    netloc = parts.netloc if user is None else f"{user}:s3cret-pw@{parts.netloc.rpartition('@')[2]}"
    url = urlunsplit(parts._replace(netloc=netloc, path=f"/{database}" if database else parts.path))
    store = Store(url, pool_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.current_opt_outs()
    finally:
        store.close()
    assert caught.value.reason == "couldn't get a connection after 0.50 sec"
    assert str(caught.value).endswith(f": {said})") and "s3cret-pw" not in str(caught.value)
    result = runner.invoke(
        cli, ["optouts", "list"], env={"DATABASE_URL": url, "GATEWAY_DATABASE_POOL_TIMEOUT_SECONDS": "0.5"}
    )
    assert result.exit_code == 1 and f": {said})" in result.output and "s3cret-pw" not in result.output


def _holder(url, ready, release):
    with psycopg.connect(url) as conn, conn.transaction():
        from gateway.store.postgres import PostgresTx

        tx = PostgresTx(conn)
        tx.lock_numbers("+14155550100")
        tx.flush()
        ready.set()
        release.wait(30)


def test_number_locks_exclude_each_other_and_bulk_work(pg, pg_url):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_holder, args=(pg_url, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pg.backend.write() as tx:
            assert tx.try_lock_number("+14155550100") is False  # held by the other connection
            assert tx.try_lock_number("+14155550199") is True  # another person's records are free
        with pg.backend.write() as tx:
            tx.execute("SET LOCAL lock_timeout = '200ms'")
            tx.lock_all()  # bulk work waits for every number lock
            with pytest.raises(psycopg.errors.LockNotAvailable):
                tx.flush()
    finally:
        release.set()
        holder.join(30)
    with pg.backend.write() as tx:
        assert tx.try_lock_number("+14155550100") is True


# How a write opens, with the default timeout of 5 s: its isolation, durability, lock waits and idle limit.
BEGIN = (
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on; SET LOCAL lock_timeout = 5000; "
    "SET LOCAL idle_in_transaction_session_timeout = 2500"
)


@pytest.mark.parametrize(
    ("timeout", "waits", "idle", "user_timeout"),
    [(5, 5000, 2500, 10000), (30, 30000, 15000, 60000), (0.1, 100, 1000, 2000)],  # a second at least: a slow link
)
def test_a_writes_limits_follow_the_store_timeout(pg_url, timeout, waits, idle, user_timeout):
    store = Store(pg_url, pool_timeout=timeout)
    try:
        store.init_schema()
        with store.backend.write() as tx:
            setting = "SELECT setting::int FROM pg_settings WHERE name = ?"
            assert tx.scalar(setting, ("lock_timeout",)) == waits
            assert tx.scalar(setting, ("idle_in_transaction_session_timeout",)) == idle
            assert tx.conn.info.get_parameters()["tcp_user_timeout"] == str(user_timeout)
    finally:
        store.close()


@pytest.fixture
def round_trips(monkeypatch):
    """The queries psycopg sends, one list per round trip (counted at the driver, on a real server)."""
    sent = []
    execute = psycopg.Connection.execute

    def counted(self, query, *args, **kwargs):
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    return sent


def test_a_keyword_takes_three_round_trips_and_a_plain_message_one(pg, round_trips):
    """BEGIN and the person's lock go with the opt-out lookup, the ledger head's lock with the claim, the writes
    with the COMMIT: a STOP is the lookup, the claim and the commit. (Every round trip costs ~200 us on a small
    VM.)"""
    process(pg, None, "SM0")  # the pool's connection is open and configured
    round_trips.clear()
    process(pg, "stop", "SM1")
    assert len(round_trips) == 3, round_trips
    assert round_trips[0].startswith(f"{BEGIN}; SELECT pg_advisory_xact_lock_shared(")
    assert round_trips[1].startswith("INSERT INTO inbound_messages") and "FROM ledger_head" in round_trips[1]
    assert round_trips[-1].startswith("INSERT INTO events") and round_trips[-1].endswith("; COMMIT")
    round_trips.clear()
    process(pg, "start", "SM3", sender="+14155550122")  # two events, one head read: the consent's id is one more trip
    assert len(round_trips) == 4, round_trips
    assert sum("FROM ledger_head" in sent for sent in round_trips) == 1
    round_trips.clear()
    process(pg, None, "SM2", sender="+14155550111")
    assert len(round_trips) == 1  # the schema's routine
    assert pg.is_opted_out("+14155550100", "+15005550006") and pg.verify_ledger().ok


def test_results_go_in_one_round_trip_with_what_waits(pg, round_trips):
    with pg.backend.write() as tx:
        tx.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY)")
    round_trips.clear()
    with pg.backend.write() as tx:
        tx.defer("INSERT INTO probe (id) VALUES (?)", (1,))
        found = tx.results(
            [("INSERT INTO probe (id) VALUES (?) RETURNING id", (2,)), ("SELECT count(*) FROM probe", ())]
        )
        assert found == [[(2,)], [(2,)]]
        assert len(round_trips) == 1
        assert round_trips[0].startswith(f"{BEGIN}; INSERT INTO probe (id) VALUES (1)")


def test_deferred_statements_fail_with_the_commit_and_leave_nothing(pg, round_trips):
    with pg.backend.write() as tx:
        tx.execute("CREATE TABLE probe (v TEXT)")
    with pytest.raises(psycopg.errors.NotNullViolation), pg.backend.write() as tx:
        tx.defer("INSERT INTO probe (v) VALUES (?)", ("first",))
        tx.defer("INSERT INTO events (id) VALUES (NULL)")  # refused by the server, at the commit
    with pg.backend.write() as tx:  # the connection went back to the pool clean, the transaction rolled back
        assert tx.scalar("SELECT count(*) FROM probe") == 0
    round_trips.clear()
    with pytest.raises(RuntimeError), pg.backend.write() as tx:
        tx.defer("INSERT INTO probe (v) VALUES (?)", ("never sent",))
        raise RuntimeError("the caller changed its mind")
    assert round_trips == []  # nothing had reached the server: nothing to roll back there
    with pg.backend.read() as tx:
        assert tx.scalar("SELECT count(*) FROM probe") == 0


@pytest.mark.parametrize(
    "value",
    ["it's", "back\\slash", "%s and ? and %%", "; DROP TABLE events; --", "E'\\x00'", "üñí😀\u2028", "$$x$$", ""],
)
def test_deferred_values_are_bound_by_the_driver_exactly(pg, value):
    with pg.backend.write() as tx:
        tx.execute("CREATE TABLE probe (v TEXT, n BIGINT)")
        tx.defer("INSERT INTO probe (v, n) VALUES (?, ?)", (value, -(2**63)))
        tx.defer("INSERT INTO probe (v, n) VALUES (?, ?)", (None, 2**63 - 1))
        assert tx.query("SELECT v, n FROM probe ORDER BY n") == [
            {"v": value, "n": -(2**63)},
            {"v": None, "n": 2**63 - 1},
        ]
    with pg.backend.read() as tx:
        assert tx.scalar("SELECT count(*) FROM events") == 0  # the hostile text stayed a value


def test_every_write_commits_durably_whatever_the_session_default(pg_url):
    """Even with synchronous_commit off for the session (a server or role default, or what another client of a
    pooler left on the server connection), each write transaction sets it on itself, the schema's routine too."""
    url = pg_url.replace("options=", "options=-csynchronous_commit%3Doff%20")
    store = Store(url)
    try:
        store.init_schema()
        with store.backend.write() as tx:
            assert tx.scalar("SHOW synchronous_commit") == "on"
        with store.backend.write(durable=False) as tx:  # repeatable bookkeeping only
            assert tx.scalar("SHOW synchronous_commit") == "off"
        with store.backend.read() as tx:  # nothing to commit: the session's own setting, untouched
            assert tx.scalar("SHOW synchronous_commit") == "off"
        with psycopg.connect(url) as conn:  # the routine, in a transaction of the caller's to look inside
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
            conn.execute(
                "SELECT gateway_queue_message(1, 2, true, 'SM1', '+14155550100', '+15005550006', 'hi', '[]', "
                "'2026-12-02T00:00:00Z', 'queued', NULL, NULL, '', false, ARRAY['+15005550006'], ARRAY[]::TEXT[])"
            )
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            conn.rollback()
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)  # SET LOCAL: gone with it
    finally:
        store.close()


def test_a_read_only_store_reads_in_read_only_transactions_and_sets_nothing_on_the_session(pg, pg_url):
    """A read-only command's store: every read and write is a ``BEGIN READ ONLY`` transaction, so the server
    refuses a write; no session setting is made, which a pooler would hand on to the gateway's writes."""
    process(pg, "stop", "SM1")
    readonly = Store(pg_url, readonly=True)
    try:
        assert readonly.is_opted_out("+14155550100", "+15005550006")
        with readonly.backend.read() as tx:
            assert tx.scalar("SHOW transaction_read_only") == "on"
        with pytest.raises(StoreUnavailable, match="read-only transaction"), readonly.backend.write() as tx:
            tx.execute("DELETE FROM opt_outs")
        with readonly.backend._connection() as conn:  # the same pooled connection, between transactions
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
            assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    finally:
        readonly.close()
    assert pg.is_opted_out("+14155550100", "+15005550006")


def test_a_connection_the_server_dropped_is_replaced_before_use(pg, pg_url):
    process(pg, "stop", "SM1")
    with pg.backend.read() as tx:
        pid = tx.scalar("SELECT pg_backend_pid()")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
        wait_for(lambda: admin.execute(gone, (pid,)).fetchone()[0], 5, "the server to drop the connection")
    assert pg.is_opted_out("+14155550100", "+15005550006")  # no error: the dead connection was noticed and replaced
    with pg.backend.read() as tx:
        assert tx.scalar("SELECT pg_backend_pid()") != pid


@pytest.mark.parametrize("kind", ["stop", None])
def test_a_connection_to_a_server_that_only_reads_is_replaced(pg, pg_url, kind, caplog):
    """A connection still reaching an old primary that a failover turned into a standby (here: a session
    that only reads) fails its write with 503 once; the next write goes through a new connection."""
    store = Store(pg_url, pool_size=1)  # one connection: the write surely takes the one made read-only
    try:
        with store.backend._connection() as conn:
            stale = conn.info.backend_pid
            conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(StoreUnavailable, match="read-only transaction"):
            process(store, kind, "SM1")
        assert "refused a write as read-only (a standby?): reconnecting" in caplog.text
        assert process(store, kind, "SM1").duplicate is False  # the first was not stored: this is its first
        with store.backend._connection() as conn:
            assert conn.info.backend_pid != stale
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    finally:
        store.close()


def test_forked_child_opens_its_own_pool(pg):
    process(pg, "stop", "SM1")
    with pg.backend.read() as tx:
        parent = tx.scalar("SELECT pg_backend_pid()")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        with pg.backend.read() as tx:
            queue.put((tx.scalar("SELECT pg_backend_pid()"), pg.is_opted_out("+14155550100", "+15005550006")))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(30)
    pid, opted_out = queue.get(timeout=5)
    assert pid != parent and opted_out
    assert pg.is_opted_out("+14155550100", "+15005550006")  # the parent's pool still works


def test_pool_stats(pg):
    with pg.backend.read():
        assert pg.pool_stats()["in_use"] >= 1  # this one (and any still being opened)
    wait_for(lambda: pg.pool_stats()["in_use"] == 0, 5, "the connection to go back to the pool")
    stats = pg.pool_stats()
    assert set(stats) == {"in_use", "idle", "waiting"} and stats["idle"] >= 1 and stats["waiting"] == 0


def test_sqlite_has_no_pool(sqlite_url):
    assert Store(sqlite_url).pool_stats() is None


def test_a_database_at_the_previous_schema_migrates_and_queues_through_the_routine(pg_url):
    """Yesterday's deployments are at schema 5: `gateway init-db` adds the plain message's routine, and the
    messages queued before it and after it share one queue."""
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        for statements in migrations.STEPS[:5]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 5")
        conn.execute(
            "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, received_at, outcome, status, "
            "next_attempt_at, head) VALUES ('SMold', '+14155550100', '+15005550006', 'before', "
            "'2026-11-30T00:00:00Z', 'queued', 'pending', '2026-11-30T00:00:00Z', 1)"
        )
    store = Store(pg_url)
    assert store.init_schema() == migrations.VERSION == 7
    assert process(store, None, "SMnew", body="after").outcome == "queued"
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT message_sid, head FROM inbound_messages ORDER BY id").fetchall()
    assert rows == [("SMold", 1), ("SMnew", 0)]  # behind the older one of the same pair, in order
    store.close()


# -- through a connection pooler in transaction mode (PgBouncer, as behind a platform's pooled URL) ---------


def test_a_direct_connection_prepares_the_plain_message_routine(pg_url):
    store = Store(pg_url, pool_size=1)
    try:
        store.init_schema()
        process(store, None, "SM1")
        assert store.backend.pooled is False
        with store.backend._connection() as conn:  # the pool's one connection, which processed the message
            prepared = [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements")]
    finally:
        store.close()
    assert any("gateway_queue_message" in statement for statement in prepared), prepared


def test_through_a_pooler_nothing_is_prepared_and_concurrent_messages_all_land(pooled, caplog):
    """Clients take turns on two server connections: a statement prepared on one would be missing on the
    other, or be another client's of the same name. The gateway notices the pooler and prepares nothing."""
    caplog.set_level(logging.INFO, logger="gateway.store")
    stores = [Store(pooled.url, pool_size=4) for _ in range(2)]  # two processes' worth of pools
    stores[0].init_schema()
    senders = [f"+1415555{n:04d}" for n in range(24)]

    def send(n):
        store, sender = stores[n % 2], senders[n % len(senders)]
        kind = "stop" if n % 10 == 3 else "start" if n % 10 == 7 else None
        return process(store, kind, f"SM{n:032d}", sender=sender).outcome

    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(send, range(240)))
        assert all(store.backend.pooled for store in stores)
        noticed = [r.getMessage() for r in caplog.records if r.name == "gateway.store"]
        assert noticed == [f"{store.describe()}: no prepared statements" for store in stores]  # once per pool
        assert "through a connection pooler" in noticed[0]
        assert Counter(outcomes)["queued"] > 100
        with psycopg.connect(pooled.direct) as conn:
            assert conn.execute("SELECT count(*) FROM inbound_messages").fetchone() == (240,)
        assert stores[1].verify_ledger().ok
    finally:
        for store in stores:
            store.close()


def test_a_read_only_command_through_a_pooler_leaves_the_gateway_able_to_write(pooled):
    """An auditor's read-only command shares the pooler's server connections with the gateway: nothing it
    does may outlast its own transactions (a session's read-only default once made every later write fail)."""
    writer = Store(pooled.url)
    writer.init_schema()
    readonly = Store(pooled.url, readonly=True)
    try:
        for n in range(20):
            readonly.current_opt_outs()
            readonly.verify_ledger()
            assert process(writer, "stop" if n % 2 else None, f"SM{n:032d}", sender=f"+1415555{n:04d}").outcome
        with psycopg.connect(pooled.direct) as conn:
            assert conn.execute("SELECT count(*) FROM inbound_messages").fetchone() == (20,)
    finally:
        readonly.close()
        writer.close()


def test_db_status_says_a_pooler_is_in_front(pooled, runner):
    Store(pooled.url).init_schema()
    result = runner.invoke(cli, ["db", "status"], env={"DATABASE_URL": pooled.url})
    assert result.exit_code == 0, result.output
    port = pooled.url.rsplit(":", 1)[1].split("/")[0]
    assert f"on 127.0.0.1:{port} through a connection pooler: schema version {migrations.VERSION}" in result.output
    direct = runner.invoke(cli, ["db", "status"], env={"DATABASE_URL": pooled.direct})
    assert direct.exit_code == 0 and "pooler" not in direct.output


def test_instances_starting_together_through_a_pooler_migrate_once(pooled):
    """Migrations take a transaction-scoped lock: a session lock would be taken on one server connection
    and released on another (or never), through a pooler."""
    stores = [Store(pooled.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            versions = list(pool.map(lambda store: store.init_schema(), stores))
        assert versions == [migrations.VERSION] * len(stores)
        assert stores[0].init_schema() == migrations.VERSION  # again, at once: no lock was left behind
    finally:
        for store in stores:
            store.close()
    with psycopg.connect(pooled.direct) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(migrations.VERSION,)]
        held = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE locktype = 'advisory'"
        assert conn.execute(held + " AND datname = current_database()").fetchone() == (0,)  # none left behind


def test_an_instance_frozen_while_it_migrates_holds_the_others_up_only_briefly(pg_url, monkeypatch):
    """An instance stops after its migration's statements, before its COMMIT, holding the migrations' lock
    and the new tables' locks: the server ends its transaction, and another instance starting meanwhile
    migrates in its place."""
    frozen, wake = threading.Event(), threading.Event()
    migrate = migrations.migrate

    def migrate_then_freeze(conn, version):
        migrate(conn, version)
        if not frozen.is_set():
            frozen.set()
            wake.wait(60)

    monkeypatch.setattr(migrations, "migrate", migrate_then_freeze)
    first, second = Store(pg_url, pool_timeout=2), Store(pg_url, pool_timeout=2)
    try:
        with ThreadPoolExecutor(2) as threads:
            held = threads.submit(first.init_schema)
            assert frozen.wait(30)
            started = threads.submit(second.init_schema)
            try:
                assert started.result(15) == migrations.VERSION
            finally:
                wake.set()
            with pytest.raises(StoreUnavailable):
                held.result(30)
        assert first.init_schema() == migrations.VERSION  # its next start finds the schema migrated
    finally:
        wake.set()
        first.close()
        second.close()


def test_a_migration_blocked_by_a_long_transaction_gives_up_soon_and_changes_nothing(pg_url):
    """A migration that alters a table an auditor's long export is reading would wait for the export, and
    every webhook would queue behind the migration's lock: it gives up after half the store's timeout,
    names the cause, leaves the schema as it was, and succeeds once the export is done."""
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        for statements in migrations.STEPS[:3]:  # the next version alters opt_outs and other tables
            for statement in statements:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 3")
    store = Store(pg_url, pool_timeout=2)
    try:
        with psycopg.connect(pg_url) as export:
            export.execute("SELECT count(*) FROM opt_outs").fetchone()  # its transaction stays open
            with ThreadPoolExecutor(1) as starting:
                attempt = starting.submit(store.init_schema)
                try:
                    failure = attempt.exception(15)
                finally:
                    export.rollback()  # whatever happened: the migration must be able to end
            assert isinstance(failure, StoreUnavailable), failure
            assert "from schema version 3 to" in str(failure) and "a long transaction holds it" in str(failure)
            assert export.execute("SELECT version FROM schema_version").fetchone() == (3,)
        assert store.init_schema() == migrations.VERSION
    finally:
        store.close()


# -- whatever isolation level the database defaults to ------------------------------------------------------


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read", "serializable"])
@pytest.mark.parametrize("kind", [None, "stop"])
def test_an_opt_out_committed_while_a_message_waits_for_the_lock_is_seen(pg_url, isolation, kind):
    """A message waits for its sender's lock while another transaction opts the pair out. Once it has the
    lock it must see that opt-out, whatever isolation the database or role defaults to: at repeatable read a
    transaction's snapshot would be taken before the wait, and the message queued for an opted-out pair."""
    url = pg_url.replace("options=", f"options=-cdefault_transaction_isolation%3D{isolation.replace(' ', '%5C%20')}%20")
    store = Store(url)
    store.init_schema()
    process(store, None, "SM0")  # the pair's earlier message: the pool's connections are open
    try:
        with psycopg.connect(pg_url) as holder:  # the session default does not apply to this connection
            from gateway.store.postgres import PostgresTx

            tx = PostgresTx(holder)
            tx.lock_numbers("+14155550100")
            tx.flush()
            with ThreadPoolExecutor(1) as waiting:
                answer = waiting.submit(process, store, kind, "SM1")
                time.sleep(0.5)  # it has begun and waits for the lock
                assert not answer.done()
                holder.execute(
                    "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source) "
                    "VALUES ('+14155550100', '+15005550006', '2026-12-02T00:00:00Z', 'test')"
                )
                holder.commit()
                outcome = answer.result(30).outcome
        if kind is None:
            assert outcome == "dropped"
        else:  # a STOP for a pair already opted out: recorded, but it changed nothing
            assert [(e["message_sid"], e["state_changed"]) for e in store.events()] == [("SM1", False)]
        with psycopg.connect(pg_url) as conn:
            queued = conn.execute("SELECT message_sid FROM inbound_messages WHERE status = 'pending'").fetchall()
        assert queued == [("SM0",)]
    finally:
        store.close()


@pytest.mark.parametrize("where", ["direct", "repeatable read by default", "pooled"])
def test_a_plain_message_is_one_round_trip_wherever_it_is_stored(pg_url, pooled, round_trips, where):
    """The prepared call alone where that is safe; else the call inside an explicit READ COMMITTED
    transaction, sent with its COMMIT: still one round trip."""
    url = {
        "direct": pg_url,
        "repeatable read by default": pg_url.replace(
            "options=", "options=-cdefault_transaction_isolation%3Drepeatable%5C%20read%20"
        ),
        "pooled": pooled.url,
    }[where]
    store = Store(url)
    try:
        store.init_schema()
        process(store, None, "SM0")  # the pool's connection is open and configured
        round_trips.clear()
        assert process(store, None, "SM1").outcome == "queued"
    finally:
        store.close()
    sent = [query for query in round_trips if "pg_backend_pid" not in query]  # not a new pool connection's check
    assert len(sent) == 1, sent
    if where == "direct":
        assert sent[0].startswith("SELECT gateway_queue_message(")
    else:
        assert sent[0].startswith("BEGIN ISOLATION LEVEL READ COMMITTED; ")
        assert "; SELECT gateway_queue_message(" in sent[0] and sent[0].endswith("; COMMIT")


# -- an instance that stops half-way through a transaction ---------------------------------------------------


@pytest.mark.parametrize("kind", [None, "stop"])
@pytest.mark.parametrize("where", ["direct", "pooled"])
def test_an_instance_frozen_inside_a_transaction_holds_nobody_up_for_long(pg_url, pooled, kind, where):
    """Another instance stops half-way through a STOP (its VM paused, its process stopped, its network cut)
    holding the sender's lock and the ledger's head. The server ends that transaction once it has sat idle
    for half the store's timeout, so this instance's message is answered well within Twilio's 15 s; the frozen
    one, when it wakes, finds its transaction gone and nothing of it stored."""
    url = pg_url if where == "direct" else pooled.url
    store, frozen_instance = Store(url, pool_timeout=2), Store(url, pool_timeout=2)
    store.init_schema()
    process(store, None, "SM0")  # the pool's connections are open
    frozen, wake = threading.Event(), threading.Event()
    try:
        with ThreadPoolExecutor(2) as threads:
            held = threads.submit(stop_half_way_through_a_stop, frozen_instance, frozen, wake)
            assert frozen.wait(10)
            answer = threads.submit(process, store, kind, "SM1")
            try:
                outcome = answer.result(15).outcome  # Twilio's webhook timeout
            finally:
                wake.set()
            with pytest.raises(StoreUnavailable):
                held.result(30)
        assert outcome == ("queued" if kind is None else "opt_out")
        with psycopg.connect(pooled.direct if where == "pooled" else pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM opt_outs WHERE source = 'frozen'").fetchone() == (0,)
        assert store.verify_ledger().ok
        assert process(store, None, "SM2").outcome == ("queued" if kind is None else "dropped")  # the pool recovered
        frozen_instance.ping()  # and so did the frozen instance's
    finally:
        wake.set()
        store.close()
        frozen_instance.close()


@pytest.mark.parametrize("kind", [None, "stop"])
@pytest.mark.parametrize("where", ["direct", "pooled"])
def test_a_message_waits_for_a_lock_at_most_the_store_timeout_then_is_unavailable(pg_url, pooled, kind, where):
    """A lock held by something the gateway cannot end (an operator's open transaction, a long migration):
    the message is answered 503 after the store's timeout, not held until Twilio gives up, and leaves nothing;
    Twilio's retry after the lock is released is processed. Through a pooler the wait is limited by each
    transaction, never by a session setting that other clients of the pooler would inherit."""
    url, direct = (pg_url, pg_url) if where == "direct" else (pooled.url, pooled.direct)
    store = Store(url, pool_timeout=1)
    store.init_schema()
    process(store, None, "SM0")
    try:
        with psycopg.connect(direct) as holder:
            from gateway.store.postgres import PostgresTx

            tx = PostgresTx(holder)
            tx.lock_numbers(SENDER)
            tx.flush()
            with ThreadPoolExecutor(1) as waiting:
                answer = waiting.submit(process, store, kind, "SM1")
                try:
                    failure = answer.exception(10)
                finally:
                    holder.rollback()  # whatever happened: the waiting thread must be able to end
            assert isinstance(failure, StoreUnavailable) and "lock timeout" in str(failure), failure
        with psycopg.connect(direct) as conn:
            assert conn.execute("SELECT count(*) FROM inbound_messages WHERE message_sid = 'SM1'").fetchone() == (0,)
        assert process(store, kind, "SM1").duplicate is False
        if where == "pooled":
            with psycopg.connect(pooled.url) as other_client:
                assert other_client.execute("SHOW lock_timeout").fetchone() == ("0",)
    finally:
        store.close()


# -- a server cut off without a word ---------------------------------------------------------------------------

_CUT_OFF_CLIENT = """
import sys, time
from gateway.store import Store, StoreUnavailable
store = Store(sys.argv[1], pool_timeout=1)
for _ in sys.stdin:
    began = time.monotonic()
    try:
        store.is_opted_out("+14155550100", "+15005550006")
        print(f"answered {time.monotonic() - began:.1f}", flush=True)
    except StoreUnavailable as exc:
        print(f"unavailable {time.monotonic() - began:.1f} {exc}", flush=True)
"""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "",
            {"keepalives_idle": "5", "keepalives_interval": "1", "keepalives_count": "3", "tcp_user_timeout": "10000"},
        ),
        ("&keepalives_idle=42&tcp_user_timeout=7000", {"keepalives_idle": "42", "tcp_user_timeout": "7000"}),
    ],
)
def test_connections_carry_keepalives_unless_the_url_sets_its_own(pg, pg_url, query, expected):
    store = Store(pg_url + query)
    try:
        with store.backend.read() as tx:
            assert expected.items() <= tx.conn.info.get_parameters().items()
    finally:
        store.close()


def test_a_server_cut_off_without_a_word_fails_the_request_within_seconds(pg, pg_url):
    """The network between the gateway and PostgreSQL partitions: packets vanish and no reset arrives, so
    nothing tells the waiting connection. TCP alone would retransmit for about 15 minutes (a worker stuck,
    Twilio long gone); the gateway's keepalives and user timeout fail the request within seconds, and once
    the network is back the same process recovers. The gateway runs in a network namespace of its own, its
    link to this host cut by the test."""
    why_not = netns.available()
    if why_not:
        pytest.skip(why_not)
    server = parse_url(pg_url)
    host, port = server.get("host", "127.0.0.1"), int(server.get("port", 5432))
    namespace = netns.Namespace()
    relay = netns.Relay(namespace.host_address, f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port))
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@{namespace.host_address}:{relay.port}"))
    client = namespace.popen(
        [sys.executable, "-c", _CUT_OFF_CLIENT, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def ask() -> str:
        client.stdin.write("\n")
        client.stdin.flush()
        readable, _, _ = select.select([client.stdout], [], [], 60)
        assert readable, "the store hangs on a connection cut off without a word"
        return client.stdout.readline().strip()

    try:
        assert ask().startswith("answered")
        namespace.cut()
        said, seconds, *_ = ask().split(" ", 2)
        assert said == "unavailable" and float(seconds) < 10, (said, seconds)  # Twilio's timeout: 15 s
        namespace.restore()
        wait_for(lambda: ask().startswith("answered"), 30, "the store to recover once the network is back")
    finally:
        client.kill()
        client.communicate()
        relay.close()
        namespace.remove()

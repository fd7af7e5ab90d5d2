"""The PostgreSQL backend's own mechanics: URLs, locks, durability settings, pools, outages."""

from __future__ import annotations

import multiprocessing

import psycopg
import pytest

from gateway.store import Store, StoreUnavailable, check_url
from gateway.store.migrations import postgres as migrations
from gateway.store.postgres import parse_url, redact

from ..conftest import free_port, wait_for
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
    ],
)
def test_urls_heroku_sets_are_accepted(url, expected):
    check_url(url)
    assert expected.items() <= parse_url(url).items()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db:port/x", "the port must be a number"),
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


def test_describe_names_the_database_not_the_password():
    store = Store("postgresql://gw:s3cret@db.example.com:6543/gateway")
    assert store.describe() == "the PostgreSQL database gateway on db.example.com:6543"


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
    assert round_trips[0].startswith("BEGIN; SELECT pg_advisory_xact_lock_shared(")
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
        assert len(round_trips) == 1 and round_trips[0].startswith("BEGIN; INSERT INTO probe (id) VALUES (1); ")


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


def test_every_connection_commits_durably_whatever_the_server_default(pg_url):
    """Even with synchronous_commit off for the session (a server or role default), compliance writes are on."""
    url = pg_url.replace("options=", "options=-csynchronous_commit%3Doff%20")
    store = Store(url)
    try:
        with store.backend.write() as tx:
            assert tx.scalar("SHOW synchronous_commit") == "on"
        with store.backend.write(durable=False) as tx:  # repeatable bookkeeping only
            assert tx.scalar("SHOW synchronous_commit") == "off"
        with store.backend.read() as tx:
            assert tx.scalar("SHOW synchronous_commit") == "on"
    finally:
        store.close()


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
    assert store.init_schema() == migrations.VERSION == 6
    assert process(store, None, "SMnew", body="after").outcome == "queued"
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT message_sid, head FROM inbound_messages ORDER BY id").fetchall()
    assert rows == [("SMold", 1), ("SMnew", 0)]  # behind the older one of the same pair, in order
    store.close()

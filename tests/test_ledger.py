"""The hash-chained event ledger: pure functions, the store, the CLI."""

import json
import multiprocessing
import sqlite3

import pytest

from gateway import ledger
from gateway.cli import cli
from gateway.compliance import decide
from gateway.messages import InboundMessage
from gateway.store import Store
from gateway.store.migrations.sqlite import _create_v1

REPLIES = {"stop": "bye", "start": "hi", "help": "help text"}


def record(store, kind, sid, sender="+14155550100", to="+15005550006", body="STOP"):
    store.process_inbound(
        InboundMessage(sid, sender, to, body, []), lambda o: decide(kind, o, REPLIES), keyword=kind is not None
    )


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.init_schema()
    for i, kind in enumerate(["stop", "help", "start", "stop", None, "stop"]):
        record(store, kind, f"SM{i}", sender=f"+1415555{i % 2:04d}", body=f"body {i}")
    yield store
    store.close()


def tamper(store, *statements):
    """Change the database behind the gateway's back, as an attacker with file access could."""
    conn = sqlite3.connect(store.backend.path)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("DROP TRIGGER events_append_only_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_canonical_encoding_is_stable():
    event = {
        "id": 1,
        "event": "opt_out",
        "number": "+1",
        "twilio_number": "+2",
        "body": "Ünïcode STOP",
        "message_sid": "SM1",
        "source": "keyword",
        "state_changed": True,
        "at": "2026-01-01T00:00:00.000000Z",
        "detail": None,
    }
    assert (
        ledger.canonical(event, ledger.GENESIS)
        == (
            '[1,"opt_out","+1","+2","Ünïcode STOP","SM1","keyword",1,"2026-01-01T00:00:00.000000Z",null,"'
            + "0" * 64
            + '"]'
        ).encode()
    )
    assert ledger.event_hash(event, ledger.GENESIS) != ledger.event_hash({**event, "body": "STOP"}, ledger.GENESIS)


def test_intact_chain(store):
    result = store.verify_ledger()
    assert result.ok and result.checked == 5  # the plain message to a subscribed pair is not an event
    events = store.events()
    assert result.head == store.events()[-1]["hash"]
    assert [e["id"] for e in events] == [1, 2, 3, 4, 5]


def test_empty_ledger(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    store.init_schema()
    result = store.verify_ledger()
    assert result.ok and result.checked == 0 and result.head == ledger.GENESIS


@pytest.mark.parametrize(
    ("statement", "broken", "reason"),
    [
        ("UPDATE events SET body = 'START' WHERE id = 3", 3, "does not match its contents"),
        ("UPDATE events SET at = '2020-01-01T00:00:00.000000Z' WHERE id = 1", 1, "does not match its contents"),
        ("UPDATE events SET event = 'opt_in' WHERE id = 4", 4, "does not match its contents"),
        ("DELETE FROM events WHERE id = 2", 3, "link to the previous event"),
        ("DELETE FROM events WHERE id = 1", 2, "link to the previous event"),
        ("DELETE FROM events WHERE id = 5", 5, "recorded head is event 5"),
        ("UPDATE events SET id = 50 WHERE id = 5", 50, "does not match its contents"),
    ],
)
def test_tampering_is_detected(store, statement, broken, reason):
    tamper(store, statement)
    result = store.verify_ledger()
    assert not result.ok
    assert result.broken_id == broken and reason in result.reason


def test_rehashing_an_edited_row_is_still_detected(store):
    """Recomputing the edited row's own hash breaks the next row's link instead."""
    conn = sqlite3.connect(store.backend.path)
    prev = conn.execute("SELECT prev_hash FROM events WHERE id = 2").fetchone()[0]
    conn.close()
    row = {e["id"]: e for e in store.events()}[2]
    edited = {**row, "body": "edited", "detail": None}
    tamper(store, f"UPDATE events SET body = 'edited', hash = '{ledger.event_hash(edited, prev)}' WHERE id = 2")
    result = store.verify_ledger()
    assert not result.ok and result.broken_id == 3


def test_cli_verify(runner, store):
    env = {"DATABASE_URL": f"sqlite:///{store.backend.path}"}
    ok = runner.invoke(cli, ["audit", "verify"], env=env)
    assert ok.exit_code == 0
    assert ok.output.startswith("ledger intact: 5 events checked, head ") and len(ok.output.split()[-1]) == 64
    tamper(store, "UPDATE events SET body = 'x' WHERE id = 5")
    bad = runner.invoke(cli, ["audit", "verify"], env=env)
    assert bad.exit_code == 1
    assert bad.output.startswith("ledger BROKEN at event 5: its hash does not match its contents (edited)")
    as_json = json.loads(runner.invoke(cli, ["audit", "verify", "--json"], env=env).output)
    assert as_json["ok"] is False and as_json["broken_event"] == 5 and as_json["events_checked"] == 4


def test_v1_database_is_migrated_with_a_chain_in_order(tmp_path):
    import sqlite_utils

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
    assert store.verify_ledger().ok and store.verify_ledger().checked == 4
    assert [e["id"] for e in store.events()] == [1, 2, 3, 4]


def _writer(url, worker, count):
    store = Store(url)
    for i in range(count):
        record(store, ["stop", "start", "help"][i % 3], f"SM{worker}-{i}", sender=f"+1{worker}{i % 5}")


def test_concurrent_writers_build_one_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Store(url).init_schema()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, 40)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    result = Store(url).verify_ledger()
    assert result.ok and result.checked == 160

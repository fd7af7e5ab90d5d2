"""The hash-chained event log in the store, on both backends: one chain, tampering detected."""

import json
import multiprocessing

import pytest

from gateway.cli import cli
from gateway.core import ledger
from gateway.store import Store

from .conftest import process


@pytest.fixture
def store(db):
    for i, kind in enumerate(["stop", "help", "start", "stop", None, "stop"]):
        process(db, kind, f"SM{i}", sender=f"+1415555{i % 2:04d}", body=f"body {i}")
    return db


def test_intact_chain(store):
    result = store.verify_ledger()
    assert result.ok and result.checked == 6  # the plain message to a subscribed pair is not an event
    events = store.events()
    assert result.head == events[-1]["hash"] == store.ledger_head()[1]
    assert [e["id"] for e in events] == [1, 2, 3, 4, 5, 6]
    # The START is an opt-in and a consent grant (keyword_consent_categories), chained like the rest.
    assert [e["event"] for e in events[2:4]] == ["opt_in", "consent_granted"]


def test_empty_ledger(db):
    result = db.verify_ledger()
    assert result.ok and result.checked == 0 and result.head == ledger.GENESIS


@pytest.mark.parametrize("statement", ["UPDATE events SET body = 'edited'", "DELETE FROM events"])
def test_event_log_is_append_only(store, raw, statement):
    with pytest.raises(Exception, match="append-only"):
        raw.execute(statement)
    assert store.events()[0]["body"] == "body 0"


@pytest.mark.parametrize(
    ("statement", "broken", "reason"),
    [
        ("UPDATE events SET body = 'START' WHERE id = 3", 3, "does not match its contents"),
        ("UPDATE events SET at = '2020-01-01T00:00:00.000000Z' WHERE id = 1", 1, "does not match its contents"),
        ("UPDATE events SET event = 'opt_in' WHERE id = 4", 4, "does not match its contents"),
        ("DELETE FROM events WHERE id = 2", 3, "link to the previous event"),
        ("DELETE FROM events WHERE id = 1", 2, "link to the previous event"),
        ("DELETE FROM events WHERE id = 6", 6, "recorded head is event 6"),
        ("UPDATE events SET id = 60 WHERE id = 6", 60, "does not match its contents"),
    ],
)
def test_tampering_is_detected(store, raw, statement, broken, reason):
    raw.tamper(statement)
    result = store.verify_ledger()
    assert not result.ok
    assert result.broken_id == broken and reason in result.reason


def test_rehashing_an_edited_row_is_still_detected(store, raw):
    """Recomputing the edited row's own hash breaks the next row's link instead."""
    prev = raw.scalar("SELECT prev_hash FROM events WHERE id = 2")
    row = {e["id"]: e for e in store.iter_events()}[2]  # with its salt and account
    edited = {**row, "body": "edited", "detail": None}
    raw.tamper(f"UPDATE events SET body = 'edited', hash = '{ledger.event_hash(edited, prev)}' WHERE id = 2")
    result = store.verify_ledger()
    assert not result.ok and result.broken_id == 3


def test_verification_walks_in_batches(store):
    """Bounded memory: the walk reads a batch at a time, and the result does not depend on the batch size."""
    assert store.verify_ledger(batch=2) == store.verify_ledger(batch=5000)


def test_cli_verify(runner, store, raw, db_url):
    env = {"DATABASE_URL": db_url}
    ok = runner.invoke(cli, ["audit", "verify"], env=env)
    assert ok.exit_code == 0
    assert ok.output.startswith("ledger intact: 6 events checked, head ") and len(ok.output.split()[-1]) == 64
    raw.tamper("UPDATE events SET body = 'x' WHERE id = 5")
    bad = runner.invoke(cli, ["audit", "verify"], env=env)
    assert bad.exit_code == 1
    assert bad.output.startswith("ledger BROKEN at event 5: its hash does not match its contents (edited)")
    as_json = json.loads(runner.invoke(cli, ["audit", "verify", "--json"], env=env).output)
    assert as_json["ok"] is False and as_json["broken_event"] == 5 and as_json["events_checked"] == 4


def _writer(url, worker, count):
    store = Store(url)
    for i in range(count):
        process(store, ["stop", "start", "help"][i % 3], f"SM{worker}-{i}", sender=f"+1{worker}{i % 5}")
    store.close()


def test_concurrent_writers_build_one_chain(db, db_url):
    """Four processes append at once (on PostgreSQL, as four machines would): one unbroken chain."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, w, 40)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    result = db.verify_ledger()
    starts = 4 * len(range(1, 40, 3))  # each START is two events: the opt-in and its consent grant
    assert result.ok and result.checked == 160 + starts
    assert [e["id"] for e in db.events()] == list(range(1, 161 + starts))


def test_the_end_of_the_chain_is_checked_quickly(store, raw):
    """The newest events and the head, the event before them taken on trust: what start-up looks at."""
    end = store.verify_ledger_end(3)
    assert (end.ok, end.checked) == (True, 3)
    assert store.verify_ledger_end(100).checked == 6  # a short chain is walked whole
    raw.tamper("UPDATE events SET body = 'edited' WHERE id = 1")  # older than the newest three
    assert store.verify_ledger_end(3).ok and not store.verify_ledger().ok
    raw.tamper("UPDATE events SET body = 'edited' WHERE id = 5")
    broken = store.verify_ledger_end(3)
    assert (broken.ok, broken.broken_id) == (False, 5)

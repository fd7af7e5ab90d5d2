"""The seam every record area writes through (:class:`gateway.store.backend.Tx`), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core import events, timestamps
from gateway.store import Store
from gateway.store.base import one_of
from gateway.store.ledger import append_event

from .conftest import process

TO = "+15005550006"
MANUAL = {"twilio_number": TO, "source": events.MANUAL}


@pytest.fixture
def probe(db):
    with db.backend.write() as tx:
        tx.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")  # ids given: portable
    return db


def test_results_gives_each_statements_rows_in_order(probe):
    with probe.backend.write() as tx:
        # Waits, then goes first; its result is not in the answer.
        tx.defer("INSERT INTO probe (id, v) VALUES (?, ?)", (1, "deferred"))
        found = tx.results(
            [
                ("INSERT INTO probe (id, v) VALUES (?, ?) RETURNING id, v", (2, "a")),
                ("INSERT INTO probe (id, v) VALUES (?, ?)", (3, "b")),  # returns no rows
                ("INSERT INTO probe (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id", (4, "a")),  # taken
                ("SELECT v FROM probe WHERE v <> ? ORDER BY id", ("x",)),
            ]
        )
    assert found == [[(2, "a")], [], [], [("deferred",), ("a",), ("b",)]]
    with probe.backend.write() as tx:
        assert tx.results([]) == []


def test_a_failing_statement_in_results_leaves_nothing(probe):
    with pytest.raises(Exception, match="(?i)unique"), probe.backend.write() as tx:
        insert = "INSERT INTO probe (id, v) VALUES (?, ?)"
        tx.results([(insert, (1, "a")), (insert, (2, "a"))])
    with probe.backend.read() as tx:
        assert tx.scalar("SELECT count(*) FROM probe") == 0


def test_appends_in_one_transaction_chain_from_each_other(db):
    """The second append chains from the first without reading the head again: one valid chain, either way."""
    with db.backend.write() as tx:
        ids = [
            append_event(tx, event=events.OPT_OUT, number=f"+1415555010{i}", **MANUAL, at=f"2026-12-01T00:00:0{i}Z")
            for i in range(3)
        ]
    with db.backend.write() as tx:
        ids.append(append_event(tx, event=events.OPT_IN, number="+14155550100", **MANUAL, at="2026-12-01T00:00:09Z"))
    assert ids == [1, 2, 3, 4]
    result = db.verify_ledger()
    assert (result.ok, result.checked, result.head) == (True, 4, db.ledger_head()[1])


@pytest.mark.parametrize("skew", [0, -120, 45])
def test_the_clock_offset_is_the_database_servers_clock_against_the_stores(db_url, skew):
    """PostgreSQL: how far the server's clock is ahead of the one the store stamps records with (here a clock
    ``skew`` seconds off this machine's, which the server shares); SQLite keeps no clock of its own."""
    store = Store(db_url, clock=lambda: (datetime.now(UTC) + timedelta(seconds=skew)).strftime(timestamps.FORMAT))
    try:
        offset = store.clock_offset()
    finally:
        store.close()
    if db_url.startswith("sqlite"):
        assert offset is None
    else:
        assert offset == pytest.approx(-skew, abs=0.5)


@pytest.mark.parametrize(("values", "count"), [((), 0), (("+14155550100",), 1), (("+14155550100", "+1"), 1)])
def test_one_of_an_empty_list_matches_nothing_on_either_database(db, values, count):
    """``IN ()`` is valid SQLite and a syntax error on PostgreSQL: no values is a condition no row meets."""
    process(db, "stop", "SM1")
    clause, params = one_of("number", values)
    with db.backend.read() as tx:
        assert tx.scalar(f"SELECT COUNT(*) FROM opt_outs WHERE {clause}", params) == count  # noqa: S608

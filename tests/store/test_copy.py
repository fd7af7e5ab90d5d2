"""``gateway db copy``: a database with every kind of record, SQLite to PostgreSQL and back."""

from __future__ import annotations

import pytest

from gateway.cli import cli
from gateway.core import imports
from gateway.core.accounts import Account, Accounts
from gateway.core.consent import Clarification, Grant, Rules
from gateway.core.messages import OutboundText
from gateway.core.ratelimit import Limit
from gateway.messaging.outbound import status_rank
from gateway.store import Store
from gateway.store.copy import CopyError, copy_records
from gateway.store.migrations import ACCOUNT_TABLES, TABLES

from ..support.database import RawDatabase
from .conftest import process

TEXT = OutboundText("Your table is ready.", "GSM-7", 1)
# Two accounts, one number each: every record that belongs to an account carries its SID.
ACCOUNTS = Accounts(
    (
        Account("main", "AC" + "a" * 32, ("t",), ("+15005550006",)),
        Account("brand", "AC" + "b" * 32, ("u",), ("+15005550007",)),
    ),
    routed=True,
)


class Clock:
    def __init__(self):
        self.now = "2026-11-01T09:00:00.000000Z"

    def __call__(self):
        return self.now


def populate(store: Store, clock: Clock) -> None:
    """At least one row in every table, through the gateway's own operations."""
    process(store, "stop", "SM1")
    process(store, None, "SM2")  # dropped: the pair opted out
    process(store, "start", "SM3")
    process(store, "help", "SM4", body="HELP ünïcode")
    process(store, None, "SM5", sender="+14155550101", body="hello")
    process(store, None, "SM6", sender="+14155550102", body="please stop texting me", candidate="stop_phrases")
    process(store, None, "SM7", sender="+14155550103", body="leave me alone", candidate="stop_phrases")
    (first, second) = [c["id"] for c in store.revocation_candidates()]
    store.resolve_candidate(first, True, "ana", "clear revocation")
    store.resolve_candidate(second, False, "ben", "asked about hours")
    store.record_manual("+14155550104", "+15005550006", True, "phone call, ticket 7", "ana")
    store.import_opt_outs([imports.ImportRow(2, "+14155550105", "+15005550007", "2024-05-01T00:00:00.000000Z")], "crm")
    store.queue_outbound("+14155550105", "+15005550007", TEXT, "api")  # suppressed: imported opt-out
    queued = store.queue_outbound("+14155550106", "+15005550006", TEXT, "api", "table_ready", new_session=True)
    store.queue_outbound("+14155550107", "+15005550006", TEXT, "api", new_session=True)
    for message in store.claim_outbound(10, 60):
        store.finish_outbound(message["id"], "sent", message_sid=f"SMout{message['id']}")
    store.record_status(f"SMout{queued['id']}", "delivered", None, status_rank)
    store.record_status(f"SMout{queued['id'] + 1}", "undelivered", 21610, status_rank)  # carrier opt-out
    delivered, dead = sorted(store.claim_deliveries(10, 60), key=lambda m: m["id"])[:2]
    store.finish_delivery(delivered["id"], "delivered", reply=("+14155550101", "+15005550006", TEXT))
    store.finish_delivery(dead["id"], "dead", error="HTTP 400")
    clock.now = "2026-11-03T09:00:00.000000Z"  # two days on: sessions idle
    store.warn_idle_sessions(86400, 600, TEXT)
    clock.now = "2026-11-03T10:00:00.000000Z"
    store.close_expired_sessions()
    store.add_api_key("a" * 64, "auditor", "compliance")
    revoked = store.add_api_key("b" * 64, "sender")
    store.revoke_api_key(revoked)
    store.take_token("outbound-sms:" + "a" * 64, Limit(1.0, 5), 1000.0)
    for category in ("marketing", "informational"):  # consent in two kinds: a STOP asks which, the answer narrows
        store.record_consent(Grant("+14155550108", "+15005550006", category, "paper", clock.now, "Yes.", "ana"))
    process(store, "stop", "SM8", sender="+14155550108")
    process(store, None, "SM9", sender="+14155550108", body="offers")


def rows(url: str) -> dict[str, list[tuple]]:
    raw = RawDatabase(url)
    found = {}
    for table, order in TABLES.items():
        names = _names(raw, table)
        found[table] = raw.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY {order}")
    return found


def _names(raw: RawDatabase, table: str) -> list[str]:
    if raw.kind == "sqlite":
        return [row[1] for row in raw.execute(f"PRAGMA table_info({table})")]
    return [
        row[0]
        for row in raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position",
            params=(table,),
        )
    ]


@pytest.fixture
def source(sqlite_url):
    clock = Clock()
    rules = Rules(required=("marketing",))
    store = Store(
        sqlite_url,
        clock=clock,
        accounts=ACCOUNTS,
        consent_rules=rules,
        consent_sync=True,  # consents, their outbox to Twilio, and a clarification too
        clarification=Clarification.build("Which kinds?", {"offers": ["marketing"]}, rules),
    )
    store.init_schema()
    populate(store, clock)
    store.close()
    return sqlite_url


def test_every_table_has_rows_to_copy(source):
    store = Store(source)
    assert {table for table, count in store.table_counts().items() if count == 0} == set()
    store.close()
    raw = RawDatabase(source)
    for table in ACCOUNT_TABLES:  # and accounts to copy, in every table that keeps them
        found = {row[0] for row in raw.execute(f"SELECT account FROM {table}")}
        assert found - {None} <= {"AC" + "a" * 32, "AC" + "b" * 32} and found - {None}, table


@pytest.fixture(params=["direct", "pooled"])
def postgresql(request) -> str:
    """A fresh PostgreSQL database: directly, then through PgBouncer in transaction mode."""
    return request.getfixturevalue("pg_url") if request.param == "direct" else request.getfixturevalue("pooled").url


def test_sqlite_to_postgresql_and_back(source, postgresql, tmp_path, runner):
    pg_url = postgresql
    before = rows(source)
    copied = copy_records(source, pg_url)
    assert copied.counts == {table: len(found) for table, found in before.items()}
    assert rows(pg_url) == before  # the same rows, value for value
    back = f"sqlite:///{tmp_path / 'back.db'}"
    copy_records(pg_url, back)
    assert rows(back) == before
    heads = set()
    for url in (source, pg_url, back):
        result = runner.invoke(cli, ["audit", "verify"], env={"DATABASE_URL": url})
        assert result.exit_code == 0 and result.output.startswith("ledger intact: ")
        heads.add(result.output.split()[-1])
    assert len(heads) == 1  # one head hash on every backend
    assert copied.verification.head in heads


def test_the_copy_goes_on_where_the_source_stopped(source, pg_url):
    copy_records(source, pg_url)
    store = Store(pg_url)
    try:
        highest = max(r["id"] for r in store.list_outbound())
        assert store.queue_outbound("+14155550199", "+15005550006", TEXT, "api")["id"] == highest + 1
        process(store, "stop", "SM99", sender="+14155550199")
        assert store.verify_ledger().ok
        assert store.processed("SM1")["outcome"] == "opt_out"  # a retry of a copied message is still a duplicate
        assert process(store, "start", "SM1").duplicate
    finally:
        store.close()


def test_a_target_with_records_is_refused_and_left_alone(source, pg_url):
    target = Store(pg_url)
    target.init_schema()
    process(target, "stop", "SMX")
    target.close()
    with pytest.raises(CopyError, match=r"already holds records \(1 in events, 1 in opt_outs"):
        copy_records(source, pg_url)
    assert rows(pg_url)["events"][0][0] == 1 and len(rows(pg_url)["events"]) == 1


def test_cli_copy(source, pg_url, runner):
    result = runner.invoke(cli, ["db", "copy", "--from", source, "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "the same in every table" in result.output
    again = runner.invoke(cli, ["db", "copy", "--from", source, "--to", pg_url])
    assert again.exit_code == 1 and "already holds records" in again.output and "Traceback" not in again.output
    bad = runner.invoke(cli, ["db", "copy", "--from", source, "--to", "mysql://x"])
    assert bad.exit_code == 2 and "unsupported database URL 'mysql'" in bad.output

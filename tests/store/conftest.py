"""Fixtures for the storage layer's tests: a migrated store on each backend, and inbound helpers."""

from __future__ import annotations

import pytest
import sqlite_utils

from gateway.core.compliance import decide
from gateway.core.messages import InboundMessage
from gateway.store import Store
from gateway.store.migrations.sqlite import _create_v1, _migrate_v2, _migrate_v3, _migrate_v4

REPLIES = {"stop": "bye", "start": "hi", "help": "help text"}


def message(sid, body="hello", sender="+14155550100", to="+15005550006", params=None):
    return InboundMessage(sid, sender, to, body, params if params is not None else [("Body", body)])


def process(store, kind, sid, candidate=None, **kwargs):
    """Process one inbound message as the webhook would; ``kind`` is the keyword matched (or None)."""
    return store.process_inbound(
        message(sid, **kwargs),
        lambda opted_out: decide(kind, opted_out, REPLIES, candidate=candidate),
        opt_in=kind == "start",
    )


@pytest.fixture
def db(db_url):
    """A migrated store: on SQLite, then on PostgreSQL."""
    store = Store(db_url)
    store.init_schema()
    yield store
    store.close()


def old_database(path, version: int) -> sqlite_utils.Database:
    """A database as gateway schema ``version`` left it (its own migration steps, nothing newer)."""
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    for step in (_create_v1, _migrate_v2, _migrate_v3, _migrate_v4)[:version]:
        step(db)
    db.execute(f"PRAGMA user_version={version}")
    return db

"""Fixtures for the storage layer's tests: a migrated store on each backend, and inbound helpers."""

from __future__ import annotations

import pytest

from gateway.compliance import decide
from gateway.messages import InboundMessage
from gateway.store import Store

REPLIES = {"stop": "bye", "start": "hi", "help": "help text"}


def message(sid, body="hello", sender="+14155550100", to="+15005550006", params=None):
    return InboundMessage(sid, sender, to, body, params if params is not None else [("Body", body)])


def process(store, kind, sid, candidate=None, **kwargs):
    """Process one inbound message as the webhook would; ``kind`` is the keyword matched (or None)."""
    return store.process_inbound(
        message(sid, **kwargs),
        lambda opted_out: decide(kind, opted_out, REPLIES, candidate=candidate),
        keyword=kind in ("stop", "start", "help"),
    )


@pytest.fixture
def db(db_url):
    """A migrated store: on SQLite, then on PostgreSQL."""
    store = Store(db_url)
    store.init_schema()
    yield store
    store.close()

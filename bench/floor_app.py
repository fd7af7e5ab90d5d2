"""The floor for the webhook benchmark: the signature-only reference plus the
least durable write the issue asks of every message, and nothing else.

One row per MessageSid with the original body and all of Twilio's
parameters, claimed atomically, durable before the answer. No keywords, no
opt-out lookup, no queue, no log line, no metrics. What this reaches is a
bound for any implementation of the issue's storage rules on the machine the
benchmark runs on; the gateway's distance from it is its own overhead.

- SQLite (``DATABASE_URL=sqlite:///...``): ``BEGIN IMMEDIATE``, the insert,
  ``COMMIT``, then the WAL is fdatasynced outside the write lock, as the
  gateway does. With ``FLOOR_FSYNC=0`` the fdatasync is skipped: the floor for
  ``durability=compliance``, where plain messages survive a crash of the
  process but not a power cut.
- PostgreSQL (``DATABASE_URL=postgresql://...``): one connection per worker,
  one autocommitted ``INSERT ... ON CONFLICT DO NOTHING`` with
  ``synchronous_commit = on`` (the commit waits for the WAL flush).

With ``FLOOR_WRITE=store`` the write is instead the gateway's own storage of
a plain message (``Store.process_inbound`` with the decision for a pair that
may be messaged: the opt-out lookup, the claim and the queue entry, on
either backend), and every message is taken as a plain one: no keyword
matching, no log line, no metrics. Its distance from the floor is what the
gateway's storage costs alone; the gateway's distance from it is the web
layer's work.
"""

import json
import os
import sqlite3
import threading

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])

URL = os.environ["DATABASE_URL"]
POSTGRES = URL.startswith(("postgresql:", "postgres:"))
FSYNC = os.environ.get("FLOOR_FSYNC", "1") != "0"
STORE = os.environ.get("FLOOR_WRITE") == "store"
TABLE = (
    "CREATE TABLE IF NOT EXISTS messages "
    "(message_sid TEXT PRIMARY KEY, from_number TEXT, to_number TEXT, body TEXT, params TEXT)"
)
_local = threading.local()

if STORE:
    from gateway.core.compliance import decide
    from gateway.core.messages import InboundMessage
    from gateway.store import Store

    store = Store(URL)
    store.init_schema()
elif POSTGRES:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as setup:
        setup.execute(TABLE)
else:
    PATH = URL.removeprefix("sqlite:///")
    WAL = PATH + "-wal"
    with sqlite3.connect(PATH, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute(TABLE)
    setup.close()


def _conn():
    """One connection per thread of each worker (opened after the fork)."""
    if getattr(_local, "pid", None) != os.getpid():
        if POSTGRES:
            _local.conn = psycopg.connect(URL, autocommit=True)
            _local.conn.execute("SET synchronous_commit = on")
        else:
            _local.conn = sqlite3.connect(PATH, isolation_level=None, timeout=30)
            _local.conn.execute("PRAGMA synchronous=NORMAL")
        _local.pid = os.getpid()
    return _local.conn


def _store(row: tuple) -> None:
    conn = _conn()
    if POSTGRES:
        conn.execute("INSERT INTO messages VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", row)
        return
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?)", row)
    conn.execute("COMMIT")
    if FSYNC:
        fd = os.open(WAL, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)


@app.post("/twilio/sms")
def sms():
    if not validator.validate(request.url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    form = request.form
    if STORE:
        message = InboundMessage.received(
            form["MessageSid"], form["From"], form["To"], form.get("Body", ""), form.items(multi=True)
        )
        store.process_inbound(message, lambda opted_out: decide(None, opted_out, {}))
        return Response(str(MessagingResponse()), content_type="text/xml")
    _store(
        (form["MessageSid"], form["From"], form["To"], form.get("Body", ""), json.dumps(list(form.items(multi=True))))
    )
    return Response(str(MessagingResponse()), content_type="text/xml")

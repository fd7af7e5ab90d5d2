"""The floor for the webhook benchmark: the signature-only reference plus the
least durable write the issue asks of every message, and nothing else.

One row per MessageSid with the original body and all of Twilio's
parameters, claimed atomically in a ``BEGIN IMMEDIATE`` transaction, durable
before the answer (the WAL is fdatasynced after the commit, outside the write
lock, as the gateway does). No keywords, no opt-out lookup, no queue, no log
line, no metrics. What this reaches is a bound for any implementation of
the issue's storage rules on the machine the benchmark runs on; the
gateway's distance from it is its own overhead.

With ``FLOOR_FSYNC=0`` the fdatasync is skipped: the floor for the gateway's
``durability=compliance`` mode, where plain messages survive a crash of the
process but not a power cut.
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

PATH = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
WAL = PATH + "-wal"
FSYNC = os.environ.get("FLOOR_FSYNC", "1") != "0"
_local = threading.local()

with sqlite3.connect(PATH, isolation_level=None) as setup:
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute(
        "CREATE TABLE IF NOT EXISTS messages "
        "(message_sid TEXT PRIMARY KEY, from_number TEXT, to_number TEXT, body TEXT, params TEXT)"
    )
setup.close()


def _conn() -> sqlite3.Connection:
    """One connection per thread of each worker (opened after the fork)."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.conn = sqlite3.connect(PATH, isolation_level=None, timeout=30)
        _local.conn.execute("PRAGMA synchronous=NORMAL")
        _local.pid = os.getpid()
    return _local.conn


@app.post("/twilio/sms")
def sms():
    if not validator.validate(request.url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    form, conn = request.form, _conn()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?)",
        (form["MessageSid"], form["From"], form["To"], form.get("Body", ""), json.dumps(list(form.items(multi=True)))),
    )
    conn.execute("COMMIT")
    if FSYNC:
        fd = os.open(WAL, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return Response(str(MessagingResponse()), content_type="text/xml")

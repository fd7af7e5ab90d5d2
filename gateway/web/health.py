"""``GET /healthz``: can this instance store what Twilio sends it?

Two checks, answered by the worker that takes the request:

- a read of the schema (the database answers and is the gateway's);
- for SQLite, the free space on the database's disk (less than 1 MiB is
  a disk that is full, or about to be);
- a write: one small row, not fsynced. A database that answers reads but
  cannot store (a full disk, a read-only file or replica) is not healthy.
  A successful write is trusted for a second, so a load balancer asking
  often costs one write a second; a failed one is tried again at the next
  check, so the instance reports healthy as soon as writes succeed again.

503 with the reason (never where the database is) when either fails.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, g, jsonify

from ..messaging import services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
WRITE_TRUSTED_SECONDS = 1.0


@bp.get("/healthz")
def healthz():
    store = services.store()
    try:
        store.ping()
    except Exception as exc:  # any failure means "not ready"
        return _unhealthy("cannot read", getattr(exc, "reason", None) or "the database did not answer", exc)
    problem = store.storage_problem()
    if problem:
        return _unhealthy("cannot write", problem, problem)
    state = current_app.extensions.setdefault("gateway.health", {"written_at": float("-inf")})
    if time.monotonic() - state["written_at"] > WRITE_TRUSTED_SECONDS:
        try:
            store.probe_write()
        except Exception as exc:  # as for the read: any failure means "not ready"
            return _unhealthy("cannot write", getattr(exc, "reason", None) or "the database refused a write", exc)
        state["written_at"] = time.monotonic()
    return jsonify(status="ok", database="ok")


def _unhealthy(database: str, reason: str, exc: object):
    g.outcome = "unhealthy"
    log.error("health check failed: the database %s: %s", database, exc)
    return jsonify(status="unavailable", database=database, reason=reason), 503

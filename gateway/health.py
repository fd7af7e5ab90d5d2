"""``GET /healthz``: is the database answering?"""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify

from . import services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    try:
        services.store().ping()
    except Exception as exc:  # any failure means "not ready"
        g.outcome = "unhealthy"
        log.error("health check failed: %s", exc)
        return jsonify(status="unavailable", database="error"), 503
    return jsonify(status="ok", database="ok")

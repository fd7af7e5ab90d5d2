"""Twilio's message status callbacks, ``POST /twilio/status``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, g, request

from ..core.messages import storable
from ..messaging import services
from ..messaging.outbound import hint, status_rank
from .signature import twilio_signed_at

bp = Blueprint("status_callback", __name__)
log = logging.getLogger(__name__)


@bp.post("/twilio/status")
@twilio_signed_at("STATUS_CALLBACK_URL")  # the URL the gateway gave Twilio with each message: what Twilio signs
def status_callback() -> Response:
    """Record each (MessageSid, status) once; final states never move backwards."""
    sid = storable(request.form.get("MessageSid") or request.form.get("SmsSid") or "")
    status = storable(request.form.get("MessageStatus") or request.form.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        g.outcome = "bad_request"
        abort(400, description="missing required parameter(s): MessageSid and MessageStatus")
    raw_code = request.form.get("ErrorCode") or None
    try:
        error_code = int(raw_code) if raw_code else None
    except ValueError:
        abort(400, description=f"ErrorCode must be a number, got {raw_code[:20]!r}")
    g.log_fields = {"sid": sid, "status": status}
    g.callback_status = status
    result = services.store().record_status(sid, status, error_code, status_rank)
    g.outcome = "duplicate" if result["duplicate"] else ("recorded" if result["moved"] else "kept")
    if error_code and hint(error_code):
        log.warning("message %s: error %s: %s", sid, error_code, hint(error_code))
    if result["opted_out"]:
        log.warning("message %s: error 21610, the recipient opted out upstream: recorded as an opt-out", sid)
    if not result["known"]:
        log.info("status callback for a message this gateway did not send: %s", sid)
    return Response(status=204)

"""The Twilio Messaging webhook, ``POST /twilio/sms``: the compliance gate."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, g, request

from ..core.compliance import decide, upstream_kind
from ..core.keywords import START
from ..core.messages import InboundMessage
from ..messaging import services
from . import twiml
from .signature import twilio_signed

bp = Blueprint("webhook", __name__)
log = logging.getLogger(__name__)


@bp.post("/twilio/sms")
@twilio_signed
def inbound_sms() -> Response:
    """Intercept STOP/START/HELP, drop messages from opted-out pairs, queue the rest."""
    form, config = request.form, current_app.config
    message_sid = form.get("MessageSid") or form.get("SmsSid") or ""
    from_number, to_number = form.get("From", ""), form.get("To", "")
    g.log_fields = {"sid": message_sid, "from": from_number, "to": to_number}
    missing = [
        name
        for name, value in (("MessageSid", message_sid), ("From", from_number), ("To", to_number))
        if not value.strip()
    ]
    if missing:
        g.outcome = "bad_request"
        abort(400, description=f"missing required parameter(s): {', '.join(missing)}")

    body = form.get("Body", "")
    keywords = config["KEYWORDS"].for_number(to_number)
    kind = upstream_kind(form.get("OptOutType"))
    upstream = kind is not None
    if not upstream:
        if form.get("OptOutType"):
            log.warning("unknown OptOutType %r; matching keywords ourselves", form["OptOutType"][:20])
        kind = keywords.match(body)
    candidate = config["REVOCATION"].match(body) if kind is None else None

    result = services.store().process_inbound(
        InboundMessage.received(message_sid, from_number, to_number, body, form.items(multi=True)),
        lambda opted_out: decide(kind, opted_out, keywords.replies, upstream=upstream, candidate=candidate),
        opt_in=kind == START,
    )
    g.outcome = result.outcome + (" duplicate" if result.duplicate else "")
    return Response(twiml.reply(result.reply), content_type=twiml.CONTENT_TYPE)

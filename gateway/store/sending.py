"""An outbound message, written inside a caller's transaction: queued, or suppressed with its chained event
when an opt-out covers the pair (or no consent allows it); a queued one resumes the pair's session.

Builds on :mod:`.conversations` and the opt-out and consent helpers; the record areas build on it.
"""

from __future__ import annotations

import json
from typing import Any

from ..core import events
from ..core.messages import OutboundText
from ..core.scope import Scope
from . import conversations
from .backend import Tx
from .consents import has_consent
from .ledger import append_event
from .optouts import covering


def insert_outbound(
    tx: Tx,
    scope: Scope,
    now: str,
    to_number: str,
    sender: str,
    text: OutboundText,
    source: str,
    template: str | None,
    account: str | None,
    category: str | None = None,
    require_consent: bool = False,
) -> tuple[int, str, str | None]:
    """Insert one outbound message (its id, status and reason): ``queued``, or ``suppressed`` when an
    opt-out covers the pair or, with ``require_consent``, no current consent of its ``category`` allows it."""
    blocked, reason = suppression(tx, scope, to_number, sender, category, require_consent)
    status = "suppressed" if reason else "queued"
    message_id = tx.scalar(
        "INSERT INTO outbound_messages (to_number, sender, body, template, encoding, segments, status, "
        "next_attempt_at, source, created_at, updated_at, account, category, suppressed_reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            to_number,
            sender,
            text.body,
            template,
            text.encoding,
            text.segments,
            status,
            None if reason else now,
            source,
            now,
            now,
            account,
            category,
            reason,
        ),
    )
    if reason:
        suppressed_event(tx, now, message_id, to_number, sender, blocked, text.body, source, reason, category, account)
    else:
        tx.execute(
            "INSERT INTO pairs (number, twilio_number, last_outbound_id, last_outbound_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (number, twilio_number) DO UPDATE SET last_outbound_id = excluded.last_outbound_id, "
            "last_outbound_at = excluded.last_outbound_at",
            (to_number, sender, message_id, now),
        )
    return message_id, status, reason


def suppression(
    tx: Tx, scope: Scope, to_number: str, sender: str, category: str | None, require_consent: bool
) -> tuple[str | None, str | None]:
    """What stops a send now, if anything: (the Twilio number of the covering opt-out, or None; the reason,
    ``opted_out`` or ``no_consent``, or None when the message may go)."""
    blocked = covering(tx, scope, to_number, sender)
    if blocked:
        return blocked, events.OPTED_OUT
    if require_consent and not has_consent(tx, scope, to_number, sender, str(category)):
        return None, events.NO_CONSENT
    return None, None


def suppressed_event(
    tx: Tx,
    now: str,
    message_id: int,
    to_number: str,
    sender: str,
    blocked: str | None,
    body: str,
    source: str,
    reason: str,
    category: str | None,
    account: str | None,
    at_send_time: bool = False,
) -> None:
    """The chained record of a message not sent, and why."""
    detail: dict[str, Any] = {"outbound_id": message_id, "sender": sender, "reason": reason}
    if category:
        detail["category"] = category
    if at_send_time:
        detail["at_send_time"] = True
    append_event(
        tx,
        event=events.SUPPRESSED,
        number=to_number,
        twilio_number=blocked or sender,
        body=body,
        source=source,
        state_changed=False,
        at=now,
        detail=json.dumps(detail),
        account=account,
    )


def queue_message(
    tx: Tx,
    scope: Scope,
    now: str,
    to_number: str,
    sender: str,
    text: OutboundText,
    source: str,
    template: str | None,
    new_session: bool,
    account: str | None,
    category: str | None = None,
    require_consent: bool = False,
) -> dict[str, Any]:
    """Queue (or suppress) one message; a queued one resumes the pair's session, or replaces it."""
    message_id, status, reason = insert_outbound(
        tx, scope, now, to_number, sender, text, source, template, account, category, require_consent
    )
    if status == "queued":
        if new_session:
            conversations.close_open_session(tx, to_number, sender, now, "replaced")
        conversations.open_session(tx, to_number, sender, now, engaged=False, account=account)
        return {"id": message_id, "status": status, "created_at": now}
    return {"id": message_id, "status": status, "created_at": now, "reason": reason}

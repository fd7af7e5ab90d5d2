"""The one sending path: every outbound SMS passes through here.

Queueing checks the recipient's opt-out state first: an opted-out pair is
recorded as ``suppressed`` (a chained event) and nothing is sent, yet the
caller gets success, as the hosted platform promises. Queued messages are
sent by the dispatcher (``gateway worker``), which checks the state again at
send time, retries 429/5xx/network errors with exponential backoff and
jitter (honouring Retry-After) for up to ``outbound_max_age_seconds``, and
records Twilio's refusal 21610 as a carrier opt-out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException

from ..core import events, numbers, segments
from ..core.accounts import Accounts
from ..core.masking import mask_number
from ..core.messages import OutboundText, unstorable
from ..core.retries import SEND_LEASE_SECONDS, next_attempt
from ..core.smstemplates import MissingVariable
from ..core.timestamps import FORMAT, parse
from ..store import Store
from . import twilioapi
from .counters import SEND_FAILURES

log = logging.getLogger(__name__)

FINAL = ("delivered", "undelivered", "failed", "canceled", "read")
_RANK = {"queued": 1, "accepted": 1, "scheduled": 1, "sending": 2, "sent": 3, **{s: 4 for s in FINAL}}
A2P_ERRORS = {
    30034: "the sending number is not registered for A2P 10DLC (US): register a brand and campaign",
    30035: "the number is still being set up for A2P 10DLC (US): wait for the campaign to finish",
}


def status_rank(status: str) -> int:
    """Order of Twilio message statuses; final ones never move backwards."""
    return _RANK.get(status, 0)


class OutboundError(ValueError):
    """A send request is invalid; the message says what to fix."""


def e164(number: object, field: str) -> str:
    """``number`` if it is an E.164 number (:mod:`gateway.numbers`); OutboundError naming ``field`` if not."""
    try:
        return numbers.e164(number, field)
    except numbers.InvalidNumber as exc:
        raise OutboundError(str(exc)) from None


class Outbound:
    """Queue and send SMS through Twilio for one configuration and database."""

    def __init__(self, store: Store, config: Mapping[str, Any], clients: twilioapi.TwilioClients | None = None):
        self.store = store
        self.senders: tuple[str, ...] = config["SENDERS"]
        self.templates = config["TEMPLATES"]
        self.accounts: Accounts = config["ACCOUNTS"]
        self.clients = clients or twilioapi.TwilioClients(
            self.accounts, config["TWILIO_API_BASE"], bool(config.get("DEV_TOKEN"))
        )
        self.backoff_base = 1.0  # seconds; doubled per attempt
        self.status_callback = config["STATUS_CALLBACK_URL"]
        self.max_age = timedelta(seconds=config["OUTBOUND_MAX_AGE_SECONDS"])
        self.console = config["SMS_BACKEND"] == "console"

    @property
    def can_send(self) -> bool:
        """Messages can leave: Twilio credentials of some account, or the console backend."""
        return self.console or self.clients.any()

    @property
    def enabled(self) -> bool:
        """New conversations can be started: sending works and there is a default sender."""
        return self.can_send and bool(self.senders)

    def why_disabled(self) -> str:
        if not self.can_send and not any(account.sid for account in self.accounts.accounts):
            return "outbound sending is not configured: set TWILIO_ACCOUNT_SID"
        if not self.can_send:
            return "no auth token to send with: set TWILIO_AUTH_TOKEN"
        return "no sender numbers are configured for this environment (GATEWAY_SENDERS or [senders])"

    # -- queueing -------------------------------------------------------------

    def queue(
        self,
        to_number: str,
        content: str | None = None,
        template: str | None = None,
        variables: Mapping[str, object] | None = None,
        agent_number: str | None = None,
        source: str = events.API,
        accounts: Sequence[str] | None = None,
        category: str | None = None,
    ) -> dict[str, Any]:
        """Validate, render and queue one message; raise OutboundError for bad input.

        ``accounts`` (Account SIDs) limits the senders to those accounts' (a key limited to them).
        ``category`` (an API send's, the configured default when it names none) is what
        ``require_consent`` is checked against; the agent's own sends answer a conversation and have none.
        """
        if not self.enabled:
            raise OutboundError(self.why_disabled())
        rules = self.store.consent_rules
        if category is None and source == events.API:
            category = rules.default
        if category is not None and category not in rules.categories:
            raise OutboundError(f"category {category!r} is not one of {', '.join(rules.categories)}")
        to_number = e164(to_number, "to_number")
        senders = self.senders_of(accounts)
        if agent_number is not None:
            if agent_number not in senders:
                raise OutboundError(f"agent_number {agent_number!r} is not one of this environment's numbers")
            sender = agent_number
        elif senders:
            sender = senders[0]
        else:
            raise OutboundError("this key's accounts have no sender numbers in this environment")
        text = self.text(self._render(content, template, variables))
        return self._enqueue(to_number, sender, text, template, source, category)

    def senders_of(self, accounts: Sequence[str] | None) -> tuple[str, ...]:
        """This environment's senders, or only those of ``accounts`` (in order: the first is their default)."""
        if accounts is None:
            return self.senders
        owners = {sender: self.accounts.owner_of(sender) for sender in self.senders}
        return tuple(sender for sender, owner in owners.items() if owner is not None and owner.sid in accounts)

    def reply(self, to_number: str, from_number: str, content: object) -> dict[str, Any]:
        """Queue the agent's reply to a user, from the Twilio number the user wrote to."""
        to_number, sender, text = self.prepare_reply(to_number, from_number, content)
        return self._enqueue(to_number, sender, text, None, events.AGENT)

    def prepare_reply(self, to_number: str, from_number: str, content: object) -> tuple[str, str, OutboundText]:
        """Check a reply (raise OutboundError) and shape it for :meth:`Store.finish_delivery` to queue."""
        if not self.can_send:
            raise OutboundError(self.why_disabled())
        return e164(to_number, "to_number"), from_number, self.text(self._render(content, None, None))

    def _render(self, content: object, template: str | None, variables: Mapping[str, object] | None) -> str:
        if content is not None and template is not None:
            raise OutboundError("give content or template (with variables), not both")
        if content is None and template is None:
            raise OutboundError("give the text as content, or a template with variables")
        if template is not None:
            found = self.templates.get(template)
            if found is None:
                raise OutboundError(f"unknown template {template!r}")
            try:
                rendered = found.render(variables or {})
            except MissingVariable as exc:
                raise OutboundError(f"template {template!r}: {exc}") from None
            problem = unstorable(rendered)
            if problem:
                raise OutboundError(f"template {template!r}: the text with its variables {problem}")
            return rendered
        if not isinstance(content, str) or not content.strip():
            raise OutboundError("content must be a non-empty string")
        problem = unstorable(content)
        if problem:
            raise OutboundError(f"content {problem}")
        if len(content) > 1600:
            raise OutboundError(f"content is {len(content)} characters; Twilio accepts at most 1600")
        return content

    def _enqueue(
        self,
        to_number: str,
        sender: str,
        shape: OutboundText,
        template: str | None,
        source: str,
        category: str | None = None,
    ) -> dict[str, Any]:
        # An API send starts a new conversation, as on the hosted platform; the agent's own sends continue one.
        queued = self.store.queue_outbound(
            to_number, sender, shape, source, template, new_session=source == events.API, category=category
        )
        if queued["status"] == "suppressed":
            log.info("outbound %s suppressed (%s): %s", queued["id"], queued["reason"], mask_number(to_number))
        return {**queued, "encoding": shape.encoding, "segments": shape.segments, "sender": sender}

    def text(self, body: str) -> OutboundText:
        """``body`` with its encoding and segment count, ready for the store to queue."""
        shape = segments.analyse(body)
        return OutboundText(body, shape.encoding, shape.segments)

    # -- sending ----------------------------------------------------------------

    def dispatch_once(self, limit: int = 20, lease_seconds: float = SEND_LEASE_SECONDS) -> int:
        """Send every due message (at most ``limit``); return how many were attempted."""
        batch = self.store.claim_outbound(limit, lease_seconds)
        for message in batch:
            self._send(message)
        return len(batch)

    def _send(self, message: dict[str, Any]) -> None:
        if self.console:
            self._print(message)
            return
        params: dict[str, Any] = {"to": message["to_number"], "body": message["body"]}
        if message["sender"].startswith("MG"):
            params["messaging_service_sid"] = message["sender"]
        else:
            params["from_"] = message["sender"]
        if self.status_callback:
            params["status_callback"] = self.status_callback
        account = self.accounts.owner_of(message["sender"])
        label = self.accounts.label_of(account.sid if account else None)
        if self.clients.credentials(account) is None:
            SEND_FAILURES.labels("refused", label).inc()
            reason = f"the sender {message['sender']} belongs to no account of this gateway that can send"
            self.store.finish_outbound(message["id"], "failed", error_message=reason)
            log.error("outbound %s failed: %s; list it among an account's senders", message["id"], reason)
            return
        client = self.clients.client(account)
        try:
            sent = client.messages.create(**params)
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                SEND_FAILURES.labels("throttled" if exc.status == 429 else "server_error", label).inc()
                self._retry(message, f"HTTP {exc.status}", twilioapi.retry_after(client), label)
                return
            SEND_FAILURES.labels("refused", label).inc()
            self.store.finish_outbound(message["id"], "failed", error_code=exc.code, error_message=str(exc.msg)[:500])
            log.error(
                "outbound %s to %s refused by Twilio: %s %s %s",
                message["id"],
                mask_number(message["to_number"]),
                exc.code,
                exc.msg,
                hint(exc.code),
            )
            if exc.code == 21610 and message["sender"].startswith("+"):
                self.store.record_carrier_opt_out(
                    message["to_number"], message["sender"], {"error_code": 21610, "outbound_id": message["id"]}
                )
            return
        except requests.RequestException as exc:
            SEND_FAILURES.labels("network", label).inc()
            self._retry(message, type(exc).__name__, None, label)
            return
        self.store.finish_outbound(message["id"], sent.status or "queued", message_sid=sent.sid)
        log.info("outbound %s to %s handed to Twilio as %s", message["id"], mask_number(message["to_number"]), sent.sid)

    def _print(self, message: dict[str, Any]) -> None:
        """The console backend: show the message on standard output instead of sending it (development)."""
        print(
            f"SMS (console backend, not sent) to {mask_number(message['to_number'])} "
            f"from {message['sender']}: {message['body']}",
            flush=True,
        )
        self.store.finish_outbound(message["id"], "logged")

    def _retry(self, message: dict[str, Any], reason: str, retry_after: float | None, label: str) -> None:
        created, now = parse(message["created_at"]), parse(self.store.clock())
        planned = next_attempt(self.backoff_base, message["attempts"], retry_after, created, self.max_age, now)
        if planned is None:
            SEND_FAILURES.labels("gave_up", label).inc()
            self.store.finish_outbound(message["id"], "failed", error_message=f"gave up after {reason}")
            log.error(
                "outbound %s to %s failed: gave up after %d attempts (%s)",
                message["id"],
                mask_number(message["to_number"]),
                message["attempts"],
                reason,
            )
            return
        retry_at, delay = planned
        self.store.finish_outbound(message["id"], "retrying", error_message=reason, retry_at=retry_at.strftime(FORMAT))
        log.warning("outbound %s: %s, retrying in %.1fs", message["id"], reason, delay)


def hint(code: int | None) -> str:
    """A human hint for Twilio error codes worth one (A2P 10DLC registration)."""
    return A2P_ERRORS.get(code or 0, "")

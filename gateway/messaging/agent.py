"""Delivery of queued messages to the agent session handler, at least once.

``gateway worker`` leases the oldest due message of each pair from the
store (in order per pair, re-checking opt-outs), hands it to the handler and
records the result. Handlers:

- HTTP (``GATEWAY_AGENT_URL``): a JSON POST signed with
  ``X-Gateway-Signature: sha256=<HMAC-SHA256 of the raw body>`` under
  ``GATEWAY_AGENT_SECRET``, and ``X-Gateway-Delivery`` to deduplicate on;
- Python (``GATEWAY_AGENT_HANDLER=module:function``): called with the payload.

A 2xx (or a return) is delivered; ``{"reply": "text"}`` is sent to the user
through the outbound path. Session events (``type`` ``session.closed``) go
through the same queue, in order after the pair's earlier messages.
Connection errors, timeouts, 429 and 5xx (or an exception) are retried with
exponential backoff and jitter, honouring Retry-After, up to
``agent_max_age_seconds``; then, and at once for any other status, the
message is dead-lettered (``gateway outbox``).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import requests

from ..core.masking import mask_number
from ..core.retries import next_attempt, parse_retry_after
from ..core.timestamps import FORMAT, parse
from ..store import Store
from .outbound import Outbound, OutboundError

log = logging.getLogger(__name__)


class Retry(Exception):
    """The agent could not take the message now; try again later."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after


class Dead(Exception):
    """The agent refused the message for good."""


def signature(secret: str, body: bytes) -> str:
    """The X-Gateway-Signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_request(secret: str, data: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The JSON body and headers of one delivery to the HTTP agent."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Gateway-Signature": signature(secret, body),
        "X-Gateway-Delivery": data["delivery_id"],
    }
    return body, headers


def payload(message: Mapping[str, Any]) -> dict[str, Any]:
    """What the agent receives for one queued inbound message or session event."""
    if message["kind"] != "message":
        session = message["session"] or {}
        return {
            "type": message["kind"],
            "delivery_id": f"dlv_{message['id']}",
            "session_id": message["session_id"],
            "from": message["from_number"],
            "to": message["to_number"],
            "opened_at": session.get("opened_at"),
            "closed_at": session.get("closed_at"),
            "reason": session.get("close_reason"),
            "attempt": message["attempts"],
        }
    params: Sequence[tuple[str, str]] = message["params"]
    fields = dict(params)
    try:
        count = int(fields.get("NumMedia") or 0)
    except ValueError:
        count = 0
    media = [
        {"url": fields[f"MediaUrl{i}"], "content_type": fields.get(f"MediaContentType{i}")}
        for i in range(count)
        if fields.get(f"MediaUrl{i}")
    ]
    return {
        "type": "message",
        "delivery_id": f"dlv_{message['id']}",
        "session_id": message["session_id"],
        "message_sid": message["message_sid"],
        "from": message["from_number"],
        "to": message["to_number"],
        "body": message["body"],
        "media": media,
        "received_at": message["received_at"],
        "flags": message["flags"],
        "attempt": message["attempts"],
    }


class Forwarder:
    """Deliver queued messages for one configuration and database."""

    def __init__(self, store: Store, outbound: Outbound, config: Mapping[str, Any]):
        self.store = store
        self.outbound = outbound
        self.url = config["AGENT_URL"]
        self.secret = config["AGENT_SECRET"]
        self.handler_name = config["AGENT_HANDLER"]
        self.timeout = config["AGENT_TIMEOUT_SECONDS"]
        self.max_age = timedelta(seconds=config["AGENT_MAX_AGE_SECONDS"])
        self.lease = config["AGENT_LEASE_SECONDS"]
        self.backoff = config["AGENT_BACKOFF_SECONDS"]
        self._function: Callable[[dict], Any] | None = None
        self._http = requests.Session()

    @property
    def enabled(self) -> bool:
        return bool(self.url or self.handler_name)

    def function(self) -> Callable[[dict], Any]:
        """The in-process handler, imported once; ValueError names what is wrong."""
        if self._function is None:
            module_name, _, name = self.handler_name.partition(":")
            try:
                found = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"GATEWAY_AGENT_HANDLER {self.handler_name!r} cannot be loaded: {exc}") from None
            if not callable(found):
                raise ValueError(f"GATEWAY_AGENT_HANDLER {self.handler_name!r} is not callable")
            self._function = found
        return self._function

    def deliver_once(self, limit: int = 20) -> int:
        """Deliver what is due (at most ``limit`` messages); return how many were attempted."""
        if not self.enabled:
            return 0
        batch = self.store.claim_deliveries(limit, self.lease)
        for message in batch:
            self._deliver(message)
        return len(batch)

    def _deliver(self, message: dict[str, Any]) -> None:
        data = payload(message)
        try:
            answer = self._post(data) if self.url else self._call(data)
        except Retry as exc:
            self._retry(message, str(exc), exc.after)
            return
        except Dead as exc:
            self.store.finish_delivery(message["id"], "dead", error=str(exc)[:500])
            log.error("delivery %s dead-lettered: %s", data["delivery_id"], exc)
            return
        reply = answer.get("reply") if isinstance(answer, dict) else None
        prepared = None
        if message["kind"] == "message" and isinstance(reply, str) and reply.strip():  # a closed session: no reply
            try:
                prepared = self.outbound.prepare_reply(message["from_number"], message["to_number"], reply)
            except OutboundError as exc:
                log.error("agent reply to %s not sent: %s", mask_number(message["from_number"]), exc)
        queued = self.store.finish_delivery(message["id"], "delivered", reply=prepared)
        if queued and queued["status"] == "suppressed":
            log.info("agent reply %s suppressed: %s opted out", queued["id"], mask_number(message["from_number"]))

    def _post(self, data: dict[str, Any]) -> Any:
        body, headers = signed_request(self.secret, data)
        try:
            response = self._http.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise Retry(f"no answer within {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise Retry(type(exc).__name__) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Retry(f"HTTP {response.status_code}", parse_retry_after(response.headers.get("Retry-After")))
        if not 200 <= response.status_code < 300:
            raise Dead(f"HTTP {response.status_code}: {response.text[:200]}")
        if "json" not in response.headers.get("Content-Type", ""):
            return None
        try:
            return response.json()
        except ValueError:
            log.warning("delivery %s: the agent's JSON answer could not be read; no reply sent", data["delivery_id"])
            return None

    def _call(self, data: dict[str, Any]) -> Any:
        try:
            function = self.function()
        except ValueError as exc:
            raise Retry(str(exc)) from None  # kept, not lost, until the setting is fixed
        try:
            return function(data)
        except Exception as exc:
            log.exception("delivery %s: the agent handler raised", data["delivery_id"])
            raise Retry(f"handler raised {type(exc).__name__}") from None

    def _retry(self, message: dict[str, Any], reason: str, after: float | None) -> None:
        since, now = parse(message["retry_from"]), parse(self.store.clock())
        planned = next_attempt(self.backoff, message["attempts"], after, since, self.max_age, now)
        if planned is None:
            self.store.finish_delivery(message["id"], "dead", error=f"gave up after {reason}")
            log.error("delivery dlv_%s dead-lettered after %d attempts: %s", message["id"], message["attempts"], reason)
            return
        retry_at, delay = planned
        self.store.finish_delivery(message["id"], "retry", error=reason, retry_at=retry_at.strftime(FORMAT))
        log.warning("delivery dlv_%s: %s, retrying in %.2fs", message["id"], reason, delay)

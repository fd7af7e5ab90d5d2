"""Pushing queued consent changes to Twilio's Consent Management API, from the worker.

Items wait in the store's outbox (:mod:`gateway.store.consentsync`). Each
push leases up to 25 items of one account and posts them in one request with
that account's credentials (``POST /v1/Consents/Bulk`` on Twilio's accounts
API). Twilio answers per item: those it took are done, those it refused go
again with backoff (and are ``failed`` after a few refusals, for a person to
look at). A request that fails whole (429, 5xx, no answer) puts its items
back, never sooner than Twilio's Retry-After. Each worker spaces its
requests to stay under ``consent_sync_requests_per_minute``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException

from ..core.retries import next_attempt
from ..core.timestamps import FORMAT
from ..store import Store
from . import twilioapi

log = logging.getLogger(__name__)
FOREVER = timedelta(days=36500)  # an item is never given up for its age: at least once


class ConsentSync:
    def __init__(self, store: Store, clients: twilioapi.TwilioClients, config: Mapping[str, Any]):
        self.store, self.clients = store, clients
        self.enabled = bool(config.get("TWILIO_CONSENT_SYNC"))
        self.spacing = 60.0 / float(config.get("CONSENT_SYNC_REQUESTS_PER_MINUTE", 90))
        self.lease_seconds = float(config.get("CONSENT_SYNC_LEASE_SECONDS", 30))
        self.backoff_base = 1.0
        self._next_request = 0.0  # monotonic time this worker may send its next request

    def push_once(self) -> int:
        """Push one batch if one is due and the rate allows a request now; how many items were attempted."""
        if time.monotonic() < self._next_request:
            return 0
        batch = self.store.claim_sync(self.lease_seconds)
        if not batch:
            return 0
        account_sid = batch[0]["account"]
        account = self.clients.accounts.by_sid(account_sid) if account_sid else None
        credentials = self.clients.credentials(account)
        ids = [item["id"] for item in batch]
        if credentials is None:
            self._release(ids, 300.0, f"no credentials for account {account_sid or '(none)'}")
            return len(batch)
        self._next_request = time.monotonic() + self.spacing
        client = self.clients.client(account)
        payload = [_item(row) for row in batch]
        try:
            answer = client.accounts.v1.bulk_consents.create(items=payload)
        except TwilioRestException as exc:
            self._release(ids, twilioapi.retry_after(client), f"HTTP {exc.status}: {exc.msg}"[:300], batch)
            return len(batch)
        except (TwilioException, OSError) as exc:
            self._release(ids, None, f"no answer from Twilio: {type(exc).__name__}", batch)
            return len(batch)
        self._finish(batch, answer.items or [])
        return len(batch)

    def _finish(self, batch: list[dict[str, Any]], results: list[Any]) -> None:
        by_correlation = {row["correlation_id"]: row for row in batch}
        sent, refused = [], {}
        answered = {}
        for result in results:
            result = json.loads(result) if isinstance(result, str) else result
            answered[result.get("correlation_id")] = result
        for correlation_id, row in by_correlation.items():
            result = answered.get(correlation_id)
            if result is None:
                refused[row["id"]] = "Twilio's answer did not mention this item"
            elif int(result.get("error_code") or 0) == 0:
                sent.append(row["id"])
            else:
                messages = "; ".join(result.get("error_messages") or []) or "no reason given"
                refused[row["id"]] = f"error {result.get('error_code')}: {messages}"[:300]
        if refused:
            log.warning("consent sync: Twilio refused %d of %d item(s); retrying", len(refused), len(batch))
        # Each refused item backs off by its own attempts: one refused for the fifth time must not hold back
        # one that shared its request and was refused for the first.
        attempts = {row["id"]: row["attempts"] for row in batch}
        self.store.finish_sync(
            sent, {item_id: (reason, self._when(attempts[item_id], None)) for item_id, reason in refused.items()}
        )

    def _release(self, ids: list[int], retry_after: float | None, error: str, batch: list[dict] | None = None) -> None:
        attempts = max((row["attempts"] for row in batch or []), default=1)
        when = self._when(attempts, retry_after)
        log.warning("consent sync: %s; %d item(s) wait until %s", error, len(ids), when)
        self.store.release_sync(ids, when, error)

    def _when(self, attempts: int, retry_after: float | None) -> str:
        now = datetime.now(UTC).replace(tzinfo=None)
        found = next_attempt(self.backoff_base, attempts, retry_after, now, FOREVER, now)
        return (found[0] if found else now).strftime(FORMAT)


def _item(row: Mapping[str, Any]) -> dict[str, str]:
    item = {key: row[key] for key in ("contact_id", "correlation_id", "sender_id", "status", "source")}
    if row.get("date_of_consent"):
        item["date_of_consent"] = row["date_of_consent"]
    return item

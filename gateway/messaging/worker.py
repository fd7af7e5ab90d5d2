"""The worker's loop (``gateway worker``): time out sessions, deliver to the agent, send SMS, and push
consent changes to Twilio (with ``twilio_consent_sync``).

Each round does what is due now; when nothing was, the worker waits
``interval`` seconds (a cheap read, no write, each time). While the database
is unavailable the round fails with :class:`StoreUnavailable`: the worker
says so once, waits (1 s, doubling up to 30 s) and tries again, and says so
when the database answers again. Nothing is lost meanwhile: every message
stays in the database until a round has handled it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

from ..store import StoreUnavailable
from . import services

log = logging.getLogger(__name__)
SWEEP_EVERY = 1.0  # seconds between session sweeps: timeouts are minutes long
OUTAGE_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass(frozen=True)
class Round:
    """What one round attempted."""

    warned: int = 0
    closed: int = 0
    delivered: int = 0
    sent: int = 0
    synced: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.warned or self.closed or self.delivered or self.sent or self.synced)


class Worker:
    def __init__(self, app: Flask, interval: float = 0.05):
        self.app = app
        self.interval = interval
        self._services = services.of(app)
        self._swept_at = float("-inf")

    def round(self) -> Round:
        """Do what is due now, once."""
        found = self._services
        warned = closed = 0
        if time.monotonic() - self._swept_at >= SWEEP_EVERY:
            warned, closed = found.sessions.sweep()
            self._swept_at = time.monotonic()
        delivered = found.forwarder.deliver_once()
        sent = found.outbound.dispatch_once() if found.outbound.can_send else 0
        synced = found.consent_sync.push_once() if found.consent_sync.enabled else 0
        return Round(warned, closed, delivered, sent, synced)

    def run(self, stopping: threading.Event) -> None:
        """Rounds until ``stopping`` is set, riding out database outages."""
        failures = 0
        with self.app.app_context():
            while not stopping.is_set():
                try:
                    done = self.round()
                except StoreUnavailable as exc:
                    wait = OUTAGE_WAITS[min(failures, len(OUTAGE_WAITS) - 1)]
                    if failures == 0:
                        log.error("database unavailable, waiting for it: %s", exc)
                    failures += 1
                    stopping.wait(wait)
                    continue
                if failures:
                    log.warning("database available again after %d failed round(s)", failures)
                    failures = 0
                if not done.busy:
                    stopping.wait(self.interval)

"""Prometheus metrics, ``GET /metrics``.

Counters kept in the process (inbound outcomes, status callbacks, send
failures, request latency) use prometheus-client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set, which ``gateway.gunicorn_conf`` does
for every gunicorn server, so the workers add up. Opt-outs, opt-ins and
outbound message counts are read from the database at scrape time: they are
exact across workers, the CLI, the send worker and restarts. On PostgreSQL
the answering process's connection pool is reported too. Labels never
carry a phone number.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ..core.timestamps import parse
from ..messaging import services
from ..settings import ConfigError
from ..store import Store

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

INBOUND = Counter(
    "gateway_inbound_messages",
    "Inbound webhooks by outcome (opt_out, opt_in, help, queued, candidate, dropped, duplicate, forbidden, ...) "
    "and Twilio account (its name, or its SID's last 6 characters; unverified for a refused request).",
    ["outcome", "account"],
)
STATUS_CALLBACKS = Counter(
    "gateway_status_callbacks", "Twilio status callbacks received, by status and account.", ["status", "account"]
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class StoreCollector:
    """Figures read from the database when Prometheus scrapes."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        label = self.store.accounts.label_of
        changes = self.store.state_change_counts()
        for event, name, text in (
            ("opt_out", "gateway_opt_outs", "Opt-outs that changed a pair's state, by source and account."),
            ("opt_in", "gateway_opt_ins", "Opt-ins that changed a pair's state, by source and account."),
        ):
            family = CounterMetricFamily(name, text, labels=["source", "account"])
            for (kind, source, account), count in sorted(changes.items(), key=repr):
                if kind == event:
                    family.add_metric([source, label(account)], count)
            yield family
        statuses = self.store.outbound_status_counts()
        suppressed = CounterMetricFamily(
            "gateway_outbound_suppressed",
            "Outbound messages not sent because the recipient opted out, by account.",
            labels=["account"],
        )
        messages = GaugeMetricFamily(
            "gateway_outbound_messages",
            "Outbound messages by current status and account.",
            labels=["status", "account"],
        )
        held = {label(account) for (status, account) in statuses if status == "suppressed"}
        for account in self.store.accounts.accounts:  # a zero for each account with none, so alerts can rate() it
            if label(account.sid) not in held:
                suppressed.add_metric([label(account.sid)], 0)
        for (status, account), count in sorted(statuses.items(), key=repr):
            messages.add_metric([status, label(account)], count)
            if status == "suppressed":
                suppressed.add_metric([label(account)], count)
        yield suppressed
        yield messages
        yield from self._agent()

    def _agent(self) -> Iterator[Metric]:
        counts, oldest = self.store.agent_queue_counts()
        queue = GaugeMetricFamily(
            "gateway_agent_queue",
            "Queued deliveries to the agent by kind (message, session.closed) and status "
            "(pending, delivered, dead, dropped).",
            labels=["kind", "status"],
        )
        for (kind, status), count in sorted(counts.items()):
            queue.add_metric([kind, status], count)
        yield queue
        age = GaugeMetricFamily(
            "gateway_agent_queue_oldest_pending_seconds",
            "Age of the oldest delivery still waiting for the agent (0 when none): alert on a stuck agent.",
        )
        age.add_metric([], max(0.0, (parse(self.store.clock()) - parse(oldest)).total_seconds()) if oldest else 0.0)
        yield age
        sessions = GaugeMetricFamily("gateway_sessions", "Conversation sessions by state.", labels=["state"])
        for state, count in sorted(self.store.session_state_counts().items()):
            sessions.add_metric([state], count)
        yield sessions
        pool = self.store.pool_stats()
        if pool is not None:  # PostgreSQL: this process's connection pool
            connections = GaugeMetricFamily(
                "gateway_database_pool_connections",
                "Database connections of the process that answered this scrape: in use (or opening) and idle.",
                labels=["state"],
            )
            connections.add_metric(["in_use"], pool["in_use"])
            connections.add_metric(["idle"], pool["idle"])
            yield connections
            waiting = GaugeMetricFamily(
                "gateway_database_pool_waiting",
                "Requests of that process waiting for a database connection: above 0 for long, raise the pool size.",
            )
            waiting.add_metric([], pool["waiting"])
            yield waiting
        offset = self.store.clock_offset()
        if offset is not None:  # PostgreSQL: instances on several machines must agree with its clock
            clock = GaugeMetricFamily(
                "gateway_database_clock_offset_seconds",
                "Seconds the database server's clock is ahead of this machine's (negative: behind): alert beyond "
                "1 s; instances stamp records and compare leases with their own clocks.",
            )
            clock.add_metric([], offset)
            yield clock


def render(store: Store) -> bytes:
    """The exposition text: process counters (summed over workers) plus database figures."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    from_db = CollectorRegistry(auto_describe=False)
    from_db.register(StoreCollector(store))
    return generate_latest(registry) + generate_latest(from_db)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(render(services.store()), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Time every request and count webhook outcomes.

    In multiprocess mode the counters' folder must exist (gunicorn's config
    makes one; a bare gunicorn with the variable set may not): it is made
    here, or start-up is refused naming it.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR: cannot create {folder}: {exc.strerror or exc}") from None
    app.after_request(_observe)  # logs.py records when the request started (g.started)
    app.register_blueprint(bp)


def _observe(response: Response) -> Response:
    """Count the request; a failure here is logged, never the request's answer (its work is done)."""
    try:
        _count(response)
    except Exception:  # a lost metric must not turn a stored message into an error for Twilio
        log.exception("metrics could not be recorded for %s %s", request.method, request.path)
    return response


def _count(response: Response) -> None:
    req, context = request._get_current_object(), g._get_current_object()  # one context lookup, not one per use
    route = req.url_rule.rule if req.url_rule is not None else "unmatched"
    started = context.get("started")
    if started is not None and route != "/metrics":
        method = req.method if req.method in _METHODS else "other"  # a client chooses it: keep the series few
        _child(LATENCY, method, route).observe(time.perf_counter() - started)
    outcome = context.get("outcome") or ("ok" if response.status_code < 400 else "rejected")
    if req.endpoint == "webhook.inbound_sms":
        outcome = "duplicate" if outcome.endswith(" duplicate") else outcome
        _child(INBOUND, outcome, context.get("account", "unverified")).inc()
    elif req.endpoint == "status_callback.status_callback" and response.status_code == 204:
        _child(STATUS_CALLBACKS, context.get("callback_status", "unknown"), context.get("account", "unverified")).inc()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CHILDREN: dict[tuple, Counter | Histogram] = {}


def _child(metric: Counter | Histogram, *labels: str) -> Counter | Histogram:
    """``metric.labels(*labels)``, remembered: the labels are a handful of routes, outcomes and accounts,
    and looking a child up again costs more than counting."""
    key = (metric, *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child

"""The messaging layer's Prometheus counters (no Flask: the worker counts without a web app).

``GET /metrics`` (:mod:`gateway.web.metrics`) reports them with the web's own, summed over every process
that shares ``PROMETHEUS_MULTIPROC_DIR``. Labels never carry a phone number.
"""

from __future__ import annotations

from prometheus_client import Counter

SEND_FAILURES = Counter(
    "gateway_outbound_send_failures",
    "Failed attempts to hand a message to Twilio, by reason (throttled, server_error, network, refused, gave_up) "
    "and the sender's account.",
    ["reason", "account"],
)

"""The Python API for agent code that runs in the gateway's process (``GATEWAY_AGENT_HANDLER``): send an SMS.

Every send goes through the app's one sending path (:class:`~gateway.messaging.outbound.Outbound`), so an
opt-out suppresses it as it would any other. The agent handler runs in an app context, which these need.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..core import events
from ..core.masking import mask_number
from . import services
from .outbound import Outbound

log = logging.getLogger(__name__)


def _default() -> Outbound:
    return services.outbound()


def send_sms(to_number: str, from_number: str | None, content: str) -> dict[str, Any] | None:
    """Queue a free-form SMS and return at once (status ``queued`` or ``suppressed``).

    Needs an app context (the agent handler runs in one). Failures are
    logged, never raised: the result is None.
    """
    try:
        return _default().queue(to_number, content=content, agent_number=from_number, source=events.AGENT)
    except Exception as exc:  # the agent must never crash on a send
        log.error("send_sms to %s not queued: %s", mask_number(str(to_number)), exc)
        return None


def send_sms_template(
    to_number: str, template: str, variables: Mapping[str, object] | None = None
) -> dict[str, Any] | None:
    """Queue a template by name; like :func:`send_sms`, failures are logged and give None."""
    try:
        return _default().queue(to_number, template=template, variables=variables or {}, source=events.AGENT)
    except Exception as exc:
        log.error("send_sms_template %r to %s not queued: %s", template, mask_number(str(to_number)), exc)
        return None

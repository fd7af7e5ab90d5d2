"""The shared services of one app, and one accessor for each (as flaskr's ``get_db``).

The app factory builds them once; views reach them through :func:`store`,
:func:`outbound`, :func:`forwarder` and :func:`sessions`; code holding the
app itself (the worker, the CLI, tests) uses :func:`of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from ..store import Store
from .agent import Forwarder
from .consentsync import ConsentSync
from .outbound import Outbound
from .sessions import Sessions
from .twilioapi import TwilioClients


@dataclass(frozen=True)
class Services:
    store: Store
    outbound: Outbound
    forwarder: Forwarder
    sessions: Sessions
    consent_sync: ConsentSync

    @classmethod
    def build(cls, store: Store, config: Mapping[str, Any]) -> Services:
        clients = TwilioClients(config["ACCOUNTS"], config["TWILIO_API_BASE"], bool(config.get("DEV_TOKEN")))
        outbound = Outbound(store, config, clients)
        return cls(
            store,
            outbound,
            Forwarder(store, outbound, config),
            Sessions(store, outbound, config),
            ConsentSync(store, clients, config),
        )


def init_app(app: Flask, store: Store) -> None:
    app.extensions["gateway"] = Services.build(store, app.config)


def of(app: Flask) -> Services:
    """The services of ``app`` (outside a request or app context)."""
    return app.extensions["gateway"]


def store() -> Store:
    """The current app's records."""
    return current_app.extensions["gateway"].store


def outbound() -> Outbound:
    """The current app's one sending path."""
    return current_app.extensions["gateway"].outbound


def forwarder() -> Forwarder:
    """The current app's delivery to the agent."""
    return current_app.extensions["gateway"].forwarder


def sessions() -> Sessions:
    """The current app's session timeouts."""
    return current_app.extensions["gateway"].sessions

"""The ``gateway`` command: one module per command group, each registering its commands on the root group
when imported (``gateway.cli:cli`` is the console script; ``python -m gateway.cli`` runs it too)."""

from . import audit, consent, database, doctor, keys, optouts, outbox, server, sessions, stats, templates  # noqa: F401 - each registers its commands
from .root import cli

__all__ = ["cli"]

"""The ``gateway`` group, and what every command shares: the settings, the database, accounts by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .. import settings
from ..settings import ConfigError
from ..store import Store, StoreError, from_settings


def instance_path() -> str:
    """The instance folder the app would use (GATEWAY_INSTANCE_PATH, else ./instance)."""
    return settings.instance_folder()


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deployment's settings (no auth token needed), or the one-line reason a setting is wrong."""
    try:
        return settings.load(overrides, instance_path=instance_path(), require_token=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def store_of(readonly: bool) -> Store:
    """The database DATABASE_URL names, closed when the command ends."""
    store = from_settings(load_settings(), readonly=readonly)
    click.get_current_context().call_on_close(store.close)
    return store


def account_sids(store: Store, given: Sequence[str]) -> list[str]:
    """The Account SIDs of the accounts named (by name or SID) in ``--account`` options."""
    sids = []
    for name in given:
        found = store.accounts.named(name)
        if found is None:
            known = ", ".join(f"{a.name} ({a.sid})" for a in store.accounts.accounts if a.sid) or "none configured"
            raise click.BadParameter(f"no account {name!r}; known: {known}", param_hint="--account")
        sids.append(found.sid)
    return sids


def open_store(writes: bool = False) -> Store:
    """The database, checked to be at this gateway's schema version.

    Commands that only read open it read-only: they never write to the
    database, not even a migration (only ``gateway init-db`` and the server's
    start-up migrate).
    """
    store = store_of(readonly=not writes)
    store.check_schema()
    return store


class Group(click.Group):
    """The ``gateway`` group: a database problem ends any command with one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """SMS compliance gateway for Twilio.

    Every command reads DATABASE_URL (default: gateway.db in the instance
    folder) and the other settings described in the README.
    """

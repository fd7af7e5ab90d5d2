"""gateway keys: API keys (only their SHA-256 hashes are stored)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..core import keys
from .options import FORMAT, ID, TEXT
from .output import emit
from .root import account_sids, cli, open_store


@cli.group("keys")
def keys_group() -> None:
    """Manage API keys (only their SHA-256 hashes are stored)."""


@keys_group.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice(keys.ROLES),
    help="auditor: read-only; admin: also resolves candidates, records manual opt-outs and consents; "
    "sender: the outbound API; recorder: records consents (POST /v1/consents).",
)
@click.option("--label", type=TEXT, help="Who or what the key is for, e.g. 'compliance team'.")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="NAME_OR_SID",
    help="Limit the key to this Twilio account's records and numbers (a name under [accounts], "
    "'default', or an Account SID). Repeatable. Without it the key sees every account.",
)
def keys_create(role: str, label: str | None, accounts: Sequence[str]) -> None:
    """Create a key and print it once; it cannot be shown again."""
    store = open_store(writes=True)
    sids = account_sids(store, accounts)
    key = keys.new_key()
    key_id = store.add_api_key(keys.hash_key(key), role, label, sids or None)
    click.echo(key)
    limited = f", limited to {', '.join(sorted(set(sids)))}" if sids else ""
    click.echo(f"Key {key_id} ({role}{limited}) created. Store it now: only its hash is kept.", err=True)


@keys_group.command("list")
@FORMAT
def keys_list(fmt: str) -> None:
    """List keys (id, role, label, the accounts each is limited to, dates); never the keys themselves."""
    emit(open_store().list_api_keys(), ["id", "role", "label", "accounts", "created_at", "revoked_at"], fmt)


@keys_group.command("revoke")
@click.argument("key_id", type=ID)
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID at once."""
    if not open_store(writes=True).revoke_api_key(key_id):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"Key {key_id} revoked.")

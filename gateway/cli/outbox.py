"""gateway outbox: what waits for the agent, what was delivered, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from ..core.timestamps import FORMAT as TIMESTAMP_FORMAT
from .options import FORMAT, ID
from .output import emit
from .root import cli, open_store


@cli.group()
def outbox() -> None:
    """Inbound messages queued for the agent: inspect, replay dead letters, purge old ones."""


OUTBOX_COLUMNS = ["id", "kind", "status", "from_number", "to_number", "received_at", "attempts", "last_error", "body"]


@outbox.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "delivered", "dead", "dropped", "all"]),
    default="all",
    show_default=True,
    help="Only messages in this state.",
)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="At most this many.")
@FORMAT
def outbox_list(status: str, limit: int, fmt: str) -> None:
    """List queued messages, oldest first, with their delivery state and last error."""
    rows = open_store().outbox(None if status == "all" else status, limit)
    emit(rows, OUTBOX_COLUMNS, fmt)


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=ID)
@click.option("--all", "all_dead", is_flag=True, help="Every dead-lettered message.")
def outbox_retry(ids: tuple[int, ...], all_dead: bool) -> None:
    """Put dead-lettered messages IDS (or --all) back in the queue, due now.

    They are delivered again in order, with a fresh maximum age. The opt-out
    state is checked again at delivery.
    """
    if ids and all_dead:
        raise click.UsageError("give message IDS or --all, not both")
    if not ids and not all_dead:
        raise click.UsageError(
            "give the IDS of dead-lettered messages to retry (gateway outbox list --status dead), or --all"
        )
    count = open_store(writes=True).retry_dead(None if all_dead else list(ids))
    click.echo(f"{count} message(s) queued again.")
    if ids and count < len(ids):
        raise click.ClickException(f"{len(ids) - count} of the ids are unknown or not dead-lettered")


@outbox.command("purge")
@click.option(
    "--status",
    type=click.Choice(["delivered", "dead", "dropped"]),
    required=True,
    help="Which finished messages to delete (pending ones never are).",
)
@click.option("--older-than", "days", type=click.IntRange(1, 36500), required=True, help="Received over N days ago.")
def outbox_purge(status: str, days: int) -> None:
    """Delete finished messages from the queue to keep it small.

    The compliance records (opt-outs, the event log) are not touched.
    """
    before = (datetime.now(UTC) - timedelta(days=days)).strftime(TIMESTAMP_FORMAT)
    count = open_store(writes=True).purge_outbox(status, before)
    click.echo(f"{count} {status} message(s) received before {before} deleted.")

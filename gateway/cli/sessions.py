"""gateway sessions: conversation sessions per (user, Twilio number) pair."""

from __future__ import annotations

import click

from .options import E164, FORMAT
from .output import emit
from .root import cli, open_store


@cli.group()
def sessions() -> None:
    """Conversation sessions per (user, Twilio number) pair: active, warned or closed."""


SESSION_COLUMNS = [
    "id",
    "state",
    "engaged",
    "number",
    "twilio_number",
    "opened_at",
    "last_activity_at",
    "warned_at",
    "closed_at",
    "close_reason",
]


@sessions.command("list")
@click.option(
    "--state",
    type=click.Choice(["active", "warned", "closed", "all"]),
    default="all",
    show_default=True,
    help="Only sessions in this state.",
)
@click.option("--number", type=E164, help="Only this user's sessions (E.164).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="At most this many.")
@FORMAT
def sessions_list(state: str, number: str | None, limit: int, fmt: str) -> None:
    """List sessions, newest first. An engaged session (the user has written)
    idle for session_idle_seconds is warned, and closed session_grace_seconds
    later unless the user writes."""
    rows = open_store().sessions(None if state == "all" else state, number, limit)
    emit(rows, SESSION_COLUMNS, fmt)

"""gateway consent: consent records (add, import, withdraw, show) and Twilio's consent list."""

from __future__ import annotations

import json
from typing import Any, TextIO

import click
from tabulate import tabulate

from ..core import consent, imports
from ..store import CONSENT_COLUMNS, Store
from .options import E164, FORMAT, SAID, parsed
from .output import emit
from .root import cli, open_store


@cli.group("consent")
def consent_group() -> None:
    """Consent records: who agreed to which messages, when, how, to what wording.

    Each grant is an event in the same hash chain as opt-outs; a revocation
    (STOP, a manual or imported opt-out, a confirmed candidate) ends every
    consent it covers. A START records a grant of keyword_consent_categories.
    """


CONSENT_SHOW_COLUMNS = ["id", "sender", "category", "method", "given_at", "recorded_by", "ended_at", "wording"]


def _consent_grant(store: Store, fields: dict[str, Any], by: str) -> consent.Grant:
    try:
        return consent.grant(fields, store.consent_rules.categories, store.clock(), by)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@consent_group.command("add")
@click.argument("number", type=E164)
@click.option(
    "--sender",
    required=True,
    help="The Twilio number or Messaging Service SID the consent is to; * for the whole business.",
)
@click.option("--category", required=True, help="One of consent_categories, e.g. marketing.")
@click.option(
    "--method",
    required=True,
    type=click.Choice([m for m in consent.METHODS if m != consent.KEYWORD]),
    help="How the consent was given.",
)
@click.option("--wording", required=True, type=SAID, help="The exact wording the person agreed to.")
@click.option("--given-at", metavar="DATE", help="When it was given (a date or ISO 8601, UTC) [default: now].")
@click.option(
    "--evidence",
    multiple=True,
    metavar="KEY=VALUE",
    help="Evidence, repeatable: form_url=..., ip=..., user_agent=..., document=...",
)
@click.option("--by", "person", required=True, type=SAID, help="Who is recording it.")
def consent_add(
    number: str,
    sender: str,
    category: str,
    method: str,
    wording: str,
    given_at: str | None,
    evidence: tuple[str, ...],
    person: str,
) -> None:
    """Record that NUMBER gave consent, with its wording and evidence."""
    pairs = {}
    for item in evidence:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--evidence")
        pairs[key.strip()] = value
    fields = {"number": number, "sender": sender, "category": category, "method": method, "wording": wording}
    if given_at:
        fields["given_at"] = given_at
    if pairs:
        fields["evidence"] = pairs
    store = open_store(writes=True)
    result = store.record_consent(_consent_grant(store, fields, person))
    click.echo(f"Consent {result['id']} recorded for {number}: {category} from {sender}. Event {result['event_id']}.")


@consent_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option(
    "--by", "person", required=True, type=SAID, help="Who is importing, e.g. 'Dana Reyes, CRM export 2026-11'."
)
def consent_import(file: TextIO, person: str) -> None:
    """Import consent records from FILE.csv, all or nothing.

    Columns: number, sender, category, method, wording, and optionally
    given_at (a date or ISO 8601, UTC) and evidence (a JSON object). Every row
    is checked first: any bad row rejects the whole file, listing the lines,
    and nothing is written. Each row becomes a consent_granted event.
    """
    store = open_store(writes=True)
    grants = parsed(
        file, lambda lines: imports.parse_consents(lines, store.consent_rules.categories, store.clock(), person)
    )
    result = store.import_consents(grants)
    click.echo(f"Imported {result['recorded']} consent records from {file.name}.")


@consent_group.command("withdraw")
@click.argument("number", type=E164)
@click.option("--category", required=True, help="The kind of message NUMBER no longer agrees to, e.g. marketing.")
@click.option(
    "--sender",
    default=consent.BUSINESS,
    show_default=True,
    help="The Twilio number or Messaging Service SID it is withdrawn from; * for every sender.",
)
@click.option("--reason", required=True, type=SAID, help="How it was received, e.g. 'email to support, ticket 88'.")
@click.option("--by", "person", required=True, type=SAID, help="Who is recording it.")
def consent_withdraw(number: str, category: str, sender: str, reason: str, person: str) -> None:
    """Record that NUMBER withdrew its consent to one kind of message, keeping the others.

    Ends the matching consents with a chained consent_withdrawn event. Only
    for a category in require_consent (only then are its sends stopped);
    for anything wider record an opt-out (gateway optouts add).
    """
    problem = consent.sender_problem(sender)
    if problem:
        raise click.BadParameter(f"{sender!r} {problem}", param_hint="--sender")
    try:
        result = open_store(writes=True).withdraw_consent(number, category, sender, reason, person)
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc.args[0])) from None
    ended = ", ".join(str(i) for i in result["ended"])
    click.echo(f"{number} withdrew {category} from {sender}: consent {ended} ended. Event {result['event_id']}.")


@consent_group.command("show")
@click.argument("number", type=E164)
@click.option("--current", is_flag=True, help="Only consents that have not ended.")
@FORMAT
def consent_show(number: str, current: bool, fmt: str) -> None:
    """List NUMBER's consents, oldest first, with when each ended (a revocation ends the consents it covers).

    `gateway optouts history NUMBER` shows the whole consent timeline: grants,
    revocations and re-grants, with their chain hashes.
    """
    rows = open_store().consents(number, current=current)
    empty = f"no {'current ' if current else ''}consent on record for {number}"
    emit(rows, CONSENT_SHOW_COLUMNS if fmt == "table" else CONSENT_COLUMNS, fmt, empty)


SYNC_ITEM_COLUMNS = ["id", "contact_id", "sender_id", "status", "source", "attempts", "next_attempt_at", "last_error"]


@consent_group.command("sync")
@click.option("--status", "show", is_flag=True, help="Only show what is pending, retrying and failed (the default).")
@click.option("--retry-failed", is_flag=True, help="Put every failed item back in the queue, due now.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
def consent_sync(show: bool, retry_failed: bool, fmt: str) -> None:
    """What is waiting to reach Twilio's Consent Management API (twilio_consent_sync).

    The worker pushes, 25 items a request, retrying until Twilio takes each
    one; an item Twilio refuses five times is failed, listed here with
    Twilio's reason, until --retry-failed queues it again. Exits 1 while any
    item is failed.
    """
    if show and retry_failed:
        raise click.UsageError("give --status or --retry-failed, not both")
    store = open_store(writes=retry_failed)
    if retry_failed:
        click.echo(f"{store.retry_failed_sync()} failed item(s) queued again.")
    status = store.sync_status()
    if fmt == "json":
        click.echo(json.dumps(status, indent=2))
    else:
        enabled = "on" if store.consent_sync else "off (twilio_consent_sync = false: nothing new is queued)"
        click.echo(f"Twilio consent sync: {enabled}")
        oldest = f", the oldest queued {status['oldest_pending']}" if status["oldest_pending"] else ""
        click.echo(f"{status['pending']} pending{oldest}; {status['sent']} sent; {status['failed']} failed.")
        for title, rows in (("Retrying", status["retrying_items"]), ("Failed", status["failed_items"])):
            if rows:
                click.echo(f"{title}:")
                click.echo(tabulate([[row[c] for c in SYNC_ITEM_COLUMNS] for row in rows], headers=SYNC_ITEM_COLUMNS))
    if status["failed"]:
        raise SystemExit(1)

"""gateway optouts: list, history and export; add, remove and import; revocation candidates."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from ..core import consent, imports, revocation, spreadsheet
from ..store import EVENT_COLUMNS, EXPORT_COLUMNS, OPT_OUT_COLUMNS
from .options import E164, FORMAT, ID, TEXT, date_bound, parsed
from .output import emit
from .root import cli, load_settings, open_store


@cli.group()
def optouts() -> None:
    """Opt-out records: list, history and export; add, remove and import; review revocation candidates."""


@optouts.command("list")
@click.option("--number", type=E164, help="Only this sender number.")
@click.option("--twilio-number", type=E164, help="Only this Twilio number.")
@click.option(
    "--since", callback=date_bound, metavar="DATE", help="Opted out at or after DATE (2026-11-01 or ISO 8601)."
)
@click.option(
    "--until", callback=date_bound, metavar="DATE", help="Opted out at or before DATE (a bare date: that whole day)."
)
@FORMAT
def optouts_list(number: str | None, twilio_number: str | None, since: str | None, until: str | None, fmt: str) -> None:
    """List the pairs that are opted out now, oldest first."""
    rows = open_store().current_opt_outs(number=number, twilio_number=twilio_number, since=since, until=until)
    emit(rows, OPT_OUT_COLUMNS, fmt)


@optouts.command("history")
@click.argument("number", type=E164)
@FORMAT
def optouts_history(number: str, fmt: str) -> None:
    """Show NUMBER's consent timeline: every event for it (E.164), across all Twilio numbers, oldest first.

    Each event's "change" says what it did to consent: granted, revoked,
    re-granted, opted in (or its kind: help, dropped, suppressed, ...). The
    history holds the ledger's events, not ordinary messages: a number that
    only ever wrote to the agent has none, and says so (on stderr).
    """
    rows = consent.timeline(open_store().history(number))
    if fmt == "table":  # the whole detail is in the JSON and CSV
        rows = [{**row, "detail": consent.brief(row)} for row in rows]
    columns = ["id", "change", *EVENT_COLUMNS[1:]]
    empty = HISTORY_EMPTY.format(number=number)
    emit(rows, [c for c in columns if fmt != "table" or c != "hash"], fmt, empty)


# What a history without events says: what it would hold, since a number that sent only ordinary messages has one.
HISTORY_EMPTY = (
    "no consent records for {number}: no opt-out, opt-in, HELP, consent, or dropped or suppressed message "
    "(ordinary messages to the agent are not consent records: see gateway outbox list)"
)


@optouts.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV with a header row, or one JSON array.",
)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="File to write [default: stdout].")
def optouts_export(fmt: str, output: str | None) -> None:
    """Export every event with its chain hash, oldest first.

    Each cell is exactly the value its hash covers, a formula a texter sent
    included (unlike the other CSVs, which are neutralised for spreadsheets):
    check it against the chain, open it in a spreadsheet only with formulas
    off. Streams in bounded memory however long the log is. With --output, a
    progress bar is shown when stderr is a terminal; the file is written
    under a temporary name and renamed when complete, so a failed export
    never leaves a truncated file behind.
    """
    store = open_store()
    total = store.count_events()
    target = Path(output) if output else None
    partial = target.with_name(target.name + ".partial") if target else None
    handle = partial.open("w", newline="", encoding="utf-8") if partial else sys.stdout
    try:
        events = store.iter_events()
        show = target is not None and sys.stderr.isatty()
        with (
            click.progressbar(events, length=total, label="Exporting", file=sys.stderr)
            if show
            else _nullbar(events) as rows
        ):
            _write_events(rows, fmt, handle)
        if partial:
            handle.close()
            partial.replace(target)
        else:
            handle.flush()
    except BaseException:
        if partial:
            handle.close()
            partial.unlink(missing_ok=True)
        raise
    if target:
        click.echo(f"Exported {total} events to {target}", err=True)


@contextlib.contextmanager
def _nullbar(items: Iterable[Any]) -> Iterator[Iterable[Any]]:
    yield items


def _write_events(rows: Iterable[dict[str, Any]], fmt: str, handle: TextIO) -> None:
    if fmt == "csv":
        # Every value as it was hashed, never neutralised for spreadsheets (see gateway.spreadsheet).
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, lineterminator=spreadsheet.LINE_END)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
        return
    handle.write("[")
    for index, row in enumerate(rows):
        row = {
            **row,
            "state_changed": bool(row["state_changed"]),
            "detail": json.loads(row["detail"]) if row["detail"] else None,
        }
        handle.write(("," if index else "") + "\n" + json.dumps(row, ensure_ascii=False))
    handle.write("\n]\n")


@optouts.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--source", "name", required=True, type=TEXT, help="Where the list comes from, e.g. 'old-crm-2025'.")
def optouts_import(file: TextIO, name: str) -> None:
    """Import an existing opt-out list from FILE.csv.

    Columns: number, twilio_number, opted_out_at (E.164 numbers; a date or
    ISO 8601 date-time, UTC unless an offset is given). Every row is checked
    first: any bad row rejects the whole file, listing the lines, and nothing
    is written. Each row becomes an opt_out event with source "import".
    """
    rows = parsed(file, imports.parse)
    result = open_store(writes=True).import_opt_outs(rows, name)
    click.echo(
        f"Imported {result['rows']} rows from {file.name}: {result['opted_out']} pairs opted out, "
        f"{result['already_opted_out']} already opted out."
    )


CANDIDATE_COLUMNS = [
    "id",
    "received_at",
    "age_business_days",
    "due_by",
    "overdue",
    "number",
    "twilio_number",
    "body",
    "pattern",
    "status",
    "resolved_by",
    "resolved_at",
    "resolution_note",
]


def revocation_settings() -> revocation.Detector:
    return load_settings()["REVOCATION"]


@optouts.command("candidates")
@click.option(
    "--status",
    type=click.Choice(revocation.STATUSES),
    default="open",
    show_default=True,
    help="Which candidates to list.",
)
@FORMAT
def optouts_candidates(status: str, fmt: str) -> None:
    """List revocation candidates: messages that read like a revocation.

    Each shows its age in business days and the date by which it must be
    honoured (10 business days by default; weekends skipped, public holidays
    not, so the due date can only be early). Resolve with `optouts confirm`
    or `optouts dismiss`.
    """
    detector = revocation_settings()
    rows = revocation.with_deadlines(open_store().revocation_candidates(status), detector.business_days_to_honour)
    emit(rows, CANDIDATE_COLUMNS, fmt)


def _resolve(candidate_id: int, confirm: bool, person: str, note: str | None) -> None:
    if not person.strip():
        raise click.UsageError("--by must not be empty")
    try:
        result = open_store(writes=True).resolve_candidate(
            candidate_id, confirm, person.strip(), (note or "").strip() or None
        )
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"Candidate {candidate_id} {result['status']} by {person.strip()}. Event {result['event_id']}.")


@optouts.command("confirm")
@click.argument("candidate_id", type=ID)
@click.option("--by", "person", required=True, type=TEXT, help="Who is confirming.")
@click.option("--note", type=TEXT, help="Why, or any reference (optional).")
def optouts_confirm(candidate_id: int, person: str, note: str | None) -> None:
    """Confirm candidate CANDIDATE_ID as a revocation: the pair is opted out (source manual)."""
    _resolve(candidate_id, True, person, note)


@optouts.command("dismiss")
@click.argument("candidate_id", type=ID)
@click.option("--by", "person", required=True, type=TEXT, help="Who is dismissing.")
@click.option("--note", required=True, type=TEXT, help="Why it is not a revocation, e.g. 'asked about lunch hours'.")
def optouts_dismiss(candidate_id: int, person: str, note: str) -> None:
    """Dismiss candidate CANDIDATE_ID: it was not a revocation. The reason is recorded."""
    if not note.strip():
        raise click.UsageError("--note must not be empty")
    _resolve(candidate_id, False, person, note)


def _manual(opted_out: bool):
    verb = "add" if opted_out else "remove"
    summary = (
        f"Record that NUMBER {'revoked consent' if opted_out else 'gave consent again'} by other means "
        "(a call, an email). Logged with source 'manual', who and why."
    )

    @optouts.command(verb, help=summary, short_help=summary.split(".")[0] + ".")
    @click.argument("number", type=E164)
    @click.option("--twilio-number", type=E164, required=True, help="The Twilio number the revocation concerns.")
    @click.option(
        "--reason", required=True, type=TEXT, help="How it was received, e.g. 'phone call to support, ticket 4411'."
    )
    @click.option("--by", "person", required=True, type=TEXT, help="Who is recording it.")
    def command(number: str, twilio_number: str, reason: str, person: str) -> None:
        if not reason.strip() or not person.strip():
            raise click.UsageError("--reason and --by must not be empty")
        result = open_store(writes=True).record_manual(number, twilio_number, opted_out, reason.strip(), person.strip())
        state = "opted out" if opted_out else "opted in"
        change = "" if result["state_changed"] else " (it already was; the record is kept)"
        click.echo(f"{number} is {state} of {twilio_number}{change}. Event {result['event_id']}.")

    return command


optouts_add = _manual(True)
optouts_remove = _manual(False)

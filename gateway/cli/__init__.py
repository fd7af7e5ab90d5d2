"""The ``gateway`` command: serve, initialise the database, simulate Twilio, query opt-outs."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import secrets
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click
from tabulate import tabulate

from .. import settings
from ..core import checkup, consent, imports, keys, ledger, numbers, revocation, spreadsheet
from ..core.messages import unstorable
from ..core.stats import FIELDS as STAT_FIELDS
from ..core.stats import summarise
from ..core.timestamps import FORMAT as TIMESTAMP_FORMAT
from ..core.timestamps import parse_bound
from ..messaging import services
from ..messaging.worker import Worker
from ..settings import ConfigError
from ..store import (
    CONSENT_COLUMNS,
    EVENT_COLUMNS,
    EXPORT_COLUMNS,
    OPT_OUT_COLUMNS,
    Store,
    StoreError,
    StoreUnavailable,
    check_url,
    from_settings,
)
from ..store.copy import copy_records, total_rows
from ..web.signature import sign

DEFAULT_URL = "http://127.0.0.1:8000/twilio/sms"


def instance_path() -> str:
    """The instance folder the app would use (GATEWAY_INSTANCE_PATH, else ./instance)."""
    return settings.instance_folder()


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deployment's settings (no auth token needed), or the one-line reason a setting is wrong."""
    try:
        return settings.load(overrides, instance_path=instance_path(), require_token=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _store(readonly: bool) -> Store:
    """The database DATABASE_URL names, closed when the command ends."""
    store = from_settings(load_settings(), readonly=readonly)
    click.get_current_context().call_on_close(store.close)
    return store


def _account_sids(store: Store, given: Sequence[str]) -> list[str]:
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
    store = _store(readonly=not writes)
    store.check_schema()
    return store


class Group(click.Group):
    """The ``gateway`` group: a database problem ends any command with one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


class PhoneNumber(click.ParamType):
    """An E.164 number, checked as everywhere else (:mod:`gateway.numbers`)."""

    name = "E.164 number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        reason = numbers.problem(value)
        if reason:
            self.fail(f"{value!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}", param, ctx)
        return value


E164 = PhoneNumber()


class StoredText(click.ParamType):
    """Text that is kept in the records: it must be storable as it is (no NUL; valid Unicode)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = unstorable(value)
        if problem:
            self.fail(f"{value!r} {problem}", param, ctx)
        return value


TEXT = StoredText()


class Said(StoredText):
    """Storable text that says something: stripped, and not empty (who recorded a record, and why)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx).strip()
        if not text:
            self.fail("must not be empty", param, ctx)
        return text


SAID = Said()
ID = click.IntRange(1, 2**63 - 1)  # what either database can hold as an id


def _emit(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, empty: str = "(none)") -> None:
    if fmt != "json":  # nested values (an event's detail) as compact JSON text
        rows = [
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for k, v in r.items()} for r in rows
        ]
    if fmt == "json":
        click.echo(json.dumps([{c: row[c] for c in columns} for row in rows], indent=2))
    elif fmt == "csv":
        click.echo(spreadsheet.text(rows, columns), nl=False)
    elif rows:
        click.echo(tabulate([[row[c] for c in columns] for row in rows], headers=list(columns)))
    else:
        click.echo(empty, err=True)


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """SMS compliance gateway for Twilio.

    Every command reads DATABASE_URL (default: gateway.db in the instance
    folder) and the other settings described in the README.
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the gateway locally (development server).

    Without TWILIO_AUTH_TOKEN a local development token is generated once,
    kept in the instance folder and printed; `gateway simulate` signs with it.
    Real Twilio traffic is signed with your account's auth token: set
    TWILIO_AUTH_TOKEN for that. In production run gunicorn (see the Procfile).
    """
    from werkzeug.serving import run_simple

    from .. import create_app, report_start

    try:
        app = create_app({"ALLOW_DEV_TOKEN": True, "REPORT_START": False})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if app.config["DEV_TOKEN"]:
        click.echo(
            f"TWILIO_AUTH_TOKEN is not set: using the local development token "
            f"{app.config['AUTH_TOKENS'][0]}\n"
            f"(kept in {os.path.join(app.instance_path, settings.DEV_TOKEN_FILE)}). "
            "Requests from real Twilio will be rejected until you set TWILIO_AUTH_TOKEN "
            "to your account's auth token.",
            err=True,
        )
    click.echo(f"Gateway webhook: http://{host}:{port}/twilio/sms", err=True)
    click.echo(
        f"Console:         http://{host}:{port}/console (sign in with a key: gateway keys create --role auditor)",
        err=True,
    )
    report_start(app)  # after the banner: the first screen says where things are, then what to settle
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the gateway logs each request itself
    run_simple(host, port, app, threaded=True, use_reloader=False)


@cli.command("init-db")
def init_db() -> None:
    """Create the database, or migrate it to the current schema.

    Safe to run from several machines at once (the first migrates, the
    others wait and find it done): the release phase of a Heroku-style
    platform runs it before the new version serves.
    """
    store = _store(readonly=False)
    version = store.init_schema()
    click.echo(f"Database ready: {store.describe()}, schema version {version}")


def _params(pairs: Sequence[str]) -> list[tuple[str, str]]:
    result = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        result.append((key, value))
    return result


@cli.command()
@click.argument("body")
@click.option("--from", "from_number", required=True, type=E164, help="Sender's number (E.164), e.g. +14155550100.")
@click.option("--to", "to_number", required=True, type=E164, help="Your Twilio number (E.164) the message was sent to.")
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="Webhook URL exactly as Twilio would call it (an ngrok URL works).",
)
@click.option(
    "--token",
    envvar="TWILIO_AUTH_TOKEN",
    help="Auth token to sign with [default: $TWILIO_AUTH_TOKEN, else the local development token].",
)
@click.option("--sid", help="MessageSid to send [default: a new random SM... id]; repeat one to test duplicates.")
@click.option(
    "--account-sid",
    envvar="TWILIO_ACCOUNT_SID",
    help="AccountSid to send: with [accounts], the account whose --token signs "
    "[default: $TWILIO_ACCOUNT_SID, else AC followed by 32 zeros].",
)
@click.option(
    "--param",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra form parameter, e.g. OptOutType=STOP. Repeatable.",
)
def simulate(
    body: str,
    from_number: str,
    to_number: str,
    url: str,
    token: str | None,
    sid: str | None,
    account_sid: str | None,
    extra: Sequence[str],
) -> None:
    """Send a correctly signed inbound SMS webhook and print the TwiML reply.

    BODY is the message text. The request is signed exactly as Twilio signs
    it, over --url and every form parameter.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="--url")
    given = token
    token = token or settings.dev_token(instance_path(), create=False)
    if not token:
        raise click.ClickException(
            "no token to sign with: set TWILIO_AUTH_TOKEN or --token, "
            "or start `gateway serve` once to create the development token"
        )
    params = [
        ("MessageSid", sid or "SM" + secrets.token_hex(16)),
        ("AccountSid", account_sid or "AC" + "0" * 32),
        ("From", from_number),
        ("To", to_number),
        ("Body", body),
        ("NumMedia", "0"),
        *_params(extra),
    ]
    signature = sign(url, params, token)
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            click.echo(response.read().decode())
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code == 403 and not given:
            hint = (
                "; it was signed with this machine's local development token, as neither --token nor "
                "TWILIO_AUTH_TOKEN is set here: if the server runs with TWILIO_AUTH_TOKEN, set the same in this shell"
            )
        raise click.ClickException(f"HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach {url}: {reason} (is `gateway serve` running?)") from None


@cli.group("db")
def db_group() -> None:
    """The database itself: what it holds, and copying it to another database."""


@db_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def db_status(fmt: str) -> None:
    """Show which database DATABASE_URL names, its schema version and its rows per table. Writes nothing."""
    store = _store(readonly=True)
    found, expected = store.backend.schema_version(), store.backend.latest_version
    counts = store.table_counts() if found == expected else {}
    if fmt == "json":
        click.echo(json.dumps({"database": store.describe(), "schema_version": found, "rows": counts}, indent=2))
        return
    click.echo(f"{store.describe()}: schema version {found} (this gateway: {expected})")
    if found != expected:
        click.echo("run `gateway init-db` to create or migrate it", err=True)
    elif counts:
        click.echo(tabulate(sorted(counts.items()), headers=["table", "rows"]))


def _database_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@db_group.command("copy")
@click.option("--from", "source", required=True, metavar="URL", callback=_database_url, help="The database to copy.")
@click.option("--to", "target", required=True, metavar="URL", callback=_database_url, help="An empty database to fill.")
def db_copy(source: str, target: str) -> None:
    """Copy every record from one database to another: SQLite to PostgreSQL, or back.

    The source is read in one consistent snapshot and never written, so a
    gateway may still be running on it; the target must hold no records
    (its schema is created if needed) and is filled in one transaction, so a
    failed copy leaves it empty. Afterwards every table's row count is
    compared and the target's hash chain must verify to the source's head.
    A progress bar is shown when stderr is a terminal. URLs as DATABASE_URL:
    sqlite:///path.db or postgresql://user:password@host:5432/database.
    """
    if sys.stderr.isatty():
        with click.progressbar(length=total_rows(source), label="Copying", file=sys.stderr) as bar:
            copied = copy_records(source, target, bar.update)
    else:
        copied = copy_records(source, target)
    for table, count in copied.counts.items():
        click.echo(f"{table:<24}{count:>12} rows")
    click.echo(
        f"Copied {copied.rows} rows; the same in every table. Target ledger intact: "
        f"{copied.verification.checked} events, head {copied.verification.head} (the source's)."
    )


@cli.group()
def audit() -> None:
    """Check the integrity of the compliance records."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_verify(as_json: bool) -> None:
    """Walk the event ledger's hash chain and report the first broken event.

    Exits 0 when every event's hash and link are intact and the chain ends at
    the recorded head; exits 1 naming the first broken event otherwise (an
    edited, deleted or inserted row).
    """
    result = open_store().verify_ledger()
    click.echo(json.dumps(result.as_dict()) if as_json else result.summary())
    if not result.ok:
        raise SystemExit(1)


@audit.command("proof")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="NAME_OR_SID",
    help="The account(s) the proof is for: their events whole, every other event by its digest. "
    "Repeatable. Without it, every event whole.",
)
@click.option(
    "--output", type=click.File("w", encoding="utf-8"), default="-", help="Write it here [default: standard output]."
)
def audit_proof(accounts: Sequence[str], output: Any) -> None:
    """Write a proof of the ledger for an account's auditor: one JSON object a line, the head first.

    The auditor checks it with `gateway audit check-proof FILE`, anywhere,
    without the database: every link of the whole chain and the contents of
    their own events, never seeing another account's fields. Writes nothing
    to the database.
    """
    store = open_store()
    sids = _account_sids(store, accounts) if accounts else None
    for record in store.ledger_proof(sids):
        output.write(json.dumps(record, ensure_ascii=False) + "\n")


@audit.command("check-proof")
@click.argument("proof", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_check_proof(proof: str, as_json: bool) -> None:
    """Check a ledger proof (from `gateway audit proof` or GET /v1/audit/proof) without any database.

    Exits 0 when the chain is whole up to the head the proof names, 1 naming
    the first broken event otherwise, 2 when PROOF is not a proof.
    """
    try:
        with click.open_file(proof, encoding="utf-8") as handle:
            records = (json.loads(line) for line in handle if line.strip())
            result = ledger.verify_proof(records)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {proof}: {exc.strerror}", param_hint="PROOF") from None
    except (ValueError, KeyError, TypeError) as exc:
        message = str(exc) if str(exc).startswith("not a ledger proof") else f"not a ledger proof: {exc}"
        raise click.UsageError(message) from None
    click.echo(json.dumps(result.as_dict()) if as_json else result.summary())
    if not result.ok:
        raise SystemExit(1)


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
    sids = _account_sids(store, accounts)
    key = keys.new_key()
    key_id = store.add_api_key(keys.hash_key(key), role, label, sids or None)
    click.echo(key)
    limited = f", limited to {', '.join(sorted(set(sids)))}" if sids else ""
    click.echo(f"Key {key_id} ({role}{limited}) created. Store it now: only its hash is kept.", err=True)


@keys_group.command("list")
@FORMAT
def keys_list(fmt: str) -> None:
    """List keys (id, role, label, the accounts each is limited to, dates); never the keys themselves."""
    _emit(open_store().list_api_keys(), ["id", "role", "label", "accounts", "created_at", "revoked_at"], fmt)


@keys_group.command("revoke")
@click.argument("key_id", type=ID)
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID at once."""
    if not open_store(writes=True).revoke_api_key(key_id):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"Key {key_id} revoked.")


# -- opt-out queries ---------------------------------------------------------------


def _bound(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_bound(value, end_of_day=param.name == "until")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option("--since", callback=_bound, metavar="DATE", help="Messages created at or after DATE.")
@click.option(
    "--until", callback=_bound, metavar="DATE", help="Messages created at or before DATE (a bare date: that day)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
def stats(since: str | None, until: str | None, fmt: str) -> None:
    """Outbound delivery figures: sent, delivered, undelivered, failed, suppressed
    and the delivery rate, in total, per Twilio number and per day.

    The delivery rate is delivered / (delivered + undelivered + failed).
    """
    figures = summarise(open_store().outbound_counts(since, until))
    if fmt == "json":
        click.echo(json.dumps({"since": since, "until": until, **figures}, indent=2))
        return
    columns = list(STAT_FIELDS)
    click.echo(tabulate([[_rate(figures["totals"], c) for c in columns]], headers=columns))
    for title, key, label in (("Per Twilio number", "by_twilio_number", "twilio_number"), ("Per day", "by_day", "day")):
        click.echo(f"\n{title}:")
        rows = figures[key]
        click.echo(
            tabulate([[r[label], *(_rate(r, c) for c in columns)] for r in rows], headers=[label, *columns])
            if rows
            else "(none)"
        )


def _rate(row: dict[str, Any], column: str) -> Any:
    value = row[column]
    if column == "delivery_rate":
        return "-" if value is None else f"{value:.1%}"
    return value


@cli.group()
def optouts() -> None:
    """Opt-out records: list, history and export; add, remove and import; review revocation candidates."""


@optouts.command("list")
@click.option("--number", type=E164, help="Only this sender number.")
@click.option("--twilio-number", type=E164, help="Only this Twilio number.")
@click.option("--since", callback=_bound, metavar="DATE", help="Opted out at or after DATE (2026-11-01 or ISO 8601).")
@click.option(
    "--until", callback=_bound, metavar="DATE", help="Opted out at or before DATE (a bare date: that whole day)."
)
@FORMAT
def optouts_list(number: str | None, twilio_number: str | None, since: str | None, until: str | None, fmt: str) -> None:
    """List the pairs that are opted out now, oldest first."""
    rows = open_store().current_opt_outs(number=number, twilio_number=twilio_number, since=since, until=until)
    _emit(rows, OPT_OUT_COLUMNS, fmt)


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
    _emit(rows, [c for c in columns if fmt != "table" or c != "hash"], fmt, empty)


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


def _not_utf8(name: str, exc: UnicodeDecodeError) -> str:
    return (
        f"nothing imported: {name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start}); save it as CSV UTF-8"
    )


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
    try:
        rows = imports.parse(file)
    except UnicodeDecodeError as exc:
        raise click.ClickException(_not_utf8(file.name, exc)) from None
    except imports.ImportError_ as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"nothing imported: {len(exc.errors)} problem(s) in {file.name}") from None
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
    _emit(rows, CANDIDATE_COLUMNS, fmt)


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


@cli.command()
@click.option("--once", is_flag=True, help="One round (sessions, deliveries, sends) of what is due now, then exit.")
@click.option(
    "--interval",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Seconds to wait when nothing is due (a cheap read, no write, each time).",
)
def worker(once: bool, interval: float) -> None:
    """Send queued outbound SMS through Twilio, deliver queued inbound
    messages to the agent and time out idle sessions (warning, then
    session.closed), until stopped (SIGTERM or Ctrl-C).

    Several workers may run at once: messages are leased in the database, so
    each is handled by one worker, and a crashed worker's lease runs out.
    Delivery to the agent is at least once and in order per conversation.
    """
    from .. import create_app, report_start

    try:  # the web server gives the start-up report; the worker, only what concerns its own machine
        app = create_app({"ALLOW_DEV_TOKEN": True, "REPORT_START": False})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    report_start(app, only=checkup.MACHINE_CHECKS)
    outbound, forwarder = services.of(app).outbound, services.of(app).forwarder
    if not outbound.can_send:
        click.echo(f"worker: not sending SMS, {outbound.why_disabled()}", err=True)
    elif outbound.console:
        click.echo("worker: SMS backend is console: messages are printed here, not sent", err=True)
    if not forwarder.enabled:
        click.echo(
            "worker: not delivering to an agent (set GATEWAY_AGENT_URL or GATEWAY_AGENT_HANDLER); "
            "messages wait in the queue",
            err=True,
        )
    if not outbound.can_send and not forwarder.enabled:
        click.echo("worker: idle (nothing to send or deliver; sessions still time out)", err=True)
    runner = Worker(app, interval)
    if once:
        with app.app_context():
            try:
                done = runner.round()
            except StoreUnavailable as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(
            f"worker: {done.delivered} delivery(ies) and {done.sent} message(s) attempted; "
            f"{done.warned} session(s) warned, {done.closed} closed",
            err=True,
        )
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    runner.run(stopping)


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
    _emit(rows, SESSION_COLUMNS, fmt)


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
    _emit(rows, OUTBOX_COLUMNS, fmt)


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


@cli.group("templates")
def templates_group() -> None:
    """SMS templates (the folder templates_dir names, one TOML file each)."""


@templates_group.command("list")
@FORMAT
def templates_list(fmt: str) -> None:
    """List templates with their tokens; loading fails on any invalid template, naming the file."""
    configured = load_settings()
    rows = [
        {"title": t.title, "tokens": ", ".join(t.tokens), "characters": len(t.body), "file": f"{t.name}.toml"}
        for t in configured["TEMPLATES"].values()
    ]
    _emit(rows, ["title", "tokens", "characters", "file"], fmt)


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
    try:
        grants = imports.parse_consents(file, store.consent_rules.categories, store.clock(), person)
    except UnicodeDecodeError as exc:
        raise click.ClickException(_not_utf8(file.name, exc)) from None
    except imports.ImportError_ as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"nothing imported: {len(exc.errors)} problem(s) in {file.name}") from None
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
    _emit(rows, CONSENT_SHOW_COLUMNS if fmt == "table" else CONSENT_COLUMNS, fmt, empty)


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


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
@click.option(
    "--env",
    type=click.Choice(["dev", "sandbox", "live"]),
    help="Judge the deployment as this environment would (its senders, and in sandbox and live every finding "
    "as a failure that dev shows as 'before going live') [default: GATEWAY_ENV].",
)
def doctor(fmt: str, env: str | None) -> None:
    """Check the deployment against the rules it must follow.

    The FCC's per-se revocation words in every number's stop keywords; a STOP
    confirmation that only confirms (no link, one plain text of at most 160
    GSM-7 characters); a HELP reply that names the brand and a contact (CTIA);
    the opt-out scope against the revoke-all rule (in force from 2027-01-31);
    revocation candidates past their due date; the ledger's verification;
    senders without a status callback; an SQLite file on a network
    filesystem; on PostgreSQL, server settings that lose acknowledged
    commits in a crash (fsync or full_page_writes off) and this machine's
    clock against the server's. One line per finding, with its rule and how
    to fix it. In dev, what must be settled before going live (a HELP
    contact, the revoke-all scope) is listed as that; `--env live` shows what
    live would say. Reads only. Exits 1 when any finding is a failure.
    """
    configured = load_settings({"ENV": env} if env else None)
    today = datetime.now(UTC).date()
    findings = checkup.configuration_findings(configured, today)
    try:
        store = open_store()
        detector = configured["REVOCATION"]
        candidates = revocation.with_deadlines(store.revocation_candidates("open"), detector.business_days_to_honour)
        findings += checkup.candidate_findings(
            [c for c in candidates if c["overdue"]], detector.business_days_to_honour
        )
        result = store.verify_ledger()
        findings += checkup.ledger_findings(result.ok, result.summary())
        findings += checkup.durability_findings(store.unsafe_settings())
        findings += checkup.filesystem_findings(store.network_filesystem(), store.describe())
        findings += checkup.clock_findings(store.clock_offset(), configured)
    except StoreError as exc:
        findings += checkup.database_findings(str(exc))
    findings = checkup.for_environment(findings, configured["ENV"])
    failed = any(finding.level == checkup.FAIL for finding in findings)
    if fmt == "json":
        click.echo(json.dumps({"ok": not failed, "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            click.echo(finding.line())
        before = sum(finding.level == checkup.BEFORE_LIVE for finding in findings)
        settle = f" {before} to settle before going live (see them with --env live)." if before else ""
        click.echo(f"{len(findings)} finding(s); " + ("failures above." if failed else "no failure.") + settle)
    if failed:
        raise SystemExit(1)

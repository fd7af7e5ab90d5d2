"""gateway db: what the database holds, and copying it to another database."""

from __future__ import annotations

import json
import sys

import click
from tabulate import tabulate

from ..store import check_url
from ..store.copy import copy_records, total_rows
from .root import cli, store_of


@cli.group("db")
def db_group() -> None:
    """The database itself: what it holds, and copying it to another database."""


@db_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def db_status(fmt: str) -> None:
    """Show which database DATABASE_URL names, its schema version and its rows per table. Writes nothing."""
    store = store_of(readonly=True)
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

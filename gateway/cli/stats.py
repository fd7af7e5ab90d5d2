"""gateway stats: outbound delivery counts."""

from __future__ import annotations

import json
from typing import Any

import click
from tabulate import tabulate

from ..core.stats import FIELDS as STAT_FIELDS
from ..core.stats import summarise
from .options import date_bound
from .root import cli, open_store


@cli.command()
@click.option("--since", callback=date_bound, metavar="DATE", help="Messages created at or after DATE.")
@click.option(
    "--until", callback=date_bound, metavar="DATE", help="Messages created at or before DATE (a bare date: that day)."
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

"""Rows as a table, JSON or CSV (safe to open in a spreadsheet)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from tabulate import tabulate

from ..core import spreadsheet


def emit(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, empty: str = "(none)") -> None:
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

"""What every command checks its input with: option types (E.164 numbers, storable text, ids, dates), --format,
and the reading of an imported file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click

from ..core import imports, numbers
from ..core.messages import unstorable
from ..core.timestamps import parse_bound


class PhoneNumber(click.ParamType):
    """An E.164 number, checked as everywhere else (:mod:`gateway.core.numbers`)."""

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


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)


# -- opt-out queries ---------------------------------------------------------------


def date_bound(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_bound(value, end_of_day=param.name == "until")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


Parsed = TypeVar("Parsed")


def parsed(file: TextIO, parse: Callable[[TextIO], Parsed]) -> Parsed:
    """What ``parse`` (:mod:`gateway.core.imports`) makes of an imported FILE; else every bad line on stderr
    and the command ends saying nothing was imported (a file that is not UTF-8 says which byte)."""
    try:
        return parse(file)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"nothing imported: {file.name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as CSV UTF-8"
        ) from None
    except imports.ImportError_ as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"nothing imported: {len(exc.errors)} problem(s) in {file.name}") from None

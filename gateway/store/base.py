"""What every record area relies on: the backend, the clock, the opt-out scope, the accounts, the durability."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ..core.accounts import Accounts
from ..core.consent import Clarification, Rules
from ..core.scope import Scope
from ..core.timestamps import FORMAT
from .backend import Backend


class Records:
    """Base of the record areas that make up :class:`gateway.store.Store`."""

    backend: Backend
    clock: Callable[[], str]
    scope: Scope
    accounts: Accounts
    durability: str
    consent_rules: Rules
    clarification: Clarification | None

    def account_of(self, via: str) -> str | None:
        """The Account SID of the account that owns ``via`` (a Twilio number or MG SID), if known."""
        owner = self.accounts.owner_of(via)
        return owner.sid if owner else None


def plus_seconds(stamp: str, seconds: float) -> str:
    """A stored timestamp moved by ``seconds`` (negative: earlier)."""
    moment = datetime.strptime(stamp, FORMAT) + timedelta(seconds=seconds)
    return moment.strftime(FORMAT)


def where(*conditions: tuple[str, object]) -> tuple[str, list[object]]:
    """`` WHERE`` text for the conditions whose value is not None (each ``"column = ?"``), and its parameters.

    A tuple value fills as many ``?`` as it holds (``"(a, b) > (?, ?)"``).
    """
    used = [(clause, value) for clause, value in conditions if value is not None]
    if not used:
        return "", []
    params: list[object] = []
    for _, value in used:
        params.extend(value) if isinstance(value, tuple) else params.append(value)
    return " WHERE " + " AND ".join(clause for clause, _ in used), params


def one_of(column: str, values: Sequence[object]) -> tuple[str, tuple[object, ...]]:
    """``column IN (?, ...)`` and its parameters; for no values, a condition no row meets (``IN ()`` is
    valid SQLite but a syntax error on PostgreSQL)."""
    if not values:
        return "1 = 0", ()
    return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)


def in_accounts(accounts: Sequence[str] | None) -> tuple[str, tuple[object, ...] | None]:
    """A :func:`where` condition: rows of these accounts only (None: every account's, and those without one;
    an empty list: none)."""
    if accounts is None:
        return "", None  # no condition: where() leaves out a value of None
    return one_of("account", accounts)


def page(limit: int | None, offset: int = 0) -> tuple[str, list[int]]:
    """``LIMIT``/``OFFSET`` text (none when ``limit`` is None and ``offset`` 0) and its parameters."""
    if limit is None:
        return (" LIMIT ? OFFSET ?", [2**62, offset]) if offset else ("", [])
    return " LIMIT ? OFFSET ?", [limit, offset]

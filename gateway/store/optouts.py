"""Opt-out state per (sender, Twilio number) pair, and every way it changes.

A pair is opted out while it has a row in ``opt_outs``; each change is also
a chained event, written in the same transaction. Which rows cover a
conversation is the ``opt_out_scope`` rule (:mod:`gateway.scope`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from ..core import events
from ..core.scope import ANY, Cover, Scope
from .backend import Tx
from .base import Records, in_accounts, one_of, page, where
from .consents import end_consents
from .ledger import append_event

OPT_OUT_COLUMNS = ["number", "twilio_number", "opted_out_at", "source", "message_sid"]
# The order of the opt-out list, and what names a place in it (a page's first or last row).
LIST_KEY = ("opted_out_at", "number", "twilio_number")
_KEY = f"({', '.join(LIST_KEY)})"


def _list_filter(
    number: str | None,
    twilio_number: str | None,
    since: str | None,
    until: str | None,
    after: tuple[str, str, str] | None = None,
    before: tuple[str, str, str] | None = None,
    accounts: Sequence[str] | None = None,
) -> tuple[str, list[object]]:
    return where(
        in_accounts(accounts),
        ("number = ?", number),
        ("twilio_number = ?", twilio_number),
        ("opted_out_at >= ?", since),
        ("opted_out_at <= ?", until),
        (f"{_KEY} > (?, ?, ?)", tuple(after) if after is not None else None),
        (f"{_KEY} < (?, ?, ?)", tuple(before) if before is not None else None),
    )


@lru_cache(maxsize=1024)
def _cover_clause(cover: Cover) -> tuple[str, tuple[str, ...]]:
    """SQL condition on opt_outs rows matching ``cover``, with its parameters."""
    if ANY in cover.numbers:
        return "1 = 1", ()
    numbers, number_params = one_of("twilio_number", cover.numbers)
    if not cover.services:
        return f"({numbers})", number_params
    services, service_params = one_of("messaging_service_sid", cover.services)
    return f"({numbers} OR {services})", (*number_params, *service_params)


def covered(cover: Cover, number: str) -> tuple[str, tuple]:
    """An SQL condition (and its parameters) that holds when an opt-out in ``cover`` (:meth:`Scope.cover`)
    covers ``number``."""
    clause, params = _cover_clause(cover)
    return f"EXISTS (SELECT 1 FROM opt_outs WHERE number = ? AND {clause})", (number, *params)  # noqa: S608


def cover_arguments(cover: Cover) -> tuple[bool, list[str], list[str]]:
    """``cover`` as a schema routine takes it (the same rule as :func:`covered`): (every opt-out covers,
    the Twilio numbers whose opt-outs cover, the Messaging Services whose opt-outs cover)."""
    if ANY in cover.numbers:
        return True, [], []
    return False, list(cover.numbers), list(cover.services)


def covering(tx: Tx, scope: Scope, number: str, via: str, service_hint: str | None = None) -> str | None:
    """The Twilio number of an opt-out that covers ``number`` through ``via`` (a Twilio number or MG SID)."""
    clause, params = _cover_clause(scope.cover(via, service_hint))
    return tx.scalar(
        f"SELECT twilio_number FROM opt_outs WHERE number = ? AND {clause} LIMIT 1",  # noqa: S608
        (number, *params),
    )


def set_state(
    tx: Tx,
    scope: Scope,
    number: str,
    twilio_number: str,
    opted_out: bool,
    at: str,
    source: str | None,
    message_sid: str | None,
    event_id: int | None,
    service_hint: str | None = None,
    account: str | None = None,
) -> None:
    """Opt the pair out (remembering its Messaging Service), or clear every opt-out covering it."""
    if opted_out:
        tx.defer(
            "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source, message_sid, event_id, "
            "messaging_service_sid, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                number,
                twilio_number,
                at,
                source,
                message_sid,
                event_id,
                scope.service_of(twilio_number, service_hint),
                account,
            ),
        )
        return
    clause, params = _cover_clause(scope.cover(twilio_number, service_hint))
    tx.defer(f"DELETE FROM opt_outs WHERE number = ? AND {clause}", (number, *params))  # noqa: S608


def record_change(
    tx: Tx,
    scope: Scope,
    number: str,
    twilio_number: str,
    opted_out: bool,
    source: str,
    at: str,
    detail: dict[str, Any],
    message_sid: str | None = None,
    state_at: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """Record an opt-out or opt-in made other than by keyword: always an event, a state change if it is one.

    ``state_at`` is when the opt-out took effect, if not ``at`` (an imported record's own date).
    """
    changed = (covering(tx, scope, number, twilio_number) is not None) != opted_out
    event_id = append_event(
        tx,
        event=events.OPT_OUT if opted_out else events.OPT_IN,
        number=number,
        twilio_number=twilio_number,
        message_sid=message_sid,
        source=source,
        state_changed=changed,
        at=at,
        detail=json.dumps(detail, ensure_ascii=False),
        account=account,
    )
    if opted_out:
        end_consents(tx, scope, number, twilio_number, at, event_id)
    if changed:
        set_state(
            tx, scope, number, twilio_number, opted_out, state_at or at, source, message_sid, event_id, None, account
        )
    return {"event_id": event_id, "state_changed": changed, "at": at}


class OptOutRecords(Records):
    def is_opted_out(self, number: str, via: str) -> bool:
        """Whether an opt-out covers ``number`` through ``via`` (a Twilio number or MG SID), per the scope."""
        with self.backend.read() as tx:
            return covering(tx, self.scope, number, via) is not None

    def current_opt_outs(
        self,
        number: str | None = None,
        twilio_number: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: tuple[str, str, str] | None = None,
        before: tuple[str, str, str] | None = None,
        last: bool = False,
        accounts: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Current opt-outs in :data:`LIST_KEY` order; ``since``/``until`` are inclusive stored timestamps.

        ``after`` and ``before`` are a row's :data:`LIST_KEY` values: the rows
        after it, or the ``limit`` rows just before it; ``last`` the final
        ``limit`` rows. Either way in ascending order, found through the index
        on the key, so the 2,000th page costs what the first does.
        """
        clause, params = _list_filter(number, twilio_number, since, until, after, before, accounts)
        backwards = before is not None or last
        limits, more = page(limit, offset)
        order = ", ".join(f"{column} DESC" if backwards else column for column in LIST_KEY)
        with self.backend.read() as tx:
            rows = tx.query(
                f"SELECT {', '.join(OPT_OUT_COLUMNS)} FROM opt_outs{clause} ORDER BY {order}{limits}",  # noqa: S608
                params + more,
            )
        return rows[::-1] if backwards else rows

    def iter_opt_outs(
        self,
        number: str | None = None,
        twilio_number: str | None = None,
        since: str | None = None,
        until: str | None = None,
        accounts: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching current opt-out in :data:`LIST_KEY` order, from one snapshot, in bounded memory."""
        clause, params = _list_filter(number, twilio_number, since, until, accounts=accounts)
        order = ", ".join(LIST_KEY)
        with self.backend.snapshot() as tx:
            for row in tx.stream(
                f"SELECT {', '.join(OPT_OUT_COLUMNS)} FROM opt_outs{clause} ORDER BY {order}",  # noqa: S608
                params,
            ):
                yield dict(zip(OPT_OUT_COLUMNS, row, strict=True))

    def count_opt_outs(
        self,
        number: str | None = None,
        twilio_number: str | None = None,
        since: str | None = None,
        until: str | None = None,
        before: tuple[str, str, str] | None = None,
        accounts: Sequence[str] | None = None,
    ) -> int:
        """How many current opt-outs match (and come before the row keyed ``before``: a page's place)."""
        clause, params = _list_filter(number, twilio_number, since, until, before=before, accounts=accounts)
        with self.backend.read() as tx:
            return tx.scalar(f"SELECT COUNT(*) FROM opt_outs{clause}", params)  # noqa: S608

    def record_manual(self, number: str, twilio_number: str, opted_out: bool, reason: str, by: str) -> dict[str, Any]:
        """Record a revocation (or re-consent) received by other means: a call, an email."""
        with self.backend.write() as tx:
            tx.lock_numbers(number)
            result = record_change(
                tx,
                self.scope,
                number,
                twilio_number,
                opted_out,
                events.MANUAL,
                self.clock(),
                {"reason": reason, "by": by},
                account=self.account_of(twilio_number),
            )
            status = "opt-out" if opted_out else "opt-in"
            self.queue_for_twilio(tx, number, twilio_number, status, "offline", result["at"], result["event_id"])
            return result

    def record_carrier_opt_out(self, number: str, twilio_number: str, detail: dict[str, Any]) -> bool:
        """Twilio refused a send with 21610: the recipient opted out upstream. Record it (source carrier)."""
        with self.backend.write() as tx:
            tx.lock_numbers(number)
            change = record_change(
                tx,
                self.scope,
                number,
                twilio_number,
                True,
                events.CARRIER,
                self.clock(),
                detail,
                account=self.account_of(twilio_number),
            )
            return change["state_changed"]

    def import_opt_outs(self, rows: Sequence[Any], name: str) -> dict[str, int]:
        """Record imported opt-outs in one transaction: all rows or none.

        Each row becomes an ``opt_out`` event with source ``import``; a pair
        that is already opted out keeps its earlier record.
        """
        added = 0
        with self.backend.write() as tx:
            tx.lock_all()
            now = self.clock()
            for row in rows:
                detail = {"import": name, "line": row.line, "opted_out_at": row.opted_out_at}
                result = record_change(
                    tx,
                    self.scope,
                    row.number,
                    row.twilio_number,
                    True,
                    events.IMPORT,
                    now,
                    detail,
                    state_at=row.opted_out_at,
                    account=self.account_of(row.twilio_number),
                )
                added += result["state_changed"]
                self.queue_for_twilio(
                    tx, row.number, row.twilio_number, "opt-out", "others", row.opted_out_at, result["event_id"]
                )
        return {"rows": len(rows), "opted_out": added, "already_opted_out": len(rows) - added}

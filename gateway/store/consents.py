"""Consent records: grants (each a chained ``consent_granted`` event), and their end by a revocation.

A consent is current while ``ended_at`` is empty. A revocation (an
``opt_out`` event, by any means) ends, in its own transaction, every
consent of the number that it covers (:func:`gateway.consent.senders_ended`),
and names itself as the end: the chain then shows the consent and the
revocation that ended it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..core import consent, events
from ..core.scope import Scope
from .backend import Tx
from .base import Records, in_accounts, one_of, where
from .ledger import append_event

CONSENT_COLUMNS = [
    "id",
    "number",
    "sender",
    "category",
    "method",
    "given_at",
    "wording",
    "evidence",
    "recorded_by",
    "recorded_at",
    "event_id",
    "ended_at",
    "ended_by_event_id",
]


def add_consent(tx: Tx, grant: consent.Grant, now: str, account: str | None) -> dict[str, Any]:
    """Record one grant: the row, then its event (the last lock a transaction takes)."""
    consent_id = tx.scalar(
        "INSERT INTO consents (number, sender, category, method, given_at, wording, evidence, recorded_by, "
        "recorded_at, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            grant.number,
            grant.sender,
            grant.category,
            grant.method,
            grant.given_at,
            grant.wording,
            json.dumps(dict(grant.evidence), ensure_ascii=False, sort_keys=True),
            grant.recorded_by,
            now,
            account,
        ),
    )
    event_id = append_event(
        tx,
        event=events.CONSENT_GRANTED,
        number=grant.number,
        twilio_number=grant.sender,
        body=None,
        source=grant.method,
        state_changed=False,
        at=now,
        detail=grant.detail(consent_id),
        account=account,
    )
    tx.defer("UPDATE consents SET event_id = ? WHERE id = ?", (event_id, consent_id))
    return {"id": consent_id, "event_id": event_id, "recorded_at": now}


def current(number: str, senders: Sequence[str] | None, category: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The condition (and its parameters) on ``number``'s current consents to ``senders`` (None: any sender)
    of ``category`` (None: any)."""
    clause, params = "number = ? AND ended_at IS NULL", (number,)
    if category is not None:
        clause, params = clause + " AND category = ?", (*params, category)
    if senders is not None:
        among, among_params = one_of("sender", senders)
        clause, params = f"{clause} AND {among}", (*params, *among_params)
    return clause, params


def _end(tx: Tx, condition: tuple[str, tuple[str, ...]], at: str, event_id: int) -> None:
    clause, params = condition
    tx.defer(f"UPDATE consents SET ended_at = ?, ended_by_event_id = ? WHERE {clause}", (at, event_id, *params))  # noqa: S608


def end_consents(
    tx: Tx, scope: Scope, number: str, via: str, at: str, event_id: int, service_hint: str | None = None
) -> None:
    """End every current consent of ``number`` that a revocation through ``via`` covers."""
    _end(tx, current(number, consent.senders_ended(scope, via, service_hint)), at, event_id)


def categories_ended_by(tx: Tx, scope: Scope, number: str, via: str, service_hint: str | None = None) -> set[str]:
    """The categories of the current consents a revocation through ``via`` would end."""
    clause, params = current(number, consent.senders_ended(scope, via, service_hint))
    rows = tx.execute(f"SELECT DISTINCT category FROM consents WHERE {clause}", params).fetchall()  # noqa: S608
    return {row[0] for row in rows}


def pending_clarification(tx: Tx, number: str, twilio_number: str) -> tuple[int, list[str]] | None:
    """The pair's latest clarification still waiting for an answer: (its id, the categories asked about)."""
    row = tx.one(
        "SELECT id, categories FROM clarifications WHERE number = ? AND twilio_number = ? AND answered_at IS NULL "
        "ORDER BY id DESC LIMIT 1",
        (number, twilio_number),
    )
    return (row[0], json.loads(row[1])) if row else None


def ask(
    tx: Tx, number: str, twilio_number: str, event_id: int, categories: Sequence[str], now: str, account: str | None
) -> None:
    """Remember that the revocation ``event_id`` was answered with the clarification text."""
    tx.defer(
        "INSERT INTO clarifications (number, twilio_number, revocation_event_id, categories, asked_at, account) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (number, twilio_number, event_id, json.dumps(list(categories)), now, account),
    )


def settle(
    tx: Tx,
    clarification_id: int,
    stopped: Sequence[str],
    answer: str,
    message_sid: str,
    now: str,
    event_id: int,
    account: str | None,
) -> list[str]:
    """Record the answer to a clarification, and grant again, in the person's answer's words, the consents
    the revocation ended in the categories the person did not mean to stop; returns those categories."""
    number, revocation, asked = tx.one(
        "SELECT number, revocation_event_id, categories FROM clarifications WHERE id = ?", (clarification_id,)
    )
    tx.defer(
        "UPDATE clarifications SET answered_at = ?, answer = ?, answer_event_id = ? WHERE id = ?",
        (now, answer, event_id, clarification_id),
    )
    kept = [category for category in json.loads(asked) if category not in stopped]
    for consent_id, sender, category in tx.execute(
        "SELECT id, sender, category FROM consents WHERE number = ? AND ended_by_event_id = ? ORDER BY id",
        (number, revocation),
    ).fetchall():
        if category in kept:
            evidence = {
                "clarification": str(clarification_id),
                "replaces_consent": str(consent_id),
                "message_sid": message_sid,
            }
            grant = consent.Grant(number, sender, category, consent.KEYWORD, now, answer, "clarification", evidence)
            add_consent(tx, grant, now, account)
    return kept


def has_consent(tx: Tx, scope: Scope, number: str, sender: str, category: str) -> bool:
    """Whether a current consent of ``category`` allows a send to ``number`` through ``sender``."""
    clause, params = current(number, consent.senders_covering(scope, sender), category)
    return tx.scalar(f"SELECT 1 FROM consents WHERE {clause} LIMIT 1", params) is not None  # noqa: S608


class ConsentRecords(Records):
    def record_consent(self, grant: consent.Grant) -> dict[str, Any]:
        """Record one consent grant, durably, as a row and a chained event."""
        with self.backend.write() as tx:
            tx.lock_numbers(grant.number)
            recorded = add_consent(tx, grant, self.clock(), self._consent_account(grant.sender))
            self._queue_grant(tx, grant, recorded["event_id"])
            return recorded

    def import_consents(self, grants: Sequence[consent.Grant]) -> dict[str, int]:
        """Record imported grants in one transaction: all or none."""
        with self.backend.write() as tx:
            tx.lock_all()
            now = self.clock()
            for grant in grants:
                recorded = add_consent(tx, grant, now, self._consent_account(grant.sender))
                self._queue_grant(tx, grant, recorded["event_id"])
        return {"rows": len(grants), "recorded": len(grants)}

    def withdraw_consent(self, number: str, category: str, sender: str, reason: str, by: str) -> dict[str, Any]:
        """Record that ``number`` withdrew its consent to ``category`` (from ``sender``, or ``*``: from anyone),
        received by other means (a call, an email): a chained event that ends the matching consents.

        Raises ValueError for a category ``require_consent`` does not name: ending its consents would not
        stop its sends (record an opt-out instead), and LookupError when no current consent matches.
        """
        if category not in self.consent_rules.required:
            raise ValueError(
                f"category {category!r} is not in require_consent, so withdrawing it would not stop its sends: "
                "record an opt-out instead (gateway optouts add), or add it to require_consent"
            )
        with self.backend.write() as tx:
            tx.lock_numbers(number)
            senders = None if sender == consent.BUSINESS else consent.senders_ended(self.scope, sender)
            condition = current(number, senders, category)
            clause, params = condition
            matching = [
                row[0]
                for row in tx.execute(f"SELECT id FROM consents WHERE {clause} ORDER BY id", params).fetchall()  # noqa: S608
            ]
            if not matching:
                raise LookupError(f"{number} has no current consent to {category} from {sender}")
            now = self.clock()
            event_id = append_event(
                tx,
                event=events.CONSENT_WITHDRAWN,
                number=number,
                twilio_number=sender,
                source=events.MANUAL,
                state_changed=False,
                at=now,
                detail=json.dumps(
                    {"category": category, "consents": matching, "reason": reason, "by": by}, ensure_ascii=False
                ),
                account=self._consent_account(sender),
            )
            _end(tx, condition, now, event_id)  # the same rows: the person's records are locked
        return {"event_id": event_id, "ended": matching, "at": now}

    def consents(
        self, number: str, current: bool = False, accounts: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """A number's consents, oldest first (only those not ended, with ``current``)."""
        clause, params = where(
            ("number = ?", number), ("ended_at IS NULL", () if current else None), in_accounts(accounts)
        )
        with self.backend.read() as tx:
            rows = tx.query(
                f"SELECT {', '.join(CONSENT_COLUMNS)} FROM consents{clause} ORDER BY id",  # noqa: S608
                params,
            )
        return [{**row, "evidence": json.loads(row["evidence"] or "{}")} for row in rows]

    def _queue_grant(self, tx: Tx, grant: consent.Grant, event_id: int) -> None:
        source = consent.TWILIO_SOURCES[grant.method]
        self.queue_for_twilio(tx, grant.number, grant.sender, "opt-in", source, grant.given_at, event_id)

    def _consent_account(self, sender: str) -> str | None:
        return None if sender == consent.BUSINESS else self.account_of(sender)

"""Revocation candidates: messages that read like a revocation, waiting for a person's decision.

Confirming one opts the pair out (source ``manual``); dismissing one is a
chained ``candidate_dismissed`` event. Either names who decided, and a
candidate is resolved once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..core import events
from .base import Records, in_accounts, where
from .ledger import append_event
from .optouts import record_change

CANDIDATE_COLUMNS = (
    "id, number, twilio_number, body, pattern, message_sid, received_at, status, resolved_by, resolved_at, "
    "resolution_note"
)


class CandidateRecords(Records):
    def revocation_candidates(
        self, status: str = "open", accounts: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Candidates (of ``accounts``, if given), oldest first; ``status`` open, confirmed, dismissed or all."""
        clause, params = where(("status = ?", None if status == "all" else status), in_accounts(accounts))
        with self.backend.read() as tx:
            return tx.query(
                f"SELECT {CANDIDATE_COLUMNS} FROM revocation_candidates{clause} ORDER BY id",  # noqa: S608
                params,
            )

    def resolve_candidate(
        self, candidate_id: int, confirm: bool, by: str, note: str | None = None, accounts: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Confirm (a manual opt-out of the pair) or dismiss a candidate, once.

        Raises LookupError for an unknown id (or one outside ``accounts``) and
        ValueError when it was already resolved. Both outcomes are chained
        events naming who.
        """
        with self.backend.write() as tx:
            clause, params = where(("id = ?", candidate_id), in_accounts(accounts))
            number = tx.scalar(f"SELECT number FROM revocation_candidates{clause}", params)  # noqa: S608
            if number is None:
                raise LookupError(f"no revocation candidate {candidate_id}")
            tx.lock_numbers(number)
            twilio_number, status, resolved_by, resolved_at, account = tx.one(
                "SELECT twilio_number, status, resolved_by, resolved_at, account FROM revocation_candidates "
                "WHERE id = ?",
                (candidate_id,),
            )
            if status != "open":
                raise ValueError(f"candidate {candidate_id} was already {status} by {resolved_by} at {resolved_at}")
            now = self.clock()
            detail = {"candidate": candidate_id, "by": by, "reason": note or ("confirmed" if confirm else "dismissed")}
            if confirm:
                result = record_change(
                    tx, self.scope, number, twilio_number, True, events.MANUAL, now, detail, account=account
                )
                self.queue_for_twilio(tx, number, twilio_number, "opt-out", "opt-out-message", now, result["event_id"])
            else:
                event_id = append_event(
                    tx,
                    event=events.CANDIDATE_DISMISSED,
                    number=number,
                    twilio_number=twilio_number,
                    source=events.MANUAL,
                    state_changed=False,
                    at=now,
                    detail=json.dumps(detail, ensure_ascii=False),
                    account=account,
                )
                result = {"event_id": event_id, "state_changed": False, "at": now}
            tx.execute(
                "UPDATE revocation_candidates SET status = ?, resolved_by = ?, resolved_at = ?, resolution_note = ?, "
                "resolution_event_id = ? WHERE id = ?",
                ("confirmed" if confirm else "dismissed", by, now, note, result["event_id"], candidate_id),
            )
        return {**result, "candidate": candidate_id, "status": "confirmed" if confirm else "dismissed"}

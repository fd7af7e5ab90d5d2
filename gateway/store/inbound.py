"""Inbound messages: claim each MessageSid once, apply the compliance decision, queue for the agent.

Each message is one row of ``inbound_messages``: the claim, the outcome and
reply (what a retry of the same MessageSid gets back), and for a message the
agent is to receive, its place in the queue; a plain message costs that one
insert and the opt-out lookup.

A message is processed at most once whichever gateway instance receives
Twilio's retries: the claim is an insert that ignores a conflict on the
MessageSid, never a check followed by a write. A duplicate gets the first
delivery's outcome and reply back, and nothing else is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..compliance import Decision
from ..messages import InboundMessage, Processed
from . import queue
from .backend import Tx
from .base import Records
from .ledger import append_event
from .optouts import covering, set_state


class InboundRecords(Records):
    def process_inbound(
        self, message: InboundMessage, decide: Callable[[bool], Decision], keyword: bool = False
    ) -> Processed:
        """Apply the compliance decision for ``message`` at most once, durably.

        ``decide(opted_out)`` is called with the pair's state read in the
        same transaction. Returns only after the records are committed and,
        with ``durability="full"`` or when an event was written, on disk.
        """
        full = self.durability == "full"
        return self.backend.grouped(
            lambda tx: self._process(tx, message, decide),
            sync_first=keyword,
            needs_sync=lambda result: full or result.logged,
        )

    def _process(self, tx: Tx, message: InboundMessage, decide: Callable[[bool], Decision]) -> Processed:
        """Read the pair's state, decide, claim the MessageSid atomically, write."""
        tx.lock_numbers(message.from_number)
        now = self.clock()
        service = message.param("MessagingServiceSid")
        blocked = covering(tx, self.scope, message.from_number, message.to_number, service)
        decision = decide(blocked is not None)
        if not self._claim(tx, message, decision, now):
            first = tx.one("SELECT outcome, reply FROM inbound_messages WHERE message_sid = ?", (message.message_sid,))
            return Processed(outcome=first[0], reply=first[1], duplicate=True)
        self._apply(tx, message, decision, now, service)
        return Processed(decision.outcome, decision.reply, duplicate=False, logged=decision.event is not None)

    @staticmethod
    def _claim(tx: Tx, message: InboundMessage, decision: Decision, now: str) -> bool:
        """Insert the message's one row, unless its MessageSid is taken: the claim, the outcome, and,
        when it is for the agent, its place in the queue (the pair's head if nothing of the pair waits)."""
        pair = (message.from_number, message.to_number)
        row = (
            message.message_sid,
            *pair,
            message.body,
            json.dumps(list(message.params)),
            now,
            decision.outcome,
            decision.reply,
        )
        if decision.enqueue:
            flags = json.dumps(["revocation_candidate"] if decision.candidate else [])
            sql = (
                "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, params, received_at, "  # noqa: S608
                "outcome, reply, status, flags, next_attempt_at, head) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, {queue.HEAD}) ON CONFLICT DO NOTHING RETURNING id"
            )
            return tx.one(sql, (*row, flags, now, *pair)) is not None
        sql = (
            "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, params, received_at, "
            "outcome, reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
        )
        return tx.one(sql, row) is not None

    def _apply(self, tx: Tx, message: InboundMessage, decision: Decision, now: str, service: str | None) -> None:
        event_id = None
        if decision.event:
            event_id = append_event(
                tx,
                event=decision.event,
                number=message.from_number,
                twilio_number=message.to_number,
                body=message.body,
                message_sid=message.message_sid,
                source=decision.source,
                state_changed=decision.state_changed,
                at=now,
                detail=json.dumps({"pattern": decision.candidate}) if decision.candidate else None,
            )
        if decision.candidate:
            tx.execute(
                "INSERT INTO revocation_candidates (message_sid, number, twilio_number, body, pattern, received_at, "
                "event_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.message_sid,
                    message.from_number,
                    message.to_number,
                    message.body,
                    decision.candidate,
                    now,
                    event_id,
                ),
            )
        if decision.state_changed:
            set_state(
                tx,
                self.scope,
                message.from_number,
                message.to_number,
                decision.opted_out,
                now,
                decision.source,
                message.message_sid,
                event_id,
                service,
            )

    def processed(self, message_sid: str) -> dict[str, Any] | None:
        """What became of one inbound message (None: its MessageSid was never processed)."""
        with self.backend.read() as tx:
            rows = tx.query(
                "SELECT message_sid, from_number, to_number, outcome, reply, received_at AS processed_at "
                "FROM inbound_messages WHERE message_sid = ? AND kind = 'message'",
                [message_sid],
            )
        return rows[0] if rows else None

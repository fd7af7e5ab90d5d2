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

from ..core import consent, events
from ..core.compliance import Decision, clarify, narrow
from ..core.messages import InboundMessage, Processed
from . import entries
from .backend import Locked, Tx
from .base import Records
from .consents import add_consent, ask, categories_ended_by, end_consents, pending_clarification, settle
from .ledger import append_event, insert_and_lock_head
from .optouts import cover_arguments, covered, covering, set_state

# The columns of a message's row as :meth:`InboundRecords._row` gives them.
_CLAIMED = "message_sid, from_number, to_number, body, params, received_at, outcome, reply, account"
_RECEIVED_AT = _CLAIMED.split(", ").index("received_at")


class InboundRecords(Records):
    def process_inbound(
        self, message: InboundMessage, decide: Callable[[bool], Decision], opt_in: bool = False
    ) -> Processed:
        """Apply the compliance decision for ``message`` at most once, durably.

        ``decide(opted_out)`` is pure. When what it decides for a pair that
        may be messaged is a plain message for the agent, the message is
        claimed and queued by one statement that inserts nothing if an
        opt-out covers the pair; otherwise (and then) the pair's state is
        read in the transaction and the decision made on it. Returns only
        after the records are committed and, with ``durability="full"`` or
        when an event was written, on disk.
        ``opt_in`` says the message may make a pair messageable again (a
        START): no other process may see that before it is on disk, since a
        send based on an opt-in that a power cut then takes back would reach
        someone whose last record is an opt-out. Every other change is made
        durable before the answer too, but may be seen a moment earlier:
        acting on an opt-out early only withholds a message.
        """
        full = self.durability == "full"
        likely = decide(False)
        if likely.enqueue and likely.event is None:  # a plain message, if the pair may be messaged
            claimed = self.backend.run_locked(message.from_number, self._plain(message, likely), durable=full)
            if claimed is not None:
                return Processed(likely.outcome, likely.reply, duplicate=False)
        return self.backend.grouped(
            lambda tx: self._process(tx, message, decide),
            sync_first=opt_in,
            # A retry is answered as its first delivery was, so only once that is on disk: the first may have
            # died between its commit and its fsync (the process killed, the fsync failed).
            needs_sync=lambda result: full or result.logged or result.duplicate,
        )

    def _plain(self, message: InboundMessage, decision: Decision) -> Locked:
        """The claim and queueing of a plain message, which inserts nothing when an opt-out covers the pair
        (or the MessageSid is taken): one read of both and the insert, or the schema's routine that does the
        same in one call (``gateway_queue_message`` of the PostgreSQL schema)."""
        cover = self.scope.cover(message.to_number, message.param("MessagingServiceSid"))
        now = self.clock()
        row = self._row(message, decision, now, self._account(message))
        blocked, blocked_params = covered(cover, message.from_number)
        pair = (message.from_number, message.to_number)

        def claim(tx: Tx) -> int | None:
            opted_out, waiting = tx.one(f"SELECT {blocked}, {entries.WAITING}", (*blocked_params, *pair))
            return None if opted_out else tx.inserted_id(*self._claim_sql(decision, row, ("?", (0 if waiting else 1,))))

        arguments = (*row, _flags(decision), *cover_arguments(cover))
        return Locked(claim, routine="gateway_queue_message", arguments=arguments)

    def _account(self, message: InboundMessage) -> str | None:
        """The message's account: the AccountSid Twilio signed, else the one that owns its number."""
        return message.account or self.account_of(message.to_number)

    def _process(self, tx: Tx, message: InboundMessage, decide: Callable[[bool], Decision]) -> Processed:
        """Read the pair's state, decide, claim the MessageSid atomically, write."""
        tx.lock_numbers(message.from_number)
        now = self.clock()
        service = message.param("MessagingServiceSid")
        blocked = covering(tx, self.scope, message.from_number, message.to_number, service)
        decision = self._clarified(tx, message, decide(blocked is not None), blocked, service)
        account = self._account(message)
        row, head = self._row(message, decision, now, account), (entries.HEAD, (message.from_number, message.to_number))
        sql, params = self._claim_sql(decision, row, head)
        # An event to append: the chain head is locked in the claim's round trip.
        claimed = insert_and_lock_head(tx, sql, params) if decision.event else tx.inserted_id(sql, params)
        if claimed is None:
            return self._first(tx, message)
        self._apply(tx, message, decision, now, service, account)
        return Processed(decision.outcome, decision.reply, duplicate=False, logged=decision.event is not None)

    def _clarified(
        self, tx: Tx, message: InboundMessage, decision: Decision, blocked: str | None, service: str | None
    ) -> Decision:
        """With a clarification configured: a STOP for a number with consent in several categories gets the
        clarification text as its one reply; a message that answers a pending clarification narrows it."""
        rule = self.clarification
        if rule is None:
            return decision
        if blocked is None and decision.event == events.OPT_OUT:
            asked = categories_ended_by(tx, self.scope, message.from_number, message.to_number, service)
            return clarify(decision, asked, rule.text)
        if blocked is not None and decision.outcome == "dropped":
            pending = pending_clarification(tx, message.from_number, message.to_number)
            meant = rule.answer(message.body) if pending else None
            if pending and meant is not None:
                return narrow(pending[0], meant)
        return decision

    @staticmethod
    def _first(tx: Tx, message: InboundMessage) -> Processed:
        """What the first delivery of this MessageSid got."""
        first = tx.one("SELECT outcome, reply FROM inbound_messages WHERE message_sid = ?", (message.message_sid,))
        return Processed(outcome=first[0], reply=first[1], duplicate=True)

    @staticmethod
    def _claim_sql(decision: Decision, row: tuple, head: tuple[str, tuple]) -> tuple[str, tuple]:
        """The insert of the message's one row, unless its MessageSid is taken (for :meth:`Tx.inserted_id`):
        the claim, the outcome, and, when it is for the agent, its place in the queue, due at once (``head``:
        an SQL expression and its parameters, 1 when it is the pair's head). ``row`` is :meth:`_row`'s."""
        if decision.enqueue:
            expression, head_params = head
            sql = (
                f"INSERT INTO inbound_messages ({_CLAIMED}, status, flags, next_attempt_at, head) "  # noqa: S608
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, {expression}) ON CONFLICT DO NOTHING"
            )
            return sql, (*row, _flags(decision), row[_RECEIVED_AT], *head_params)
        sql = f"INSERT INTO inbound_messages ({_CLAIMED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"  # noqa: S608
        return sql, row

    @staticmethod
    def _row(message: InboundMessage, decision: Decision, now: str, account: str | None) -> tuple:
        """The message's row as the claim inserts it: MessageSid, pair, body, every parameter, when, outcome,
        reply, account."""
        return (
            message.message_sid,
            message.from_number,
            message.to_number,
            message.body,
            json.dumps(list(message.params)),
            now,
            decision.outcome,
            decision.reply,
            account,
        )

    def _apply(
        self, tx: Tx, message: InboundMessage, decision: Decision, now: str, service: str | None, account: str | None
    ) -> None:
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
                detail=_detail(decision),
                account=account,
            )
        if decision.candidate:
            tx.defer(
                "INSERT INTO revocation_candidates (message_sid, number, twilio_number, body, pattern, received_at, "
                "event_id, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.message_sid,
                    message.from_number,
                    message.to_number,
                    message.body,
                    decision.candidate,
                    now,
                    event_id,
                    account,
                ),
            )
        if decision.event in events.STATE_EVENTS:  # a wider scope spreads it to senders Twilio did not see it at
            out = decision.event == events.OPT_OUT
            status, source = ("opt-out", "opt-out-message") if out else ("opt-in", "opt-in-message")
            seen = decision.narrows is None  # Twilio saw the STOP or START, never the answer to a clarification
            self.queue_for_twilio(tx, message.from_number, message.to_number, status, source, now, event_id, seen)
        if decision.event == events.OPT_OUT:
            end_consents(tx, self.scope, message.from_number, message.to_number, now, event_id, service)
            if decision.asks:
                ask(tx, message.from_number, message.to_number, event_id, decision.asks, now, account)
        elif decision.narrows is not None:
            clarification_id, stopped = decision.narrows
            settle(tx, clarification_id, stopped, message.body, message.message_sid, now, event_id, account)
        elif decision.event == events.OPT_IN:
            for category in self.consent_rules.keyword:  # a START is written consent to this number's messages
                grant = consent.Grant(
                    message.from_number,
                    message.to_number,
                    category,
                    consent.KEYWORD,
                    now,
                    message.body,
                    recorded_by=decision.source or consent.KEYWORD,
                    evidence={"message_sid": message.message_sid},
                )
                add_consent(tx, grant, now, account)
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
                account,
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


def _flags(decision: Decision) -> str:
    """What a queued message carries to the agent besides itself: whether it may be a revocation."""
    return '["revocation_candidate"]' if decision.candidate else "[]"


def _detail(decision: Decision) -> str | None:
    """What an inbound event keeps besides the message: the pattern that flagged a candidate, the categories
    a clarification asks about, or what its answer stopped."""
    if decision.candidate:
        return json.dumps({"pattern": decision.candidate})
    if decision.asks:
        return json.dumps({"clarification_asks": list(decision.asks)})
    if decision.narrows is not None:
        return json.dumps({"clarification": decision.narrows[0], "stopped": list(decision.narrows[1])})
    return None

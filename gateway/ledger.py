"""The tamper-evident event ledger: a SHA-256 hash chain over the event log.

Pure logic. Each event's hash covers a canonical encoding of its own fields
and the previous event's hash, so editing, deleting, inserting or reordering
any event breaks the chain from that point. The head (last id and hash) is
kept apart so deleting the newest events is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64

# The fields an event's hash covers, in this order. Never reorder.
FIELDS = ("id", "event", "number", "twilio_number", "body", "message_sid", "source", "state_changed", "at", "detail")
# Fields added since: covered as one object of those that are set, after FIELDS, so an event
# written before they existed (or without them) hashes exactly as it always did.
LATER_FIELDS = ("account",)


def canonical(event: Mapping[str, Any], prev_hash: str) -> bytes:
    """Deterministic bytes for an event: a JSON array of FIELDS, the later fields that are set
    (as an object, when any is), then prev_hash."""
    values = [event.get(name) for name in FIELDS]
    values[FIELDS.index("state_changed")] = int(bool(values[FIELDS.index("state_changed")]))
    later = {name: event[name] for name in LATER_FIELDS if event.get(name) is not None}
    if later:
        values.append(later)
    return json.dumps([*values, prev_hash], ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event_hash(event: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(event, prev_hash)).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head: str
    broken_id: int | None = None
    reason: str | None = None

    def summary(self) -> str:
        if self.ok:
            return f"ledger intact: {self.checked} events checked, head {self.head}"
        return f"ledger BROKEN at event {self.broken_id}: {self.reason} ({self.checked} events before it intact)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.checked,
            "head": self.head,
            "broken_event": self.broken_id,
            "reason": self.reason,
        }


def verify(events: Iterable[Mapping[str, Any]], head: tuple[int, str] | None) -> Verification:
    """Walk events in id order and check every link; ``head`` is (last id, hash).

    Streams: memory does not grow with the number of events.
    """
    prev, checked, last_id = GENESIS, 0, 0
    for event in events:
        event_id = event["id"]
        if event["prev_hash"] != prev:
            reason = "its link to the previous event does not match (an event before it was deleted or inserted)"
            return Verification(False, checked, prev, event_id, reason)
        if event_hash(event, prev) != event["hash"]:
            return Verification(False, checked, prev, event_id, "its hash does not match its contents (edited)")
        prev, last_id, checked = event["hash"], event_id, checked + 1
    expected_id, expected_hash = head or (0, GENESIS)
    if (last_id, prev) != (expected_id, expected_hash):
        reason = f"the chain ends at event {last_id} but the recorded head is event {expected_id} (events deleted)"
        return Verification(False, checked, prev, expected_id, reason)
    return Verification(True, checked, prev)

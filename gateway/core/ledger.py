"""The tamper-evident event ledger: a SHA-256 hash chain over the event log.

Pure logic. Each event's hash covers a canonical encoding of its own fields
and the previous event's hash, so editing, deleting, inserting or reordering
any event breaks the chain from that point. The head (last id and hash) is
kept apart so deleting the newest events is caught too.

Every event written since accounts were recorded has a random ``salt`` and
is hashed in two steps: a *digest* of its own fields, its account and the
salt, then the hash of that digest and the previous hash. So the chain can
be checked from the digests of the events one may not read: an account's
auditor checks its own events' contents, and every link, without seeing
another account's fields (the salt keeps a digest from being guessed from
likely values). Events written before (no salt) keep the original one-step
hash; in a per-account proof they are *opaque*: only their links show.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64

# The fields an event's hash covers, in this order. Never reorder.
FIELDS = ("id", "event", "number", "twilio_number", "body", "message_sid", "source", "state_changed", "at", "detail")
# What an account's event adds to them (see the module's docstring).
ACCOUNT_FIELDS = ("account", "salt")


def _json(values: list[Any]) -> bytes:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _values(event: Mapping[str, Any]) -> list[Any]:
    values = [event.get(name) for name in FIELDS]
    values[FIELDS.index("state_changed")] = int(bool(values[FIELDS.index("state_changed")]))
    return values


def canonical(event: Mapping[str, Any], prev_hash: str) -> bytes:
    """Deterministic bytes for an event without an account: a JSON array of FIELDS, then prev_hash."""
    return _json([*_values(event), prev_hash])


def digest(event: Mapping[str, Any]) -> str:
    """A salted event's own digest: SHA-256 over FIELDS, its account and its salt."""
    return hashlib.sha256(_json([*_values(event), event.get("account"), event["salt"]])).hexdigest()


def link_hash(event_digest: str, prev_hash: str) -> str:
    """A salted event's hash: SHA-256 over its digest and the previous hash."""
    return hashlib.sha256(_json(["digest", event_digest, prev_hash])).hexdigest()


def event_hash(event: Mapping[str, Any], prev_hash: str) -> str:
    """The hash ``event`` must have after ``prev_hash``.

    An event given by its ``digest`` alone (another account's, in a per-account proof) is hashed from it;
    an opaque one (written before salts, in such a proof) cannot be, and keeps the hash it shows.
    """
    if event.get("opaque"):
        return event["hash"]
    if event.get("digest"):
        return link_hash(event["digest"], prev_hash)
    if event.get("salt") is None:
        return hashlib.sha256(canonical(event, prev_hash)).hexdigest()
    return link_hash(digest(event), prev_hash)


def shown(event: Mapping[str, Any], accounts: Sequence[str] | None) -> dict[str, Any]:
    """``event`` as a per-account proof shows it: whole when it is of ``accounts`` (all, when None),
    else by its digest (or opaque, for an event without a salt), with its place in the chain."""
    if accounts is None or event.get("account") in accounts:
        return dict(event)
    place = {"id": event["id"], "prev_hash": event["prev_hash"], "hash": event["hash"]}
    return {**place, "digest": digest(event)} if event.get("salt") else {**place, "opaque": True}


@dataclass(frozen=True)
class Verification:
    """The outcome of a walk. ``checked`` counts the events of the accounts asked about (all, when
    none were named); ``others`` the events of other accounts, whose hashes were checked too."""

    ok: bool
    checked: int
    head: str
    broken_id: int | None = None
    reason: str | None = None
    others: int = 0

    def summary(self) -> str:
        also = f", and {self.others} of other accounts" if self.others else ""
        if self.ok:
            return f"ledger intact: {self.checked} events checked{also}, head {self.head}"
        return f"ledger BROKEN at event {self.broken_id}: {self.reason} ({self.checked} events before it intact{also})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.checked,
            "other_accounts_events_checked": self.others,
            "head": self.head,
            "broken_event": self.broken_id,
            "reason": self.reason,
        }


def verify_proof(records: Iterable[Mapping[str, Any]]) -> Verification:
    """Check a per-account proof (see :func:`shown`): its first record holds the head and the accounts,
    the rest are the events. Raises ValueError for something that is not a proof."""
    records = iter(records)
    header = next(records, None)
    try:
        head = (int(header["head"]["last_event_id"]), str(header["head"]["hash"]))  # type: ignore[index]
        accounts = header.get("accounts")  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise ValueError("not a ledger proof: its first line must hold the head and the accounts") from None
    if accounts is not None and not (isinstance(accounts, list) and all(isinstance(a, str) for a in accounts)):
        raise ValueError("not a ledger proof: its accounts must be a list of Account SIDs")
    return verify(records, head, accounts)


def verify(
    events: Iterable[Mapping[str, Any]],
    head: tuple[int, str] | None,
    accounts: Sequence[str] | None = None,
    after: tuple[int, str] = (0, GENESIS),
) -> Verification:
    """Walk events in id order and check every link; ``head`` is (last id, hash).

    Every event's hash is checked (an opaque one's only its link); with
    ``accounts``, those of other accounts are counted apart (an auditor of
    those accounts learns how many there are, never what they say). Streams:
    memory does not grow with the number of events. ``after`` (an event's id
    and hash) checks only the chain's end from there on, taking that event on
    trust: the quick look start-up takes.
    """
    (last_id, prev), checked, others = after, 0, 0
    for event in events:
        event_id = event["id"]
        if event["prev_hash"] != prev:
            reason = "its link to the previous event does not match (an event before it was deleted or inserted)"
            return Verification(False, checked, prev, event_id, reason, others)
        if event_hash(event, prev) != event["hash"]:
            reason = "its hash does not match its contents (edited)"
            return Verification(False, checked, prev, event_id, reason, others)
        own = accounts is None or event.get("account") in accounts
        prev, last_id, checked, others = event["hash"], event_id, checked + own, others + (not own)
    expected_id, expected_hash = head or (0, GENESIS)
    if (last_id, prev) != (expected_id, expected_hash):
        reason = f"the chain ends at event {last_id} but the recorded head is event {expected_id} (events deleted)"
        return Verification(False, checked, prev, expected_id, reason, others)
    return Verification(True, checked, prev, others=others)

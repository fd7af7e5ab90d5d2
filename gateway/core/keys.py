"""API keys: generation, hashing, roles and the accounts a key may see. Pure logic.

A key is shown once when created; only its SHA-256 hash is stored. A key
may be limited to some Twilio accounts: it then sees and touches only their
records (see :class:`Grant`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "gwk_"
ROLES = ("auditor", "admin", "sender", "recorder")
# What each role may also do: an admin can do everything an auditor and a recorder (of consents) can.
_IMPLIES = {
    "admin": {"admin", "auditor", "recorder"},
    "auditor": {"auditor"},
    "sender": {"sender"},
    "recorder": {"recorder"},
}


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What a key may do: its role, and the Account SIDs whose records it may see (None: every account)."""

    role: str
    accounts: tuple[str, ...] | None = None

    @classmethod
    def stored(cls, role: str, accounts: str | None) -> Grant:
        """The grant of a key kept with ``role`` and ``accounts`` (see :func:`stored_accounts`)."""
        return cls(role, tuple(json.loads(accounts)) if accounts else None)

    def sees(self, account: str | None) -> bool:
        """Whether a record of ``account`` is visible to this key (a record without one: only to an unlimited key)."""
        return self.accounts is None or account in self.accounts


def stored_accounts(accounts: Iterable[str] | None) -> str | None:
    """How a key's accounts are kept: a JSON list, or None for every account."""
    return None if accounts is None else json.dumps(sorted(set(accounts)))


def find(key: str, stored: Iterable[tuple[str, str, str | None]]) -> Grant | None:
    """The grant of the stored (hash, role, accounts) entry matching ``key``, or None.

    Compares against every entry in constant time, without stopping early.
    """
    presented = hash_key(key)
    found = None
    for key_hash, role, accounts in stored:
        if hmac.compare_digest(presented, key_hash):
            found = Grant.stored(role, accounts)
    return found


def allows(role: str | None, required: str) -> bool:
    return role is not None and required in _IMPLIES.get(role, set())

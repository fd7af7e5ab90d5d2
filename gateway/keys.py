"""API keys: generation, hashing and roles. Pure logic.

A key is shown once when created; only its SHA-256 hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "gwk_"
ROLES = ("auditor", "admin", "sender")
# What each role may also do: an admin can do everything an auditor can.
_IMPLIES = {"admin": {"admin", "auditor"}, "auditor": {"auditor"}, "sender": {"sender"}}


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def find_role(key: str, stored: Iterable[tuple[str, str]]) -> str | None:
    """Role of the stored (hash, role) entry matching ``key``, or None.

    Compares against every entry in constant time, without stopping early.
    """
    presented = hash_key(key)
    found = None
    for key_hash, role in stored:
        if hmac.compare_digest(presented, key_hash):
            found = role
    return found


def allows(role: str | None, required: str) -> bool:
    return role is not None and required in _IMPLIES.get(role, set())

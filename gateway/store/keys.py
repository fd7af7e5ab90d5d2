"""API keys (only their SHA-256 hashes) and the rate-limit buckets of their requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core import keys
from ..core.ratelimit import Limit
from .base import Records


class KeyRecords(Records):
    def add_api_key(
        self, key_hash: str, role: str, label: str | None = None, accounts: Sequence[str] | None = None
    ) -> int:
        """Keep a new key's hash; ``accounts`` (Account SIDs) limits what it sees, None: every account."""
        with self.backend.write() as tx:
            return tx.scalar(
                "INSERT INTO api_keys (key_hash, role, label, created_at, accounts) VALUES (?, ?, ?, ?, ?) "
                "RETURNING id",
                (key_hash, role, label, self.clock(), keys.stored_accounts(accounts)),
            )

    def active_api_keys(self) -> list[tuple[str, str, str | None]]:
        """(hash, role, accounts) of every key that is not revoked (see :func:`gateway.keys.find`)."""
        with self.backend.read() as tx:
            return [
                tuple(row)
                for row in tx.execute("SELECT key_hash, role, accounts FROM api_keys WHERE revoked_at IS NULL")
            ]

    def api_key_name(self, key_hash: str) -> str:
        """How records name the key with this hash: ``API key 3 (compliance team)``; never the key."""
        with self.backend.read() as tx:
            row = tx.one("SELECT id, label FROM api_keys WHERE key_hash = ?", (key_hash,))
        if row is None:
            return "an unknown API key"
        return f"API key {row[0]}" + (f" ({row[1]})" if row[1] else "")

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.backend.read() as tx:
            return tx.query("SELECT id, role, label, accounts, created_at, revoked_at FROM api_keys ORDER BY id")

    def revoke_api_key(self, key_id: int) -> bool:
        with self.backend.write() as tx:
            return bool(
                tx.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (self.clock(), key_id)
                ).rowcount
            )

    def take_token(self, bucket: str, limit: Limit, now: float) -> float:
        """Take one token from ``bucket``, atomically across processes and machines.

        Returns the seconds to wait (0: allowed).
        """
        with self.backend.write(durable=False) as tx:  # not a compliance record: no fsync
            tx.lock_name("bucket", bucket)
            row = tx.one("SELECT tokens, updated FROM rate_buckets WHERE bucket = ?", (bucket,))
            tokens, wait = limit.take(*(row or (None, None)), now)
            tx.execute(
                "INSERT INTO rate_buckets (bucket, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
                (bucket, tokens, now),
            )
        return wait

"""Raw access to a test database behind the gateway's back, on either backend.

What an attacker with access to the database, or a broken disk, could do:
edit the event log past its append-only guard, refuse inserts, drop a table.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gateway.core.timestamps import FORMAT
from gateway.store import Store
from gateway.store.sqlite import database_path

TWILIO = ("+15005550006", "+15005550007")


class RawDatabase:
    def __init__(self, url: str):
        self.url = url
        self.kind = "postgresql" if url.startswith(("postgresql:", "postgres:")) else "sqlite"

    def execute(self, *statements: str, params: tuple = ()) -> list[tuple[Any, ...]]:
        """Run statements in one committed transaction; the last one's rows."""
        rows: list[tuple[Any, ...]] = []
        if self.kind == "sqlite":
            conn = sqlite3.connect(database_path(self.url))
            try:
                for statement in statements:
                    cursor = conn.execute(statement, params)
                    rows = cursor.fetchall() if cursor.description else []
                conn.commit()
            finally:
                conn.close()
            return rows
        with psycopg.connect(self.url) as conn:
            for statement in statements:
                cursor = conn.execute(statement.replace("?", "%s"), params)
                rows = cursor.fetchall() if cursor.description else []
        return rows

    def scalar(self, statement: str, params: tuple = ()) -> Any:
        rows = self.execute(statement, params=params)
        return rows[0][0] if rows else None

    def tamper(self, *statements: str) -> None:
        """Edit the event log, first switching off its append-only guard."""
        if self.kind == "sqlite":
            guard = [
                "DROP TRIGGER IF EXISTS events_append_only_update",
                "DROP TRIGGER IF EXISTS events_append_only_delete",
            ]
        else:
            guard = ["ALTER TABLE events DISABLE TRIGGER USER"]
        self.execute(*guard, *statements)

    def refuse_inserts(self, table: str, reason: str) -> None:
        """Make every insert into ``table`` fail with ``reason`` (until :meth:`allow_inserts`)."""
        if self.kind == "sqlite":
            self.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, '{reason}'); END")
        else:
            self.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{reason}'; END $$",
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()",
            )

    def allow_inserts(self, table: str) -> None:
        if self.kind == "sqlite":
            self.execute("DROP TRIGGER refuse")
        else:
            self.execute(f"DROP TRIGGER refuse ON {table}", "DROP FUNCTION refuse()")


def load_opt_outs(store: Store, count: int, spread: bool = False) -> None:
    """``count`` opt-outs, numbers +1200000000 onwards, alternating between two Twilio numbers.

    All at one moment, or with ``spread`` a second apart (a list in time order).
    """
    columns = ["number", "twilio_number", "opted_out_at", "source", "message_sid", "event_id"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = (
        (
            f"+1{200_000_000 + n:09d}",
            TWILIO[n % 2],
            (start + timedelta(seconds=n if spread else 0)).strftime(FORMAT),
            "import",
            None,
            None,
        )
        for n in range(count)
    )
    with store.backend.bulk_load() as tx:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == 10_000:
                tx.insert_many("opt_outs", columns, batch)
                batch = []
        if batch:
            tx.insert_many("opt_outs", columns, batch)
    if store.kind == "postgresql":
        with store.backend.read() as tx:
            tx.execute("ANALYZE opt_outs")

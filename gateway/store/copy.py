"""``gateway db copy``: every record from one database to another (SQLite to PostgreSQL, and back).

The source is read in one snapshot, so a gateway still running on it gives
a consistent moment of its records; it is never written. The target must be
empty (its schema is created if needed) and is filled in one transaction,
so a failed copy leaves it empty. Afterwards the copy is checked: the same
number of rows in every table, and the target's hash chain verifies to the
source's head hash (the hash is over a canonical encoding, the same on
every backend).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..core import ledger
from . import Store, StoreError
from .backend import Tx
from .migrations import TABLES

BATCH = 2000


class CopyError(StoreError):
    """The copy was refused, or what arrived differs from what was read."""


@dataclass(frozen=True)
class Copied:
    """What a copy moved and how it was checked."""

    counts: dict[str, int]  # rows per table, equal on both sides
    verification: ledger.Verification  # the target's chain, ending at the source's head

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _columns(tx: Tx, table: str) -> list[str]:
    return [column[0] for column in tx.execute(f"SELECT * FROM {table} LIMIT 0").description]  # noqa: S608


def _counts(tx: Tx) -> dict[str, int]:
    return {table: tx.scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}  # noqa: S608


def _refuse_records(target: Store) -> None:
    with target.backend.read() as tx:
        held = {table: count for table, count in _counts(tx).items() if table != "ledger_head" and count}
        head = tuple(tx.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1") or ())
    if held or head != (0, ledger.GENESIS):
        listed = ", ".join(f"{count} in {table}" for table, count in held.items()) or "a ledger head"
        raise CopyError(f"{target.describe()} already holds records ({listed}): copy only into an empty database")


def total_rows(source_url: str) -> int:
    """How many rows a copy from ``source_url`` will move (for a progress bar)."""
    source = Store(source_url, readonly=True)
    try:
        source.check_schema()
        with source.backend.read() as tx:
            return sum(_counts(tx).values())
    finally:
        source.close()


def copy_records(source_url: str, target_url: str, progress: Callable[[int], None] | None = None) -> Copied:
    """Copy every table from ``source_url`` into the empty database at ``target_url``, then check it."""
    if source_url == target_url:
        raise CopyError("the source and the target are the same database")
    source, target = Store(source_url, readonly=True), Store(target_url)
    try:
        source.check_schema()
        target.init_schema()
        _refuse_records(target)
        with source.backend.snapshot() as src:
            counts = _counts(src)
            head = tuple(src.one("SELECT last_event_id, hash FROM ledger_head WHERE id = 1"))
            with target.backend.bulk_load() as dst:
                for table, order in TABLES.items():
                    if table == "ledger_head":  # the target's own genesis row becomes the source's head
                        dst.execute("UPDATE ledger_head SET last_event_id = ?, hash = ? WHERE id = 1", head)
                        if progress:
                            progress(1)
                        continue
                    columns = _columns(src, table)
                    rows = src.stream(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")  # noqa: S608
                    for chunk in _batches(rows, BATCH):
                        dst.insert_many(table, columns, chunk)
                        if progress:
                            progress(len(chunk))
                target.backend.after_load(dst)
        with target.backend.read() as tx:
            arrived = _counts(tx)
        if arrived != counts:
            differing = ", ".join(
                f"{t}: {counts[t]} read, {arrived[t]} written" for t in TABLES if counts[t] != arrived[t]
            )
            raise CopyError(f"the copy differs from the source: {differing}")
        verification = target.verify_ledger()
        if not verification.ok or verification.head != head[1]:
            raise CopyError(f"the copied ledger does not verify to the source's head: {verification.summary()}")
        return Copied(counts, verification)
    finally:
        source.close()
        target.close()

"""Watches the SQLite backend's commits and WAL fsyncs, and which of them each inbound message waited for.

A power cut keeps what had reached the disk, so "acknowledged, then lost"
cannot be shown by killing a process (the kernel still writes its pages).
Instead the spy numbers every commit of the process, and notes for each
fsync of the WAL which commits it covered (every commit made before the
fsync began) and for each commit with ``synchronous=FULL`` that it covered
itself. When ``process_inbound`` returns (the webhook then answers Twilio),
it records the message and the commit numbers of its group-commit jobs
beside the highest commit known on disk at that moment: a message whose
rule says "on disk before the answer" must have ``synced >= commit``.

In the tests' own process, :func:`install` with a ``monkeypatch``; in a real
gunicorn, the config file ``gunicorn_syncspy.py`` installs it before the
app loads and each process writes its records to ``<dir>/<pid>.jsonl``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.store import inbound, sqlite


@dataclass
class Answer:
    """One ``process_inbound`` as the spy saw it return."""

    sid: str
    body: str
    outcome: str
    duplicate: bool
    commits: list[int]  # the commit of each of its jobs, in order (0: its transaction did not commit)
    synced: int  # every commit numbered up to this was on disk when it returned

    @property
    def on_disk(self) -> bool:
        """Whether its last job (the one whose answer is the message's) was on disk before the answer."""
        return bool(self.commits) and 0 < self.commits[-1] <= self.synced


def must_be_on_disk(answer: Answer, durability: str) -> bool:
    """The rule, written apart from the code: with ``full`` every answer waits for the disk; with
    ``compliance`` every one but a plain message queued for the first time (a retry waits for its first)."""
    return durability == "full" or answer.duplicate or answer.outcome != "queued"


class SyncSpy:
    def __init__(self, out: Callable[[], Path] | None = None):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.commits = 0
        self.synced = 0
        self.fsyncs = 0  # WAL fsyncs the store made itself
        self.answers: list[Answer] = []
        self.out = out

    def patches(self) -> list[tuple[Any, str, Any]]:
        """(owner, name, replacement) for every hook."""
        spy = self
        transaction, flush, commit_batch = (
            sqlite.SQLiteBackend._transaction,
            sqlite.SQLiteBackend._flush_wal,
            sqlite.SQLiteBackend._commit_batch,
        )
        process_inbound = inbound.InboundRecords.process_inbound

        class Job(sqlite._Job):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.commit = 0
                jobs = getattr(spy.local, "jobs", None)
                if jobs is not None:
                    jobs.append(self)

        @contextmanager
        def spied_transaction(backend, synchronous, since=None):
            with transaction(backend, synchronous, since) as conn:
                yield conn
            with spy.lock:  # committed (or rolled back on purpose, which needs no sync either)
                spy.commits += 1
                number = spy.commits
                if synchronous == "FULL":
                    spy.synced = max(spy.synced, number)
            for job in getattr(spy.local, "batch", ()):
                job.commit = number

        def spied_flush(backend):
            with spy.lock:
                covered = spy.commits
            flush(backend)
            with spy.lock:
                spy.fsyncs += 1
                spy.synced = max(spy.synced, covered)

        def spied_commit_batch(backend, batch):
            spy.local.batch = batch
            try:
                commit_batch(backend, batch)
            finally:
                spy.local.batch = ()

        def spied_process_inbound(records, message, decide, opt_in=False):
            spy.local.jobs = []
            try:
                result = process_inbound(records, message, decide, opt_in)
            finally:
                jobs, spy.local.jobs = spy.local.jobs, None
            with spy.lock:
                answer = Answer(
                    message.message_sid,
                    message.body,
                    result.outcome,
                    result.duplicate,
                    [job.commit for job in jobs],
                    spy.synced,
                )
                spy.answers.append(answer)
                if spy.out is not None:
                    with spy.out().open("a") as handle:
                        handle.write(json.dumps(answer.__dict__) + "\n")
            return result

        return [
            (sqlite, "_Job", Job),
            (sqlite.SQLiteBackend, "_transaction", spied_transaction),
            (sqlite.SQLiteBackend, "_flush_wal", spied_flush),
            (sqlite.SQLiteBackend, "_commit_batch", spied_commit_batch),
            (inbound.InboundRecords, "process_inbound", spied_process_inbound),
        ]


def install(monkeypatch=None, out: Callable[[], Path] | None = None) -> SyncSpy:
    """Install the hooks (undone with ``monkeypatch``; for good in a server process); ``out`` gives the file
    to append each answer to."""
    spy = SyncSpy(out)
    for owner, name, replacement in spy.patches():
        if monkeypatch is not None:
            monkeypatch.setattr(owner, name, replacement)
        else:
            setattr(owner, name, replacement)
    return spy


def install_in_server(folder: str) -> None:
    """For a server's config file: each process (the forked workers too) writes to its own file."""
    install(out=lambda: Path(folder) / f"{os.getpid()}.jsonl")


def read_answers(folder: Path) -> list[Answer]:
    """Every answer the server processes recorded."""
    return [
        Answer(**json.loads(line)) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()
    ]

"""Another writer stopped half-way through a write: what a frozen instance or process holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .constants import ROOT, SENDER, TWILIO_NUMBER


def stop_half_way_through_a_stop(store, frozen: threading.Event, wake: threading.Event) -> None:
    """What an instance holds when it stops half-way through a STOP (its VM paused, its process stopped, its
    network cut): SENDER's lock, the ledger head's, and a write not yet sent; ``frozen`` is set once they are
    held, and they are held until ``wake``. The transaction then commits if it still can."""
    with store.backend.write() as tx:
        tx.lock_numbers(SENDER)
        tx.one("SELECT hash FROM ledger_head WHERE id = 1" + tx.for_update)
        tx.defer(
            "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source) VALUES (?, ?, ?, 'frozen')",
            (SENDER, TWILIO_NUMBER, "2026-12-02T00:00:00Z"),
        )
        frozen.set()
        wake.wait(60)


_STOPPED_WRITER = """
import os, signal, sys
from gateway.store import Store
store = Store(sys.argv[1])
with store.backend.write() as tx:
    tx.execute(
        "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source) VALUES (?, ?, ?, 'frozen')",
        (sys.argv[2], sys.argv[3], "2026-12-02T00:00:00Z"),
    )
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
print("committed", flush=True)
"""


@contextmanager
def stopped_writer(url: str) -> Iterator[Callable[[], None]]:
    """Another gateway process stopped half-way through a write (a command suspended at a terminal, a frozen
    process), holding the database's writer lock with an opt-out of SENDER not yet committed. Yields a function
    that lets it go on, and returns once it has committed."""
    with subprocess.Popen(
        [sys.executable, "-c", _STOPPED_WRITER, url, SENDER, TWILIO_NUMBER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as writer:

        def resume() -> None:
            os.kill(writer.pid, signal.SIGCONT)
            assert writer.stdout.readline() == "committed\n"
            assert writer.wait(10) == 0

        try:
            assert writer.stdout.readline() == "held\n"
            yield resume
        finally:
            writer.kill()

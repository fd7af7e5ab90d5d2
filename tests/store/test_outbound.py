"""Outbound messages in the store, on both backends: leased by one worker at a time."""

import threading

from gateway.core.messages import OutboundText
from gateway.store import Store

TEXT = OutboundText("Your table is ready.", "GSM-7", 1)


def test_workers_claiming_at_once_never_send_one_message_twice(db, db_url):
    for n in range(60):
        db.queue_outbound(f"+1415555{n:04d}", "+15005550006", TEXT, "api")
    stores = [Store(db_url) for _ in range(3)]
    barrier, claimed, lock = threading.Barrier(3), [], threading.Lock()

    def work(store):
        barrier.wait()
        while batch := store.claim_outbound(7, 60):
            with lock:
                claimed.extend(m["id"] for m in batch)

    threads = [threading.Thread(target=work, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert len(claimed) == len(set(claimed)) == 60


def test_a_lapsed_send_lease_is_claimed_again(db, db_url):
    queued = db.queue_outbound("+14155550100", "+15005550006", TEXT, "api")
    assert [m["id"] for m in db.claim_outbound(10, 60)] == [queued["id"]]
    assert db.claim_outbound(10, 60) == []  # leased
    later = Store(db_url, clock=lambda: "2999-01-01T00:00:00.000000Z")  # the worker died; its lease ran out
    try:
        (again,) = later.claim_outbound(10, 60)
        assert again["id"] == queued["id"] and again["attempts"] == 2
    finally:
        later.close()

"""Inbound messages in the store, on both backends: claimed once, applied whole or not at all."""

import multiprocessing

from gateway.store import Store

from .conftest import message, process


def test_duplicate_is_not_applied_twice(db):
    first = process(db, "stop", "SM1")
    second = process(db, "start", "SM1")  # same sid, different content: still a duplicate
    assert not first.duplicate and second.duplicate
    assert second.outcome == "opt_out" and second.reply == "bye"
    assert db.is_opted_out("+14155550100", "+15005550006")
    assert len(db.events()) == 1


def test_failed_write_leaves_nothing_half_written(db):
    def explode(opted_out):
        raise RuntimeError("boom")

    try:
        db.process_inbound(message("SM1"), explode)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure must reach the caller")
    assert db.processed("SM1") is None
    assert not process(db, "stop", "SM1").duplicate  # the sid is still free: Twilio's retry is processed normally


def test_plain_message_is_queued_with_every_parameter(db):
    params = [("Body", "hi"), ("MessagingServiceSid", "MG" + "1" * 32), ("NumMedia", "0"), ("Body", "again")]
    process(db, None, "SM1", params=params)
    (queued,) = db.queued_messages()
    assert queued["params"] == params and queued["status"] == "pending"
    assert db.processed("SM1")["outcome"] == "queued"


def _worker(url, worker, count, queue):
    store = Store(url)
    errors = 0
    for i in range(count):
        kind = "stop" if i % 2 == 0 else None
        try:
            process(store, kind, f"SM{worker}-{i}", sender=f"+1{worker:03d}{i:04d}")
            process(store, kind, f"SM{worker}-{i}", sender=f"+1{worker:03d}{i:04d}")  # duplicate
            process(store, None, f"SM-shared-{i}", sender=f"+1555{i:07d}")  # every process, the same message
        except Exception as exc:  # noqa: BLE001 - any failure counts
            errors += 1
            print(exc)
    store.close()
    queue.put(errors)


def test_many_processes_write_without_errors(db, db_url):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(db_url, w, 60, queue)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [queue.get(timeout=5) for _ in procs] == [0, 0, 0, 0]
    assert len(db.current_opt_outs()) == 4 * 30
    assert len(db.queued_messages()) == 4 * 30 + 60  # each shared message queued once, by whichever came first
    assert len(db.events()) == 4 * 30
    assert db.verify_ledger().ok

"""The hash-chained event ledger's pure logic: the canonical encoding and the walk.

The stored chain (appends, tampering, concurrent writers, the CLI) is tested
on both backends in tests/store/test_ledger.py.
"""

from gateway import ledger


def test_canonical_encoding_is_stable():
    event = {
        "id": 1,
        "event": "opt_out",
        "number": "+1",
        "twilio_number": "+2",
        "body": "Ünïcode STOP",
        "message_sid": "SM1",
        "source": "keyword",
        "state_changed": True,
        "at": "2026-01-01T00:00:00.000000Z",
        "detail": None,
    }
    assert (
        ledger.canonical(event, ledger.GENESIS)
        == (
            '[1,"opt_out","+1","+2","Ünïcode STOP","SM1","keyword",1,"2026-01-01T00:00:00.000000Z",null,"'
            + "0" * 64
            + '"]'
        ).encode()
    )
    assert ledger.event_hash(event, ledger.GENESIS) != ledger.event_hash({**event, "body": "STOP"}, ledger.GENESIS)


def _chain(count):
    events, prev = [], ledger.GENESIS
    for n in range(1, count + 1):
        event = {
            "id": n,
            "event": "opt_out",
            "number": "+1",
            "twilio_number": "+2",
            "body": None,
            "message_sid": f"SM{n}",
            "source": "keyword",
            "state_changed": 1,
            "at": "2026-01-01T00:00:00.000000Z",
            "detail": None,
        }
        event["prev_hash"], event["hash"] = prev, ledger.event_hash(event, prev)
        prev = event["hash"]
        events.append(event)
    return events


def test_verify_walks_a_chain_to_its_head():
    events = _chain(3)
    result = ledger.verify(iter(events), (3, events[-1]["hash"]))
    assert result.ok and result.checked == 3 and result.head == events[-1]["hash"]


def test_verify_names_the_first_broken_event():
    events = _chain(3)
    events[1] = {**events[1], "body": "edited"}
    result = ledger.verify(iter(events), (3, events[-1]["hash"]))
    assert not result.ok and result.broken_id == 2 and "edited" in result.reason
    assert result.summary().startswith("ledger BROKEN at event 2")


def test_verify_catches_deleted_newest_events():
    events = _chain(3)
    result = ledger.verify(iter(events[:2]), (3, events[-1]["hash"]))
    assert not result.ok and "recorded head is event 3" in result.reason


def test_state_changed_is_hashed_as_a_number():
    """SQLite returns 1, PostgreSQL could return True: the hash must be the same."""
    event = _chain(1)[0]
    assert ledger.event_hash({**event, "state_changed": True}, ledger.GENESIS) == ledger.event_hash(
        {**event, "state_changed": 1}, ledger.GENESIS
    )

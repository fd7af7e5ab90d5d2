"""The agent queue in the store, on both backends: in order per pair, leased once."""

from gateway.store import Store

from .conftest import process


def test_replayed_dead_letter_goes_before_later_messages_of_its_pair(db):
    process(db, "hello", "SM1")
    (first,) = db.claim_deliveries(10, 60)
    db.finish_delivery(first["id"], "dead", error="HTTP 400")
    process(db, "again", "SM2")
    process(db, "hello", "SM3", sender="+14155550199")  # another pair, unaffected
    assert db.retry_dead() == 1
    assert sorted(m["message_sid"] for m in db.claim_deliveries(10, 60)) == ["SM1", "SM3"]
    db.finish_delivery(first["id"], "delivered")
    assert [m["message_sid"] for m in db.claim_deliveries(10, 60)] == ["SM2"]


def test_two_stores_never_lease_one_delivery_twice(db, db_url):
    """Two workers (two stores, two connections) claim at once: each delivery goes to one of them."""
    for n in range(30):
        process(db, None, f"SM{n}", sender=f"+1415555{n % 10:04d}")
    other = Store(db_url)
    try:
        seen = []
        for _ in range(6):
            seen += [m["message_sid"] for m in db.claim_deliveries(5, 60)]
            seen += [m["message_sid"] for m in other.claim_deliveries(5, 60)]
        assert len(seen) == len(set(seen)) == 10  # one head per pair, each leased once
    finally:
        other.close()


def test_a_lapsed_lease_is_claimed_again(db, db_url):
    process(db, None, "SM1")
    assert [m["message_sid"] for m in db.claim_deliveries(10, 60)] == ["SM1"]
    assert db.claim_deliveries(10, 60) == []  # leased
    later = Store(db_url, clock=lambda: "2999-01-01T00:00:00.000000Z")  # the worker died; its lease ran out
    try:
        (again,) = later.claim_deliveries(10, 60)
        assert again["message_sid"] == "SM1" and again["attempts"] == 2
    finally:
        later.close()

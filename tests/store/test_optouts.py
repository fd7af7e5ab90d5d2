"""Opt-out records in the store, on both backends."""

from gateway.core import imports
from gateway.store import LIST_KEY

from .conftest import process


def test_filters(db):
    process(db, "stop", "SM1", sender="+1A")
    process(db, "stop", "SM2", sender="+1B")
    process(db, "stop", "SM3", sender="+1B", to="+2")
    assert [r["number"] for r in db.current_opt_outs(number="+1B")] == ["+1B", "+1B"]
    assert [r["number"] for r in db.current_opt_outs(twilio_number="+2")] == ["+1B"]
    assert db.current_opt_outs(number="+1B", twilio_number="+2")[0]["message_sid"] == "SM3"
    assert db.current_opt_outs(number="'; DROP TABLE opt_outs; --") == []
    assert [r["message_sid"] for r in db.current_opt_outs(limit=1, offset=1)] == ["SM2"]
    assert [r["message_sid"] for r in db.current_opt_outs(offset=2)] == ["SM3"]


def test_import_keeps_earlier_records_and_dates(db):
    process(db, "stop", "SM1")
    rows = [
        imports.ImportRow(2, "+14155550100", "+15005550006", "2024-01-01T00:00:00.000000Z"),
        imports.ImportRow(3, "+14155550101", "+15005550006", "2024-02-01T00:00:00.000000Z"),
    ]
    assert db.import_opt_outs(rows, "crm") == {"rows": 2, "opted_out": 1, "already_opted_out": 1}
    dates = {r["number"]: r["opted_out_at"] for r in db.current_opt_outs()}
    assert dates["+14155550101"] == "2024-02-01T00:00:00.000000Z"  # the list's own date
    assert dates["+14155550100"] != "2024-01-01T00:00:00.000000Z"  # the earlier STOP keeps its record
    assert [e["source"] for e in db.events()] == ["keyword", "import", "import"]


def _many(db, count=23):
    """``count`` opt-outs over two Twilio numbers, five to a timestamp (ties ordered by number, then Twilio number)."""
    twilio = ("+15005550006", "+15005550007")
    stamp = "2024-01-0{}T00:00:00.000000Z"
    rows = [
        imports.ImportRow(n + 2, f"+1415555{n // 2:04d}", twilio[n % 2], stamp.format(1 + n // 5)) for n in range(count)
    ]
    db.import_opt_outs(rows, "crm")
    return db.current_opt_outs()


def _key(row):
    return tuple(row[k] for k in LIST_KEY)


def test_the_list_is_in_key_order_and_pages_walk_it_both_ways(db):
    everything = _many(db)
    assert len(everything) == 23 and [_key(r) for r in everything] == sorted(_key(r) for r in everything)
    forward, after = [], None
    while page := db.current_opt_outs(limit=5, after=after):
        assert len(page) <= 5
        forward += page
        after = _key(page[-1])
    assert forward == everything
    backward, page = [], db.current_opt_outs(limit=5, last=True)
    assert page == everything[-5:]
    while page:
        backward = page + backward
        page = db.current_opt_outs(limit=5, before=_key(page[0]))
    assert backward == everything


def test_counts_give_a_page_its_place(db):
    everything = _many(db)
    assert db.count_opt_outs() == 23
    assert db.count_opt_outs(before=_key(everything[10])) == 10
    assert db.count_opt_outs(twilio_number="+15005550007") == 11
    assert db.count_opt_outs(since="2024-01-03T00:00:00.000000Z", until="2024-01-04T00:00:00.000000Z") == 10
    narrowed = db.current_opt_outs(twilio_number="+15005550007", limit=3, after=_key(everything[0]))
    assert [r["twilio_number"] for r in narrowed] == ["+15005550007"] * 3


def test_iter_opt_outs_is_the_whole_list(db):
    everything = _many(db)
    assert list(db.iter_opt_outs()) == everything
    assert list(db.iter_opt_outs(number="+14155550003")) == db.current_opt_outs(number="+14155550003")

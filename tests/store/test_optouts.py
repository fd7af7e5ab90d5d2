"""Opt-out records in the store, on both backends."""

from gateway import imports

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

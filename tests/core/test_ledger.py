"""The hash-chained event ledger's pure logic: the canonical encoding and the walk.

The stored chain (appends, tampering, concurrent writers, the CLI) is tested
on both backends in tests/store/test_ledger.py.
"""

import hashlib

import pytest

from gateway.core import ledger


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


def test_canonical_encoding_of_a_structured_detail_has_no_spaces_and_keeps_key_order():
    event = {"id": 2, "state_changed": 0, "detail": {"error_code": 21610, "note": "é"}}
    assert (
        ledger.canonical(event, "f" * 64)
        == ('[2,null,null,null,null,null,null,0,null,{"error_code":21610,"note":"é"},"' + "f" * 64 + '"]').encode()
    )


def test_an_accounts_event_is_hashed_from_its_digest_which_covers_its_fields_account_and_salt():
    event = {"id": 1, "event": "opt_out", "state_changed": 1, "account": "AC" + "b" * 32, "salt": "5" * 32}
    fields = '[1,"opt_out",null,null,null,null,null,1,null,null,"AC' + "b" * 32 + '","' + "5" * 32 + '"]'
    assert ledger.digest(event) == hashlib.sha256(fields.encode()).hexdigest()
    link = '["digest","' + ledger.digest(event) + '","' + "0" * 64 + '"]'
    assert ledger.event_hash(event, "0" * 64) == hashlib.sha256(link.encode()).hexdigest()
    # Anyone holding only the digest computes the same hash; any change to a field, the account or the salt shows.
    assert ledger.event_hash({"digest": ledger.digest(event)}, "0" * 64) == ledger.event_hash(event, "0" * 64)
    for change in ({"account": None}, {"account": "AC" + "c" * 32}, {"salt": "6" * 32}, {"event": "opt_in"}):
        assert ledger.event_hash({**event, **change}, "0" * 64) != ledger.event_hash(event, "0" * 64), change


def test_an_event_written_before_salts_keeps_the_one_step_hash():
    event = {"id": 1, "event": "opt_out", "state_changed": 1}
    assert ledger.event_hash(event, "0" * 64) == hashlib.sha256(ledger.canonical(event, "0" * 64)).hexdigest()
    salted = {**event, "salt": "5" * 32}  # written since: two steps, even without an account
    assert ledger.event_hash(salted, "0" * 64) == ledger.link_hash(ledger.digest(salted), "0" * 64)
    assert ledger.event_hash(salted, "0" * 64) != ledger.event_hash(event, "0" * 64)


def test_an_auditor_of_one_account_verifies_the_chain_and_counts_the_others_apart():
    events, prev = [], ledger.GENESIS
    for n, account in enumerate(["AC1", "AC2", None, "AC1"], start=1):
        event = {"id": n, "event": "opt_out", "state_changed": 1, "account": account, "salt": f"{n:032x}"}
        event["prev_hash"], event["hash"] = prev, ledger.event_hash(event, prev)
        prev = event["hash"]
        events.append(event)
    scoped = ledger.verify(events, (4, prev), ["AC1"])
    assert (scoped.ok, scoped.checked, scoped.others) == (True, 2, 2)
    assert scoped.summary() == f"ledger intact: 2 events checked, and 2 of other accounts, head {prev}"
    assert scoped.as_dict()["other_accounts_events_checked"] == 2
    assert ledger.verify(events, (4, prev)).checked == 4
    # Other accounts' events (and those without one), shown by their digests alone, still prove their places.
    shown = [ledger.shown(event, ["AC1"]) for event in events]
    assert shown[0] == events[0] and shown[3] == events[3]
    for event in (shown[1], shown[2]):
        assert set(event) == {"id", "digest", "prev_hash", "hash"}
    assert ledger.verify(shown, (4, prev), ["AC1"]).ok
    assert [ledger.shown(event, None) for event in events] == events
    tampered = [*shown[:1], {**shown[1], "digest": "0" * 64}, *shown[2:]]
    broken = ledger.verify(tampered, (4, prev), ["AC1"])
    assert (broken.ok, broken.broken_id, broken.checked) == (False, 2, 1)
    assert broken.summary().startswith("ledger BROKEN at event 2: its hash does not match its contents (edited)")


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


def test_event_hash_is_sha256_of_the_canonical_bytes_after_the_previous_hash():
    event = _chain(1)[0]
    prev = "f" * 64
    assert ledger.event_hash(event, prev) == hashlib.sha256(ledger.canonical(event, prev)).hexdigest()
    assert ledger.canonical(event, prev).endswith(b',"' + prev.encode() + b'"]')


def test_verify_walks_a_chain_to_its_head():
    events = _chain(3)
    result = ledger.verify(iter(events), (3, events[-1]["hash"]))
    assert result == ledger.Verification(True, 3, events[-1]["hash"])
    assert result.summary() == f"ledger intact: 3 events checked, head {events[-1]['hash']}"
    assert result.as_dict() == {
        "ok": True,
        "events_checked": 3,
        "other_accounts_events_checked": 0,
        "head": events[-1]["hash"],
        "broken_event": None,
        "reason": None,
    }


@pytest.mark.parametrize("head", [None, (0, ledger.GENESIS)])
def test_an_empty_ledger_is_intact(head):
    assert ledger.verify(iter([]), head) == ledger.Verification(True, 0, ledger.GENESIS)


def test_verify_names_the_first_edited_event():
    events = _chain(3)
    events[1] = {**events[1], "body": "edited"}
    result = ledger.verify(iter(events), (3, events[-1]["hash"]))
    edited = "its hash does not match its contents (edited)"
    assert result == ledger.Verification(False, 1, events[0]["hash"], 2, edited)
    assert result.summary() == f"ledger BROKEN at event 2: {edited} (1 events before it intact)"
    assert result.as_dict() == {
        "ok": False,
        "events_checked": 1,
        "other_accounts_events_checked": 0,
        "head": events[0]["hash"],
        "broken_event": 2,
        "reason": edited,
    }


def test_verify_names_the_event_after_a_deleted_one():
    events = _chain(3)
    result = ledger.verify(iter([events[0], events[2]]), (3, events[-1]["hash"]))
    link = "its link to the previous event does not match (an event before it was deleted or inserted)"
    assert result == ledger.Verification(False, 1, events[0]["hash"], 3, link)


def test_verify_catches_deleted_newest_events():
    events = _chain(3)
    result = ledger.verify(iter(events[:2]), (3, events[-1]["hash"]))
    reason = "the chain ends at event 2 but the recorded head is event 3 (events deleted)"
    assert result == ledger.Verification(False, 2, events[1]["hash"], 3, reason)


def test_verify_catches_a_head_that_does_not_match_the_last_hash():
    events = _chain(2)
    assert not ledger.verify(iter(events), (2, "e" * 64)).ok
    assert not ledger.verify(iter([]), (1, ledger.GENESIS)).ok


def test_state_changed_is_hashed_as_a_number():
    """SQLite returns 1, PostgreSQL could return True: the hash must be the same."""
    event = _chain(1)[0]
    assert ledger.event_hash({**event, "state_changed": True}, ledger.GENESIS) == ledger.event_hash(
        {**event, "state_changed": 1}, ledger.GENESIS
    )


def test_an_event_written_before_salts_is_opaque_in_a_proof_and_only_its_link_shows():
    old = _chain(2)  # written before salts: one-step hashes
    (opaque,) = [ledger.shown(old[0], ["AC1"])]
    assert opaque == {"id": 1, "prev_hash": ledger.GENESIS, "hash": old[0]["hash"], "opaque": True}
    assert ledger.verify([opaque, old[1]], (2, old[1]["hash"]), None).ok
    relinked = {**old[1], "prev_hash": "f" * 64}
    assert not ledger.verify([opaque, relinked], (2, old[1]["hash"]), None).ok


@pytest.mark.parametrize(
    "header",
    [None, {}, {"head": None}, {"head": {"hash": "0"}}, {"head": {"last_event_id": "x", "hash": "0"}}, "head"],
)
def test_a_proof_needs_its_head_first(header):
    with pytest.raises(ValueError) as raised:
        ledger.verify_proof([header] if header is not None else [])
    assert str(raised.value) == "not a ledger proof: its first line must hold the head and the accounts"


@pytest.mark.parametrize("accounts", ["AC1", [1], {"AC1": 1}])
def test_a_proofs_accounts_are_a_list_of_sids(accounts):
    with pytest.raises(ValueError, match="^not a ledger proof: its accounts must be a list of Account SIDs$"):
        ledger.verify_proof([{"head": {"last_event_id": 0, "hash": ledger.GENESIS}, "accounts": accounts}])


def test_a_proof_is_checked_against_the_head_it_names():
    events = _chain(2)
    head = {"head": {"last_event_id": 2, "hash": events[-1]["hash"]}, "accounts": None}
    assert ledger.verify_proof([head, *events]) == ledger.verify(events, (2, events[-1]["hash"]))
    scoped = {**head, "accounts": ["AC1"]}
    assert ledger.verify_proof([scoped, *events]).others == 2
    assert not ledger.verify_proof([head, events[0]]).ok  # the newest event left out


def _accounts_chain():
    events, prev = [], ledger.GENESIS
    for n, account in enumerate(["AC2", "AC1", "AC2"], start=1):
        event = {"id": n, "event": "opt_out", "state_changed": 1, "account": account, "salt": f"{n:032x}"}
        event["prev_hash"], event["hash"] = prev, ledger.event_hash(event, prev)
        prev = event["hash"]
        events.append(event)
    return events


@pytest.mark.parametrize(
    ("break_it", "broken_id", "checked", "others"),
    [
        (lambda events: [*events[:2], {**events[2], "prev_hash": "f" * 64}], 3, 1, 1),  # a link
        (lambda events: [*events[:2], {**events[2], "event": "opt_in"}], 3, 1, 1),  # an edit
        (lambda events: events[:2], 3, 1, 1),  # the newest left out
    ],
)
def test_a_broken_chain_still_counts_the_other_accounts_events_before_it(break_it, broken_id, checked, others):
    events = _accounts_chain()
    result = ledger.verify(break_it(events), (3, events[-1]["hash"]), ["AC1"])
    assert (result.ok, result.broken_id, result.checked, result.others) == (False, broken_id, checked, others)
    assert f"({checked} events before it intact, and {others} of other accounts)" in result.summary()


def test_verify_the_end_of_a_chain_after_an_event_taken_on_trust():
    events = _chain(5)
    head = (5, events[-1]["hash"])
    after = (2, events[1]["hash"])
    assert ledger.verify(events[2:], head, after=after) == ledger.Verification(True, 3, events[-1]["hash"])
    assert ledger.verify([], (2, events[1]["hash"]), after=after).ok  # nothing after it: the head is that event
    edited = [*events[2:3], {**events[3], "body": "edited"}, events[4]]
    broken = ledger.verify(edited, head, after=after)
    assert (broken.ok, broken.broken_id, broken.checked) == (False, 4, 1)
    wrong_start = ledger.verify(events[2:], head, after=(2, "0" * 64))
    assert (wrong_start.ok, wrong_start.broken_id) == (False, 3)
    cut = ledger.verify(events[2:4], head, after=after)  # the newest event deleted
    assert (cut.ok, cut.broken_id) == (False, 5) and "recorded head is event 5" in cut.reason

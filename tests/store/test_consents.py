"""Consent records in the store, on both backends: chained grants, revocations that end them, require_consent."""

import re

import pytest

from gateway.core import events
from gateway.core.consent import Grant, Rules
from gateway.core.messages import OutboundText
from gateway.core.scope import Scope
from gateway.store import Store

from .conftest import process

NUMBER, A, B = "+14155550100", "+15005550006", "+15005550007"
SERVICE = "MG" + "a" * 32
TEXT = OutboundText("Our spring sale starts today.", "GSM-7", 1)


def grant(sender=A, category="marketing", number=NUMBER, method="web_form"):
    return Grant(number, sender, category, method, "2026-11-30T09:00:00.000000Z", "I agree.", "Dana", {"ip": "1.2.3.4"})


@pytest.fixture
def make(db_url):
    """A store on the test database with the given scope and consent rules."""
    opened = []

    def build(mode="pair", required=("marketing",), services=None):
        store = Store(db_url, scope=Scope.build(mode, services or {}), consent_rules=Rules(required=required))
        store.init_schema()
        opened.append(store)
        return store

    yield build
    for store in opened:
        store.close()


def test_a_grant_is_a_row_and_a_chained_event(db):
    recorded = db.record_consent(grant())
    (row,) = db.consents(NUMBER)
    assert row["id"] == recorded["id"] and row["event_id"] == recorded["event_id"]
    assert (row["sender"], row["category"], row["method"], row["evidence"]) == (
        A,
        "marketing",
        "web_form",
        {"ip": "1.2.3.4"},
    )
    assert row["ended_at"] is None and row["recorded_by"] == "Dana"
    (event,) = db.history(NUMBER)
    assert (event["event"], event["twilio_number"], event["source"]) == ("consent_granted", A, "web_form")
    assert event["detail"]["consent_id"] == row["id"] and event["detail"]["wording"] == "I agree."
    assert db.verify_ledger().ok


@pytest.mark.parametrize(
    ("mode", "revoked_at", "ended"),
    [
        ("pair", A, {A, "*", SERVICE}),  # the pair's, the business's and the service's consent
        ("pair", B, {B, "*", SERVICE}),
        ("messaging_service", A, {A, B, "*", SERVICE}),
        ("business", "+15005550099", {A, B, "*", SERVICE}),  # revoke-all: every consent of the number
    ],
)
def test_a_stop_ends_the_consents_it_covers(make, mode, revoked_at, ended):
    store = make(mode, services={SERVICE: [A, B]})
    for sender in (A, B, "*", SERVICE):
        store.record_consent(grant(sender))
    store.record_consent(grant(A, number="+14155550111"))  # another person's
    process(store, "stop", "SM1", to=revoked_at)
    stop_id = store.history(NUMBER)[-1]["id"]
    rows = store.consents(NUMBER)
    assert {r["sender"] for r in rows if r["ended_at"]} == ended
    assert {r["ended_by_event_id"] for r in rows if r["ended_at"]} == {stop_id}
    assert {r["sender"] for r in store.consents(NUMBER, current=True)} == {A, B, "*", SERVICE} - ended
    assert store.consents("+14155550111", current=True)  # untouched
    assert store.verify_ledger().ok


def test_a_repeated_stop_still_ends_a_consent_given_after_the_first(make):
    store = make()
    process(store, "stop", "SM1")
    store.record_consent(grant())  # recorded while opted out: it does not opt the pair back in
    assert store.is_opted_out(NUMBER, A)
    process(store, "stop", "SM2")
    (row,) = store.consents(NUMBER)
    assert row["ended_by_event_id"] == store.history(NUMBER)[-1]["id"]


@pytest.mark.parametrize("means", ["manual", "carrier", "import", "candidate"])
def test_every_means_of_revocation_ends_consent(make, means):
    store = make()
    store.record_consent(grant())
    if means == "manual":
        store.record_manual(NUMBER, A, True, "phone call", "Dana")
    elif means == "carrier":
        store.record_carrier_opt_out(NUMBER, A, {"error_code": 21610})
    elif means == "import":
        from gateway.core.imports import ImportRow

        store.import_opt_outs([ImportRow(2, NUMBER, A, "2026-11-01T00:00:00.000000Z")], "crm")
    else:
        process(store, None, "SM1", candidate="stop_contacting", body="stop texting me")
        (candidate,) = store.revocation_candidates()
        store.resolve_candidate(candidate["id"], True, "Dana")
    assert store.consents(NUMBER, current=True) == []


def test_a_start_grants_the_keyword_categories(db_url):
    store = Store(db_url, consent_rules=Rules(keyword=("informational", "marketing")))
    store.init_schema()
    process(store, "start", "SM9", body="START")
    rows = store.consents(NUMBER)
    assert [(r["category"], r["method"], r["sender"], r["wording"]) for r in rows] == [
        ("informational", "keyword", A, "START"),
        ("marketing", "keyword", A, "START"),
    ]
    assert rows[0]["evidence"] == {"message_sid": "SM9"}
    quiet = Store(db_url, consent_rules=Rules(keyword=()))  # a deployment that records no keyword consent
    process(quiet, "start", "SM10", body="START")
    assert len(quiet.consents(NUMBER)) == 2
    store.close()
    quiet.close()


def test_require_consent_suppresses_and_records_the_reason(make):
    store = make()
    sent = store.queue_outbound(NUMBER, A, TEXT, events.API, category="marketing")
    assert (sent["status"], sent["reason"]) == ("suppressed", "no_consent")
    event = store.history(NUMBER)[-1]
    assert event["event"] == "suppressed" and event["twilio_number"] == A
    assert event["detail"] == {"outbound_id": sent["id"], "sender": A, "reason": "no_consent", "category": "marketing"}
    assert store.outbound(sent["id"])["suppressed_reason"] == "no_consent"
    # A category that needs none, and a send with no category (an agent's reply), go.
    assert store.queue_outbound(NUMBER, A, TEXT, events.API, category="informational")["status"] == "queued"
    assert store.queue_outbound(NUMBER, A, TEXT, events.AGENT)["status"] == "queued"
    # With consent: to the number, to its service, or to the whole business.
    for sender in (A, "*"):
        other = f"+1415555{len(sender):04d}"
        store.record_consent(grant(sender, number=other))
        assert store.queue_outbound(other, A, TEXT, events.API, category="marketing")["status"] == "queued"
    store.record_consent(grant(A, category="informational", number="+14155550177"))
    assert store.queue_outbound("+14155550177", A, TEXT, events.API, category="marketing")["reason"] == "no_consent"


def test_consent_to_one_number_does_not_allow_a_send_through_its_service(make):
    store = make(services={SERVICE: [A, B]})
    store.record_consent(grant(A))
    assert store.queue_outbound(NUMBER, SERVICE, TEXT, events.API, category="marketing")["reason"] == "no_consent"
    store.record_consent(grant(SERVICE))
    assert store.queue_outbound(NUMBER, SERVICE, TEXT, events.API, category="marketing")["status"] == "queued"
    assert store.queue_outbound(NUMBER, B, TEXT, events.API, category="marketing")["status"] == "queued"


def test_an_opt_out_wins_over_a_consent(make):
    store = make()
    store.record_consent(grant())
    process(store, "stop", "SM1")
    store.record_consent(grant())  # a consent recorded after the STOP does not lift it
    sent = store.queue_outbound(NUMBER, A, TEXT, events.API, category="marketing")
    assert (sent["status"], sent["reason"]) == ("suppressed", "opted_out")


def test_a_consent_that_ends_before_the_send_suppresses_it_at_send_time(make):
    store = make()
    store.record_consent(grant("*"))
    queued = store.queue_outbound(NUMBER, A, TEXT, events.API, category="marketing")
    assert queued["status"] == "queued"
    # Revoked at another number (pair scope: A is not opted out), which still ends the business-wide consent.
    process(store, "stop", "SM1", to=B)
    assert not store.is_opted_out(NUMBER, A)
    assert store.claim_outbound(10, lease_seconds=30) == []
    assert store.outbound(queued["id"])["suppressed_reason"] == "no_consent"
    last = store.history(NUMBER)[-1]
    assert last["event"] == "suppressed" and last["detail"]["at_send_time"] is True


def test_import_is_all_or_nothing_and_each_row_is_chained(db):
    result = db.import_consents([grant(), grant(B, category="informational")])
    assert result == {"rows": 2, "recorded": 2}
    assert [e["event"] for e in db.history(NUMBER)] == ["consent_granted", "consent_granted"]
    with pytest.raises(Exception):  # noqa: B017 - a row the database refuses rolls the whole import back
        db.import_consents([grant(number="+14155550199"), Grant(None, A, "x", "api", "t", "w", "r")])  # type: ignore[arg-type]
    assert db.consents("+14155550199") == []


def test_a_withdrawal_ends_one_category_and_keeps_the_rest(make):
    store = make()
    store.record_consent(grant(A, "marketing"))
    store.record_consent(grant("*", "marketing"))
    store.record_consent(grant(A, "informational"))
    store.record_consent(grant(B, "marketing"))
    result = store.withdraw_consent(NUMBER, "marketing", A, "email, ticket 88", "Dana")
    assert result["ended"] == [1, 2]  # to A and to the whole business (which covers A); not to B
    current = {(c["sender"], c["category"]) for c in store.consents(NUMBER, current=True)}
    assert current == {(A, "informational"), (B, "marketing")}
    event = store.history(NUMBER)[-1]
    assert (event["event"], event["twilio_number"], event["state_changed"]) == ("consent_withdrawn", A, False)
    assert event["detail"] == {"category": "marketing", "consents": [1, 2], "reason": "email, ticket 88", "by": "Dana"}
    assert store.queue_outbound(NUMBER, A, TEXT, events.API, category="marketing")["reason"] == "no_consent"
    assert store.queue_outbound(NUMBER, B, TEXT, events.API, category="marketing")["status"] == "queued"
    assert not store.is_opted_out(NUMBER, A) and store.verify_ledger().ok
    with pytest.raises(LookupError, match=re.escape(f"{NUMBER} has no current consent to marketing from {A}")):
        store.withdraw_consent(NUMBER, "marketing", A, "again", "Dana")
    with pytest.raises(ValueError, match="category 'informational' is not in require_consent"):
        store.withdraw_consent(NUMBER, "informational", A, "x", "Dana")
    assert store.withdraw_consent(NUMBER, "marketing", "*", "all of it", "Dana")["ended"] == [4]

"""Consent records as plain functions: validation of a grant, what a revocation ends, what allows a send."""

import hashlib
import json

import pytest

from gateway.core.consent import (
    BUSINESS,
    METHODS,
    TWILIO_SOURCES,
    Clarification,
    Grant,
    Rules,
    SyncItem,
    brief,
    categories_setting,
    grant,
    senders_covering,
    senders_ended,
    sync_senders,
    timeline,
)
from gateway.core.scope import Scope

NOW = "2026-12-01T10:00:00.000000Z"
CATEGORIES = ("marketing", "informational")
SERVICE = "MG" + "a" * 32
A, B, C = "+15005550006", "+15005550007", "+15005550008"
GOOD = {
    "number": "+14155550100",
    "sender": A,
    "category": "marketing",
    "method": "web_form",
    "wording": "I agree to receive marketing texts from Acme. Msg & data rates may apply. Reply STOP to stop.",
}


def test_a_good_grant():
    found = grant({**GOOD, "given_at": "2026-11-30", "evidence": {"ip": "203.0.113.7"}}, CATEGORIES, NOW, "Dana")
    assert found == Grant(
        "+14155550100",
        A,
        "marketing",
        "web_form",
        "2026-11-30T00:00:00.000000Z",
        GOOD["wording"],
        "Dana",
        {"ip": "203.0.113.7"},
    )
    assert grant(GOOD, CATEGORIES, NOW, "Dana").given_at == NOW  # now when not given
    detail = json.loads(found.detail(7))
    assert detail == {
        "consent_id": 7,
        "category": "marketing",
        "method": "web_form",
        "given_at": "2026-11-30T00:00:00.000000Z",
        "wording": GOOD["wording"],
        "evidence": {"ip": "203.0.113.7"},
        "recorded_by": "Dana",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": "4155550100"}, "number: '4155550100' is not an E.164 number"),
        ({"number": None}, "number: required, a non-empty string"),
        ({"sender": "acme"}, "sender: 'acme' is not a Twilio number (E.164), a Messaging Service SID"),
        (
            {"category": "promos"},
            "category: 'promos' is not one of the configured categories: marketing, informational",
        ),
        ({"method": "telepathy"}, "method: 'telepathy' is not one of web_form, keyword, paper, verbal, import, api"),
        ({"wording": "   "}, "wording: required, a non-empty string"),
        ({"wording": "x" * 4001}, "wording: at most 4000 characters, got 4001"),
        ({"wording": "a\x00b"}, "wording: "),
        ({"given_at": "yesterday"}, "given_at: "),
        ({"given_at": "2027-01-01"}, "given_at: '2027-01-01' is in the future"),
        ({"evidence": "not json"}, "evidence: expected a JSON object"),
        ({"evidence": ["a"]}, "evidence: expected an object of text values"),
        ({"evidence": {"nested": {"a": 1}}}, "evidence: expected an object of text values"),
        ({"evidence": {"doc": "x" * 9000}}, "evidence: at most 8000 characters of JSON"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_a_bad_grant_names_the_field(change, message):
    with pytest.raises(ValueError) as raised:
        grant({**GOOD, **change}, CATEGORIES, NOW, "Dana")
    assert str(raised.value).startswith(message)


def test_grant_fields_must_be_an_object_and_evidence_may_be_json_text():
    with pytest.raises(ValueError, match="expected an object"):
        grant(["x"], CATEGORIES, NOW, "Dana")
    assert grant({**GOOD, "evidence": '{"document": "paper form 77", "page": 2}'}, CATEGORIES, NOW, "x").evidence == {
        "document": "paper form 77",
        "page": "2",
    }
    assert grant({**GOOD, "sender": BUSINESS}, CATEGORIES, NOW, "x").sender == "*"
    assert grant({**GOOD, "sender": SERVICE}, CATEGORIES, NOW, "x").sender == SERVICE


@pytest.mark.parametrize(
    ("mode", "via", "ended"),
    [
        ("pair", A, ("*", A, SERVICE)),  # the revoked number, its service and the business
        ("pair", C, ("*", C)),  # a number in no service
        ("messaging_service", A, ("*", A, B, SERVICE)),
        ("pair", SERVICE, ("*", A, B, SERVICE)),  # a revocation through a service covers its numbers
        ("business", A, None),  # every consent of the number
    ],
)
def test_what_a_revocation_ends(mode, via, ended):
    assert senders_ended(Scope.build(mode, {SERVICE: [A, B]}), via) == ended


@pytest.mark.parametrize(
    ("via", "allowed"),
    [
        (A, ("*", A, SERVICE)),  # a consent to its service or the business allows a send from the number
        (C, ("*", C)),
        (SERVICE, ("*", SERVICE)),  # a consent to one number never allows a send through the service
    ],
)
def test_what_allows_a_send(via, allowed):
    assert senders_covering(Scope.build("pair", {SERVICE: [A, B]}), via) == allowed


def test_rules_are_checked_against_the_categories():
    assert Rules().needs_consent("marketing") is False
    rules = Rules(required=("marketing",))
    assert rules.needs_consent("marketing") and not rules.needs_consent("informational")
    assert not rules.needs_consent(None)
    known = "consent_categories (marketing, informational)"
    for kwargs, message in [
        ({"required": ("promos",)}, f"require_consent: 'promos' is not one of {known}"),
        ({"keyword": ("informational", "promos")}, f"keyword_consent_categories: 'promos' is not one of {known}"),
        ({"default": "promos"}, f"default_category: 'promos' is not one of {known}"),
    ]:
        with pytest.raises(ValueError) as raised:
            Rules(**kwargs)
        assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "ok"),
    [(["marketing", "alerts_2"], True), ([], True), (["Marketing"], False), (["2fa"], False), ("marketing", False)],
)
def test_categories_setting(value, ok):
    if ok:
        assert categories_setting(value, "x") == tuple(value)
    else:
        with pytest.raises(ValueError, match="x: expected a list of category names"):
            categories_setting(value, "x")


def event(kind, sender=A, category="marketing"):
    detail = {"category": category} if kind == "consent_granted" else None
    return {"event": kind, "twilio_number": sender, "detail": detail}


def test_timeline_labels_each_change():
    events = [
        event("consent_granted"),
        event("consent_granted", category="informational"),
        event("help"),
        event("opt_out"),
        event("consent_granted"),  # after the revocation: re-granted
        event("consent_granted", sender=B),  # another sender: a first grant
        event("opt_in"),
        event("consent_granted"),  # no revocation since the last grant: granted again, not re-granted
    ]
    assert [row["change"] for row in timeline(events)] == [
        "granted",
        "granted",
        "help",
        "revoked",
        "re-granted",
        "granted",
        "opted in",
        "granted",
    ]


def test_brief_detail_for_a_table():
    grant_event = {
        "event": "consent_granted",
        "detail": {"category": "marketing", "consent_id": 3, "wording": "x" * 50},
    }
    assert brief(grant_event) == "marketing (consent 3): “" + "x" * 39 + "…”"
    short = {"event": "consent_granted", "detail": {"category": "informational", "consent_id": 1, "wording": "START"}}
    assert brief(short) == "informational (consent 1): “START”"
    assert brief({"event": "opt_out", "detail": {"reason": "call"}}) == {"reason": "call"}


ASK = "Acme: no more texts. To stop only offers, reply OFFERS."
RULES = Rules(("marketing", "informational", "surveys"), required=("marketing", "surveys"))


def test_clarification_settings_are_checked():
    found = Clarification.build(f"  {ASK} ", {"Offers": ["marketing"], "ALL": ("marketing",)}, RULES)
    assert found == Clarification(ASK, {"offers": ("marketing",), "all": ("marketing",)})
    assert found.answer("  offers. ") == ("marketing",) and found.answer("all") == ("marketing",)
    assert found.answer("offers please") is None
    for text, choices, rules, message in [
        ("  ", {"offers": ["marketing"]}, RULES, "clarification_text: empty"),
        (ASK, {}, RULES, "clarification_choices: offer at least one answer (WORD = [categories])"),
        (ASK, {"offers": []}, RULES, "clarification_choices: 'offers' needs a list of categories"),
        (ASK, {" ": ["marketing"]}, RULES, "clarification_choices: ' ' needs a list of categories"),
        (ASK, {"offers": "marketing"}, RULES, "clarification_choices: 'offers' needs a list of categories"),
        (
            ASK,
            {"offers": ["informational"]},
            RULES,
            "clarification_choices.offers: 'informational' must be in require_consent (marketing, surveys): only "
            "then can it stay stopped while the other kinds resume",
        ),
        (
            ASK,
            {"offers": ["marketing"]},
            Rules(),
            "clarification_choices.offers: 'marketing' must be in require_consent (empty): only then can it stay "
            "stopped while the other kinds resume",
        ),
    ]:
        with pytest.raises(ValueError) as raised:
            Clarification.build(text, choices, rules)
        assert str(raised.value) == message


def test_the_chained_detail_is_canonical_json():
    """Sorted keys and the wording's own characters: the same grant always hashes the same way."""
    found = Grant("+14155550100", A, "marketing", "paper", NOW, "Sí, acepto", "Dana", {"b": "2", "a": "1"})
    assert found.detail(3) == (
        '{"category": "marketing", "consent_id": 3, "evidence": {"a": "1", "b": "2"}, "given_at": '
        f'"{NOW}", "method": "paper", "recorded_by": "Dana", "wording": "Sí, acepto"}}'
    )


def test_a_sync_item_for_twilio():
    item = SyncItem("+14155550100", A, "opt-out", "offline", NOW, 42)
    expected = hashlib.sha256(f"42:{A}:opt-out".encode()).hexdigest()[:32]
    assert item.correlation_id == expected and len(expected) == 32
    assert SyncItem("+14155550100", B, "opt-out", "offline", NOW, 42).correlation_id != expected
    assert SyncItem("+14155550100", A, "opt-in", "offline", NOW, 42).correlation_id != expected
    assert item.payload("c" * 32) == {
        "contact_id": "+14155550100",
        "correlation_id": "c" * 32,
        "sender_id": A,
        "status": "opt-out",
        "source": "offline",
        "date_of_consent": NOW,
    }
    assert "date_of_consent" not in SyncItem("+1", A, "opt-in", "others", None, 1).payload("x")
    assert set(TWILIO_SOURCES) == set(METHODS)
    assert set(TWILIO_SOURCES.values()) <= {"website", "offline", "opt-in-message", "opt-out-message", "others"}


@pytest.mark.parametrize(
    ("mode", "via", "seen", "expected"),
    [
        ("pair", A, True, ()),  # Twilio saw it, and the scope covers nothing else
        ("pair", A, False, (A,)),
        ("pair", "+15005550099", False, ("+15005550099",)),  # a number not configured as a sender: itself
        ("messaging_service", A, True, (B, SERVICE)),
        ("business", A, True, (B, C, SERVICE)),
        ("business", A, False, (A, B, C, SERVICE)),
        ("pair", "*", False, (A, B, C, SERVICE)),  # a consent to the whole business: every sender
    ],
)
def test_which_senders_twilio_is_told_about(mode, via, seen, expected):
    scope = Scope.build(mode, {SERVICE: [A, B]})
    assert sync_senders(scope, (A, B, C, SERVICE), via, seen) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"wording": "w" * 4000}, "w" * 4000),  # the longest wording kept
        ({"given_at": ""}, NOW),  # a blank cell: now
        ({"given_at": NOW}, NOW),  # given this very moment: not in the future
        ({"evidence": ""}, {}),
        ({"evidence": {"doc": "d" * 7989}}, {"doc": "d" * 7989}),  # 8,000 characters of JSON exactly
    ],
)
def test_grant_limits_are_inclusive(change, expected):
    found = grant({**GOOD, **change}, CATEGORIES, NOW, "Dana")
    field = next(iter(change))
    assert {"wording": found.wording, "given_at": found.given_at, "evidence": found.evidence}[field] == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (["x"], "expected an object with number, sender, category, method and wording"),
        (
            {**GOOD, "colour": "red"},
            "unknown field 'colour'; a consent has category, evidence, given_at, method, number, sender, wording",
        ),
        ({**GOOD, "evidence": {"ip\x00": "1"}}, "evidence: 'ip\\x00' must not contain NUL characters"),
        ({**GOOD, "evidence": {"ip": "1\x00"}}, "evidence: 'ip' must not contain NUL characters"),
    ],
)
def test_grant_messages_in_full(fields, message):
    with pytest.raises(ValueError) as raised:
        grant(fields, CATEGORIES, NOW, "Dana")
    assert str(raised.value) == message


def test_a_revocation_through_a_service_or_with_a_hint():
    scope = Scope.build("pair", {SERVICE: [A, B]})
    other = "MG" + "b" * 32
    assert senders_ended(scope, C, other) == ("*", C, other)  # Twilio named the number's service
    assert senders_ended(scope, SERVICE, other) == ("*", A, B, SERVICE)  # a service is its own
    assert senders_covering(scope, other) == ("*", other)


@pytest.mark.parametrize(
    ("wording", "shown"),
    [("", "“”"), ("x" * 40, "“" + "x" * 40 + "”"), ("x" * 41, "“" + "x" * 39 + "…”")],
)
def test_brief_keeps_forty_characters(wording, shown):
    event = {"event": "consent_granted", "detail": {"category": "marketing", "consent_id": 2, "wording": wording}}
    assert brief(event) == f"marketing (consent 2): {shown}"
    assert brief({"event": "consent_granted", "detail": {"category": "marketing", "consent_id": 2}}).endswith("“”")


def test_a_first_grant_of_another_kind_after_a_revocation_is_granted_not_re_granted():
    events = [
        event("consent_granted"),
        event("opt_out"),
        event("consent_granted", category="informational"),
        event("revocation_candidate"),
        {"event": "consent_granted", "twilio_number": A, "detail": None},
    ]
    assert [row["change"] for row in timeline(events)] == [
        "granted",
        "revoked",
        "granted",
        "revocation candidate",
        "granted",
    ]


def test_a_grant_repeated_before_any_revocation_is_granted_again():
    assert [row["change"] for row in timeline([event("consent_granted"), event("consent_granted")])] == [
        "granted",
        "granted",
    ]


def test_the_service_twilio_names_widens_a_service_scoped_revocation():
    scope = Scope.build("messaging_service", {SERVICE: [A, B]})
    assert senders_ended(scope, C, SERVICE) == ("*", A, B, C, SERVICE)


def test_a_withdrawal_of_one_category_then_its_grant_again():
    withdrawn = {"event": "consent_withdrawn", "twilio_number": A, "detail": {"category": "marketing"}}
    events = [event("consent_granted"), event("consent_granted", category="informational"), withdrawn]
    events += [event("consent_granted"), event("consent_granted", category="informational")]
    assert [row["change"] for row in timeline(events)] == ["granted", "granted", "withdrawn", "re-granted", "granted"]

"""Revocation candidates through the webhook, the CLI and the API."""

import json
from datetime import UTC, date, datetime

import pytest

from gateway.cli import cli
from gateway.core import keys

from .support.constants import SENDER, TWILIO_NUMBER
from .support.webhooks import new_sid

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


JSON = "application/json"


@pytest.fixture
def env(cli_env):
    return cli_env


@pytest.fixture
def admin(store):
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "admin")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def auditor(store):
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "auditor")
    return {"Authorization": f"Bearer {key}"}


def test_candidate_is_flagged_delivered_and_logged(twilio, store):
    sid = new_sid()
    assert twilio.sms("Please stop texting me", sid=sid).text == EMPTY  # no reply: not a keyword
    (queued,) = store.queued_messages()
    assert queued["flags"] == ["revocation_candidate"] and queued["message_sid"] == sid
    (candidate,) = store.revocation_candidates()
    assert candidate["pattern"] == "stop_contacting" and candidate["status"] == "open"
    assert candidate["body"] == "Please stop texting me" and candidate["number"] == SENDER
    (event,) = store.events()
    assert event["event"] == "revocation_candidate" and event["detail"] == {"pattern": "stop_contacting"}
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)  # only an auditor's confirmation opts out


@pytest.mark.parametrize("body", ["hello", "don't stop the reminders", "what time do you stop serving lunch"])
def test_ordinary_messages_are_not_flagged(twilio, store, body):
    twilio.sms(body)
    assert store.queued_messages()[0]["flags"] == [] and store.revocation_candidates() == []


def test_exact_keyword_is_not_a_candidate(twilio, store):
    twilio.sms("STOP")
    assert store.revocation_candidates() == []


def test_candidate_from_opted_out_pair_is_just_dropped(twilio, store):
    twilio.sms("STOP")
    twilio.sms("stop texting me!!")
    assert store.revocation_candidates() == [] and store.events()[-1]["event"] == "dropped"


def test_cli_list_confirm_dismiss(runner, env, twilio, store):
    twilio.sms("opt me out", sender="+14155550111")
    twilio.sms("remove me from your list", sender="+14155550112")
    listed = json.loads(runner.invoke(cli, ["optouts", "candidates", "--format", "json"], env=env).output)
    assert [c["number"] for c in listed] == ["+14155550111", "+14155550112"]
    assert listed[0]["age_business_days"] == 0 and listed[0]["overdue"] is False
    assert listed[0]["due_by"] > listed[0]["received_at"][:10]

    confirm = runner.invoke(cli, ["optouts", "confirm", str(listed[0]["id"]), "--by", "Dana Reyes"], env=env)
    assert confirm.exit_code == 0 and f"Candidate {listed[0]['id']} confirmed by Dana Reyes" in confirm.output
    assert store.is_opted_out("+14155550111", TWILIO_NUMBER)
    assert store.current_opt_outs()[0]["source"] == "manual"

    dismiss = runner.invoke(
        cli,
        [
            "optouts",
            "dismiss",
            str(listed[1]["id"]),
            "--by",
            "Sam Lee",
            "--note",
            "asked to be removed from the waiting list, not texts",
        ],
        env=env,
    )
    assert dismiss.exit_code == 0
    assert not store.is_opted_out("+14155550112", TWILIO_NUMBER)

    again = runner.invoke(cli, ["optouts", "confirm", str(listed[1]["id"]), "--by", "x"], env=env)
    assert again.exit_code == 1 and "was already dismissed by Sam Lee" in again.output
    missing = runner.invoke(cli, ["optouts", "confirm", "999", "--by", "x"], env=env)
    assert missing.exit_code == 1 and "no revocation candidate 999" in missing.output

    assert json.loads(runner.invoke(cli, ["optouts", "candidates", "--format", "json"], env=env).output) == []
    everything = json.loads(
        runner.invoke(cli, ["optouts", "candidates", "--status", "all", "--format", "json"], env=env).output
    )
    assert [(c["status"], c["resolved_by"]) for c in everything] == [
        ("confirmed", "Dana Reyes"),
        ("dismissed", "Sam Lee"),
    ]
    events = [(e["event"], e["source"]) for e in store.events()]
    assert events == [
        ("revocation_candidate", "pattern"),
        ("revocation_candidate", "pattern"),
        ("opt_out", "manual"),
        ("candidate_dismissed", "manual"),
    ]
    assert store.events()[3]["detail"]["reason"] == "asked to be removed from the waiting list, not texts"
    assert store.verify_ledger().ok


def test_dismiss_needs_a_note(runner, env, twilio):
    twilio.sms("opt me out")
    result = runner.invoke(cli, ["optouts", "dismiss", "1", "--by", "x"], env=env)
    assert result.exit_code == 2 and "Missing option '--note'" in result.output


# -- API ----------------------------------------------------------------------------------


def test_api_list_and_resolve(client, twilio, store, admin, auditor):
    twilio.sms("no more texts please")
    listed = client.get("/v1/revocation-candidates", headers=auditor).json
    assert listed["business_days_to_honour"] == 10
    (candidate,) = listed["data"]
    assert candidate["pattern"] == "no_more" and candidate["age_business_days"] == 0

    path = f"/v1/revocation-candidates/{candidate['id']}/confirm"
    assert client.post(path, json={"by": "Dana"}, headers=auditor).status_code == 403
    response = client.post(path, json={"by": "Dana", "note": "clear revocation"}, headers=admin)
    assert response.status_code == 200 and response.json["status"] == "confirmed"
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    conflict = client.post(path, json={"by": "Dana"}, headers=admin)
    assert conflict.status_code == 409 and "already confirmed by Dana" in conflict.json["message"]
    assert (
        client.post("/v1/revocation-candidates/99/dismiss", json={"by": "a", "note": "b"}, headers=admin).status_code
        == 404
    )
    assert client.get("/v1/revocation-candidates?status=confirmed", headers=auditor).json["data"][0]["id"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("null", "expected a JSON object body, got null"),
        ([{"by": "a"}], "expected a JSON object body, got an array"),
        ({"note": "x"}, "by is required"),
        ({"by": "  ", "note": "x"}, "by must not be empty"),
        ({"by": "a"}, "note is required"),
        ({"by": "a", "note": 5}, "note must be a string, got a number"),
        ({"by": "a", "note": "x", "extra": 1}, "unknown field(s): extra"),
        ({"by": ["a"], "note": "x"}, "by must be a string, got an array"),
    ],
)
def test_api_dismiss_validation(client, twilio, admin, body, message):
    twilio.sms("opt me out")
    if isinstance(body, str):
        response = client.post("/v1/revocation-candidates/1/dismiss", data=body, headers=admin, content_type=JSON)
    else:
        response = client.post("/v1/revocation-candidates/1/dismiss", json=body, headers=admin)
    assert response.status_code == 400 and response.json["message"] == message


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        ("", None, 415, "send the body as JSON, with Content-Type: application/json"),
        ("by=a&note=b", "application/x-www-form-urlencoded", 415, "send the body as JSON"),
        ("{", JSON, 400, "the body is not valid JSON: "),
        ("[" * 50_000, JSON, 400, "the JSON body is nested too deeply"),
        ('{"by": "\\ud800", "note": "x"}', JSON, 400, "by must be valid Unicode text"),  # decodes, but is no UTF-8
        (b"\xff\xfe", JSON, 400, "the body is not valid JSON: "),
    ],
)
def test_api_bodies_that_are_not_json_objects(client, twilio, admin, data, content_type, status, message):
    twilio.sms("opt me out")
    response = client.post("/v1/revocation-candidates/1/dismiss", data=data, headers=admin, content_type=content_type)
    assert response.status_code == status and response.json["message"].startswith(message)


def test_api_bad_status(client, auditor):
    response = client.get("/v1/revocation-candidates?status=closed", headers=auditor)
    assert response.status_code == 400


def test_api_manual_opt_out_and_in(client, store, admin, auditor):
    body = {"number": SENDER, "twilio_number": TWILIO_NUMBER, "reason": "email to support", "by": "Dana"}
    assert client.post("/v1/opt-outs", json=body, headers=auditor).status_code == 403
    created = client.post("/v1/opt-outs", json=body, headers=admin)
    assert created.status_code == 201 and created.json["state_changed"] is True
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert client.post("/v1/opt-ins", json={**body, "reason": "signed form"}, headers=admin).status_code == 201
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)
    bad = client.post("/v1/opt-outs", json={**body, "number": "555"}, headers=admin)
    assert bad.status_code == 400 and "not an E.164 number" in bad.json["message"]
    nul = client.post("/v1/opt-outs", json={**body, "by": "Da\u0000na"}, headers=admin)
    assert nul.status_code == 400 and nul.json["message"] == "by must not contain NUL characters"
    assert [e["detail"]["by"] for e in store.events()] == ["Dana", "Dana"]
    assert client.post("/v1/opt-outs", json=body).status_code == 401


def test_candidate_age_uses_today(client, twilio, store, auditor):
    twilio.sms("opt me out")
    row = client.get("/v1/revocation-candidates", headers=auditor).json["data"][0]
    received = date.fromisoformat(row["received_at"][:10])
    assert received == datetime.now(UTC).date()

"""Outbound SMS against a fake Twilio server on loopback, with the real twilio client."""

import logging
import time

import pytest

from gateway import create_app
from gateway.cli import cli
from gateway.core import keys
from gateway.messaging import services
from gateway.messaging.agent_api import send_sms, send_sms_template

from ..support.accounts import outbound_config
from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    REGION_ACCOUNT,
    REGION_NUMBER,
    SENDER,
    SERVICE,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.webhooks import TwilioSender, sms_params


@pytest.fixture
def app_config(db_url, fake):
    return outbound_config(db_url, fake)


@pytest.fixture
def sender_key(store):
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "sender")
    return {"Authorization": f"Bearer {key}"}


def test_send_reaches_twilio_with_status_callback(outbound, fake, store):
    queued = outbound.queue(SENDER, content="Your table is ready")
    assert queued["status"] == "queued" and queued["encoding"] == "GSM-7" and queued["segments"] == 1
    assert fake.sent == []  # queueing returns at once; the dispatcher sends
    assert outbound.dispatch_once() == 1
    (form,) = fake.sent
    assert form == {
        "To": SENDER,
        "From": TWILIO_NUMBER,
        "Body": "Your table is ready",
        "StatusCallback": "https://gw.example.com/twilio/status",
    }
    row = store.outbound(queued["id"])
    assert row["status"] == "queued" and row["message_sid"].startswith("SM") and row["attempts"] == 1
    assert outbound.dispatch_once() == 0  # nothing sent twice


def test_messaging_service_sender(outbound, fake):
    outbound.queue(SENDER, content="hi", agent_number=SERVICE)
    outbound.dispatch_once()
    assert fake.sent[0]["MessagingServiceSid"] == SERVICE and "From" not in fake.sent[0]


def test_suppressed_sends_never_reach_twilio(outbound, fake, store, twilio):
    twilio.sms("STOP")
    result = outbound.queue(SENDER, content="Special offer!")
    assert result["status"] == "suppressed"
    assert outbound.dispatch_once() == 0 and fake.requests == []
    event = store.events()[-1]
    assert event["event"] == "suppressed" and event["twilio_number"] == TWILIO_NUMBER
    # The pair rule: the same recipient is still reachable from another number.
    assert outbound.queue(SENDER, content="hi", agent_number="+15005550007")["status"] == "queued"
    # A Messaging Service could pick the opted-out number: suppressed.
    assert outbound.queue(SENDER, content="hi", agent_number=SERVICE)["status"] == "suppressed"
    assert store.verify_ledger().ok


def test_opt_out_after_queueing_is_honoured_at_send_time(outbound, fake, store, twilio):
    queued = outbound.queue(SENDER, content="Reminder")
    twilio.sms("STOP")
    assert outbound.dispatch_once() == 0
    assert fake.requests == [] and store.outbound(queued["id"])["status"] == "suppressed"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried_with_backoff(outbound, fake, store, status):
    fake.failures = [(status, {"Retry-After": "0"} if status == 429 else {}), (status, {})]
    queued = outbound.queue(SENDER, content="hello")
    outbound.dispatch_once()
    row = store.outbound(queued["id"])
    assert row["status"] == "retrying" and row["error_message"] == f"HTTP {status}"
    deadline = time.monotonic() + 5
    while store.outbound(queued["id"])["status"] != "queued" and time.monotonic() < deadline:
        outbound.dispatch_once()
        time.sleep(0.01)
    row = store.outbound(queued["id"])
    assert row["status"] == "queued" and row["attempts"] == 3 and row["message_sid"]
    assert len(fake.requests) == 3 and len({r["form"]["Body"] for r in fake.requests}) == 1


def test_retry_after_is_honoured(outbound, fake, store):
    fake.failures = [(429, {"Retry-After": "120"})]
    queued = outbound.queue(SENDER, content="hello")
    outbound.dispatch_once()
    row = store.outbound(queued["id"])
    assert row["status"] == "retrying" and row["next_attempt_at"] > row["updated_at"][:14]
    assert outbound.dispatch_once() == 0 and len(fake.requests) == 1


def test_gives_up_after_the_maximum_age(outbound, fake, store):
    outbound.max_age = outbound.max_age.__class__(seconds=0)
    fake.failures = [(500, {})]
    queued = outbound.queue(SENDER, content="hello")
    outbound.dispatch_once()
    assert store.outbound(queued["id"])["status"] == "failed"


def test_unsubscribed_recipient_error_records_a_carrier_opt_out(outbound, fake, store, caplog):
    fake.unsubscribed.add(SENDER)
    queued = outbound.queue(SENDER, content="hello")
    with caplog.at_level(logging.ERROR, logger="gateway"):
        outbound.dispatch_once()
    row = store.outbound(queued["id"])
    assert row["status"] == "failed" and row["error_code"] == 21610
    assert store.current_opt_outs()[0]["source"] == "carrier"
    assert SENDER not in caplog.text  # numbers are masked in logs
    assert outbound.queue(SENDER, content="again")["status"] == "suppressed"


def test_wrong_credentials_fail_without_retry(app_config, fake):
    app = create_app({**app_config, "TWILIO_AUTH_TOKEN": "f" * 32})
    sender = services.of(app).outbound
    queued = sender.queue(SENDER, content="hello")
    sender.dispatch_once()
    row = services.of(app).store.outbound(queued["id"])
    assert row["status"] == "failed" and row["error_code"] == 20003


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to_number": "4155550100", "content": "x"}, "to_number '4155550100' is not an E.164 number such as"),
        (
            {"to_number": "+1415555", "content": "x"},
            "'+1415555' is not an E.164 number such as +14155550100: too short",
        ),
        ({"to_number": SENDER, "content": "x", "agent_number": "+19999999999"}, "is not one of this environment's"),
        ({"to_number": SENDER}, "give the text as content, or a template with variables"),
        ({"to_number": SENDER, "content": "hi\u0000"}, "content must not contain NUL characters"),
        ({"to_number": SENDER, "template": ["x"]}, "template must be a string, got an array"),
        ({"to_number": SENDER, "template": {"a": 1}}, "template must be a string, got an object"),
        ({"to_number": SENDER, "content": 7}, "content must be a string, got a number"),
        (
            {"to_number": SENDER, "template": "reservation_confirmation", "variables": {"name": ["x"]}},
            "variables.name must be a string or a number, got an array",
        ),
        ({"to_number": SENDER, "content": "x", "template": "reservation_confirmation"}, "not both"),
        ({"to_number": SENDER, "content": "  "}, "content must be a non-empty string"),
        ({"to_number": SENDER, "template": "nope"}, "unknown template 'nope'"),
        (
            {"to_number": SENDER, "template": "reservation_confirmation", "variables": {"customer_name": "A"}},
            "template 'reservation_confirmation': missing variable 'property_name'",
        ),
    ],
)
def test_api_rejects_bad_requests(client, sender_key, fake, kwargs, message):
    response = client.post("/v1/outbound-sms", json=kwargs, headers=sender_key)
    assert response.status_code == 400 and message in response.json["message"]
    assert fake.requests == []


def test_api_queues_and_reports(client, sender_key, outbound, fake):
    response = client.post(
        "/v1/outbound-sms",
        headers=sender_key,
        json={
            "to_number": SENDER,
            "template": "reservation_confirmation",
            "variables": {
                "customer_name": "Ana",
                "property_name": "Casa Luz",
                "entity:booking_date": "Friday",
                "vrbl:CONFIRMATION_CODE": "X7",
            },
        },
    )
    assert response.status_code == 202
    body = response.json
    assert body["status"] == "queued" and body["encoding"] == "GSM-7" and body["segments"] == 1
    assert body["sender"] == TWILIO_NUMBER and isinstance(body["id"], int)
    outbound.dispatch_once()
    assert fake.sent[0]["Body"].startswith("Hi Ana, your reservation at Casa Luz is confirmed for Friday. Ref X7.")
    unicode = client.post("/v1/outbound-sms", headers=sender_key, json={"to_number": SENDER, "content": "Olá 😀" * 20})
    assert unicode.json["encoding"] == "UCS-2" and unicode.json["segments"] == 2  # 120 UTF-16 units


def test_api_records_the_pairs_last_outbound_message(client, sender_key, store, twilio):
    first = client.post("/v1/outbound-sms", headers=sender_key, json={"to_number": SENDER, "content": "one"}).json
    second = client.post("/v1/outbound-sms", headers=sender_key, json={"to_number": SENDER, "content": "two"}).json
    pair = store.pair(SENDER, TWILIO_NUMBER)
    assert first["id"] < second["id"] == pair["last_outbound_id"] and pair["last_outbound_at"]
    twilio.sms("STOP")
    client.post("/v1/outbound-sms", headers=sender_key, json={"to_number": SENDER, "content": "three"})
    assert store.pair(SENDER, TWILIO_NUMBER)["last_outbound_id"] == second["id"]  # a suppressed send resumes nothing


def test_api_rate_limit_per_key(app_config, fake):
    app = create_app({**app_config, "RATE_LIMIT_PER_SECOND": 0.5, "RATE_LIMIT_BURST": 3})
    client, store = app.test_client(), services.of(app).store
    first, second = keys.new_key(), keys.new_key()
    for key in (first, second):
        store.add_api_key(keys.hash_key(key), "sender")
    payload = {"to_number": SENDER, "content": "x"}

    def send(key):
        return client.post("/v1/outbound-sms", json=payload, headers={"Authorization": f"Bearer {key}"})

    assert [send(first).status_code for _ in range(3)] == [202, 202, 202]  # the burst
    refused = send(first)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"  # one token per 2 s
    assert "0.5 requests per second (bursts of 3)" in refused.json["message"]
    assert send(second).status_code == 202  # each key has its own bucket
    assert len(store.list_outbound()) == 4  # the refused request queued nothing


def test_api_auth(client, store, sender_key):
    auditor = keys.new_key()
    store.add_api_key(keys.hash_key(auditor), "auditor")
    payload = {"to_number": SENDER, "content": "x"}
    assert client.post("/v1/outbound-sms", json=payload).status_code == 401
    assert (
        client.post("/v1/outbound-sms", json=payload, headers={"Authorization": f"Bearer {auditor}"}).status_code == 403
    )


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "outbound sending is not configured: set TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT}, "no sender numbers are configured for this environment"),
        ({"SMS_BACKEND": "console"}, "no sender numbers are configured for this environment"),
    ],
)
def test_api_501_when_sending_is_not_set_up(db_url, store, sender_key, settings, reason):
    """A configuration fault no retry fixes: not a 503 (which says "retry later"), and not the client's 4xx."""
    app = create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, **settings})
    response = app.test_client().post(
        "/v1/outbound-sms", json={"to_number": SENDER, "content": "x"}, headers=sender_key
    )
    assert response.status_code == 501 and "Retry-After" not in response.headers
    assert response.json["message"].startswith(f"sending is not set up on this gateway: {reason}")


def test_python_api(app, outbound, fake, caplog):
    with app.app_context():
        assert send_sms(SENDER, TWILIO_NUMBER, "Your code is 123456")["status"] == "queued"
        assert (
            send_sms_template(
                SENDER,
                "reservation_confirmation",
                {
                    "customer_name": "A",
                    "property_name": "B",
                    "entity:booking_date": "C",
                    "vrbl:CONFIRMATION_CODE": "D",
                },
            )["status"]
            == "queued"
        )
        with caplog.at_level(logging.ERROR, logger="gateway"):
            assert send_sms("not a number", None, "x") is None
            assert send_sms_template(SENDER, "reservation_confirmation", {}) is None
    assert "missing variable 'customer_name'" in caplog.text
    assert outbound.dispatch_once() == 2


def test_worker_command_sends(runner, outbound, fake, db_url, app_config, monkeypatch):
    outbound.queue(SENDER, content="from the worker")
    env = {
        "DATABASE_URL": db_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "GATEWAY_TWILIO_API_BASE": fake.base_url,
        "GATEWAY_SENDERS": TWILIO_NUMBER,
    }
    result = runner.invoke(cli, ["worker", "--once"], env=env)
    assert result.exit_code == 0 and "1 message(s) attempted" in result.stderr
    assert fake.sent[0]["Body"] == "from the worker"


def test_console_backend_prints_instead_of_sending(runner, db_url, fake):
    env = {
        "DATABASE_URL": db_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_SMS_BACKEND": "console",
        "GATEWAY_SENDERS": TWILIO_NUMBER,
    }
    sender = create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, "SMS_BACKEND": "console"})
    sender = services.of(sender).outbound
    assert sender.can_send and not sender.enabled  # replies can go; no default sender for new conversations
    queued = sender.reply(SENDER, TWILIO_NUMBER, "Echo: hi")
    result = runner.invoke(cli, ["worker", "--once"], env=env)
    assert result.exit_code == 0 and "SMS backend is console" in result.stderr
    assert f"SMS (console backend, not sent) to +1********00 from {TWILIO_NUMBER}: Echo: hi" in result.stdout
    assert sender.store.outbound(queued["id"])["status"] == "logged" and fake.sent == []


def test_worker_idles_without_configuration(runner, db_url):
    result = runner.invoke(cli, ["worker", "--once"], env={"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN})
    assert result.exit_code == 0
    assert "not sending SMS, outbound sending is not configured" in result.stderr
    assert "not delivering to an agent" in result.stderr and "worker: idle" in result.stderr


def test_api_refuses_deeply_nested_json(client, sender_key, fake):
    response = client.post("/v1/outbound-sms", data="[" * 50_000, content_type="application/json", headers=sender_key)
    assert response.status_code == 400 and response.json["message"] == "the JSON body is nested too deeply"


# -- several accounts ------------------------------------------------------------------


NUMBERS = (TWILIO_NUMBER, BRAND_NUMBER, REGION_NUMBER)


def test_each_message_leaves_with_the_credentials_of_the_account_that_owns_its_sender(accounts_app):
    app, fake = accounts_app
    outbound, store = services.of(app).outbound, services.of(app).store
    queued = [outbound.queue(SENDER, content=f"from {number}", agent_number=number) for number in NUMBERS]
    assert outbound.dispatch_once() == 3
    # The fake answers 401 to a wrong account/token pair, so each was sent with its own account's token.
    assert sorted((r["account"], r["form"]["From"]) for r in fake.requests) == sorted(
        [(ACCOUNT, TWILIO_NUMBER), (BRAND_ACCOUNT, BRAND_NUMBER), (REGION_ACCOUNT, REGION_NUMBER)]
    )
    assert {store.outbound(q["id"])["status"] for q in queued} == {"queued"}


def test_a_stop_in_one_account_suppresses_only_that_accounts_sends(accounts_app):
    app, fake = accounts_app
    outbound = services.of(app).outbound
    stop = sms_params("STOP", to=BRAND_NUMBER, account=BRAND_ACCOUNT)
    assert TwilioSender(app.test_client()).post(stop, token=BRAND_TOKEN).status_code == 200
    statuses = {number: outbound.queue(SENDER, content="hi", agent_number=number)["status"] for number in NUMBERS}
    assert statuses == {TWILIO_NUMBER: "queued", BRAND_NUMBER: "suppressed", REGION_NUMBER: "queued"}
    assert outbound.dispatch_once() == 2
    assert sorted(r["account"] for r in fake.requests) == sorted([ACCOUNT, REGION_ACCOUNT])


def test_a_reply_from_a_number_no_account_owns_fails_with_the_reason(accounts_app, caplog):
    app, fake = accounts_app
    outbound, store = services.of(app).outbound, services.of(app).store
    queued = outbound.reply(SENDER, "+15005550099", "hi")
    with caplog.at_level(logging.ERROR, logger="gateway"):
        assert outbound.dispatch_once() == 1
    row = store.outbound(queued["id"])
    reason = "the sender +15005550099 belongs to no account of this gateway that can send"
    assert (row["status"], row["error_message"]) == ("failed", reason)
    assert fake.requests == []
    assert f"outbound {queued['id']} failed: {reason}; list it among an account's senders" in caplog.text


def test_require_consent_through_the_api(db_url, fake):
    """A marketing send needs a current marketing consent; without it the answer says why it was suppressed."""
    app = create_app({**outbound_config(db_url, fake), "REQUIRE_CONSENT": ["marketing"]})
    store = services.of(app).store
    key, admin = keys.new_key(), keys.new_key()
    store.add_api_key(keys.hash_key(key), "sender")
    store.add_api_key(keys.hash_key(admin), "admin")
    client, headers = app.test_client(), {"Authorization": f"Bearer {key}"}
    send = {"to_number": SENDER, "content": "Spring sale!", "category": "marketing"}
    refused = client.post("/v1/outbound-sms", headers=headers, json=send)
    assert refused.status_code == 202 and (refused.json["status"], refused.json["reason"]) == (
        "suppressed",
        "no_consent",
    )
    # No category: the default (informational), which needs none here.
    plain = client.post("/v1/outbound-sms", headers=headers, json={"to_number": SENDER, "content": "Your code is 1"})
    assert plain.json["status"] == "queued" and "reason" not in plain.json
    bad = client.post("/v1/outbound-sms", headers=headers, json={**send, "category": "promos"})
    assert bad.status_code == 400 and bad.json["message"] == "category 'promos' is not one of marketing, informational"
    consent = {"number": SENDER, "sender": "*", "category": "marketing", "method": "paper", "wording": "Yes to offers."}
    assert client.post("/v1/consents", headers={"Authorization": f"Bearer {admin}"}, json=consent).status_code == 201
    assert client.post("/v1/outbound-sms", headers=headers, json=send).json["status"] == "queued"
    assert store.outbound(refused.json["id"])["suppressed_reason"] == "no_consent"
    store.close()

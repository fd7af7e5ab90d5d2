"""Keeping Twilio's consent list in step: what is queued, batching, 429, partial failures, a killed worker."""

import json
import signal
import time
from datetime import UTC, datetime

import pytest

from gateway import create_app
from gateway.cli import cli
from gateway.core.consent import Grant
from gateway.core.imports import ImportRow
from gateway.core.timestamps import FORMAT
from gateway.messaging import services

from ..support.accounts import outbound_config
from ..support.constants import ACCOUNT, SENDER
from ..support.servers import wait_for, worker
from ..support.webhooks import TwilioSender

A, B = "+15005550006", "+15005550007"
SERVICE = "MG" + "c" * 32


def make_app(db_url, fake, **extra):
    settings = outbound_config(db_url, fake, senders=f"{A},{B},{SERVICE}")
    return create_app(
        {
            **settings,
            "TWILIO_CONSENT_SYNC": True,
            "CONSENT_SYNC_REQUESTS_PER_MINUTE": 6000,
            "MESSAGING_SERVICES": {SERVICE: [A, B]},
            **extra,
        }
    )


def grant(number=SENDER, sender=A, method="web_form"):
    return Grant(number, sender, "marketing", method, "2026-11-30T09:00:00.000000Z", "I agree.", "Dana")


def pushed(fake):
    return [item for _, items in fake.consent_requests for item in items]


def push_until_idle(sync, rounds=50):
    for _ in range(rounds):
        if not sync.push_once():
            return
        time.sleep(0.011)  # the request spacing of 6000 a minute


def test_what_twilio_did_not_see_is_queued_and_pushed(db_url, fake):
    app = make_app(db_url, fake, OPT_OUT_SCOPE="business")
    found = services.of(app)
    store, sync, twilio = found.store, found.consent_sync, TwilioSender(app.test_client())
    twilio.sms("STOP", to=A)  # Twilio saw it at A; business scope spreads it to B and the service
    store.record_manual("+14155550111", B, True, "phone call", "Dana")  # Twilio saw nothing: every sender
    store.record_consent(grant("+14155550112", "*"))  # to the whole business: every sender
    push_until_idle(sync)
    got = {(i["contact_id"], i["sender_id"], i["status"], i["source"]) for i in pushed(fake)}
    assert got == {
        (SENDER, B, "opt-out", "opt-out-message"),
        (SENDER, SERVICE, "opt-out", "opt-out-message"),
        *{("+14155550111", sender, "opt-out", "offline") for sender in (A, B, SERVICE)},
        *{("+14155550112", sender, "opt-in", "website") for sender in (A, B, SERVICE)},
    }
    assert all(len(i["correlation_id"]) == 32 for i in pushed(fake))
    assert {i["date_of_consent"] for i in pushed(fake) if i["contact_id"] == "+14155550112"} == {
        "2026-11-30T09:00:00.000000Z"
    }
    assert {account for account, _ in fake.consent_requests} == {ACCOUNT}
    status = store.sync_status()
    assert (status["pending"], status["sent"], status["failed"]) == (0, 8, 0)


def test_pair_scope_pushes_nothing_for_a_keyword_twilio_saw(db_url, fake):
    app = make_app(db_url, fake)
    found = services.of(app)
    TwilioSender(app.test_client()).sms("STOP", to=A)
    TwilioSender(app.test_client()).sms("START", to=A)  # and its consent grant is a keyword one: seen too
    assert found.store.sync_status()["pending"] == 0


def test_off_by_default_queues_nothing(db_url, fake):
    app = create_app(outbound_config(db_url, fake))
    store = services.of(app).store
    store.record_manual(SENDER, A, True, "call", "Dana")
    assert store.sync_status()["pending"] == 0 and not services.of(app).consent_sync.enabled


def test_batches_of_25(db_url, fake):
    app = make_app(db_url, fake)
    found = services.of(app)
    found.store.import_consents([grant(f"+1415555{i:04d}", A, "import") for i in range(60)])
    push_until_idle(found.consent_sync)
    assert [len(items) for _, items in fake.consent_requests] == [25, 25, 10]
    assert len(fake.consents) == 60 and {i["source"] for i in pushed(fake)} == {"others"}


def test_429_waits_for_retry_after_then_sends(db_url, fake):
    app = make_app(db_url, fake)
    found = services.of(app)
    found.store.record_consent(grant())
    fake.failures.append((429, {"Retry-After": "1"}))
    assert found.consent_sync.push_once() == 1
    (item,) = found.store.sync_status()["retrying_items"]
    assert item["last_error"].startswith("HTTP 429") and item["attempts"] == 0
    time.sleep(0.02)
    assert found.consent_sync.push_once() == 0  # not before Retry-After
    time.sleep(1.0)
    assert found.consent_sync.push_once() == 1
    assert len(fake.consent_requests) == 2 and len(fake.consents) == 1
    assert found.store.sync_status()["sent"] == 1


def test_a_partial_failure_is_retried_alone(db_url, fake):
    app = make_app(db_url, fake)
    found = services.of(app)
    found.consent_sync.backoff_base = 0.01
    found.store.import_consents([grant(f"+1415555{i:04d}", A, "import") for i in range(3)])
    fake.refuse["+14155550001"] = 1
    found.consent_sync.push_once()
    status = found.store.sync_status()
    assert (status["pending"], status["sent"]) == (1, 2)
    assert status["retrying_items"][0]["last_error"] == "error 30001: try later"
    time.sleep(0.05)
    push_until_idle(found.consent_sync)
    contacts = [i["contact_id"] for i in pushed(fake)]
    assert contacts.count("+14155550001") == 2 and len(contacts) == 4  # the others went once
    assert len(fake.consents) == 3 and found.store.sync_status()["sent"] == 3


def test_an_item_refused_again_and_again_is_failed_and_can_be_retried(db_url, fake, runner):
    app = make_app(db_url, fake)
    found = services.of(app)
    found.consent_sync.backoff_base = 0.001
    found.store.record_consent(grant())
    fake.refuse[SENDER] = 99
    for _ in range(10):
        found.consent_sync.push_once()
        time.sleep(0.02)
    status = found.store.sync_status()
    assert status["failed"] == 1 and len(fake.consent_requests) == 5
    env = {"DATABASE_URL": db_url, "GATEWAY_TWILIO_CONSENT_SYNC": "true"}
    shown = runner.invoke(cli, ["consent", "sync", "--status"], env=env)
    assert shown.exit_code == 1, shown.output
    assert "Twilio consent sync: on" in shown.output and "0 pending; 0 sent; 1 failed." in shown.output
    assert "error 30001: try later" in shown.output
    fake.refuse.clear()
    again = runner.invoke(cli, ["consent", "sync", "--retry-failed"], env=env)
    assert again.exit_code == 0 and again.output.startswith("1 failed item(s) queued again.")
    found.consent_sync.push_once()
    as_json = json.loads(runner.invoke(cli, ["consent", "sync", "--format", "json"], env=env).output)
    assert (as_json["sent"], as_json["failed"]) == (1, 0)


@pytest.mark.slow
def test_no_duplicates_after_a_worker_is_killed(db_url, fake, tmp_path):
    """Twilio keeps each change once (by correlation id) even when a worker dies between its request and its
    record of the answer: the items go again, with the same ids."""
    app = make_app(db_url, fake)
    store = services.of(app).store
    store.import_opt_outs(
        [ImportRow(i, f"+1415555{i:04d}", A, "2026-11-01T00:00:00.000000Z") for i in range(300)], "crm"
    )
    assert store.sync_status()["pending"] == 300
    fake.consent_delay = 0.2
    extra = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "GATEWAY_TWILIO_API_BASE": fake.base_url,
        "GATEWAY_SENDERS": f"{A},{B},{SERVICE}",
        "GATEWAY_TWILIO_CONSENT_SYNC": "true",
        "GATEWAY_CONSENT_SYNC_REQUESTS_PER_MINUTE": "6000",
        "GATEWAY_CONSENT_SYNC_LEASE_SECONDS": "1",
    }
    first = worker(db_url, "http://127.0.0.1:9/agent", tmp_path, "w1", **extra)
    wait_for(lambda: len(fake.consent_requests) >= 3, 60, "the first pushes")
    first.send_signal(signal.SIGKILL)  # most likely inside a request
    first.wait(10)
    second = worker(db_url, "http://127.0.0.1:9/agent", tmp_path, "w2", **extra)
    try:
        wait_for(lambda: store.sync_status()["sent"] == 300, 90, "every item sent")
    finally:
        second.terminate()
        second.wait(15)
    correlations = [i["correlation_id"] for i in pushed(fake)]
    assert len(fake.consents) == 300  # each opt-out once at Twilio
    assert len(correlations) - len(set(correlations)) <= 25  # at most the killed worker's batch again
    assert {item["contact_id"] for item in fake.consents.values()} == {f"+1415555{i:04d}" for i in range(300)}


def test_items_refused_in_one_request_each_back_off_by_their_own_attempts(db_url, fake):
    """An item refused several times and one refused for the first time, in the same request: each is tried
    again after its own backoff (doubled for each earlier try, with jitter), the new one within a second."""
    app = make_app(db_url, fake)
    found = services.of(app)
    found.consent_sync.backoff_base = 0.001
    found.store.record_consent(grant(SENDER))
    fake.refuse[SENDER] = 99
    for _ in range(3):  # and a fourth below: one short of failed
        found.consent_sync.push_once()
        time.sleep(0.02)
    found.store.record_consent(grant("+14155550199"))
    fake.refuse["+14155550199"] = 1
    found.consent_sync.backoff_base = 1.0
    assert found.consent_sync.push_once() == 2
    now = datetime.now(UTC).replace(tzinfo=None)
    items = {item["contact_id"]: item for item in found.store.sync_status()["retrying_items"]}
    assert items["+14155550199"]["attempts"] == 1 and items[SENDER]["attempts"] >= 3
    for item in items.values():
        wait = (datetime.strptime(item["next_attempt_at"], FORMAT) - now).total_seconds()
        longest = 2.0 ** (item["attempts"] - 2)  # doubled for each try before the one just refused
        assert longest / 2 - 0.25 <= wait <= longest, item

"""Outbound delivery statistics: the pure summary, /v1/stats and gateway stats, from real sends."""

import json

import pytest

from gateway.cli import cli
from gateway.core import keys
from gateway.core.stats import summarise
from gateway.messaging import services

from ..support.accounts import outbound_config
from ..support.constants import ACCOUNT, SENDER, TWILIO_NUMBER
from ..support.webhooks import TwilioSender

OTHER = "+15005550007"


def test_summary_counts_each_message_once_by_its_status():
    rows = [
        ("2026-11-22", TWILIO_NUMBER, "delivered", True, 3, 4),
        ("2026-11-22", TWILIO_NUMBER, "undelivered", True, 1, 1),
        ("2026-11-22", OTHER, "failed", False, 1, 1),  # refused before hand-off: failed, not sent
        ("2026-11-23", OTHER, "suppressed", False, 2, 2),
        ("2026-11-23", OTHER, "retrying", False, 1, 1),
        ("2026-11-23", OTHER, "sent", True, 1, 2),  # in flight
        ("2026-11-23", OTHER, "logged", False, 2, 2),  # printed by the console backend, never sent
    ]
    figures = summarise(rows)
    assert figures["totals"] == {
        "sent": 5,
        "delivered": 3,
        "undelivered": 1,
        "failed": 1,
        "suppressed": 2,
        "pending": 1,
        "logged": 2,
        "segments": 7,
        "delivery_rate": 0.6,
    }
    assert [r["twilio_number"] for r in figures["by_twilio_number"]] == [TWILIO_NUMBER, OTHER]
    assert figures["by_twilio_number"][0]["delivery_rate"] == 0.75
    assert [(d["day"], d["sent"], d["delivery_rate"]) for d in figures["by_day"]] == [
        ("2026-11-22", 4, 0.6),
        ("2026-11-23", 1, None),  # no known outcome yet
    ]


def test_rows_of_one_status_add_up_and_read_counts_as_delivered():
    rows = [
        ("2026-11-22", TWILIO_NUMBER, "delivered", True, 1, 1),
        ("2026-11-23", TWILIO_NUMBER, "read", True, 1, None),  # WhatsApp's read: delivered; no segment count
        ("2026-11-22", TWILIO_NUMBER, "undelivered", True, 2, 2),
        ("2026-11-23", TWILIO_NUMBER, "undelivered", True, 2, 2),
        ("2026-11-22", TWILIO_NUMBER, "queued", False, 1, 1),
        ("2026-11-23", TWILIO_NUMBER, "queued", False, 2, 1),
        ("2026-11-23", TWILIO_NUMBER, "queued", True, 5, 5),  # handed to Twilio, which has not sent it yet
    ]
    totals = summarise(rows)["totals"]
    assert (totals["delivered"], totals["undelivered"], totals["pending"]) == (2, 4, 3)
    assert (totals["sent"], totals["segments"]) == (11, 10)
    assert totals["delivery_rate"] == 0.3333  # 2 of 6, to four places


def test_empty_summary():
    assert summarise([])["totals"]["delivery_rate"] is None


@pytest.fixture
def app_config(db_url, fake):
    return outbound_config(db_url, fake)


@pytest.fixture
def traffic(app, client, store, fake, twilio):
    """Real sends through the fake Twilio and signed status callbacks: 2 delivered, 1 undelivered,
    1 refused (21610), 1 suppressed, 1 still queued."""
    outbound = services.of(app).outbound
    fake.unsubscribed.add("+14155550104")
    for n in range(5):
        outbound.queue(f"+1415555010{n}", content="hello", agent_number=TWILIO_NUMBER if n < 3 else OTHER)
    outbound.dispatch_once()
    callbacks = TwilioSender(client)
    sids = [m["message_sid"] for m in sorted(store.list_outbound(), key=lambda m: m["id"])]
    for sid, status in zip(sids, ("delivered", "delivered", "undelivered"), strict=False):
        params = [("MessageSid", sid), ("MessageStatus", status), ("AccountSid", ACCOUNT)]
        assert callbacks.post(params, url="http://localhost/twilio/status").status_code == 204
    twilio.sms("STOP", sender=SENDER, to=OTHER)
    outbound.queue(SENDER, content="offer", agent_number=OTHER)  # suppressed
    outbound.queue("+14155550199", content="later", agent_number=OTHER)  # not dispatched yet


def test_api_stats(client, store, traffic):
    auditor = keys.new_key()
    store.add_api_key(keys.hash_key(auditor), "auditor")
    response = client.get("/v1/stats", headers={"Authorization": f"Bearer {auditor}"})
    assert response.status_code == 200
    totals = response.json["totals"]
    assert (totals["sent"], totals["delivered"], totals["undelivered"], totals["failed"]) == (4, 2, 1, 1)
    assert (totals["suppressed"], totals["pending"], totals["delivery_rate"]) == (1, 1, 0.5)
    per_number = {r["twilio_number"]: r for r in response.json["by_twilio_number"]}
    assert per_number[TWILIO_NUMBER]["delivery_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert per_number[OTHER]["suppressed"] == 1
    assert len(response.json["by_day"]) == 1
    assert (
        client.get("/v1/stats?since=2999-01-01", headers={"Authorization": f"Bearer {auditor}"}).json["totals"]["sent"]
        == 0
    )
    assert client.get("/v1/stats?since=yesterday", headers={"Authorization": f"Bearer {auditor}"}).status_code == 400


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("sender", 403), ("auditor", 200), ("admin", 200)])
def test_api_stats_roles(client, store, role, status):
    headers = {}
    if role:
        key = keys.new_key()
        store.add_api_key(keys.hash_key(key), role)
        headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/stats", headers=headers).status_code == status


def test_cli_stats(runner, db_url, traffic):
    env = {"DATABASE_URL": db_url}
    table = runner.invoke(cli, ["stats"], env=env)
    assert table.exit_code == 0, table.output
    assert "delivery_rate" in table.output and "50.0%" in table.output and "Per Twilio number" in table.output
    as_json = json.loads(runner.invoke(cli, ["stats", "--format", "json"], env=env).output)
    assert as_json["totals"]["sent"] == 4 and as_json["since"] is None
    bad = runner.invoke(cli, ["stats", "--since", "soon"], env=env)
    assert bad.exit_code == 2 and "--since" in bad.output


def test_messages_the_console_backend_printed_are_counted_as_logged(runner, db_url, fake):
    """`make run` prints SMS instead of sending them: stats must not say nothing happened."""
    from gateway import create_app

    app = create_app({**outbound_config(db_url, fake), "SMS_BACKEND": "console"})
    outbound = services.of(app).outbound
    outbound.queue(SENDER, content="hello")
    outbound.dispatch_once()
    services.of(app).store.close()
    result = runner.invoke(cli, ["stats", "--format", "json"], env={"DATABASE_URL": db_url})
    assert json.loads(result.stdout)["totals"] | {"delivery_rate": None} == {
        "sent": 0,
        "delivered": 0,
        "undelivered": 0,
        "failed": 0,
        "suppressed": 0,
        "pending": 0,
        "logged": 1,
        "segments": 0,
        "delivery_rate": None,
    }
    table = runner.invoke(cli, ["stats"], env={"DATABASE_URL": db_url})
    assert "logged" in table.output.splitlines()[0]

"""Twilio's status callbacks (``POST /twilio/status``): signed, recorded once, never backwards."""

import logging
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from gateway.cli import cli
from gateway.core.messages import OutboundText
from gateway.messaging import services
from gateway.store import Store

from ..support.accounts import outbound_config
from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_TOKEN,
    FORM,
    REGION_ACCOUNT,
    REGION_NEXT_TOKEN,
    REGION_NUMBER,
    REGION_TOKEN,
    SENDER,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.servers import Gunicorn
from ..support.webhooks import TwilioSender, sign


@pytest.fixture
def app_config(db_url, fake):
    return outbound_config(db_url, fake)


def post_status(client, sid, status, error_code=None):
    params = [("MessageSid", sid), ("MessageStatus", status), ("AccountSid", ACCOUNT)]
    if error_code:
        params.append(("ErrorCode", str(error_code)))
    return TwilioSender(client).post(params, url="http://localhost/twilio/status")


def sent_message(outbound, store, to=SENDER):
    queued = outbound.queue(to, content="hello")
    outbound.dispatch_once()
    return store.outbound(queued["id"])


def test_status_transitions_deduplicated_and_never_backwards(client, outbound, store):
    sid = sent_message(outbound, store)["message_sid"]
    for status in ("sent", "sent", "delivered", "sent", "queued"):
        assert post_status(client, sid, status).status_code == 204
    row = store.outbound_by_sid(sid)
    assert row["status"] == "delivered"
    assert [r["status"] for r in store.status_history(sid)] == ["sent", "delivered", "queued"]


def test_status_callback_21610_opts_the_pair_out(client, outbound, store):
    sid = sent_message(outbound, store)["message_sid"]
    assert post_status(client, sid, "undelivered", 21610).status_code == 204
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert store.current_opt_outs()[0]["source"] == "carrier"
    assert post_status(client, sid, "undelivered", 21610).status_code == 204  # duplicate: one event
    assert [e["event"] for e in store.events()] == ["opt_out"]


def test_a2p_errors_are_explained(client, outbound, store, caplog):
    sid = sent_message(outbound, store)["message_sid"]
    with caplog.at_level(logging.WARNING, logger="gateway"):
        post_status(client, sid, "failed", 30034)
    assert "A2P 10DLC" in caplog.text
    assert store.outbound_by_sid(sid)["error_code"] == 30034


def test_status_callback_signature_is_checked(client, outbound, store):
    sid = sent_message(outbound, store)["message_sid"]
    params = [("MessageSid", sid), ("MessageStatus", "delivered")]
    forged = client.post(
        "/twilio/status",
        data=urlencode(params),
        content_type=FORM,
        headers={"X-Twilio-Signature": sign("http://localhost/twilio/status", params, "f" * 32)},
    )
    assert forged.status_code == 403
    assert store.outbound_by_sid(sid)["status"] == "queued"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("MessageStatus", "sent")], "missing required parameter(s): MessageSid and MessageStatus"),
        ([("MessageSid", "SM1"), ("MessageStatus", "sent"), ("ErrorCode", "x")], "ErrorCode must be a number"),
    ],
)
def test_status_callback_bad_requests(client, params, message):
    response = TwilioSender(client).post(params, url="http://localhost/twilio/status")
    assert response.status_code == 400 and message in response.text


@pytest.mark.slow
def test_status_callbacks_behind_a_proxy_are_checked_against_the_url_the_gateway_gave(tmp_path, db_url, fake, runner):
    """With GATEWAY_STATUS_CALLBACK_URL and no public URL, a proxy maps Twilio's calls to /twilio/status on
    another host, scheme and path: the signature is over the URL the gateway handed Twilio, and is checked so."""
    given = "https://sms.example.com/hooks/twilio-status?tenant=acme"
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "GATEWAY_TWILIO_API_BASE": fake.base_url,
        "GATEWAY_SENDERS": TWILIO_NUMBER,
        "GATEWAY_STATUS_CALLBACK_URL": given,
    }
    server = Gunicorn(tmp_path, workers=2, env=env, db_url=db_url)
    try:
        store = Store(db_url)
        store.queue_outbound(SENDER, TWILIO_NUMBER, OutboundText("hi", "GSM-7", 1), "api")
        sent = runner.invoke(cli, ["worker", "--once"], env={"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, **env})
        assert sent.exit_code == 0 and fake.requests[0]["form"]["StatusCallback"] == given
        sid = store.list_outbound()[0]["message_sid"]
        callback = [("MessageSid", sid), ("MessageStatus", "delivered"), ("AccountSid", ACCOUNT)]
        url = f"{server.base}/twilio/status"
        forged = urllib.request.Request(
            url,
            data=urlencode(callback).encode(),
            headers={"X-Twilio-Signature": sign(url.replace("127", "128"), callback)},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=30)
        refused.value.close()
        assert refused.value.code == 403 and store.list_outbound()[0]["status"] == "queued"
        proxied = urllib.request.Request(
            url, data=urlencode(callback).encode(), headers={"X-Twilio-Signature": sign(given, callback)}
        )
        with urllib.request.urlopen(proxied, timeout=30) as answer:
            assert answer.status == 204
        assert store.list_outbound()[0]["status"] == "delivered"
        store.close()
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()


# -- several accounts --------------------------------------------------------------


def test_status_callbacks_are_checked_with_the_tokens_of_the_account_they_name(accounts_app):
    app, _ = accounts_app
    outbound, store = services.of(app).outbound, services.of(app).store
    queued = outbound.queue(SENDER, content="hello", agent_number=REGION_NUMBER)
    outbound.dispatch_once()
    sid = store.outbound(queued["id"])["message_sid"]
    sender = TwilioSender(app.test_client(), url="https://gw.example.com/twilio/status")

    def status(value, account, token):
        params = [("MessageSid", sid), ("MessageStatus", value), ("AccountSid", account)]
        return sender.post(params, token=token).status_code

    assert status("sent", REGION_ACCOUNT, BRAND_TOKEN) == 403  # another account's token
    assert status("sent", REGION_ACCOUNT, TOKEN) == 403
    assert status("sent", BRAND_ACCOUNT, REGION_TOKEN) == 403  # the right token, claimed for another account
    assert status("sent", REGION_ACCOUNT, REGION_TOKEN) == 204
    assert status("delivered", REGION_ACCOUNT, REGION_NEXT_TOKEN) == 204  # mid-rotation: either token
    assert store.outbound_by_sid(sid)["status"] == "delivered"

"""Delivery to the agent session handler: a real HTTP agent on loopback, real workers."""

import signal
import sys
import time
from collections import defaultdict

import pytest

from gateway import create_app
from gateway.cli import cli
from gateway.messaging import services
from gateway.messaging.agent import signature

from ..support.accounts import outbound_config
from ..support.constants import AGENT_SECRET as SECRET
from ..support.constants import SENDER, TOKEN, TWILIO_NUMBER
from ..support.fake_agent import FakeAgent
from ..support.servers import free_port, wait_for, worker
from ..support.webhooks import TwilioSender, sms_params


@pytest.fixture
def agent():
    server = FakeAgent(SECRET)
    yield server
    server.close()


def make_app(db_url, fake, **extra):
    settings = {**outbound_config(db_url, fake), "AGENT_SECRET": SECRET, "AGENT_BACKOFF_SECONDS": 0.01, **extra}
    return create_app(settings)


@pytest.fixture
def app(db_url, fake, agent):
    return make_app(db_url, fake, AGENT_URL=agent.url)


@pytest.fixture
def forwarder(app):
    return services.of(app).forwarder


def drain(forwarder, rounds=50):
    for _ in range(rounds):
        if not forwarder.deliver_once() and not forwarder.store.outbox("pending"):
            return
        time.sleep(0.02)


def test_signature_is_hmac_sha256_of_the_body():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature("Jefe", b"what do ya want for nothing?") == "sha256=" + expected


def test_delivers_payload_signed_with_media_and_flags(twilio, forwarder, agent, store):
    twilio.sms(
        "Here is the photo",
        MessagingServiceSid="",
        NumMedia="1",
        MediaUrl0="https://m.example/1.jpg",
        MediaContentType0="image/jpeg",
    )
    twilio.sms("please stop texting me")  # a revocation candidate: delivered, flagged
    drain(forwarder)
    first, second = agent.received
    assert first["type"] == "message" and first["from"] == SENDER and first["to"] == TWILIO_NUMBER
    assert first["body"] == "Here is the photo" and first["message_sid"].startswith("SM")
    assert first["media"] == [{"url": "https://m.example/1.jpg", "content_type": "image/jpeg"}]
    assert first["delivery_id"] == first["header_delivery"] and first["received_at"].endswith("Z")
    assert first["session_id"] == second["session_id"] and isinstance(first["session_id"], int)
    assert second["flags"] == ["revocation_candidate"] and first["flags"] == []
    assert [m["status"] for m in store.outbox()] == ["delivered", "delivered"]


def test_agent_reply_is_sent_through_the_outbound_path(db_url, fake, store, twilio):
    agent = FakeAgent(SECRET, reply="Thanks, noted!")
    try:
        app = make_app(db_url, fake, AGENT_URL=agent.url)
        TwilioSender(app.test_client()).sms("Can I book for 2?")
        drain(services.of(app).forwarder)
        (reply,) = services.of(app).store.list_outbound()
        assert (reply["to_number"], reply["sender"], reply["body"]) == (SENDER, TWILIO_NUMBER, "Thanks, noted!")
        assert reply["status"] == "queued" and reply["source"] == "agent"
    finally:
        agent.close()


def test_reply_is_queued_with_the_delivery_or_not_at_all(db_url, fake, store, twilio, raw):
    """Marking the delivery done and queueing the reply are one transaction: if the reply cannot be
    stored, the delivery stays pending (and is tried again), so a reply is never lost in between."""
    agent = FakeAgent(SECRET, reply="Thanks!")
    try:
        app = make_app(db_url, fake, AGENT_URL=agent.url)
        forwarder = services.of(app).forwarder
        TwilioSender(app.test_client()).sms("hi")
        raw.refuse_inserts("outbound_messages", "disk")
        with pytest.raises(Exception, match="disk"):
            forwarder.deliver_once()
        assert store.outbox()[0]["status"] == "pending" and store.list_outbound() == []
        raw.allow_inserts("outbound_messages")
        services.of(app).store.clock = lambda: "2999-01-01T00:00:00.000000Z"  # the lease has run out
        forwarder.deliver_once()
        assert store.outbox()[0]["status"] == "delivered"
        (reply,) = store.list_outbound()
        assert reply["body"] == "Thanks!" and len(agent.received) == 2  # asked again: at least once
    finally:
        agent.close()


def test_reply_to_a_user_who_opted_out_meanwhile_is_suppressed(db_url, fake, store):
    agent = FakeAgent(SECRET, reply="Thanks!")
    try:
        app = make_app(db_url, fake, AGENT_URL=agent.url)
        sender = TwilioSender(app.test_client())
        sender.sms("hi")
        claimed = store.claim_deliveries(10, 60)
        sender.sms("STOP")  # while the agent is thinking
        services.of(app).forwarder._deliver(claimed[0])
        (reply,) = store.list_outbound()
        assert reply["status"] == "suppressed" and store.outbox()[0]["status"] == "delivered"
    finally:
        agent.close()


@pytest.mark.parametrize(("status", "headers"), [(500, {}), (503, {}), (429, {"Retry-After": "0"})])
def test_server_errors_and_throttling_are_retried(twilio, forwarder, agent, store, status, headers):
    agent.failures = [(status, {"error": "busy"}, headers)] * 2
    twilio.sms("hello")
    drain(forwarder)
    assert len(agent.received) == 1 and store.outbox()[0]["status"] == "delivered"
    assert store.outbox()[0]["attempts"] == 3


def test_retry_after_is_honoured(twilio, forwarder, agent, store):
    agent.failures = [(429, {}, {"Retry-After": "120"})]
    twilio.sms("hello")
    forwarder.deliver_once()
    row = store.outbox()[0]
    assert (
        row["status"] == "pending" and row["last_error"] == "HTTP 429" and row["next_attempt_at"] > row["received_at"]
    )
    assert forwarder.deliver_once() == 0  # not due for two minutes


def test_client_errors_are_dead_lettered_at_once_and_can_be_replayed(twilio, forwarder, agent, store, runner, db_url):
    agent.failures = [(400, {"error": "bad"}, {})]
    twilio.sms("hello")
    drain(forwarder)
    (row,) = store.outbox()
    assert row["status"] == "dead" and row["last_error"].startswith("HTTP 400") and agent.received == []
    listed = runner.invoke(cli, ["outbox", "list", "--status", "dead"], env={"DATABASE_URL": db_url})
    assert listed.exit_code == 0 and "HTTP 400" in listed.output
    replay = runner.invoke(cli, ["outbox", "retry", "--all"], env={"DATABASE_URL": db_url})
    assert replay.exit_code == 0 and "1 message(s)" in replay.output
    drain(forwarder)
    assert store.outbox()[0]["status"] == "delivered" and len(agent.received) == 1


def test_gives_up_after_the_maximum_age(db_url, fake, twilio, store):
    app = make_app(db_url, fake, AGENT_URL=f"http://127.0.0.1:{free_port()}/down", AGENT_MAX_AGE_SECONDS=1)
    twilio.sms("hello")
    forwarder = services.of(app).forwarder
    deadline = time.monotonic() + 10
    while store.outbox()[0]["status"] == "pending" and time.monotonic() < deadline:
        forwarder.deliver_once()
        time.sleep(0.05)
    row = store.outbox()[0]
    assert row["status"] == "dead" and "gave up after ConnectionError" in row["last_error"]


def test_opt_out_after_queueing_is_honoured_at_delivery(twilio, forwarder, agent, store):
    twilio.sms("hello")
    twilio.sms("STOP")
    drain(forwarder)
    assert agent.received == [] and store.outbox()[0]["status"] == "dropped"
    dropped = [e for e in store.history(SENDER) if e["event"] == "dropped"]
    assert dropped[0]["detail"] == {"at_delivery": True}


def test_in_order_per_pair(twilio, forwarder, agent, store):
    agent.failures = [(500, {}, {})]
    for n in range(3):
        twilio.sms(f"a{n}")
        twilio.sms(f"b{n}", sender="+14155550199")
    drain(forwarder)
    by_sender = defaultdict(list)
    for message in agent.received:
        by_sender[message["from"]].append(message["body"])
    assert by_sender == {SENDER: ["a0", "a1", "a2"], "+14155550199": ["b0", "b1", "b2"]}


def test_messages_wait_until_a_handler_is_configured(db_url, fake, agent):
    app = make_app(db_url, fake)
    TwilioSender(app.test_client()).sms("hello")
    assert services.of(app).forwarder.deliver_once() == 0
    later = make_app(db_url, fake, AGENT_URL=agent.url)
    drain(services.of(later).forwarder)
    assert [m["body"] for m in agent.received] == ["hello"]


def test_python_handler(db_url, fake, tmp_path, monkeypatch):
    (tmp_path / "my_agent.py").write_text(
        "seen = []\n"
        "def handle(message):\n"
        "    seen.append(message)\n"
        "    if len(seen) == 1:\n"
        "        raise RuntimeError('first call fails')\n"
        "    return {'reply': 'echo: ' + message['body']}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_agent", raising=False)  # this test's file, not an earlier run's
    app = make_app(db_url, fake, AGENT_HANDLER="my_agent:handle")
    TwilioSender(app.test_client()).sms("hi")
    drain(services.of(app).forwarder)
    import my_agent

    assert [m["body"] for m in my_agent.seen] == ["hi", "hi"]  # retried after the exception
    assert services.of(app).store.list_outbound()[0]["body"] == "echo: hi"


def test_slow_agent_is_retried(db_url, fake, agent, twilio, store):
    app = make_app(db_url, fake, AGENT_URL=agent.url, AGENT_TIMEOUT_SECONDS=0.2)
    twilio.sms("hello")
    agent.slow_first, agent.slow_seconds = {f"dlv_{store.outbox()[0]['id']}"}, 1.0
    drain(services.of(app).forwarder, rounds=100)
    row = store.outbox()[0]
    assert row["status"] == "delivered" and row["attempts"] >= 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"AGENT_URL": "http://x/agent", "AGENT_SECRET": ""}, "GATEWAY_AGENT_SECRET: required"),
        ({"AGENT_URL": "ftp://x", "AGENT_SECRET": SECRET}, "GATEWAY_AGENT_URL: expected an http"),
        ({"AGENT_URL": "http://x/a", "AGENT_SECRET": SECRET, "AGENT_HANDLER": "m:f"}, "both set"),
        ({"AGENT_HANDLER": "no colon"}, "expected module:function"),
    ],
)
def test_bad_agent_settings_are_named(db_url, settings, message):
    from gateway.settings import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, **settings})


# -- real worker processes --------------------------------------------------------------


def burst(client, count, senders=10):
    """``count`` inbound messages from ``senders`` people, in order; returns the bodies per sender."""
    sent = defaultdict(list)
    twilio = TwilioSender(client)
    for n in range(count):
        sender = f"+1415555{n % senders:04d}"
        body = f"message {n}"
        assert twilio.post(sms_params(body, sender=sender)).status_code == 200
        sent[sender].append(body)
    return sent


def received_in_order(agent):
    got = defaultdict(list)
    for message in agent.received:
        got[message["from"]].append(message["body"])
    return got


@pytest.mark.slow
def test_agent_down_during_a_burst_then_back(db_url, fake, tmp_path):
    port = free_port()
    app = make_app(db_url, fake)
    proc = worker(db_url, f"http://127.0.0.1:{port}/agent", tmp_path, "w1")
    try:
        sent = burst(app.test_client(), 500)
        time.sleep(1.0)  # the worker keeps failing to connect meanwhile
        agent = FakeAgent(SECRET, port=port)
        try:
            wait_for(lambda: len(agent.received) >= 500, 90, "500 deliveries")
            time.sleep(0.5)
            ids = agent.delivery_ids()
            assert len(ids) == len(set(ids)) == 500  # every message once
            assert received_in_order(agent) == sent  # in order per conversation
        finally:
            agent.close()
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.slow
def test_killed_worker_loses_nothing(db_url, fake, tmp_path):
    agent = FakeAgent(SECRET, delay=0.02)
    app = make_app(db_url, fake)
    sent = burst(app.test_client(), 200)
    first = worker(db_url, agent.url, tmp_path, "w1", GATEWAY_AGENT_LEASE_SECONDS="1")
    try:
        wait_for(lambda: len(agent.received) >= 40, 60, "the first deliveries")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = worker(db_url, agent.url, tmp_path, "w2", GATEWAY_AGENT_LEASE_SECONDS="1")
        try:
            wait_for(lambda: len(set(agent.delivery_ids())) >= 200, 90, "every delivery")
        finally:
            second.terminate()
            second.wait(15)
        ids = agent.delivery_ids()
        assert len(set(ids)) == 200 and len(ids) - len(set(ids)) <= 20  # at most the killed worker's batch again
        got = received_in_order(agent)
        for sender, bodies in sent.items():
            assert list(dict.fromkeys(got[sender])) == bodies  # in order, ignoring re-deliveries
    finally:
        agent.close()


@pytest.mark.slow
def test_two_workers_deliver_each_message_once(db_url, fake, tmp_path):
    agent = FakeAgent(SECRET)
    app = make_app(db_url, fake)
    sent = burst(app.test_client(), 300, senders=30)
    procs = [worker(db_url, agent.url, tmp_path, f"w{n}") for n in (1, 2)]
    try:
        wait_for(lambda: len(agent.received) >= 300, 90, "300 deliveries")
        time.sleep(0.5)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
        agent.close()
    ids = agent.delivery_ids()
    assert len(ids) == len(set(ids)) == 300
    assert received_in_order(agent) == sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the IDS of dead-lettered messages to retry (gateway outbox list --status dead), or --all"),
        (["1", "--all"], "give message IDS or --all, not both"),
        (["99999999999999999999"], "99999999999999999999 is not in the range 1<=x<=9223372036854775807"),
    ],
)
def test_outbox_retry_says_what_to_give(runner, cli_env, args, message):
    result = runner.invoke(cli, ["outbox", "retry", *args], env=cli_env)
    assert result.exit_code == 2 and message in result.output

"""Conversation sessions: every transition, with a clock the test moves (no sleeps)."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from gateway import create_app
from gateway.core.timestamps import FORMAT
from gateway.messaging import services
from gateway.messaging.sessions import Sessions
from gateway.store import Store

from ..support.accounts import outbound_config
from ..support.constants import SENDER, TOKEN, TWILIO_NUMBER
from ..support.fake_agent import FakeAgent
from ..support.webhooks import TwilioSender

SECRET = "s3cret-for-the-agent-0123456789"
WARNING = "Still there? Reply within 10 minutes to keep chatting."
DAY, GRACE = 86400, 600


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> str:
        return self.now.strftime(FORMAT)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def agent():
    server = FakeAgent(SECRET, reply="ok")
    yield server
    server.close()


@pytest.fixture
def clock():
    return Clock()


def make_app(db_url, fake, agent, clock, **extra):
    app = create_app(
        {
            **outbound_config(db_url, fake),
            "AGENT_URL": agent.url,
            "AGENT_SECRET": SECRET,
            "AGENT_BACKOFF_SECONDS": 0.01,
            "SESSION_WARNING": WARNING,
            **extra,
        }
    )
    services.of(app).store.clock = clock
    return app


@pytest.fixture
def app(db_url, fake, agent, clock):
    return make_app(db_url, fake, agent, clock)


class Conversation:
    """One user talking to the gateway, and the worker's steps, run by hand."""

    def __init__(self, app, agent, clock):
        self.app, self.agent, self.clock = app, agent, clock
        self.store = services.of(app).store
        self.outbound = services.of(app).outbound
        self.sessions = services.of(app).sessions
        self.forwarder = services.of(app).forwarder
        self.twilio = TwilioSender(app.test_client())

    def user_says(self, body: str, sender: str = SENDER) -> None:
        assert self.twilio.sms(body, sender=sender).status_code == 200
        self.deliver()

    def deliver(self) -> None:
        while self.forwarder.deliver_once():
            pass

    def idle(self, seconds: float) -> tuple[int, int]:
        """Let time pass, then run one worker sweep and deliver what it queued."""
        self.clock.advance(seconds)
        swept = self.sessions.sweep()
        self.deliver()
        return swept

    def current(self, number: str = SENDER) -> dict:
        return self.store.sessions(number=number)[0]

    def warnings(self) -> list[dict]:
        return [m for m in self.store.list_outbound() if m["source"] == "session_warning"]

    def closed_events(self) -> list[dict]:
        return [m for m in self.agent.received if m["type"] == "session.closed"]


@pytest.fixture
def talk(app, agent, clock):
    return Conversation(app, agent, clock)


def test_first_forwarded_message_opens_an_engaged_session(talk):
    talk.user_says("hi")
    talk.user_says("are you there?")
    first, second = talk.agent.received
    session = talk.current()
    assert first["session_id"] == second["session_id"] == session["id"]
    assert (session["state"], session["engaged"], session["twilio_number"]) == ("active", True, TWILIO_NUMBER)


def test_outbound_api_send_opens_a_session_the_reply_engages(talk):
    talk.outbound.queue(SENDER, content="Your table is ready", source="api")
    session = talk.current()
    assert (session["state"], session["engaged"]) == ("active", False)
    talk.user_says("on my way")
    assert talk.agent.received[0]["session_id"] == session["id"] and talk.current()["engaged"] is True


def test_each_api_send_starts_a_new_session_and_the_agent_hears_the_old_one_closed(talk):
    talk.user_says("hi")
    old = talk.current()
    talk.outbound.queue(SENDER, content="A new offer", source="api")
    talk.deliver()
    new = talk.current()
    assert new["id"] != old["id"] and talk.store.session(old["id"])["close_reason"] == "replaced"
    (event,) = talk.closed_events()
    assert (event["session_id"], event["reason"], event["from"], event["to"]) == (
        old["id"],
        "replaced",
        SENDER,
        TWILIO_NUMBER,
    )
    talk.user_says("tell me more")
    assert talk.agent.received[-1]["session_id"] == new["id"]


def test_the_agents_reply_continues_the_session(talk):
    talk.user_says("hi")  # the fake agent answers "ok": queued from the agent
    (reply,) = talk.store.list_outbound()
    assert reply["source"] == "agent" and talk.store.sessions(number=SENDER)[0]["state"] == "active"
    assert len(talk.store.sessions(number=SENDER)) == 1


def test_engaged_session_idle_for_a_day_is_warned_through_the_outbound_path(talk):
    talk.user_says("hi")
    assert talk.idle(DAY - 1) == (0, 0)
    assert talk.idle(1) == (1, 0)
    session = talk.current()
    (warning,) = talk.warnings()
    assert session["state"] == "warned" and session["warning_outbound_id"] == warning["id"]
    assert (warning["to_number"], warning["sender"], warning["body"], warning["status"]) == (
        SENDER,
        TWILIO_NUMBER,
        WARNING,
        "queued",
    )
    assert talk.idle(60) == (0, 0)  # warned once, and the warning is not activity
    assert talk.current()["state"] == "warned"


def test_activity_moves_the_idle_deadline(talk):
    talk.user_says("hi")
    talk.idle(DAY - 60)
    talk.outbound.reply(SENDER, TWILIO_NUMBER, "anything else?")  # the agent writes: activity
    assert talk.idle(120) == (0, 0)
    assert talk.idle(DAY) == (1, 0)


def test_reply_within_the_grace_keeps_the_session_open(talk):
    talk.user_says("hi")
    talk.idle(DAY)
    warned = talk.current()
    talk.clock.advance(GRACE - 1)
    talk.user_says("still here")
    session = talk.current()
    assert session["id"] == warned["id"] and session["state"] == "active" and session["warned_at"] is None
    assert talk.idle(GRACE) == (0, 0) and talk.closed_events() == []
    assert talk.idle(DAY) == (1, 0)  # idle again a day after that reply: warned again
    assert len(talk.warnings()) == 2


def test_no_reply_within_the_grace_closes_it_and_tells_the_agent(talk):
    talk.user_says("hi")
    talk.idle(DAY)
    warned = talk.current()
    assert talk.idle(GRACE - 1) == (0, 0)
    assert talk.idle(1) == (0, 1)
    closed = talk.store.session(warned["id"])
    assert (closed["state"], closed["close_reason"]) == ("closed", "inactivity")
    (event,) = talk.closed_events()
    assert event["session_id"] == warned["id"] and event["reason"] == "inactivity"
    assert event["delivery_id"].startswith("dlv_") and event["closed_at"] == closed["closed_at"]
    assert len(talk.store.list_outbound()) == 2  # the agent's "ok" and the warning; nothing for the event


def test_a_message_after_the_close_opens_a_new_session(talk):
    talk.user_says("hi")
    talk.idle(DAY)
    talk.idle(GRACE)
    old_id = talk.agent.received[0]["session_id"]
    talk.user_says("back again")
    message = talk.agent.received[-1]
    assert message["type"] == "message" and message["session_id"] != old_id
    session = talk.current()
    assert (session["id"], session["state"], session["engaged"]) == (message["session_id"], "active", True)


def test_session_never_engaged_does_not_time_out(talk):
    talk.outbound.queue(SENDER, content="Your code is 1234", source="api")
    assert talk.idle(3 * DAY) == (0, 0) and talk.current()["state"] == "active"


def test_warning_to_an_opted_out_user_is_suppressed_and_the_session_closes(talk):
    talk.user_says("hi")
    talk.user_says("STOP")
    talk.idle(DAY)
    (warning,) = talk.warnings()
    assert warning["status"] == "suppressed"
    assert talk.idle(GRACE) == (0, 1)


def test_a_reply_waiting_for_the_worker_holds_the_session_open(talk):
    talk.user_says("hi")
    talk.idle(DAY)
    assert talk.twilio.sms("hello?").status_code == 200  # within the grace; the worker is behind
    talk.clock.advance(3 * GRACE)
    assert talk.sessions.sweep() == (0, 0) and talk.current()["state"] == "warned"
    talk.deliver()
    assert talk.current()["state"] == "active" and talk.closed_events() == []


def test_reply_keeps_the_session_open_even_while_the_agent_is_down(talk):
    talk.user_says("hi")
    talk.idle(DAY)
    talk.agent.failures = [(503, {}, {})] * 100
    talk.user_says("hello?")
    assert talk.idle(3 * GRACE) == (0, 0) and talk.current()["state"] == "active"


def test_pending_message_is_not_idleness(talk):
    talk.agent.failures = [(503, {}, {})] * 100
    talk.user_says("hi")
    assert talk.idle(2 * DAY) == (0, 0)


def test_sessions_are_per_pair(talk):
    other = "+14155550199"
    talk.user_says("hi")
    talk.user_says("hello", sender=other)
    talk.idle(DAY)
    assert {talk.current()["state"], talk.current(other)["state"]} == {"warned"}
    talk.user_says("still here")
    assert talk.idle(GRACE) == (0, 1)
    assert (talk.current()["state"], talk.current(other)["state"]) == ("active", "closed")


@pytest.mark.parametrize(("idle", "grace"), [(60, 5), (3600, 120)])
def test_durations_are_configurable(db_url, fake, agent, clock, idle, grace):
    app = make_app(db_url, fake, agent, clock, SESSION_IDLE_SECONDS=idle, SESSION_GRACE_SECONDS=grace)
    talk = Conversation(app, agent, clock)
    talk.user_says("hi")
    assert talk.idle(idle - 1) == (0, 0) and talk.idle(1) == (1, 0)
    assert talk.idle(grace - 1) == (0, 0) and talk.idle(1) == (0, 1)


def test_without_outbound_sending_sessions_still_time_out(db_url, agent, clock):
    app = create_app(
        {"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, "AGENT_URL": agent.url, "AGENT_SECRET": SECRET}
    )
    services.of(app).store.clock = clock
    talk = Conversation(app, agent, clock)
    talk.user_says("hi")
    assert talk.idle(DAY) == (1, 0) and talk.store.list_outbound() == []
    assert talk.idle(GRACE) == (0, 1) and len(talk.closed_events()) == 1


def test_workers_sweeping_at_once_warn_and_close_each_session_once(talk, db_url, clock):
    for i in range(30):
        talk.user_says("hi", sender=f"+1415555{i:04d}")
    clock.advance(DAY)
    stores = [Store(db_url) for _ in range(4)]
    for extra in stores:
        extra.clock = clock

    def sweep(store):
        Sessions(store, talk.outbound, talk.app.config).sweep()

    for _ in range(2):
        threads = [threading.Thread(target=sweep, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        clock.advance(GRACE)
    talk.deliver()
    assert len(talk.warnings()) == 30
    assert sorted(e["session_id"] for e in talk.closed_events()) == sorted(
        {m["session_id"] for m in talk.agent.received if m["type"] == "message"}
    )


def test_sessions_cli_lists_them(talk, runner, db_url):
    from gateway.cli import cli

    talk.user_says("hi")
    talk.idle(DAY)
    env = {"DATABASE_URL": db_url}
    result = runner.invoke(cli, ["sessions", "list", "--state", "warned", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert (row["state"], row["number"], row["engaged"]) == ("warned", SENDER, True)
    assert (
        json.loads(runner.invoke(cli, ["sessions", "list", "--state", "closed", "--format", "json"], env=env).output)
        == []
    )
    table = runner.invoke(cli, ["sessions", "list"], env=env)
    assert table.exit_code == 0 and "warned" in table.output

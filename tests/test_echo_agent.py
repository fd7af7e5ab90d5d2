"""examples/echo_agent.py, the README's minimal agent, in a full round trip through a real process."""

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from gateway import create_app
from gateway.messaging import services

from .support.accounts import outbound_config
from .support.constants import ROOT, SENDER, TWILIO_NUMBER
from .support.servers import free_port
from .support.webhooks import TwilioSender

SECRET = "echo-agent-secret-0123456789"


@pytest.fixture
def echo_agent(tmp_path):
    port = free_port()
    with (tmp_path / "echo.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "examples/echo_agent.py", "--port", str(port), "--secret", SECRET],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/agent"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
        except urllib.error.HTTPError:
            break  # answering (501 for GET)
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "echo.log").read_text()
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize(("secret", "status", "replies"), [(SECRET, "delivered", 1), ("x" * 20, "dead", 0)])
def test_round_trip(db_url, fake, echo_agent, secret, status, replies):
    app = create_app({**outbound_config(db_url, fake), "AGENT_URL": echo_agent, "AGENT_SECRET": secret})
    TwilioSender(app.test_client()).sms("Table for two at 8?")
    services.of(app).forwarder.deliver_once()
    store = services.of(app).store
    assert store.outbox()[0]["status"] == status  # a wrong secret is refused (401): dead-lettered
    sent = store.list_outbound()
    assert len(sent) == replies
    if replies:
        assert (sent[0]["to_number"], sent[0]["sender"], sent[0]["body"]) == (
            SENDER,
            TWILIO_NUMBER,
            "Echo: Table for two at 8?",
        )


@pytest.mark.parametrize("body", ["remove me from your list", "Please stop texting me", "opt me out"])
def test_a_likely_revocation_is_acknowledged_and_never_answered(db_url, fake, echo_agent, body):
    """The reference agent people copy must not text back to a message that reads like a revocation of
    consent: the delivery is acknowledged (delivered, not retried), and nothing is sent."""
    app = create_app({**outbound_config(db_url, fake), "AGENT_URL": echo_agent, "AGENT_SECRET": SECRET})
    TwilioSender(app.test_client()).sms(body)
    services.of(app).forwarder.deliver_once()
    store = services.of(app).store
    (delivered,) = store.outbox()
    assert delivered["status"] == "delivered" and json.loads(delivered["flags"]) == ["revocation_candidate"]
    assert store.list_outbound() == []

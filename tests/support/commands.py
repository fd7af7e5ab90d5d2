"""Driving the gateway as a person at a terminal would: a local server to wait for, `gateway simulate`'s
arguments, and the answer a STOP gets."""

from __future__ import annotations

import subprocess
import time
import urllib.request

from .constants import TWILIO_NUMBER

SIMULATED_FROM = "+14155550123"  # the sender the simulated messages come from
STOP_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>You have been unsubscribed and will not '
    "receive further messages. Reply START to resubscribe.</Message></Response>"
)


def wait_healthy(port: int, proc: subprocess.Popen, log, seconds: float) -> None:
    """Wait until the local server answers /healthz; fail with its log if it dies or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


def simulate_args(body: str, port: int) -> list[str]:
    """`gateway simulate` arguments for a local gateway on ``port``."""
    return [
        "simulate",
        body,
        "--from",
        SIMULATED_FROM,
        "--to",
        TWILIO_NUMBER,
        "--url",
        f"http://127.0.0.1:{port}/twilio/sms",
    ]

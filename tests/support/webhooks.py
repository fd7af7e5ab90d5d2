"""Requests as Twilio sends them: signed webhooks, their form fields, MessageSids."""

from __future__ import annotations

import http.client
import secrets
import urllib.error
import urllib.request
from urllib.parse import urlencode

from gateway.web import signature

from .constants import FORM, SENDER, TOKEN, TWILIO_NUMBER


def sign(url: str, params: list[tuple[str, str]], token: str = TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for ``params`` posted to ``url``."""
    return signature.sign(url, params, token)


def sms_params(
    body: str,
    sender: str = SENDER,
    to: str = TWILIO_NUMBER,
    sid: str | None = None,
    account: str | None = "AC" + "1" * 32,
    **extra: str,
):
    """The form fields of an inbound SMS webhook, as Twilio sends them (``account=None``: no AccountSid)."""
    sid = sid or new_sid()
    return [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        *([("AccountSid", account)] if account else []),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
        *extra.items(),
    ]


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


class TwilioSender:
    """Posts webhooks through the Flask test client, signed like Twilio."""

    def __init__(self, client, url: str = "http://localhost/twilio/sms", token: str = TOKEN):
        self.client, self.url, self.token = client, url, token

    def post(self, params, url: str | None = None, token: str | None = None, headers=None, sign_url=None):
        url = url or self.url
        signature = sign(sign_url or url, params, token or self.token)
        scheme, rest = url.split("://", 1)
        host, _, path = rest.partition("/")
        return self.client.post(
            "/" + path,
            data=urlencode(params),
            content_type=FORM,
            base_url=f"{scheme}://{host}",
            headers={"X-Twilio-Signature": signature, **(headers or {})},
        )

    def sms(self, body: str, sender: str = SENDER, to: str = TWILIO_NUMBER, sid: str | None = None, **extra):
        return self.post(sms_params(body, sender, to, sid, **extra))


def post_webhook(
    base: str, params, path: str = "/twilio/sms", timeout: float = 60, token: str = TOKEN
) -> tuple[int, str]:
    """POST a webhook signed like Twilio to a live server; (status, body), or (0, reason) if unreachable.

    An answer cut off mid-way (the server killed after its headers) is no answer too: Twilio retries it.
    """
    url = base + path
    request = urllib.request.Request(
        url, data=urlencode(params).encode(), method="POST", headers={"X-Twilio-Signature": sign(url, params, token)}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc) or type(exc).__name__

"""The Twilio REST clients the gateway talks to Twilio with, one per account, owned once by the services.

``GATEWAY_TWILIO_API_BASE`` points every request at another base URL (a
Twilio-compatible provider, or the fake Twilio server the tests run), through
a custom twilio ``HttpClient``; the path and query stay as twilio builds them.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ..core.accounts import Account, Accounts
from ..core.retries import parse_retry_after

# twilio logs each request (recipient and body included) at INFO: never.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class GatewayHttpClient(TwilioHttpClient):
    """TwilioHttpClient with an optional base-URL override; remembers the last response."""

    def __init__(self, base_url: str | None = None, timeout: float = 15.0):
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.last_response: Response | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.base_url:
            netloc = urlsplit(url).netloc
            url = self.base_url + url[url.index(netloc) + len(netloc) :]  # path and query exactly as built
        self.last_response = None
        self.last_response = super().request(method, url, *args, **kwargs)
        return self.last_response


def make_client(account_sid: str, auth_token: str, base_url: str | None = None) -> Client:
    return Client(account_sid, auth_token, http_client=GatewayHttpClient(base_url))


def retry_after(client: Client) -> float | None:
    """Seconds from the last response's Retry-After header, if it had a number."""
    response = getattr(client.http_client, "last_response", None)
    return parse_retry_after((response.headers or {}).get("Retry-After") if response is not None else None)


class TwilioClients:
    """The accounts' credentials and a REST client per account, made once: what sends SMS and what pushes
    consent changes to Twilio share them.

    A generated local development token cannot talk to Twilio: with ``dev_token``, no account can.
    """

    def __init__(self, accounts: Accounts, api_base: str | None = None, dev_token: bool = False):
        self.accounts = accounts
        self.api_base = api_base
        self.dev_token = dev_token
        self._clients: dict[str, Client] = {}

    def credentials(self, account: Account | None) -> tuple[str, str] | None:
        """(Account SID, auth token) that talk to Twilio for ``account``, or None when it cannot."""
        if account is None or not account.sid or not account.tokens or self.dev_token:
            return None
        return account.sid, account.tokens[0]

    def any(self) -> bool:
        """Whether some account can talk to Twilio."""
        return any(self.credentials(account) for account in self.accounts.accounts)

    def client(self, account: Account) -> Client:
        """The REST client of ``account`` (made once); ``account`` must have credentials."""
        if account.name not in self._clients:
            sid, token = self.credentials(account) or ("", "")
            self._clients[account.name] = make_client(sid, token, self.api_base)
        return self._clients[account.name]

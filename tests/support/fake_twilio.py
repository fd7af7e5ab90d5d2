"""A local HTTP server that answers like Twilio's Messages API and its Consent Management API (bulk).

Real HTTP on loopback, for the real twilio client to talk to. It serves
one account or several (subaccounts, each with its own auth token), checks
Basic auth against the account named in the path, records every request, and can be told to fail the next
requests with 429 (with Retry-After) or 5xx, or to refuse recipients with
Twilio's error 21610 (unsubscribed recipient). ``POST /v1/Consents/Bulk`` keeps consents by correlation id
(an upsert, as Twilio's), answers per item, can be told to refuse a contact's items a number of times, and
to take its time answering.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object, headers: dict | None = None) -> None:
    """Answer an http.server request with a JSON body (shared by the fake servers)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


MESSAGES = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json")
CONSENTS = "/v1/Consents/Bulk"


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str, more: dict[str, str] | None = None):
        """A fake for the account ``account_sid``, and for the others in ``more`` (SID -> auth token)."""
        self.account_sid, self.auth_token = account_sid, auth_token
        self.accounts = {account_sid: auth_token, **(more or {})}
        self.requests: list[dict] = []
        self.failures: list[tuple[int, dict]] = []  # (status, headers) for the next requests
        self.unsubscribed: set[str] = set()
        self.consent_requests: list[tuple[str, list[dict]]] = []  # (account, items) per bulk request
        self.consents: dict[str, dict] = {}  # correlation id -> the item Twilio keeps (upserted)
        self.refuse: dict[str, int] = {}  # contact id -> how many more times to refuse its items
        self.consent_delay = 0.0  # seconds before answering a bulk request
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                pairs = parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
                if self.path == CONSENTS:
                    return self.consents(pairs)
                form = dict(pairs)
                found = MESSAGES.fullmatch(self.path)
                account = found.group(1) if found else None
                with fake.lock:
                    fake.requests.append({"path": self.path, "form": form, "account": account})
                    failure = fake.failures.pop(0) if fake.failures else None
                if account not in fake.accounts:
                    return self.reply(404, {"code": 20404, "message": "not found", "status": 404})
                expected = "Basic " + base64.b64encode(f"{account}:{fake.accounts[account]}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if failure:
                    status, headers = failure
                    return self.reply(
                        status,
                        {
                            "code": 20429 if status == 429 else 20500,
                            "message": "Too Many Requests" if status == 429 else "error",
                            "status": status,
                        },
                        headers,
                    )
                if form.get("To") in fake.unsubscribed:
                    return self.reply(
                        400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
                    )
                sid = "SM" + secrets.token_hex(16)
                return self.reply(
                    201,
                    {
                        "sid": sid,
                        "account_sid": account,
                        "to": form.get("To"),
                        "from": form.get("From"),
                        "messaging_service_sid": form.get("MessagingServiceSid"),
                        "body": form.get("Body"),
                        "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                        "num_segments": "1",
                        "error_code": None,
                        "error_message": None,
                        "direction": "outbound-api",
                        "date_created": "Mon, 23 Nov 2026 08:00:00 +0000",
                        "price": None,
                        "uri": self.path,
                    },
                )

            def consents(self, pairs):
                """Bulk upsert: Basic auth of any account served; 25 items at most; an answer per item."""
                scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
                account, _, token = base64.b64decode(encoded or "").decode().partition(":")
                if scheme != "Basic" or fake.accounts.get(account) != token:
                    return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                items = [json.loads(value) for key, value in pairs if key == "Items"]
                with fake.lock:
                    failure = fake.failures.pop(0) if fake.failures else None
                    fake.consent_requests.append((account, items))
                if failure:
                    status, headers = failure
                    return self.reply(
                        status, {"code": 20429, "message": "Too Many Requests", "status": status}, headers
                    )
                if not 1 <= len(items) <= 25:
                    return self.reply(400, {"code": 20001, "message": "Items: 1 to 25 items", "status": 400})
                time.sleep(fake.consent_delay)
                answers = []
                with fake.lock:
                    for item in items:
                        correlation, contact = item.get("correlation_id"), item.get("contact_id")
                        if fake.refuse.get(contact, 0) > 0:
                            fake.refuse[contact] -= 1
                            answers.append(
                                {"correlation_id": correlation, "error_code": 30001, "error_messages": ["try later"]}
                            )
                            continue
                        fake.consents[correlation] = {**item, "account": account}
                        answers.append({"correlation_id": correlation, "error_code": 0, "error_messages": []})
                return self.reply(201, {"items": answers})

            def reply(self, status, body, headers=None):
                send_json(self, status, body, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def sent(self) -> list[dict]:
        return [r["form"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

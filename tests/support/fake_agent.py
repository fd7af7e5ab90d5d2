"""An agent session handler on loopback: real HTTP, recording what it receives.

It verifies each delivery's X-Gateway-Signature, answers 200 with
``{"reply": ...}`` when told to, and can be told to fail the next requests
(status, headers) or to answer slowly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .fake_twilio import send_json


class FakeAgent:
    def __init__(self, secret: str, port: int = 0, reply: str | None = None, delay: float = 0.0):
        self.secret, self.reply, self.delay = secret, reply, delay
        self.received: list[dict] = []  # every request, in arrival order
        self.failures: list[tuple[int, dict, dict]] = []  # (status, body, headers) for the next requests
        self.slow_first: set[str] = set()  # delivery ids to answer slowly the first time
        self.slow_seconds = 0.0
        self.lock = threading.Lock()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(agent.secret.encode(), raw, hashlib.sha256).hexdigest()
                delivery = self.headers.get("X-Gateway-Delivery", "")
                with agent.lock:
                    failure = agent.failures.pop(0) if agent.failures else None
                    slow = delivery in agent.slow_first
                    agent.slow_first.discard(delivery)
                if slow:
                    time.sleep(agent.slow_seconds)
                elif agent.delay:
                    time.sleep(agent.delay)
                if not hmac.compare_digest(self.headers.get("X-Gateway-Signature", ""), expected):
                    return self.answer(401, {"error": "bad signature"})
                if failure:
                    return self.answer(*failure)
                data = json.loads(raw)
                with agent.lock:
                    agent.received.append({**data, "header_delivery": delivery})
                return self.answer(200, {"reply": agent.reply} if agent.reply else {})

            def answer(self, status, body, headers=None):
                send_json(self, status, body, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/agent"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def delivery_ids(self) -> list[str]:
        with self.lock:
            return [r["delivery_id"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

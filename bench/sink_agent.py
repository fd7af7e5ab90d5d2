"""An agent for the forwarding benchmark: verifies each delivery, notes when it arrived, answers at once.

    python bench/sink_agent.py PORT ARRIVALS_FILE   (secret in GATEWAY_AGENT_SECRET)

Each line of ARRIVALS_FILE is ``<message_sid> <unix time of arrival>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    secret = os.environ["GATEWAY_AGENT_SECRET"].encode()
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's life
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()  # answer in one packet's time: no Nagle wait between headers and body
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            arrived = time.time()
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(expected, self.headers.get("X-Gateway-Signature", ""))
            if ok:
                with lock:
                    out.write(f"{json.loads(raw).get('message_sid')} {arrived:.6f}\n")
            body = b"{}" if ok else b'{"error": "bad signature"}'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()

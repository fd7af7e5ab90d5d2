"""A minimal agent for the gateway: verifies each delivery and echoes the text back.

Run it, then point the gateway at it:

    export GATEWAY_AGENT_SECRET=$(openssl rand -hex 16)
    python examples/echo_agent.py --port 9000 &
    GATEWAY_AGENT_URL=http://127.0.0.1:9000/agent make run

(`make run` with no agent configured starts this one for you.)

Only the standard library: a real agent would call its language model where
``reply_to`` is. Deliveries are at least once, so it remembers the delivery
ids it has answered and answers a repeat without acting twice. A message the
gateway flags ``revocation_candidate`` is acknowledged and never answered.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SEEN: dict[str, dict] = {}  # delivery id -> answer (keep this in a database in a real agent)


def verify(secret: str, body: bytes, header: str) -> bool:
    """Check X-Gateway-Signature: sha256=<HMAC-SHA256 of the raw body>."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def reply_to(message: dict) -> dict:
    """The agent's answer: the gateway texts ``reply`` back to the user."""
    if message.get("type") != "message":
        return {}  # e.g. a session event
    if "revocation_candidate" in message.get("flags", ()):
        # "remove me from your list" is likely a revocation of consent: an auditor decides (gateway optouts
        # candidates). Until then, texting back is the message the person may just have refused.
        return {}
    return {"reply": f"Echo: {message['body']}"}


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the gateway reuses its connection

        def setup(self) -> None:
            super().setup()  # no Nagle wait between the headers and the body of an answer
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not verify(secret, body, self.headers.get("X-Gateway-Signature", "")):
                self.send_error(401, "bad signature")
                return
            delivery = self.headers.get("X-Gateway-Delivery", "")
            if delivery not in SEEN:
                SEEN[delivery] = reply_to(json.loads(body))
            data = json.dumps(SEEN[delivery]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--secret",
        default=os.environ.get("GATEWAY_AGENT_SECRET"),
        help="the gateway's GATEWAY_AGENT_SECRET (default: that environment variable)",
    )
    parser.add_argument("--ready-file", type=Path, help="create this file once listening (make run waits for it)")
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret or set GATEWAY_AGENT_SECRET")
    try:
        server = ThreadingHTTPServer((args.host, args.port), make_handler(args.secret))
    except OSError as exc:
        reason = f"{exc.strerror} (with make run, choose another port: AGENT_PORT=9001)"
        sys.exit(f"echo agent: cannot listen on {args.host}:{args.port}: {reason}")
    print(f"echo agent on http://{args.host}:{args.port}/agent", flush=True)
    if args.ready_file:
        args.ready_file.touch()
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The README's sample outputs, produced by running them: ``python -m tests.readme_samples [--check]``.

Each sample in README.md is a fenced block after a ``<!-- sample: NAME -->``
marker. Its ``$ gateway ...`` lines are run for real, in README order, as one
story on one database: a live ``gateway serve`` with the fake Twilio API of the
tests, the real ``gateway`` command, and the hidden steps of :data:`SETUP`
before each sample (what the README tells in words). Without ``--check`` the
outputs are written into README.md; with it, they are compared with what the
README shows, times, ids and hashes aside, so the samples cannot drift from
what the gateway prints (``make readme`` writes them; the test suite checks).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.web.signature import sign  # noqa: E402

from .support.fake_twilio import FakeTwilio  # noqa: E402

README = ROOT / "README.md"
TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "c" * 32
MARKER = re.compile(r"<!-- sample: ([\w-]+) -->\n(```\w*\n)(.*?)```", re.S)
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d"), "<date>"),
    (re.compile(r"SM[0-9a-f]{32}"), "<sid>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<hash>"),
    (re.compile(r"gwk_[\w-]+"), "<key>"),
]


class Story:
    """One gateway, one database, the samples run in order."""

    def __init__(self, work: Path):
        self.work = work
        self.fake = FakeTwilio(ACCOUNT, TOKEN)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = work / "gateway.db"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "TWILIO_", "DATABASE_URL"))},
            "DATABASE_URL": f"sqlite:///{self.db}",
            "GATEWAY_INSTANCE_PATH": str(work / "instance"),
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "GATEWAY_TWILIO_API_BASE": self.fake.base_url,
            "GATEWAY_SENDERS": "+15005550006,+15005550007",
            "GATEWAY_STATUS_CALLBACK_URL": f"{self.base}/twilio/status",
            "PROMETHEUS_MULTIPROC_DIR": "",
            "COLUMNS": "200",
        }
        bin_dir = work / "bin"  # `gateway` as the README types it; simulate aimed at this story's server
        bin_dir.mkdir()
        wrapper = bin_dir / "gateway"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = simulate ]; then exec {sys.executable} -m gateway.cli "$@" --url {self.base}/twilio/sms; fi\n'
            f'exec {sys.executable} -m gateway.cli "$@"\n'
        )
        wrapper.chmod(0o755)
        self.env["PATH"] = f"{bin_dir}:{self.env.get('PATH', '')}"
        self.run("gateway init-db")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise SystemExit("readme_samples: the gateway did not start") from None
                time.sleep(0.1)

    def run(self, command: str) -> str:
        """A command as a person types it in a shell; its output, stderr included, as a terminal shows it."""
        result = subprocess.run(
            ["bash", "-c", command], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=120
        )
        return result.stdout + result.stderr

    def post(self, path: str, params: list[tuple[str, str]]) -> None:
        url = self.base + path
        request = urllib.request.Request(
            url, data=urlencode(params).encode(), headers={"X-Twilio-Signature": sign(url, params, TOKEN)}
        )
        urllib.request.urlopen(request, timeout=30).close()

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(15)
        self.fake.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tamper(story: Story) -> None:
    """Someone with access to the database file edits event 1."""
    conn = sqlite3.connect(story.db)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET body = 'start' WHERE id = 1")
    conn.commit()
    conn.close()


def _queue(story: Story, number: str, sender: str) -> None:
    """One message queued the way ``POST /v1/messages`` queues it."""
    code = (
        "from gateway import create_app; from gateway.messaging import services; "
        f"services.of(create_app()).outbound.queue({number!r}, content='Your table is ready.', agent_number={sender!r})"
    )
    story.run(f'{sys.executable} -c "{code}"')


def _deliveries(story: Story) -> None:
    """Nine sends through the API's path and the worker to the fake Twilio, with Twilio's status callbacks."""
    for number, sender in [(f"+1415555{n:04d}", "+15005550006") for n in range(200, 206)] + [
        ("+14155550300", "+15005550007"),
        ("+14155550301", "+15005550007"),
        ("+14155550302", "+15005550007"),
    ]:
        _queue(story, number, sender)
    story.fake.unsubscribed.add("+14155550302")  # Twilio refuses it: the recipient opted out upstream
    story.run("gateway worker --once")
    conn = sqlite3.connect(story.db)
    sids = [
        sid
        for (sid,) in conn.execute(
            "SELECT message_sid FROM outbound_messages WHERE message_sid IS NOT NULL ORDER BY id"
        )
    ]
    conn.close()
    for sid, status in zip(sids, ["delivered"] * 6 + ["delivered", "undelivered"], strict=False):
        story.post("/twilio/status", [("MessageSid", sid), ("MessageStatus", status), ("AccountSid", ACCOUNT)])
    for number, sender in [("+14155550100", "+15005550007"), ("+14155550303", "+15005550007")]:
        _queue(story, number, sender)  # the first is opted out of that number (suppressed), the second waits


# What happens before each sample that the README tells in words, not commands.
SETUP: dict[str, list[str | Callable[[Story], None]]] = {
    "optouts-list": [
        "gateway simulate START --from +14155550100 --to +15005550006",
        "gateway simulate STOP --from +14155550123 --to +15005550007",
        "gateway simulate STOP --from +14155550100 --to +15005550007 --param OptOutType=STOP",
        'gateway optouts add +14155550199 --twilio-number +15005550006 --reason "email to support" --by "Dana Reyes"',
    ],
    "audit-broken": [_tamper],
    "candidates": ['gateway simulate "Please stop texting me" --from +14155550142 --to +15005550006'],
    "stats": [_deliveries],
}


def commands(block: str) -> list[str]:
    """The ``$`` commands of a sample, with their continuation lines."""
    found, current = [], None
    for line in block.splitlines():
        if line.startswith("$ "):
            current = line[2:]
            found.append(current)
        elif current is not None and found[-1].endswith("\\"):
            found[-1] += "\n" + line
    return found


def produce(readme: str, story: Story) -> str:
    """README text with every sample's output produced by running it."""

    def fill(match: re.Match[str]) -> str:
        name, fence, block = match.groups()
        for step in SETUP.get(name, ()):
            step(story) if callable(step) else story.run(step)
        lines = []
        for command in commands(block):
            lines.append(f"$ {command}\n")
            lines.append(story.run(command))
        return f"<!-- sample: {name} -->\n{fence}{''.join(lines)}```"

    return MARKER.sub(fill, readme)


def normalised(text: str) -> list[str]:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the README instead of writing it")
    parser.add_argument("--readme", type=Path, default=README, help="the README to fill or check (default: README.md)")
    args = parser.parse_args()
    readme = args.readme.read_text()
    with tempfile.TemporaryDirectory(prefix="gateway-readme-") as work:
        story = Story(Path(work))
        try:
            produced = produce(readme, story)
        finally:
            story.close()
    if not args.check:
        args.readme.write_text(produced)
        print(f"{args.readme.name}: {len(MARKER.findall(readme))} samples written", file=sys.stderr)
        return 0
    shown = {m.group(1): m.group(3) for m in MARKER.finditer(readme)}
    fresh = {m.group(1): m.group(3) for m in MARKER.finditer(produced)}
    stale = [name for name in shown if normalised(shown[name]) != normalised(fresh[name])]
    for name in stale:
        diff = difflib.unified_diff(
            shown[name].splitlines(), fresh[name].splitlines(), "README", "a real run", lineterm=""
        )
        print(f"sample {name!r} differs from a real run:\n" + "\n".join(diff), file=sys.stderr)
    if stale:
        print("run `make readme` to write the real output into README.md", file=sys.stderr)
        return 1
    print(f"{args.readme.name}: {len(shown)} samples match a real run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

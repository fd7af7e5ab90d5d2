"""Benchmark the outbound path against references measured in the same run.

1. ``POST /v1/outbound-sms`` under gunicorn (as the Procfile runs it), for
   recipients who may be messaged ("sent": validated, rendered, queued with an
   fsync) and for recipients who opted out ("suppressed": a chained event
   instead), against a reference endpoint that only checks the API key and
   parses the JSON. wrk, fixed connections, alternating rounds, median shown.
2. The send worker (``gateway worker``) draining the queue into a fake Twilio
   server on loopback, against the twilio client calling the same fake
   directly in a loop (no database): messages per second over a fixed time.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import clean_env, free_port, median_round, print_table, start, wrk

from gateway.core import keys
from gateway.core.imports import ImportRow
from gateway.messaging import twilioapi
from gateway.store import Store
from tests.support.fake_twilio import FakeTwilio

ACCOUNT = "AC" + "b" * 32
TOKEN = "f" * 32
SENDER = "+15005550006"
OPTED_OUT = [f"+1415{n:07d}" for n in range(2000)]


def write_bodies(path: Path, count: int, suppressed: bool, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for _ in range(count):
            to = rng.choice(OPTED_OUT) if suppressed else f"+1646{rng.randrange(10**7):07d}"
            out.write(json.dumps({"to_number": to, "content": "Your table for 2 is ready. Reply STOP to opt out."}))
            out.write("\n")


def prepare(db: Path, key: str) -> None:
    store = Store(f"sqlite:///{db}")
    store.init_schema()
    store.add_api_key(keys.hash_key(key), "sender")
    rows = [ImportRow(i + 2, n, SENDER, "2026-01-01T00:00:00.000000Z") for i, n in enumerate(OPTED_OUT)]
    store.import_opt_outs(rows, "bench")
    store.close()


def counts(db: Path) -> dict[str, int]:
    """Outbound messages by status, and how many were handed to Twilio."""
    conn = sqlite3.connect(db)
    try:
        found = dict(conn.execute("SELECT status, COUNT(*) FROM outbound_messages GROUP BY status").fetchall())
        found["handed_to_twilio"] = conn.execute(
            "SELECT COUNT(*) FROM outbound_messages WHERE message_sid IS NOT NULL"
        ).fetchone()[0]
        return found
    finally:
        conn.close()


def dispatch_rate(db: Path, env: dict, seconds: float, log: Path) -> float:
    """Messages per second one `gateway worker` hands to the fake Twilio."""
    before = counts(db)["handed_to_twilio"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    time.sleep(1.0)  # start-up, not measured
    first = counts(db)["handed_to_twilio"]
    started = time.perf_counter()
    time.sleep(seconds)
    last = counts(db)["handed_to_twilio"]
    elapsed = time.perf_counter() - started
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    if last <= before:
        raise SystemExit(f"the worker sent nothing; see {log}")
    return (last - first) / elapsed


def direct_rate(fake: FakeTwilio, seconds: float) -> float:
    """Messages per second the twilio client alone hands to the same fake."""
    client = twilioapi.make_client(ACCOUNT, TOKEN, fake.base_url)
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        client.messages.create(to=f"+1646{sent:07d}", from_=SENDER, body="Your table for 2 is ready.")
        sent += 1
    return sent / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--dispatch-seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.worker_class, args.gunicorn_threads = "sync", 1

    work = Path(tempfile.mkdtemp(prefix="gateway-outbound-bench-"))
    fake = FakeTwilio(ACCOUNT, TOKEN)
    key = keys.new_key()
    db = work / "gateway.db"
    prepare(db, key)
    env = {
        **clean_env(),
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "GATEWAY_SENDERS": SENDER,
        "GATEWAY_TWILIO_API_BASE": fake.base_url,
        "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "1000000",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{db}",
        "GATEWAY_INSTANCE_PATH": str(work / "instance"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "BENCH_API_KEY": key,
        "PYTHONPATH": str(ROOT / "bench"),
    }
    (work / "metrics").mkdir()
    ports = {"gateway": free_port(), "reference": free_port()}
    procs = {
        "gateway": start("wsgi:app", ports["gateway"], args, env, work / "gateway.log"),
        "reference": start("minimal_app:app", ports["reference"], args, env, work / "reference.log"),
    }
    cases = {"reference": ("reference", False), "sent": ("gateway", False), "suppressed": ("gateway", True)}
    rounds: dict[str, list[dict]] = {name: [] for name in cases}
    try:
        for round_no in range(0, args.rounds + 1):  # round 0 warms up and is not reported
            seconds = 2 if round_no == 0 else args.seconds
            for name, (server, suppressed) in cases.items():
                bodies = work / f"{name}-{round_no}.json"
                write_bodies(bodies, 4000 * seconds, suppressed, seed=round_no)
                result = wrk(
                    ports[server],
                    bodies,
                    args.connections,
                    seconds,
                    args.threads,
                    path="/v1/outbound-sms",
                    extra=(key,),
                )
                if round_no:
                    rounds[name].append(result)
                bodies.unlink()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(15)
    stored = counts(db)

    dispatch = dispatch_rate(db, env, args.dispatch_seconds, work / "worker.log")
    direct = direct_rate(fake, args.dispatch_seconds)
    fake.close()

    results = {name: median_round(rounds[name]) for name in cases}
    for name in ("sent", "suppressed"):
        results[name]["ratio"] = results[name]["rps"] / results["reference"]["rps"]
    results["dispatch"] = {"worker_per_s": dispatch, "direct_per_s": direct, "ratio": dispatch / direct}
    results["stored"] = stored

    print(
        f"gunicorn: {args.workers} sync workers; wrk: {args.connections} connections; "
        f"{args.rounds} x {args.seconds}s rounds, median shown"
    )
    labels = {
        "reference": "reference (key check + JSON only)",
        "sent": "gateway, recipient may be messaged",
        "suppressed": "gateway, recipient opted out",
    }
    print_table("POST /v1/outbound-sms", {label: results[name] for name, label in labels.items()}, 36)
    print(f"stored: {json.dumps(stored, sort_keys=True)}")
    d = results["dispatch"]
    print(
        f"send worker: {d['worker_per_s']:.0f} msg/s to the fake Twilio; the twilio client alone: "
        f"{d['direct_per_s']:.0f} msg/s -> {d['ratio']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

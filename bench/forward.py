"""Benchmark delivery to the agent, against a reference measured in the same run.

1. Throughput: messages already queued over many conversations; ``gateway
   worker`` (one process, then two) delivers them to a local agent
   (bench/sink_agent.py: verifies the signature, notes the arrival, answers
   ``{}``). Reference: the same number of signed JSON POSTs sent to the same
   agent by a bare loop (one keep-alive connection, no database). Messages
   per second from the first arrival to the last.
2. Latency: gunicorn (as the Procfile runs it), one worker and the agent;
   signed webhooks at a steady rate; time from sending the webhook to the
   agent receiving the message, p50 and p99.
3. Backlog: one idle worker poll with 100,000 messages waiting behind an
   unreachable agent, against the same poll on an empty queue.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import clean_env, free_port, start

from gateway import create_app
from gateway.messaging import services
from gateway.messaging.agent import payload, signed_request
from gateway.store import Store
from gateway.web.signature import sign

TOKEN = secrets.token_hex(16)
SECRET = secrets.token_hex(16)
TWILIO_NUMBER = "+15005550006"


def params(i: int, sid: str) -> list[tuple[str, str]]:
    return [
        ("MessageSid", sid),
        ("AccountSid", "AC" + "a" * 32),
        ("From", f"+1415{i % 500:07d}"),  # 500 conversations
        ("To", TWILIO_NUMBER),
        ("Body", f"Hi, can I move my appointment to Tuesday? ({i})"),
        ("NumMedia", "0"),
    ]


def fill_queue(db: Path, count: int) -> None:
    """Queue ``count`` messages through the real webhook (Flask's test client)."""
    app = create_app({"DATABASE_URL": f"sqlite:///{db}", "TWILIO_AUTH_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"})
    client = app.test_client()
    url = "http://localhost/twilio/sms"
    for i in range(count):
        form = params(i, f"SM{i:032x}")
        answer = client.post("/twilio/sms", data=dict(form), headers={"X-Twilio-Signature": sign(url, form, TOKEN)})
        assert answer.status_code == 200, answer.text
    services.of(app).store.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def arrivals(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(sid, float(at)) for sid, at in (line.split() for line in lines if line.count(" ") == 1)]


def wait_for(path: Path, count: int, timeout: float, what: str) -> list[tuple[str, float]]:
    deadline = time.monotonic() + timeout
    while len(found := arrivals(path)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {len(found)} of {count} messages arrived in {timeout:.0f}s")
        time.sleep(0.1)
    return found


def rate(found: list[tuple[str, float]]) -> float:
    times = sorted(at for _, at in found)
    return (len(times) - 1) / (times[-1] - times[0])


def start_agent(port: int, path: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink_agent.py"), str(port), str(path)], env=env)
    deadline = time.monotonic() + 10
    while True:
        try:
            requests.post(f"http://127.0.0.1:{port}/", data=b"{}", timeout=1)
            return proc
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark agent did not start") from None
            time.sleep(0.05)


def start_workers(count: int, env: dict, log: Path) -> list[subprocess.Popen]:
    with log.open("ab") as out:
        return [
            subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], cwd=ROOT, env=env, stderr=out)
            for _ in range(count)
        ]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def reference(port: int, count: int) -> float:
    """Signed deliveries POSTed by a bare loop: the agent and HTTP alone."""
    http = requests.Session()
    started = time.perf_counter()
    for i in range(count):
        message = {
            "id": i,
            "kind": "message",
            "session_id": i % 500,
            "message_sid": f"SMref{i:029x}",
            "from_number": f"+1415{i % 500:07d}",
            "to_number": TWILIO_NUMBER,
            "body": f"Hi, can I move my appointment to Tuesday? ({i})",
            "params": params(i, f"SMref{i:029x}"),
            "received_at": "2026-11-23T09:00:00.000000Z",
            "flags": [],
            "attempts": 1,
        }
        body, headers = signed_request(SECRET, payload(message))
        http.post(f"http://127.0.0.1:{port}/agent", data=body, headers=headers, timeout=10).raise_for_status()
    return count / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency(work: Path, env: dict, args: argparse.Namespace) -> dict:
    """Webhook sent -> message at the agent, under a steady rate."""
    db = work / "latency.db"
    env = {**env, "DATABASE_URL": f"sqlite:///{db}", "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
    (work / "metrics").mkdir(exist_ok=True)
    port, agent_port = free_port(), free_port()
    found_path = work / "latency-arrivals.txt"
    agent = start_agent(agent_port, found_path, env)
    env["GATEWAY_AGENT_URL"] = f"http://127.0.0.1:{agent_port}/agent"
    server = start("wsgi:app", port, args, env, work / "gunicorn.log")
    workers = start_workers(1, env, work / "latency-worker.log")
    http = requests.Session()
    url = f"http://127.0.0.1:{port}/twilio/sms"
    sent: dict[str, float] = {}
    answered: list[float] = []
    try:
        time.sleep(1.0)  # the worker's start-up, not measured
        gap = 1.0 / args.rate
        next_at = time.perf_counter()
        for i in range(args.latency_messages):
            next_at += gap
            form = params(i, f"SMlat{i:027x}")
            sent[form[0][1]] = time.time()
            began = time.perf_counter()
            answer = http.post(url, data=form, headers={"X-Twilio-Signature": sign(url, form, TOKEN)}, timeout=10)
            answered.append((time.perf_counter() - began) * 1000)
            answer.raise_for_status()
            time.sleep(max(0.0, next_at - time.perf_counter()))
        found = wait_for(found_path, len(sent), 120, "latency")
    finally:
        stop(workers)
        server.terminate()
        server.wait(15)
        agent.terminate()
        agent.wait(15)
    delays = [(at - sent[sid]) * 1000 for sid, at in found if sid in sent]
    return {
        "messages": len(delays),
        "rate_per_s": args.rate,
        "p50_ms": percentile(delays, 0.5),
        "p99_ms": percentile(delays, 0.99),
        "webhook_p50_ms": percentile(answered, 0.5),
        "webhook_p99_ms": percentile(answered, 0.99),
    }


def poll_ms(store: Store, rounds: int = 50) -> float:
    """Median time of one idle worker poll (a claim that finds nothing due)."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        assert store.claim_deliveries(20, 60) == []
        times.append((time.perf_counter() - began) * 1000)
    return percentile(times, 0.5)


def backlog(work: Path, count: int, pairs: int) -> dict:
    """An idle poll with ``count`` messages waiting behind an unreachable agent, against an empty queue."""
    empty = Store(f"sqlite:///{work / 'empty.db'}")
    empty.init_schema()
    path = work / "backlog.db"
    full = Store(f"sqlite:///{path}")
    full.init_schema()
    conn = sqlite3.connect(path)
    at, later = "2026-11-23T09:00:00.000000Z", "2999-01-01T00:00:00.000000Z"
    conn.executemany(  # each pair's first message waits for a retry; the rest wait behind it
        "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, params, received_at, outcome, "
        "status, flags, next_attempt_at, head, attempts) VALUES (?, ?, ?, 'hi', '[]', ?, 'queued', 'pending', '[]', "
        "?, ?, ?)",
        (
            (f"SM{i:032x}", f"+1415{i % pairs:07d}", TWILIO_NUMBER, at, later if i < pairs else at, int(i < pairs), 1)
            for i in range(count)
        ),
    )
    conn.commit()
    conn.close()
    result = {"waiting": count, "pairs": pairs, "empty_ms": poll_ms(empty), "backlog_ms": poll_ms(full)}
    result["ratio"] = result["backlog_ms"] / result["empty_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="queued messages per throughput round")
    parser.add_argument("--latency-messages", type=int, default=600)
    parser.add_argument("--rate", type=float, default=30.0, help="webhooks per second in the latency run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers in the latency run")
    parser.add_argument("--backlog", type=int, default=100_000, help="messages waiting in the backlog poll test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.worker_class, args.gunicorn_threads = "sync", 1

    work = Path(tempfile.mkdtemp(prefix="gateway-forward-bench-"))
    env = {
        **clean_env(),
        "TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_AGENT_SECRET": SECRET,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_INSTANCE_PATH": str(work / "instance"),
    }
    filled = work / "filled.db"
    fill_queue(filled, args.messages)

    results: dict = {"messages": args.messages}
    agent_port = free_port()
    reference_path = work / "reference-arrivals.txt"
    agent = start_agent(agent_port, reference_path, env)
    try:
        results["reference_per_s"] = reference(agent_port, args.messages)
    finally:
        agent.terminate()
        agent.wait(15)
    for count in (1, 2):
        db = work / f"workers-{count}.db"
        shutil.copy(filled, db)
        found_path = work / f"arrivals-{count}.txt"
        port = free_port()
        agent = start_agent(port, found_path, env)
        run_env = {**env, "DATABASE_URL": f"sqlite:///{db}", "GATEWAY_AGENT_URL": f"http://127.0.0.1:{port}/agent"}
        workers = start_workers(count, run_env, work / f"workers-{count}.log")
        try:
            found = wait_for(found_path, args.messages, 600, f"{count} worker(s)")
        finally:
            stop(workers)
            agent.terminate()
            agent.wait(15)
        unique = len({sid for sid, _ in found})
        results[f"workers_{count}"] = {
            "per_s": rate(found),
            "ratio": rate(found) / results["reference_per_s"],
            "delivered": unique,
            "repeats": len(found) - unique,
        }
    results["latency"] = latency(work, env, args)
    results["backlog"] = backlog(work, args.backlog, args.backlog // 5)

    print(f"forwarding {args.messages} queued messages over 500 conversations to a local agent")
    print(f"{'':<34} {'msg/s':>7} {'ratio':>6} {'repeats':>7}")
    print(f"{'reference (signed POSTs, no db)':<34} {results['reference_per_s']:>7.0f} {'1.00x':>6} {'':>7}")
    for count in (1, 2):
        r = results[f"workers_{count}"]
        label = f"gateway worker x{count}"
        print(f"{label:<34} {r['per_s']:>7.0f} {r['ratio']:>5.2f}x {r['repeats']:>7}")
    lat = results["latency"]
    print(
        f"webhook -> agent at {lat['rate_per_s']:.0f} msg/s ({lat['messages']} messages, 1 worker): "
        f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
        f"(the webhook answered in p50 {lat['webhook_p50_ms']:.1f} ms, p99 {lat['webhook_p99_ms']:.1f} ms)"
    )
    b = results["backlog"]
    print(
        f"idle worker poll with {b['waiting']:,} messages waiting behind an unreachable agent ({b['pairs']:,} "
        f"conversations): {b['backlog_ms']:.2f} ms; with an empty queue: {b['empty_ms']:.2f} ms -> {b['ratio']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark the inbound webhook against a minimal signature-only endpoint.

Both run under gunicorn with the same workers on loopback; wrk replays
precomputed signed requests with unique MessageSids (about 90% plain messages,
10% keywords) at a fixed number of connections. Rounds alternate between the
servers so background noise hits all; the median round is reported, as
figures and as the gateway/reference ratio.

Two more servers, the floors (floor_app.py), are the reference plus only the
least write the issue requires of each message, fsynced or not: they show how
much of the gap is the durable write itself, which no implementation can
skip, and how much is the gateway's own work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = secrets.token_hex(16)
KEYWORDS = ["STOP", "START", "HELP", "stop", "Stop!", "yes", "info", "unsubscribe"]
PLAIN = ["Hi, can I move my appointment to Tuesday?", "what time do you open", "Thanks!", "ok", "See you then"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_requests(path: Path, url: str, count: int, seed: int) -> None:
    rng = random.Random(seed)
    validator = RequestValidator(TOKEN)
    with path.open("w") as out:
        for _ in range(count):
            sid = "SM" + secrets.token_hex(16)
            body = rng.choice(KEYWORDS) if rng.random() < 0.10 else rng.choice(PLAIN)
            params = {
                "ToCountry": "US",
                "SmsMessageSid": sid,
                "NumMedia": "0",
                "SmsSid": sid,
                "SmsStatus": "received",
                "Body": body,
                "To": f"+1500555{rng.randrange(10):04d}",
                "NumSegments": "1",
                "MessageSid": sid,
                "AccountSid": "AC" + "1" * 32,
                "From": f"+1415{rng.randrange(10**7):07d}",
                "ApiVersion": "2010-04-01",
            }
            out.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")


def start(app: str, port: int, args: argparse.Namespace, env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--config",
                "config/gunicorn.conf.py",  # as the Procfile runs it (metrics in multiprocess mode)
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                args.worker_class,
                "--threads",
                str(args.gunicorn_threads),
                "--timeout",
                "30",
                "--preload",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/twilio/sms", timeout=1)
        except urllib.error.HTTPError:
            return proc  # 405 for GET: the server is answering
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{app} did not start; see {log}") from None
            time.sleep(0.1)


def clean_env() -> dict:
    """This environment without the gateway's own settings."""
    prefixes = ("GATEWAY_", "TWILIO_", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(
    port: int,
    requests_file: Path,
    connections: int,
    seconds: int,
    threads: int,
    path: str = "/twilio/sms",
    extra: tuple[str, ...] = (),
) -> dict:
    """One wrk run replaying ``requests_file`` (see replay.lua for its formats; ``extra`` is the API key)."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "replay.lua"),
            f"http://127.0.0.1:{port}{path}",
            "--",
            str(threads),
            str(requests_file),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text = result.stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", text, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
    }


def print_table(title: str, rows: dict[str, dict], width: int) -> None:
    """wrk results, one row per label: req/s, p50, p99, errors and the ratio (1.00x when none)."""
    print(f"{title:<{width}} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'ratio':>6}")
    for label, r in rows.items():
        ratio = f"{r.get('ratio', 1.0):.2f}x"
        print(f"{label:<{width}} {r['rps']:>7.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>6} {ratio:>6}")


def median_round(runs: list[dict]) -> dict:
    """The round with the median throughput, with the errors of all rounds and every round's req/s."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {
        **ordered[len(ordered) // 2],
        "errors": sum(r["errors"] for r in runs),
        "rounds_rps": [r["rps"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class for both servers")
    parser.add_argument("--gunicorn-threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    env = {
        **clean_env(),
        "TWILIO_AUTH_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "GATEWAY_INSTANCE_PATH": str(work / "instance"),
        "PYTHONPATH": str(ROOT / "bench"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }
    servers = {
        "gateway": ("wsgi:app", free_port(), {}),
        "compliance": ("wsgi:app", free_port(), {"GATEWAY_DURABILITY": "compliance"}),
        "reference": ("minimal_app:app", free_port(), {}),
        "floor": ("floor_app:app", free_port(), {}),
        "floor_nosync": ("floor_app:app", free_port(), {"FLOOR_FSYNC": "0"}),
    }

    # wrk restarts its script every run, so each round gets its own file, with
    # enough unique requests that no MessageSid repeats (up to 8,000 req/s).
    def requests_file(name: str, port: int, round_no: int, seconds: int) -> Path:
        path = work / f"{name}-{round_no}.requests"
        write_requests(path, f"http://127.0.0.1:{port}/twilio/sms", 8000 * seconds, seed=round_no)
        return path

    procs = {}
    for name, (app, port, extra) in servers.items():
        server_env = {**env, **extra, "DATABASE_URL": f"sqlite:///{work / name}.db"}
        procs[name] = start(app, port, args, server_env, work / f"{name}.log")
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    try:
        for name, (_, port, _) in servers.items():  # warm-up, not reported
            wrk(port, requests_file(name, port, 0, 2), args.connections, 2, args.threads)
        for round_no in range(1, args.rounds + 1):
            for name, (_, port, _) in servers.items():
                path = requests_file(name, port, round_no, args.seconds)
                rounds[name].append(wrk(port, path, args.connections, args.seconds, args.threads))
                path.unlink()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(15)

    results = {name: median_round(rounds[name]) for name in servers}
    reference = results["reference"]
    for r in results.values():
        r["ratio"] = r["rps"] / reference["rps"]
    floors = {"gateway": "floor", "compliance": "floor_nosync"}
    for name in floors:
        conn = sqlite3.connect(work / f"{name}.db")
        results[name]["stored"], results[name]["queued"] = conn.execute(
            "SELECT count(*), count(status) FROM inbound_messages"
        ).fetchone()
        conn.close()
        results[name]["p99_ratio"] = results[name]["p99_ms"] / reference["p99_ms"]
        results[name]["of_floor"] = results[name]["rps"] / results[floors[name]]["rps"]

    print(
        f"gunicorn: {args.workers} workers, {args.worker_class} x{args.gunicorn_threads} threads; "
        f"wrk: {args.connections} connections; {args.rounds} x {args.seconds}s rounds, median shown"
    )
    labels = {
        "gateway": "gateway (durability=full)",
        "compliance": "gateway (durability=compliance)",
        "reference": "reference (signature only)",
        "floor": "floor (reference + fsynced insert)",
        "floor_nosync": "floor (reference + insert, no fsync)",
    }
    print_table("server", {labels[name]: r for name, r in results.items()}, 38)
    for name in floors:
        r = results[name]
        met = r["ratio"] >= 0.8 and r["p99_ms"] <= 25 and r["errors"] == 0
        print(
            f"{labels[name]}: throughput {r['ratio']:.2f}x (target >= 0.80), p99 {r['p99_ms']:.1f} ms "
            f"(target <= 25), errors {r['errors']} -> {'targets met' if met else 'TARGETS NOT MET'}; "
            f"{r['of_floor']:.2f}x of its floor; stored {r['stored']} messages, {r['queued']} queued"
        )
    print(
        f"floors: {results['floor']['ratio']:.2f}x of the reference with each message fsynced before the "
        f"answer (durability=full), {results['floor_nosync']['ratio']:.2f}x without (durability=compliance)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

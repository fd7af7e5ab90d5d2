"""Benchmark the inbound webhook against a minimal signature-only endpoint.

Both run under gunicorn with the same workers on loopback; wrk replays
precomputed signed requests with unique MessageSids (about 90% plain messages,
10% keywords) at a fixed number of connections. Rounds alternate between the
servers so background noise hits all; the median round is reported, as
figures and as the gateway/reference ratio.

The floors (floor_app.py) are the reference plus only the least write the
issue requires of each message, durable (or, for SQLite's compliance mode,
not fsynced): they show how much of the gap is the durable write itself,
which no implementation can skip, and how much is the gateway's own work.
Beside each durable floor, the same floor whose write is the gateway's own
storage of a plain message (floor_app.py's FLOOR_WRITE=store) splits that
work in two: what the storage costs, and what the web layer adds.
The gateway is measured on SQLite and on PostgreSQL (one instance, and two
instances on one database, each with its own wrk), each against its own
floor; the PostgreSQL server is found as the tests find it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "d17e2c0"
TOKEN = secrets.token_hex(16)
KEYWORDS = ["STOP", "START", "HELP", "stop", "Stop!", "yes", "info", "unsubscribe"]
PLAIN = ["Hi, can I move my appointment to Tuesday?", "what time do you open", "Thanks!", "ok", "See you then"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_requests(path: Path, url: str, count: int, seed: int, keywords: float = 0.10) -> None:
    rng = random.Random(seed)
    validator = RequestValidator(TOKEN)
    with path.open("w") as out:
        for _ in range(count):
            sid = "SM" + secrets.token_hex(16)
            body = rng.choice(KEYWORDS) if rng.random() < keywords else rng.choice(PLAIN)
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


def gunicorn_settings(root: Path) -> str:
    """The gunicorn settings of the checkout at ``root``: the package's, or an older checkout's own file."""
    older = root / "config" / "gunicorn.conf.py"
    return str(older) if older.exists() else "python:gateway.gunicorn_conf"


def start(app: str, port: int, args: argparse.Namespace, env: dict, log: Path, root: Path = ROOT) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--config",  # as the Procfile runs it (metrics in multiprocess mode)
                gunicorn_settings(root),
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
            cwd=root,
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


def server_env(work: Path, name: str, root: Path = ROOT) -> dict:
    """The environment of one server process: none of the caller's gateway settings, this run's auth token, an
    instance folder and metrics directory of its own under ``work``, the bench apps importable."""
    return {
        **clean_env(),
        "TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_INSTANCE_PATH": str(work / "instance"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{name}"),  # gunicorn.conf.py creates it
        "PYTHONPATH": f"{root}:{ROOT / 'bench'}",
    }


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


@dataclass
class Server:
    """One server of the benchmark: an app under gunicorn, on one or more instances (ports)."""

    label: str
    app: str
    env: dict
    instances: int = 1
    ports: list[int] = field(default_factory=list)
    root: Path = ROOT  # the source tree it runs from


def measure(server: Server, files: list[Path], connections: int, seconds: int, threads: int) -> dict:
    """One wrk round; several instances share the connections, with one wrk each, at once."""
    if len(server.ports) == 1:
        return wrk(server.ports[0], files[0], connections, seconds, threads)
    share = connections // len(server.ports)
    with ThreadPoolExecutor(len(server.ports)) as pool:
        pairs = zip(server.ports, files, strict=True)
        parts = list(pool.map(lambda pf: wrk(pf[0], pf[1], share, seconds, max(1, threads // 2)), pairs))
    total = sum(p["rps"] for p in parts)
    return {
        "rps": total,
        "p50_ms": sum(p["p50_ms"] * p["rps"] for p in parts) / total,  # weighted by each instance's share
        "p99_ms": max(p["p99_ms"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "requests": sum(p["requests"] for p in parts),
    }


def postgres_urls(given: str | None, names: list[str]) -> tuple[dict[str, str], object | None]:
    """A schema per PostgreSQL server in a throwaway database (GATEWAY_TEST_POSTGRES_URL's order, as the tests)."""
    sys.path.insert(0, str(ROOT))
    from tests.support import postgres

    if given:
        os.environ["GATEWAY_TEST_POSTGRES_URL"] = given
    found = postgres.find_or_start()
    print(f"postgresql: {found.how}", file=sys.stderr)
    return {name: found.new_schema()[1] for name in names}, found


def checkout(revision: str, target: Path) -> Path | None:
    """The source tree as of ``revision`` (git archive), to run beside the current one; None if unavailable."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True)
    if archive.returncode != 0:
        print(f"not measuring the gateway as of {revision}: {archive.stderr.decode().strip()}", file=sys.stderr)
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def stored(url: str) -> tuple[int, int]:
    """(messages stored, messages queued for the agent) in a gateway database (or one of the old layout, which
    a commit given to --before may have)."""
    query = "SELECT count(*), count(status) FROM inbound_messages"
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'inbound_messages'").fetchone():
                query = "SELECT (SELECT count(*) FROM processed_messages), (SELECT count(*) FROM agent_queue)"
            return conn.execute(query).fetchone()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class for both servers")
    parser.add_argument("--gunicorn-threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server [default: found as the tests find it]")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite and the reference only")
    parser.add_argument(
        "--before",
        default=BEFORE,
        help="also run the gateway as of this commit, on SQLite (empty: not) [default: %(default)s, the last "
        "release before the storage layer became a package and a message one row]",
    )
    parser.add_argument(
        "--keywords", type=float, default=0.10, help="share of keyword messages in the traffic [default: %(default)s]"
    )
    parser.add_argument(
        "--only",
        help="comma-separated servers to measure (gateway, compliance, before, pg, pg2), with the reference, "
        "their floors and the store bounds beside those floors [default: all]",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed: run `make bench` (it installs it) or bench/ensure-tools")

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    servers = {
        "gateway": Server("gateway, SQLite (durability=full)", "wsgi:app", {}),
        "compliance": Server(
            "gateway, SQLite (durability=compliance)", "wsgi:app", {"GATEWAY_DURABILITY": "compliance"}
        ),
        "reference": Server("reference (signature only)", "minimal_app:app", {}),
        "floor": Server("floor, SQLite (fsynced insert)", "floor_app:app", {}),
        "floor_nosync": Server("floor, SQLite (insert, no fsync)", "floor_app:app", {"FLOOR_FSYNC": "0"}),
        "floor_store": Server("floor + the gateway's store, SQLite", "floor_app:app", {"FLOOR_WRITE": "store"}),
    }
    only = set(args.only.split(",")) if args.only else None
    wanted = args.before and (only is None or "before" in only)
    before = checkout(args.before, work / "before") if wanted else None
    if before is not None:
        servers["before"] = Server(f"gateway as of {args.before}, SQLite (full)", "wsgi:app", {}, root=before)
    for name, server in servers.items():
        server.env["DATABASE_URL"] = f"sqlite:///{work / name}.db"
    found = None
    floors = {"gateway": "floor", "before": "floor", "compliance": "floor_nosync", "pg": "pg_floor", "pg2": "pg_floor"}
    # Bounds, not targets: each floor with the gateway's storage as its write, beside that floor.
    bounds = {"floor_store": "floor", "pg_floor_store": "pg_floor"}
    if only is not None and not args.no_postgres and not only & {"pg", "pg2"}:
        args.no_postgres = True
    if not args.no_postgres:
        postgres = {
            "pg": Server("gateway, PostgreSQL (1 instance)", "wsgi:app", {}),
            "pg2": Server(f"gateway, PostgreSQL (2 instances x {args.workers})", "wsgi:app", {}, instances=2),
            "pg_floor": Server("floor, PostgreSQL (durable insert)", "floor_app:app", {}),
            "pg_floor_store": Server(
                "floor + the gateway's store, PostgreSQL", "floor_app:app", {"FLOOR_WRITE": "store"}
            ),
        }
        urls, found = postgres_urls(args.postgres, list(postgres))
        for name, server in postgres.items():
            server.env["DATABASE_URL"] = urls[name]
        servers.update(postgres)
    if only is not None:
        unknown = only - set(floors)
        if unknown:
            raise SystemExit(f"bench: --only: unknown server(s) {', '.join(sorted(unknown))}")
        keep = {"reference", *only, *(floors[name] for name in only)}
        keep |= {bound for bound, floor in bounds.items() if floor in keep}
        servers = {name: server for name, server in servers.items() if name in keep}

    # wrk restarts its script every run, so each round gets its own file, with
    # enough unique requests that no MessageSid repeats (up to 8,000 req/s).
    def requests_files(name: str, round_no: int, seconds: int) -> list[Path]:
        paths = []
        for port in servers[name].ports:
            path = work / f"{name}-{port}-{round_no}.requests"
            url = f"http://127.0.0.1:{port}/twilio/sms"
            write_requests(path, url, 8000 * seconds, seed=round_no * 100 + port, keywords=args.keywords)
            paths.append(path)
        return paths

    procs = []
    for name, server in servers.items():
        for instance in range(server.instances):
            port = free_port()
            environment = {**server_env(work, f"{name}-{instance}", server.root), **server.env}
            procs.append(start(server.app, port, args, environment, work / f"{name}.log", server.root))
            server.ports.append(port)
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    try:
        for name, server in servers.items():  # warm-up, not reported
            measure(server, requests_files(name, 0, 2), args.connections, 2, args.threads)
        for round_no in range(1, args.rounds + 1):
            for name, server in servers.items():
                paths = requests_files(name, round_no, args.seconds)
                rounds[name].append(measure(server, paths, args.connections, args.seconds, args.threads))
                for path in paths:
                    path.unlink()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)

    results = {name: median_round(rounds[name]) for name in servers}
    reference = results["reference"]
    for r in results.values():
        r["ratio"] = r["rps"] / reference["rps"]
    for name, floor in (floors | bounds).items():
        if name in results:
            results[name]["stored"], results[name]["queued"] = stored(servers[name].env["DATABASE_URL"])
            results[name]["of_floor"] = results[name]["rps"] / results[floor]["rps"]
            # Each round against the floor's round of the same pass: slow swings of the machine's load
            # hit both, so the median of these ratios moves less from run to run than the medians' ratio.
            paired = sorted(a["rps"] / b["rps"] for a, b in zip(rounds[name], rounds[floor], strict=True))
            results[name]["of_floor_rounds"] = paired
    if found is not None:
        found.finish()

    print(
        f"gunicorn: {args.workers} workers per instance, {args.worker_class} x{args.gunicorn_threads} threads; "
        f"wrk: {args.connections} connections; {args.rounds} x {args.seconds}s rounds, median shown; "
        f"{args.keywords:.0%} keywords"
    )
    print_table("server", {servers[name].label: r for name, r in results.items()}, 42)
    for name, floor in floors.items():
        if name not in results:
            continue
        r = results[name]
        met = r["of_floor"] >= 0.9 and r["p99_ms"] <= 25 and r["errors"] == 0
        print(
            f"{servers[name].label}: {r['of_floor']:.2f}x of {servers[floor].label} (target >= 0.90; round by "
            f"round {r['of_floor_rounds'][0]:.2f}x to {r['of_floor_rounds'][-1]:.2f}x, median "
            f"{r['of_floor_rounds'][len(r['of_floor_rounds']) // 2]:.2f}x), "
            f"p99 {r['p99_ms']:.1f} ms (target <= 25), errors {r['errors']} -> "
            f"{'targets met' if met else 'TARGETS NOT MET'}; {r['ratio']:.2f}x of the reference; "
            f"stored {r['stored']} messages, {r['queued']} queued"
        )
    for name, floor in bounds.items():
        if name in results:
            r = results[name]
            print(
                f"{servers[name].label}: {r['of_floor']:.2f}x of {servers[floor].label} (a bound, no target: every "
                f"message stored as the gateway stores a plain one, without its web layer; round by round "
                f"{r['of_floor_rounds'][0]:.2f}x to {r['of_floor_rounds'][-1]:.2f}x), p99 {r['p99_ms']:.1f} ms"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

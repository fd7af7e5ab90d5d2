"""Where a webhook request's CPU goes: the gunicorn workers, the database server, everything else.

On a small machine wrk, gunicorn and PostgreSQL share the cores, so
throughput follows the CPU a request costs all of them together. This runs
one server of ``run.py`` at a time (the gateway or the floor, on SQLite or
PostgreSQL) under wrk, and reads the CPU time of the gunicorn processes, of
every ``postgres`` process and of the whole machine from ``/proc`` before and
after each round: microseconds of CPU per request, per part. The floor's
figures are the budget: the gateway at 0.9x of its floor may spend about
1.1x the floor's total. Not part of ``make bench`` (a diagnosis, not a
figure to track); run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import run

TICK = os.sysconf("SC_CLK_TCK")
SERVERS = {"gateway": "wsgi:app", "floor": "floor_app:app"}


def cpu_seconds(pids: set[int]) -> tuple[float, float, float]:
    """User and system CPU seconds of the processes ``pids``, of every ``postgres`` process, and (user, nice
    and system) of the whole machine."""
    ticks = [0, 0]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        used = int(fields[11]) + int(fields[12])
        if int(entry) in pids:
            ticks[0] += used
        elif name.startswith("postgres"):
            ticks[1] += used
    with open("/proc/stat") as stat:
        machine = sum(int(x) for x in stat.readline().split()[1:4])
    return ticks[0] / TICK, ticks[1] / TICK, machine / TICK


def family(pid: int) -> set[int]:
    """A gunicorn master and its workers."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return {pid, *(int(child) for child in children.read().split())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("server", choices=sorted(SERVERS), help="what to run: the gateway or the floor")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--keywords", type=float, default=0.10, help="share of keywords [default: %(default)s]")
    parser.add_argument("--seconds", type=int, default=6, help="length of one round [default: %(default)s]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each printed [default: %(default)s]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed: run bench/ensure-tools")
    args.worker_class, args.gunicorn_threads = "sync", 1

    work = Path(tempfile.mkdtemp(prefix="gateway-cpu-"))
    found = None
    if args.backend == "postgresql":
        urls, found = run.postgres_urls(None, ["cpu"])
        url = urls["cpu"]
    else:
        url = f"sqlite:///{work / 'cpu.db'}"
    env = {**run.server_env(work, args.server), "DATABASE_URL": url}
    port = run.free_port()
    proc = run.start(SERVERS[args.server], port, args, env, work / "server.log")
    target = f"http://127.0.0.1:{port}/twilio/sms"
    print(f"{args.server} on {args.backend}, {args.keywords:.0%} keywords; CPU microseconds per request")
    try:
        warm = work / "warm.requests"
        run.write_requests(warm, target, 8000 * 2, seed=1, keywords=args.keywords)
        run.wrk(port, warm, args.connections, 2, 2)
        for round_no in range(1, args.rounds + 1):
            requests = work / f"{round_no}.requests"
            run.write_requests(requests, target, 8000 * args.seconds, seed=10 + round_no, keywords=args.keywords)
            pids = family(proc.pid)
            before = cpu_seconds(pids)
            result = run.wrk(port, requests, args.connections, args.seconds, 2)
            after = cpu_seconds(pids)
            gunicorn, database, total = (1e6 * (b - a) / result["requests"] for a, b in zip(before, after, strict=True))
            server = f"postgres {database:.0f}, " if found is not None else ""  # SQLite works inside gunicorn
            print(
                f"round {round_no}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms; gunicorn {gunicorn:.0f}, "
                f"{server}rest (wrk, ...) {total - gunicorn - database:.0f}, total {total:.0f}"
            )
            requests.unlink()
    finally:
        proc.terminate()
        proc.wait(15)
        if found is not None:
            found.finish()


if __name__ == "__main__":
    main()

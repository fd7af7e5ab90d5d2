"""Instructions per webhook request, counted by valgrind: the gateway against its floor and the reference.

Throughput rounds on a shared machine spread by a third; an instruction
count does not move. Each server's Flask app (the gateway, the floor of
floor_app.py, the signature-only reference) runs in a process of its own
under ``valgrind --tool=callgrind``, replaying signed webhooks through the
Flask test client (the same requests as run.py: unique MessageSids, the
same share of keywords), twice: a short run and a long one, after the same
warm-up, each on a fresh database. The difference, divided by the extra
requests, is what one request costs that process in user space: the web
layer, the gateway's Python, the database driver and, on SQLite, the
database itself. Left out: the kernel (sockets, fsync), gunicorn's HTTP
parsing (the same for every server) and the PostgreSQL server's own work,
which run.py and cpu.py see. What it sees, it sees exactly, so a change to
the gateway's client-side cost shows even when it is smaller than the
noise of a throughput round. Also run by ``make bench``, which installs
valgrind (bench/ensure-tools).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import run

URL = "http://localhost/twilio/sms"  # what the test client's requests are signed for
APPS = {"reference": "minimal_app", "floor": "floor_app", "gateway": "wsgi"}
WARM = 200


def replay(app_module: str, requests_file: Path, count: int) -> None:
    """In this process: the app, then the first ``WARM + count`` requests of ``requests_file``, each one 200."""
    if app_module == "wsgi":
        from gateway.store import Store

        Store(os.environ["DATABASE_URL"]).init_schema()
    app = __import__(app_module).app
    client = app.test_client()
    with requests_file.open() as lines:
        for _ in range(WARM + count):
            signature, body = next(lines).rstrip("\n").split("\t", 1)
            response = client.post(
                "/twilio/sms",
                data=body,
                content_type="application/x-www-form-urlencoded",
                headers={"X-Twilio-Signature": signature},
            )
            if response.status_code != 200:
                raise SystemExit(f"{app_module}: {response.status_code} {response.get_data(as_text=True)[:200]}")


def counted(
    server: str, app: str, root: Path, backend: str, url: str, requests_file: Path, count: int, work: Path, extra: dict
) -> int:
    """Instructions valgrind counts for a process that replays ``WARM + count`` requests to ``app`` (the source
    tree at ``root``; ``extra``: settings of a gateway's environment)."""
    name = f"{backend}-{server}-{count}"
    log, output = work / f"{name}.valgrind", work / f"{name}.stderr"
    env = {**run.server_env(work / name, name, root), "DATABASE_URL": url, "PYTHONHASHSEED": "0"}
    if app == "wsgi":
        env.update(extra)
    (work / name).mkdir()
    with output.open("wb") as errors:
        finished = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                f"--log-file={log}",
                sys.executable,
                __file__,
                "--replay",
                app,
                str(requests_file),
                str(count),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", log.read_text())
    if finished.returncode != 0 or found is None:
        raise SystemExit(f"bench: {server} on {backend} failed under valgrind; see {output} and {log}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keywords", type=float, default=0.10, help="share of keywords [default: %(default)s]")
    parser.add_argument("--requests", type=int, default=300, help="extra requests of the long run [default: 300]")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--before", metavar="REV", help="also the gateway as of this git revision, for before and after"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the gateway's environment, e.g. GATEWAY_LOG_LEVEL=WARNING (what the log line costs)",
    )
    parser.add_argument("--replay", nargs=3, metavar=("APP", "FILE", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], Path(args.replay[1]), int(args.replay[2]))
        return
    extra = dict(setting.split("=", 1) for setting in args.set if "=" in setting)
    if len(extra) != len(args.set):
        raise SystemExit("bench: --set takes NAME=VALUE")
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed: run `make bench` (it installs it) or bench/ensure-tools")

    work = Path(tempfile.mkdtemp(prefix="gateway-instructions-"))
    servers = {name: (app, run.ROOT) for name, app in APPS.items()}  # name: (module, source tree)
    if args.before:
        before = run.checkout(args.before, work / "before")
        if before is None:
            raise SystemExit(f"bench: --before: no revision {args.before}")
        servers["before"] = ("wsgi", before)
    requests_file = work / "requests"
    run.write_requests(requests_file, URL, WARM + 100 + args.requests, seed=1, keywords=args.keywords)
    backends = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    counts = (100, 100 + args.requests)
    found, urls, jobs = None, {}, {}
    try:
        if "postgresql" in backends:
            urls, found = run.postgres_urls(None, [f"{name}-{count}" for name in servers for count in counts])
        with ThreadPoolExecutor(max_workers=2) as pool:  # one valgrind per core; counts do not depend on it
            for backend in backends:
                for name, (app, root) in servers.items():
                    for count in counts:
                        database = f"{name}-{count}"
                        url = urls[database] if backend == "postgresql" else f"sqlite:///{work / database}.db"
                        jobs[backend, name, count] = pool.submit(
                            counted, name, app, root, backend, url, requests_file, count, work, extra
                        )
        per_request = {
            (backend, name): (jobs[backend, name, counts[1]].result() - jobs[backend, name, counts[0]].result())
            / args.requests
            / 1e6
            for backend in backends
            for name in servers
        }
    finally:
        if found is not None:
            found.finish()
    print(f"million instructions per webhook request in process (valgrind), {args.keywords:.0%} keywords")
    labels = {name: f"at {args.before}" if name == "before" else name for name in servers}
    print(f"{'backend':<11} " + " ".join(f"{labels[name]:>12}" for name in servers))
    for backend in backends:
        print(f"{backend:<11} " + " ".join(f"{per_request[backend, name]:>12.3f}" for name in servers))
    for backend in backends:
        ref, floor = per_request[backend, "reference"], per_request[backend, "floor"]
        own = {name: per_request[backend, name] - ref for name in servers if name not in ("reference", "floor")}
        beyond = ", ".join(f"{labels[name]} {cost:.3f}M ({cost / (floor - ref):.1f}x)" for name, cost in own.items())
        print(f"{backend}: beyond the reference, the floor's write {floor - ref:.3f}M; {beyond} (x: the floor's)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

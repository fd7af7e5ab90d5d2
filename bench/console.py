"""Benchmark the console's opt-out list at 1,000 and at 100,000 opt-outs, on SQLite and on PostgreSQL.

An auditor pages through the list, jumps to its end, filters it and downloads
it as CSV. Each page must cost the same however long the list is: the list is
read through the index on its order (``opted_out_at, number, twilio_number``),
a page at a time, never sorted whole. The opt-outs are loaded straight into
each database, a second apart; each page is requested through the Flask app
(sign-in, session, template: everything but the socket) and the median of
several requests is reported, with the ratio of the large list to the small.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import create_app
from gateway.core import keys
from gateway.store import Store
from tests.support import postgres
from tests.support.database import load_opt_outs

BASE = "https://localhost"
ROUNDS = 25


def pages(size: int) -> dict[str, str]:
    """The requests measured: label -> path."""
    middle = size // 2
    stamp = f"2026-01-0{1 + middle // 86400}T{middle % 86400 // 3600:02d}:{middle % 3600 // 60:02d}:{middle % 60:02d}"
    cursor = quote(f"{stamp}.000000Z|+1{200_000_000 + middle:09d}|+1500555000{6 + middle % 2}")
    return {
        "first page": "/console/opt-outs",
        "middle page": f"/console/opt-outs?after={cursor}",
        "last page": "/console/opt-outs?page=last",
        "one number": f"/console/opt-outs?number=%2B1{200_000_000 + middle:09d}",
        "CSV, all": "/console/opt-outs.csv",
    }


def measure(url: str, size: int) -> dict[str, float]:
    store = Store(url)
    store.init_schema()
    load_opt_outs(store, size, spread=True)
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "auditor")
    app = create_app({"DATABASE_URL": url, "TWILIO_AUTH_TOKEN": "b" * 32, "SECRET_KEY": "bench-" + "s" * 26})
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in", base_url=BASE).text)
    client.post("/console/sign-in", data={"key": key, "csrf_token": token.group(1)}, base_url=BASE)
    result = {}
    for label, path in pages(size).items():
        times = []
        for _ in range(3 if label.startswith("CSV") else ROUNDS):
            began = time.perf_counter()
            response = client.get(path, base_url=BASE)
            body = response.get_data()
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (label, response.status_code)
            if label.startswith("CSV"):
                assert body.count(b"\n") == size + 1, (label, body.count(b"\n"))
            else:
                assert b"No opt-outs match" not in body, label
        result[label] = statistics.median(times)
    store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000", help="opt-outs on record, comma-separated")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one request log line per page would drown the table
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="gateway-console-"))
    server = None if args.no_postgres else postgres.find_or_start()
    results: dict[str, dict[int, dict]] = {}
    try:
        for kind in ("sqlite", *(() if server is None else ("postgresql",))):
            for size in sizes:
                url = f"sqlite:///{work / f'{size}.db'}" if kind == "sqlite" else server.new_schema()[1]
                results.setdefault(kind, {})[size] = measure(url, size)
    finally:
        if server is not None:
            server.finish()
    low, high = min(sizes), max(sizes)
    print(f"console opt-out list, median milliseconds per request ({low:,} and {high:,} opt-outs)")
    print(f"{'backend':<11} {'request':<12} {f'{low:,}':>9} {f'{high:,}':>9} {'ratio':>7}")
    for kind, by_size in results.items():
        for label in by_size[low]:
            small, large = by_size[low][label], by_size[high][label]
            print(f"{kind:<11} {label:<12} {small:>9.1f} {large:>9.1f} {large / small:>6.2f}x")
    print("pages should stay flat (close to 1x); the CSV grows with the list, in bounded memory")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

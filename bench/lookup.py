"""Benchmark the opt-out lookup at 1,000 and at 1,000,000 opt-outs, on SQLite and on PostgreSQL.

Every inbound message and every outbound send asks whether an opt-out covers
the pair; the answer must cost the same however many opt-outs are on record.
The opt-outs are loaded straight into each database (the lookup is what is
measured, not the loading); then ``Store.is_opted_out`` is timed for numbers
that are opted out and numbers that are not, and the median is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.store import Store
from tests.support import postgres
from tests.support.database import TWILIO, load_opt_outs


def lookups(store: Store, count: int, rounds: int = 4000) -> dict:
    rng = random.Random(count)
    present = [(f"+1{200_000_000 + n:09d}", TWILIO[n % 2]) for n in (rng.randrange(count) for _ in range(rounds))]
    absent = [(f"+1{300_000_000 + n:09d}", TWILIO[n % 2]) for n in range(rounds)]
    result = {}
    for label, pairs, expected in (("opted_out", present, True), ("not_opted_out", absent, False)):
        for number, via in pairs[:200]:  # warm the cache and the pool
            store.is_opted_out(number, via)
        times = []
        for number, via in pairs:
            began = time.perf_counter()
            answer = store.is_opted_out(number, via)
            times.append((time.perf_counter() - began) * 1e6)
            assert answer is expected
        result[label] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,1000000", help="opt-outs on record, comma-separated")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="gateway-lookup-"))
    server = None if args.no_postgres else postgres.find_or_start()
    results: dict[str, dict[int, dict]] = {}
    try:
        for kind in ("sqlite", *(() if server is None else ("postgresql",))):
            for size in sizes:
                url = f"sqlite:///{work / f'{size}.db'}" if kind == "sqlite" else server.new_schema()[1]
                store = Store(url)
                store.init_schema()
                load_opt_outs(store, size)
                results.setdefault(kind, {})[size] = lookups(store, size)
                store.close()
    finally:
        if server is not None:
            server.finish()
    print("opt-out lookup (Store.is_opted_out), median microseconds")
    print(f"{'backend':<11} {'opt-outs':>10} {'opted out':>10} {'not':>8}")
    for kind, by_size in results.items():
        for size, r in by_size.items():
            print(f"{kind:<11} {size:>10,} {r['opted_out']:>10.1f} {r['not_opted_out']:>8.1f}")
        low, high = by_size[min(sizes)], by_size[max(sizes)]
        ratio = max(high[k] / low[k] for k in ("opted_out", "not_opted_out"))
        print(f"{kind}: {max(sizes):,} / {min(sizes):,} opt-outs -> {ratio:.2f}x (flat: close to 1x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

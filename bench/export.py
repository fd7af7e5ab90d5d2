"""Peak memory of `gateway optouts export` on a million-event log.

Builds databases of 1,000, 100,000 and 1,000,000 events through the
gateway's own import path (hash chain included), exports each to CSV in a
child process and reads the child's peak RSS from the kernel. Bounded memory
means the peak stops growing with the log: the 1M / 100k ratio is the figure
(close to 1x), the 1k run shows the fixed start-up cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.core.imports import ImportRow
from gateway.store import Store

CHUNK = 50_000


def build(path: Path, events: int) -> float:
    store = Store(f"sqlite:///{path}")
    store.init_schema()
    started = time.perf_counter()
    for start in range(0, events, CHUNK):
        rows = [
            ImportRow(i + 2, f"+1415{i:07d}", f"+1500555{i % 10:04d}", "2025-01-01T00:00:00.000000Z")
            for i in range(start, min(start + CHUNK, events))
        ]
        store.import_opt_outs(rows, "bench")
    store.close()
    return time.perf_counter() - started


def export(db: Path, out: Path) -> tuple[int, float, int]:
    """Return (peak RSS in KiB, seconds, file size) of one export run."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "optouts", "export", "--output", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"export failed with status {status}")
    return usage.ru_maxrss, time.perf_counter() - started, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated event counts")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="gateway-export-bench-"))
    results = {}
    for count in sizes:
        label = f"{count:,}"
        db = work / f"{label}.db"
        built = build(db, count)
        rss, seconds, size = export(db, work / f"{label}.csv")
        results[label] = (count, rss, seconds, size, built)
        (work / f"{label}.csv").unlink()
        db.unlink()
    print(f"{'events':>10} {'peak RSS MiB':>13} {'seconds':>8} {'CSV MiB':>8} {'events/s':>9}")
    for count, rss, seconds, size, _ in results.values():
        print(f"{count:>10,} {rss / 1024:>13.1f} {seconds:>8.1f} {size / 2**20:>8.1f} {count / seconds:>9.0f}")
    runs = list(results.values())
    largest, previous = runs[-1], runs[-2] if len(runs) > 1 else runs[-1]
    print(
        f"peak RSS ratio {largest[0]:,} / {previous[0]:,} events: {largest[1] / previous[1]:.2f}x "
        f"(bounded memory: close to 1x)"
    )


if __name__ == "__main__":
    main()

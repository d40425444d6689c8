"""History search: one page of 50 from a large history, on SQLite and PostgreSQL (target: 100 ms or less).

Fills ``job_runs`` with ``BENCH_HISTORY_ROWS`` rows (default 1,000,000: 20 actors, 5 queues, 5% with
an error, finished over 30 days), runs ``ANALYZE`` as the maintenance job does, then times
:func:`broker_jobs.store.queries.search_runs` for each filter the console offers (median of 5) and
the 20th page through the cursor.  Run alone: ``python benchmarks/history_search.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text

from broker_jobs.store.db import get_engine
from broker_jobs.store.queries import RunFilter, search_runs

TARGET_MS = 100.0
NOW = datetime(2026, 6, 1, tzinfo=UTC)
STATUSES = ("succeeded",) * 17 + ("dead", "retrying", "skipped")


def _rows(n: int) -> Any:
    span = 30 * 86400
    for i in range(n):
        finished = NOW - timedelta(seconds=span * (n - i) / n)
        status = STATUSES[i % len(STATUSES)]
        error = f"TimeoutError: upstream {i % 97} timed out" if status in ("dead", "retrying") else None
        yield (f"m{i:09d}", f"actor_{i % 23}", f"queue_{i % 5}", "medium", status, 1, 2,
               finished - timedelta(seconds=2), finished - timedelta(seconds=1), finished, 1000.0, error, "h:1")


_INSERT = ("INSERT INTO job_runs (message_id, actor, queue, priority, status, attempt, seq, enqueued_at, started_at,"
           " finished_at, duration_ms, error, worker) VALUES ")


def fill(engine: Engine, n: int) -> None:
    """``n`` rows in ``job_runs`` (driver-level batches: the ORM would take minutes)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy("COPY job_runs (message_id, actor, queue, priority, status, attempt, seq, enqueued_at, "  # type: ignore[attr-defined]
                          "started_at, finished_at, duration_ms, error, worker) FROM STDIN") as copy:
                for row in _rows(n):
                    copy.write_row(row)
        else:
            cur.executemany(_INSERT + "(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            ((*r[:7], *(t.strftime("%Y-%m-%d %H:%M:%S.%f") for t in r[7:10]), *r[10:])
                             for r in _rows(n)))
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


CASES: dict[str, RunFilter] = {
    "newest": RunFilter(),
    "actor": RunFilter(actor="actor_7"),
    "queue": RunFilter(queue="queue_3"),
    "status dead": RunFilter(status="dead"),
    "actor + status": RunFilter(actor="actor_3", status="dead"),
    "last day": RunFilter(since=NOW - timedelta(days=1)),
    "one old hour": RunFilter(since=NOW - timedelta(days=20), until=NOW - timedelta(days=20) + timedelta(hours=1)),
    "error text": RunFilter(error="upstream 42 timed"),
}


def measure(engine: Engine, repeat: int = 5) -> list[dict[str, Any]]:
    """Median milliseconds of one page of 50 for each case, and of the 20th page (cursor) unfiltered."""
    results = []
    for name, where in CASES.items():
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            runs, _ = search_runs(engine, where, limit=50)
            times.append((time.perf_counter() - began) * 1000)
        results.append({"case": name, "rows": len(runs), "median_ms": round(statistics.median(times), 2)})
    cursor = None
    began = time.perf_counter()
    for _ in range(20):
        _, cursor = search_runs(engine, RunFilter(), before=cursor, limit=50)
    results.append({"case": "20 pages by cursor (each)", "rows": 50,
                    "median_ms": round((time.perf_counter() - began) * 1000 / 20, 2)})
    return results


def run(rows: int, postgres_url: str | None) -> dict[str, list[dict[str, Any]]]:
    """Fill and measure each database; SQLite in a temporary file, PostgreSQL in the database given."""
    out: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"sqlite": f"sqlite:///{tmp}/history.sqlite3"}
        if postgres_url:
            targets["postgresql"] = postgres_url
        for name, url in targets.items():
            engine = get_engine(url)
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM job_runs"))
            began = time.monotonic()
            fill(engine, rows)
            print(f"history {name}: {rows} rows filled in {time.monotonic() - began:.0f} s", flush=True)
            out[name] = measure(engine)
            for r in out[name]:
                flag = "" if r["median_ms"] <= TARGET_MS else f"  OVER {TARGET_MS:.0f} ms"
                print(f"history {name} {r['case']}: {r['median_ms']} ms ({r['rows']} rows){flag}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_HISTORY_ROWS", 1_000_000)))
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL"),
                        help="a PostgreSQL database to fill (its job_runs is emptied first)")
    args = parser.parse_args(argv)
    run(args.rows, args.postgres)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: every benchmark, one private vhost, one results page.

    .venv/bin/python benchmarks/run.py            # the full run (about 25–30 min)
    .venv/bin/python benchmarks/run.py --quick    # tiny N, seconds-granularity schedulers only, no cluster
    .venv/bin/python benchmarks/run.py --only cluster   # classic vs quorum queues on three nodes, node kill
    BENCH_N=2000 .venv/bin/python benchmarks/run.py --only throughput,scaling

Prints the Markdown table and writes ``results/RESULTS.md``, ``results/results.json``
and ``results/chart.png``.  Every peer has a hard timeout; one that fails or
hangs shows its error in the table and the run goes on.  Exit code 0 unless
the run itself could not start (no RabbitMQ, Redis or management API).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cli_startup, cluster, history_search, report, scheduler_burst, throughput
from benchmarks.common import BenchError, machine, private_run
from benchmarks.peers import PEERS

SECTIONS = ("throughput", "scaling", "scheduler", "idle", "cli", "history", "cluster")
RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny N, short phases (the test suite's check)")
    parser.add_argument("--n", type=int, default=None, help="jobs per throughput burst (env BENCH_N)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="throughput measurements per peer, interleaved; the median is kept (default 3)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma list of worker peers")
    parser.add_argument("--schedulers", default=",".join(scheduler_burst.SCHEDULERS),
                        help="comma list of schedulers")
    parser.add_argument("--sizes", default=None, help="scheduler burst sizes (default 100,1000,10000)")
    parser.add_argument("--timeout", type=float, default=None, help="hard limit per peer measurement, s")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where RESULTS.md and chart.png go")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the rows measured now in the existing results.json (re-run a row)")
    return parser.parse_args(argv)


def _bj_scheduler_ready() -> bool:
    try:
        from benchmarks.peers import bj_sched

        return bj_sched.available()
    except ImportError:
        return False


_KEYS = {"throughput": ("peer", "processes"), "scaling": ("peer", "processes"), "bursts": ("scheduler", "n"),
         "idle": ("scheduler", "n")}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the rows ``new`` measured again replaced (same peer and size); notes of both."""
    merged = dict(old)
    for section, fields in _KEYS.items():
        rows = {tuple(r[f] for f in fields): r for r in old.get(section, [])}
        rows.update({tuple(r[f] for f in fields): r for r in new.get(section, [])})
        if rows:
            merged[section] = list(rows.values())
    if new.get("cluster"):
        merged["cluster"] = new["cluster"]
    merged["notes"] = [*old.get("notes", []), *(n for n in new.get("notes", []) if n not in old.get("notes", [])),
                       f"rows re-measured {new['meta']['started']} UTC: `{new['meta']['command']}`"]
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the results."""
    args = _parse(argv)
    quick = args.quick
    n = args.n or int(os.environ.get("BENCH_N", 100 if quick else 10_000))
    sections = [s for s in args.only.split(",") if s]
    peers = [p for p in args.peers.split(",") if p]
    schedulers = [s for s in args.schedulers.split(",") if s]
    sizes = [int(s) for s in (args.sizes or ("20" if quick else "100,1000,10000")).split(",")]
    timeout = args.timeout or (60.0 if quick else 240.0)
    idle_n = 50 if quick else 10_000
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": "benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "n": n, "latency_rate": 50.0 if quick else 200.0, "latency_seconds": 0.5 if quick else 10.0,
        "idle_seconds": 1.0 if quick else 30.0, "sizes": sizes, "quick": quick,
        "rounds": args.rounds or (1 if quick else 3),
    }
    results: dict[str, Any] = {"meta": meta, "machine": machine(), "notes": []}
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    try:
        with private_run() as run:
            log(f"run {run.run_id}: vhost {run.vhost}, scratch {run.workdir}")
            if "throughput" in sections:
                # The machine's load moves a single measurement by ±20%: every peer is measured
                # `rounds` times, the rounds interleaved (pika, Dramatiq, broker_jobs, Celery, pika,
                # ...) so that a busy minute hits them all, and each keeps its median round.
                rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in peers}
                for i in range(meta["rounds"]):
                    for name in peers:
                        # raw pika is the one-consumer floor; the frameworks run 2 processes.
                        processes = 1 if name == "pika" else 2
                        latency = {"latency_rate": meta["latency_rate"],
                                   "latency_seconds": meta["latency_seconds"]} if i == 0 else {}
                        row = throughput.measure(run, name, n, processes, timeout=timeout, tag=f"r{i}", **latency)
                        if row.error and quick:
                            # A peer stalled once under a loaded machine (Celery with acks_late, 28 of 100
                            # jobs in 60 s, fine alone): the quick run measures it once more, and says so.
                            log(f"throughput {name} round {i + 1} failed ({row.error}): measured again")
                            row = throughput.measure(run, name, n, processes, timeout=timeout, tag=f"r{i}b",
                                                     **latency)
                        log(f"throughput {name} round {i + 1}: {row.as_dict()}")
                        rounds[name].append(row.as_dict())
                results["throughput"] = [throughput.median_round(rows) for rows in rounds.values()]
            if "scaling" in sections and not quick:
                counts = [1, 2, 4]
                done = {(r["peer"], r["processes"]): r for r in results.get("throughput", [])}
                results["scaling"] = []
                for name in peers:
                    for processes in counts:
                        row_d = done.get((name, processes))
                        if row_d is None:
                            row = throughput.measure(run, name, n, processes, timeout=timeout, tag="s")
                            log(f"scaling {name} × {processes}: {row.consumer_rate}")
                            row_d = row.as_dict()
                        results["scaling"].append(row_d)
            ready = _bj_scheduler_ready()
            if not ready and "broker_jobs" in schedulers:
                schedulers.remove("broker_jobs")
                results["notes"].append("broker-jobs scheduler: pending (broker_jobs.scheduling not runnable yet)")
            if quick:
                skipped = [s for s in schedulers if scheduler_burst.SCHEDULERS[s].minute]
                if skipped:
                    results["notes"].append(f"--quick: no burst for minute-granularity {', '.join(skipped)} "
                                            "(the next minute boundary is too far), idle only; no scaling")
            if "scheduler" in sections:
                results["bursts"] = []
                for size in sizes:
                    row = scheduler_burst.floor(run, size)
                    log(f"burst floor {size}: {row.last_ms}")
                    results["bursts"].append(row.as_dict())
                    for name in schedulers:
                        if quick and scheduler_burst.SCHEDULERS[name].minute:
                            continue
                        row = scheduler_burst.burst(run, name, size, timeout=timeout)
                        log(f"burst {name} {size}: {row.as_dict()}")
                        results["bursts"].append(row.as_dict())
            if "idle" in sections:
                results["idle"] = []
                # --quick: only the schedulers whose burst was skipped, to check their harness starts.
                for name in [s for s in schedulers if not quick or scheduler_burst.SCHEDULERS[s].minute]:
                    row_i = scheduler_burst.idle(run, name, idle_n, seconds=meta["idle_seconds"],
                                                 warmup_timeout=timeout)
                    log(f"idle {name}: {row_i.as_dict()}")
                    results["idle"].append(row_i.as_dict())
            if "cluster" in sections and quick:
                results["notes"].append("--quick: no cluster section (booting three RabbitMQ nodes takes 20 s)")
            elif "cluster" in sections:
                results["cluster"] = cluster.measure(run, n, timeout)
                log(f"cluster: {results['cluster']}")
            if "cli" in sections:
                # CLI start-up against `dramatiq --help`: `send` publishes into this run's vhost.
                env = {**os.environ, "RABBITMQ_URL": run.amqp_url, "REDIS_URL": run.redis_url,
                       "DATABASE_URL": f"sqlite:///{run.workdir / 'cli.sqlite3'}"}
                rows_c = cli_startup.measure(2 if quick else 10, env)
                for row_c in rows_c:
                    log(f"cli {row_c.command}: {row_c.median_ms:.0f} ms ({row_c.ratio}x)")
                results["cli"] = cli_startup.as_results(rows_c)
                results["simulate"] = cli_startup.measure_simulate(1 if quick else 5, env)
                for row_s in results["simulate"]:
                    log(f"simulate a year ({row_s['app_env']}, {row_s['output']}): {row_s['median_ms']:.0f} ms, "
                        f"{row_s['slots']} slots")
            if "history" in sections:
                # History search: a page of 50 of 1,000,000 runs (SQLite; PostgreSQL with BENCH_POSTGRES_URL).
                results["history"] = history_search.run(20_000 if quick else int(os.environ.get(
                    "BENCH_HISTORY_ROWS", 1_000_000)), os.environ.get("BENCH_POSTGRES_URL"))
    except BenchError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 1
    meta["duration_s"] = time.monotonic() - began
    results["machine"]["load"] += f"; {os.getloadavg()[0]:.2f} at the end"
    if args.merge and (args.out / "results.json").exists():
        results = merge(json.loads((args.out / "results.json").read_text()), results)
    page = report.markdown(results)
    print(page)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "RESULTS.md").write_text(page)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    report.chart(results, args.out / "chart.png")
    log(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

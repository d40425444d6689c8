"""What each part of broker_jobs' worker stack costs: the consumer rate with parts removed.

``python -m benchmarks.ablation [--n 3000] [--repeat 2]`` measures bare
Dramatiq, the full broker_jobs stack, then the stack without one part at a
time, all with 2 processes × 8 threads, and prints each rate beside bare
Dramatiq's.  The best of ``--repeat`` runs is kept (the machine is shared).
"""

from __future__ import annotations

import argparse

from .common import private_run
from .throughput import measure

#: broker_jobs' own middleware (the rest of the stack is Dramatiq's defaults).
OURS = ("JobsPrometheus", "CurrentMessage", "PriorityTagging", "JobRetries", "FireDedup", "RateLimit",
        "JobMetrics", "History", "TopologyGuard")

#: (label, extra environment of the broker_jobs producer and workers)
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("full stack", {}),
    ("without the per-job INFO log line", {"BENCH_JOB_LOG_LEVEL": "WARNING"}),
    ("without History (no run history)", {"BENCH_DROP_MIDDLEWARE": "History"}),
    ("without JobMetrics + JobsPrometheus", {"BENCH_DROP_MIDDLEWARE": "JobMetrics,JobsPrometheus"}),
    ("without FireDedup, RateLimit, PriorityTagging", {"BENCH_DROP_MIDDLEWARE": "FireDedup,RateLimit,PriorityTagging"}),
    ("without History, metrics, log line", {"BENCH_DROP_MIDDLEWARE": "History,JobMetrics,JobsPrometheus",
                                            "BENCH_JOB_LOG_LEVEL": "WARNING"}),
    # What is left is the @job wrapper (argument validation), the priority queue, consuming every queue.
    ("with Dramatiq's own middleware only", {"BENCH_DROP_MIDDLEWARE": ",".join(OURS),
                                             "BENCH_JOB_LOG_LEVEL": "WARNING"}),
]


def main() -> None:
    """Measure every variant, print a table."""
    parser = argparse.ArgumentParser(prog="benchmarks.ablation")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="comma list of variant numbers (0 = full stack)")
    args = parser.parse_args()
    rows: list[tuple[str, float | None]] = []
    with private_run() as run:
        def best(peer: str, env: dict[str, str], tag: str) -> float | None:
            rates = [measure(run, peer, args.n, 2, env=env, tag=f"{tag}r{i}", timeout=240).consumer_rate
                     for i in range(args.repeat)]
            return max((r for r in rates if r), default=None)

        base = best("dramatiq", {}, "base")
        rows.append(("bare Dramatiq", base))
        print(f"bare Dramatiq: {base or 0:.0f}/s", flush=True)
        if not args.only:
            # RabbitMQ's priority queues (x-max-priority 10), which broker_jobs' queues are.
            prio = best("dramatiq", {"BENCH_MAX_PRIORITY": "10"}, "prio")
            rows.append(("bare Dramatiq on a priority queue", prio))
            print(f"bare Dramatiq on a priority queue: {prio or 0:.0f}/s", flush=True)
        wanted = {int(i) for i in args.only.split(",") if i} or set(range(len(VARIANTS)))
        for i, (label, env) in enumerate(VARIANTS):
            if i not in wanted:
                continue
            rate = best("broker_jobs", env, f"v{i}")
            rows.append((f"broker_jobs {label}", rate))
            print(f"broker_jobs {label}: {rate or 0:.0f}/s", flush=True)
    print("\n| worker | consumer rate | × bare Dramatiq |\n|---|---:|---:|")
    for label, rate in rows:
        ratio = f"{rate / base:.2f}" if rate and base else "-"
        print(f"| {label} | {rate or 0:,.0f}/s | {ratio} |")


if __name__ == "__main__":
    main()

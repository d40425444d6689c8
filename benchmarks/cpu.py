"""CPU per message: the worker processes', RabbitMQ's and Redis's, during one burst.

``python -m benchmarks.cpu [--n 8000] [--processes 2] [--repeat 2] VARIANT ...``

The consumer rate swings with whatever else the machine does; CPU time per
message much less, and it says who pays: the worker processes (user + system,
all threads), RabbitMQ (``beam.smp``) or Redis.  A variant is a peer name with
optional ``NAME=VALUE`` environment (several joined by ``;``), for example::

    python -m benchmarks.cpu dramatiq dramatiq:BENCH_MAX_PRIORITY=10 broker_jobs \\
        broker_jobs:BENCH_DROP_MIDDLEWARE=History

Each variant publishes N no-op jobs with no consumer running, starts its
workers, and counts CPU seconds from the first job to the last.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psutil

from .common import PYTHON, BenchError, Run, private_run, redis_client, run_json, start, stop, wait_until
from .peers import PEERS


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _switches(processes: list[psutil.Process]) -> tuple[int, int]:
    """Voluntary and involuntary context switches of every thread of ``processes``
    (Linux keeps them per thread: ``/proc/PID/task/TID/status``)."""
    voluntary = involuntary = 0
    for process in processes:
        for status in Path(f"/proc/{process.pid}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:  # the thread ended
                continue
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


def _named(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] and name in p.info["name"]]


def measure(run: Run, variant: str, n: int, processes: int, tag: str) -> dict[str, float]:
    """Rate and µs of CPU per message (worker, RabbitMQ, Redis) of one burst."""
    name, _, assignments = variant.partition(":")
    extra = dict(a.split("=", 1) for a in assignments.split(";") if a)
    peer = PEERS[name]
    key, env = run.key(name, tag), run.env(**{**dict(peer.env), **extra})
    run_json([PYTHON, "-m", "benchmarks.producer", name, "--key", key, "--n", str(n)], env, 240,
             run.workdir / f"{tag}-producer.log")
    worker = start(peer.worker_command(processes), env, run.workdir / f"{tag}-worker.log")
    try:
        redis = redis_client(run.redis_url)
        if not wait_until(lambda: int(redis.get(key) or 0) > 0, 60, interval=0.005):
            raise BenchError(f"{variant}: no job ran")
        tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        others = {"rabbitmq": _named("beam.smp"), "redis": _named("redis-server")}
        before = {"worker": _cpu(tree), **{k: _cpu(v) for k, v in others.items()}}
        switches_before = _switches(tree)
        started = time.monotonic()
        if not wait_until(lambda: int(redis.get(key) or 0) >= n, 240, interval=0.01):
            raise BenchError(f"{variant}: timed out")
        seconds = time.monotonic() - started
        after = {"worker": _cpu(tree), **{k: _cpu(v) for k, v in others.items()}}
        switches_after = _switches(tree)
    finally:
        stop(worker)
    return {"rate": n / seconds, **{k: (after[k] - before[k]) / n * 1e6 for k in before},
            "voluntary": (switches_after[0] - switches_before[0]) / n,
            "involuntary": (switches_after[1] - switches_before[1]) / n}


def main() -> None:
    """Measure each variant ``--repeat`` times, interleaved, and print a table."""
    parser = argparse.ArgumentParser(prog="benchmarks.cpu")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, float]]] = []
    with private_run() as run:
        for i in range(args.repeat):
            for j, variant in enumerate(args.variants):
                row = measure(run, variant, args.n, args.processes, f"cpu{i}v{j}")
                rows.append((variant, row))
                print(f"{variant}: {row['rate']:,.0f}/s, worker {row['worker']:.0f} µs, "
                      f"RabbitMQ {row['rabbitmq']:.0f} µs, Redis {row['redis']:.0f} µs, "
                      f"switches {row['voluntary']:.1f} + {row['involuntary']:.1f}", flush=True)
    print(f"\n{args.processes} worker processes, {args.n:,} jobs per burst\n")
    print("| variant | consumer rate | worker µs/msg | RabbitMQ µs/msg | Redis µs/msg | worker context switches/msg "
          "(voluntary + involuntary) |\n|---|---:|---:|---:|---:|---:|")
    for variant, row in rows:
        print(f"| {variant} | {row['rate']:,.0f}/s | {row['worker']:.0f} | {row['rabbitmq']:.0f} "
              f"| {row['redis']:.0f} | {row['voluntary']:.1f} + {row['involuntary']:.1f} |")


if __name__ == "__main__":
    main()

"""What the middleware costs per message, measured without a network: microseconds of CPU.

``python -m benchmarks.hooks [--n 20000]`` drives the hooks a worker runs for one
message (``before/after_process_message`` around the actor, then
``before/after_ack``) in one thread, with no broker round trip, and prints
microseconds per message for:

* Dramatiq's default middleware (what bare Dramatiq runs),
* the full broker_jobs stack (history on, metrics on),
* the full stack without one middleware at a time.

The consumer-rate benchmark says how much slower a worker is; this says which
middleware it is, repeatably (the rate swings with the machine's load, CPU
time per message much less).  History writes go to a SQLite file and are
flushed inside the measured loop, as in a worker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _environment(workdir: Path) -> None:
    os.environ.update({
        "DATABASE_URL": f"sqlite:///{workdir}/history.sqlite3",
        "METRICS_DIR": str(workdir / "metrics"),
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/%2F",  # never connected to
    })


def _drive(broker: Any, actor: Any, n: int, flush: Any) -> float:
    """Seconds of CPU for ``n`` messages through ``broker``'s hooks and ``actor``."""
    from dramatiq.broker import MessageProxy

    from broker_jobs.store.history import FLUSH_AT

    messages = [MessageProxy(actor.message("bench", n, 0.0)) for _ in range(n)]
    started = time.process_time()
    for i, message in enumerate(messages):
        broker.emit_before("process_message", message)
        result = actor(*message.args, **message.kwargs)
        broker.emit_after("process_message", message, result=result)
        broker.emit_before("ack", message)
        broker.emit_after("ack", message)
        if flush is not None and i % FLUSH_AT == FLUSH_AT - 1:  # the writer thread's batches, on the clock
            flush()
    if flush is not None:
        flush()
    return time.process_time() - started


def _boot(broker: Any) -> None:
    # What a worker process does before its first message, minus connecting.
    broker.emit_after("process_boot")
    for middleware in broker.middleware:
        if type(middleware).__name__ == "History":  # opens the history database
            middleware.before_worker_boot(broker, None)
        if type(middleware).__name__ == "JobMetrics":  # starts the metric batch thread
            middleware.after_worker_boot(broker, None)


def measure(variant: str, n: int, repeat: int) -> float:
    """µs of CPU per message through ``variant``: ``bare``, ``full`` or ``-Name`` (full without Name)."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from broker_jobs.broker import build_broker
    from broker_jobs.job import job
    from broker_jobs.store.history import writer

    def noop(key: str, total: int, sent_at: float = 0.0) -> None:
        return None

    if variant == "bare":
        bare = StubBroker()
        dramatiq.set_broker(bare)
        actor = dramatiq.actor(noop, actor_name="bare_noop", queue_name="default", broker=bare)
        _drive(bare, actor, min(n, 2000), None)  # warm up
        return min(_drive(bare, actor, n, None) for _ in range(repeat)) / n * 1e6
    full = build_broker()
    dramatiq.set_broker(full)
    full._broker_jobs = True  # type: ignore[attr-defined]
    actor = job(queue="default", priority="medium")(noop)
    _boot(full)
    if variant.startswith("-"):
        full.middleware[:] = [m for m in full.middleware if type(m).__name__ != variant[1:]]
    _drive(full, actor, min(n, 2000), writer.flush)  # warm up
    return min(_drive(full, actor, n, writer.flush) for _ in range(repeat)) / n * 1e6


#: The middleware measured one at a time (TopologyGuard only acts at boot).
DROPPABLE = ("JobsPrometheus", "AgeLimit", "TimeLimit", "ShutdownNotifications", "Callbacks", "Pipelines",
             "CurrentMessage", "PriorityTagging", "MessageSizeLimit", "JobRetries", "FireDedup", "RateLimit",
             "JobMetrics", "History")


def _in_child(variant: str, n: int, repeat: int) -> float:
    # A fresh process per variant: no history file, cache or allocator state carried over.
    out = subprocess.run([sys.executable, "-m", "benchmarks.hooks", f"--variant={variant}", "--n", str(n),
                          "--repeat", str(repeat)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return float(out.stdout.split()[-1])


def main() -> None:
    """Print the table (or, with ``--variant``, one figure)."""
    parser = argparse.ArgumentParser(prog="benchmarks.hooks")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", default="", help="bare, full or -Name (internal)")
    parser.add_argument("--each", action="store_true", help="also the full stack without each middleware")
    args = parser.parse_args()
    if args.variant:
        with tempfile.TemporaryDirectory(prefix="bj-hooks-") as tmp:
            _environment(Path(tmp))
            print(f"{measure(args.variant, args.n, args.repeat):.3f}")
        return
    variants = ["bare", "full", *(f"-{name}" for name in DROPPABLE if args.each)]
    costs = {variant: _in_child(variant, args.n, args.repeat) for variant in variants}
    full = costs["full"]
    print("| stack | µs of CPU per message | saved without it |\n|---|---:|---:|")
    labels = {"bare": "bare Dramatiq (default middleware)", "full": "broker_jobs full stack"}
    for variant, cost in costs.items():
        label = labels.get(variant, f"without {variant[1:]}")
        saved = f"{full - cost:.1f} µs" if variant.startswith("-") else ""
        print(f"| {label} | {cost:.1f} | {saved} |")
    print(f"\n{args.n} messages per measurement, best of {args.repeat}, one process per row")


if __name__ == "__main__":
    main()

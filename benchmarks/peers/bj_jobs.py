"""broker_jobs: the no-op declared with :func:`broker_jobs.job`, full middleware stack, history on.

``dramatiq broker_jobs.actors benchmarks.peers.bj_jobs -p 2 -t 8``: the
worker exactly as deployed (all built-in queues consumed), history written to
the run's SQLite file.

``BENCH_DROP_MIDDLEWARE=History,JobMetrics`` removes middleware by class name
and ``BENCH_JOB_LOG_LEVEL=WARNING`` silences the per-job log line, to find what
each one costs (``python -m benchmarks.ablation``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from broker_jobs import job
from broker_jobs.broker import get_broker

from . import noop


def _drop_middleware(names: str) -> None:
    # Actors are declared already: their options were checked against the full stack.
    drop = {name.strip() for name in names.split(",") if name.strip()}
    broker = get_broker()
    broker.middleware[:] = [m for m in broker.middleware if type(m).__name__ not in drop]


if os.environ.get("BENCH_DROP_MIDDLEWARE"):
    _drop_middleware(os.environ["BENCH_DROP_MIDDLEWARE"])
if os.environ.get("BENCH_JOB_LOG_LEVEL"):
    # The "[worker] job X succeeded in N ms" line: one per job, piped to the dramatiq master.
    logging.getLogger("broker_jobs").setLevel(os.environ["BENCH_JOB_LOG_LEVEL"])


@job(queue="default", priority="medium", description="Benchmark no-op: bump a Redis counter")
def bench_noop(key: str, total: int, sent_at: float = 0.0) -> None:
    """Bump the run's counter."""
    noop.bump(key, total, sent_at)


def sender() -> tuple[Callable[[str, int, float], None], Callable[[], None]]:
    """``bench_noop.send`` through the process's broker (publisher confirms on)."""

    def send(key: str, total: int, sent_at: float) -> None:
        bench_noop.send(key, total, sent_at)

    return send, get_broker().close

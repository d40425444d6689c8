"""Soak: 100,000 jobs through two workers with 10 % random transient failures.

Run it on its own: ``pytest tests/framework/faults -m soak`` (it takes several minutes and
is left out of the default run).  Every job ends succeeded or dead-lettered,
sent = succeeded + dead exactly, and each worker's memory stays flat (within
10 %) from the 10,000th job to the last.
"""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
import sqlalchemy

from tests.support import Producer, dead_keys, fault_message, queue_depth, tally, wait_for

pytestmark = [pytest.mark.soak, pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.timeout(3600)]

#: ``SOAK_JOBS=3000`` for a quick rehearsal; the guarantee is stated for 100,000.
JOBS = int(os.environ.get("SOAK_JOBS", "100000"))
WARM = JOBS // 10
#: Per message: 3 retries with short backoffs, so a job dies only after 4 failures in a row (0.01 %).
OPTIONS = {"max_retries": 3, "min_backoff": 50, "max_backoff": 500}


def done_count(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM fault_effects").scalar_one())


def test_a_hundred_thousand_jobs_with_ten_percent_failures_all_end_and_memory_stays_flat(
        workers, producer_broker, fault_db, vhost_url):
    groups = [workers(processes=1, threads=8, wait=False), workers(processes=1, threads=8, wait=False)]
    for group in groups:
        group.ready()
    pids = [pid for group in groups for pid in group.children()]
    assert len(pids) == 2
    engine = sqlalchemy.create_engine(fault_db)
    samples: list[tuple[int, list[int]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(2):
            samples.append((done_count(engine), [psutil.Process(pid).memory_info().rss for pid in pids]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    producer = Producer(producer_broker)
    keys = [f"soak-{i}" for i in range(JOBS)]
    started = time.monotonic()
    for key in keys:
        producer.send(fault_message("record_effect", key, options=OPTIONS, fail_percent=10))
    published = time.monotonic() - started

    def settled() -> bool:
        return (queue_depth(vhost_url, "faults") == 0 and queue_depth(vhost_url, "faults.DQ") == 0
                and done_count(engine) + queue_depth(vhost_url, "faults.XQ") >= JOBS)

    wait_for(settled, "every job to end", timeout=3600, every=5)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    with engine.connect() as conn:
        done = {k: r for k, r in conn.exec_driver_sql("SELECT key, runs FROM fault_effects")}
    engine.dispose()
    warm = next(rss for count, rss in samples if count >= WARM)
    last = samples[-1][1]
    growth = [round(end / start - 1, 4) for start, end in zip(warm, last, strict=True)]
    result = tally(f"soak {JOBS} jobs, 10% transient failures, 2 workers", keys, done, dead_keys(vhost_url),
                   reported=producer.reported, publish_seconds=round(published), total_seconds=round(elapsed),
                   jobs_per_second=round(JOBS / elapsed), rss_mb_after_tenth=[round(r / 2**20, 1) for r in warm],
                   rss_mb_at_end=[round(r / 2**20, 1) for r in last], rss_growth=growth)
    assert result.lost == 0 and result.executed + result.dead_lettered == JOBS
    assert all(abs(g) <= 0.10 for g in growth), growth

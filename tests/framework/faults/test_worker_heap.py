"""Worker processes started by the ``dramatiq`` command freeze their start-up heap once booted."""

from __future__ import annotations

import re

import pytest

from broker_jobs.middleware.heap import GC_THRESHOLD
from tests.support import Producer, effects, fault_message, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_jobs_run_by_the_dramatiq_command_find_their_process_start_up_heap_frozen(
        workers, producer_broker, fault_db):
    workers(processes=2, threads=2)
    producer = Producer(producer_broker)
    keys = [f"heap-{i}" for i in range(20)]
    for key in keys:
        producer.send(fault_message("record_heap", key))

    def heaps() -> list[str] | None:
        found = [key for key in effects(fault_db) if key.startswith("heap-")]
        return found if len(found) == len(keys) else None

    recorded = wait_for(heaps, "every job to record its process's heap", timeout=60, every=0.1)
    for effect in recorded:
        match = re.fullmatch(r"heap-\d+:frozen=(\d+):threshold=(\d+)", effect)
        assert match, effect
        frozen, threshold = map(int, match.groups())
        assert frozen > 50_000  # Dramatiq, pika, pydantic, SQLAlchemy, the jobs
        assert threshold == GC_THRESHOLD[0]

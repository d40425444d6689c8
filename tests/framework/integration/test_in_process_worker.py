"""Dramatiq's Prometheus metrics exist only after ``process_boot``, which only the ``dramatiq``
command emits: a worker started in-process (tests, embedding) still runs jobs cleanly."""

from __future__ import annotations

import logging
import uuid

import pytest
from dramatiq import Worker

from broker_jobs import job
from broker_jobs.broker import build_broker
from broker_jobs.settings import get_settings
from tests.support import queue_depth, wait_for

pytestmark = pytest.mark.rabbitmq


def test_an_in_process_worker_runs_jobs_without_metric_failures(settings_env, rabbitmq_url, caplog):
    settings_env.setenv("RABBITMQ_URL", rabbitmq_url)
    broker = build_broker(get_settings())  # no emit_after("process_boot")
    queue, name = f"inproc_{uuid.uuid4().hex[:8]}", f"inproc_{uuid.uuid4().hex[:8]}"
    ran: list[int] = []

    @job(name=name, queue=queue, broker=broker, max_retries=0)
    def work(i: int) -> None:
        if i == 2:
            raise ValueError("fails, goes to the dead letters")
        ran.append(i)

    worker = Worker(broker, queues={queue}, worker_timeout=50, worker_threads=2)
    try:
        with caplog.at_level(logging.WARNING):
            worker.start()
            for i in range(3):
                work.send(i)
            wait_for(lambda: sorted(ran) == [0, 1], "both good jobs ran", timeout=20)
            wait_for(lambda: queue_depth(rabbitmq_url, f"{queue}.XQ") == 1, "the failing one to be dead-lettered",
                     timeout=20)
    finally:
        worker.stop()
        for q in broker.get_declared_queues():
            broker.flush(q)
        broker.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL] == []

"""Each failed attempt keeps its error and traceback, and each run its arguments (a real worker on RabbitMQ)."""

from __future__ import annotations

import uuid

import pytest
from dramatiq import Worker

from broker_jobs import job
from broker_jobs.broker import build_broker
from broker_jobs.settings import get_settings
from broker_jobs.store.db import get_engine
from broker_jobs.store.history import writer
from broker_jobs.store.queries import run_record
from tests.support import wait_for

pytestmark = pytest.mark.rabbitmq


def test_a_retried_then_dead_message_has_every_attempt_with_its_traceback(settings_env, rabbitmq_url, tmp_path):
    settings_env.setenv("RABBITMQ_URL", rabbitmq_url)
    broker = build_broker(get_settings())
    queue, name = f"attempts_{uuid.uuid4().hex[:8]}", f"attempts_{uuid.uuid4().hex[:8]}"
    engine = get_engine(get_settings().database_url)

    @job(name=name, queue=queue, broker=broker, max_retries=2, min_backoff=0.01, max_backoff=0.05)
    def flaky(label: str, token: str = "s3cret") -> None:
        raise RuntimeError(f"flaky {label} broke")

    worker = Worker(broker, queues={queue}, worker_timeout=50, worker_threads=1)
    try:
        worker.start()
        message = flaky.send("first", token="postgres://u:pw@db/x")

        def finished() -> object:
            writer.flush()
            record = run_record(engine, message.message_id)
            return record.run is not None and record.run["status"] == "dead" and len(record.attempts) == 3 and record

        record = wait_for(finished, "three attempts, the last dead", timeout=30, every=0.2)
    finally:
        worker.stop()
        broker.close()
    assert [(a["attempt"], a["status"]) for a in record.attempts] == [(1, "retrying"), (2, "retrying"), (3, "dead")]
    assert all("RuntimeError: flaky first broke" in a["error"] for a in record.attempts)
    assert all("Traceback" in a["traceback"] and "raise RuntimeError" in a["traceback"] for a in record.attempts)
    assert all(a["worker"] and a["finished_at"] is not None for a in record.attempts)
    assert record.run["args"]["args"] == ["first"]
    assert "pw@" not in str(record.run["args"])  # arguments are stored redacted
    assert [d["state"] for d in record.letters] == ["dead"]

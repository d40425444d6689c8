"""Metric labels come only from declared actors and queues: a real worker, scraped on its port.

Messages naming actors nobody declares (random names, published over bare
AMQP as a foreign sender would) must not become Prometheus label values: each
would be a new series for the life of the metrics directory.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from broker_jobs.metrics.labels import UNKNOWN, actor_label, queue_label
from tests.support import wait_for

pytestmark = [pytest.mark.rabbitmq]


def labels_exported(port: str) -> set[str]:
    """Every actor and queue label value the worker's exporter serves."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {value for family in text_string_to_metric_families(body) for sample in family.samples
            for key, value in sample.labels.items() if key in ("actor", "actor_name", "queue", "queue_name")}


def test_unknown_actor_names_become_one_unknown_label_on_a_real_worker(service_env, worker):
    from broker_jobs import registry
    from broker_jobs.cli.common import load_jobs

    load_jobs()
    queue = registry.get("diagnostics").queue
    names: list[str] = []

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=30))
    def collect(name: str) -> None:
        names.append(f"bogus_{name}")

    collect()
    connection = pika.BlockingConnection(pika.URLParameters(service_env["RABBITMQ_URL"]))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for name in names:
            body = {"queue_name": queue, "actor_name": name, "args": [], "kwargs": {}, "options": {},
                    "message_id": str(uuid.uuid4()), "message_timestamp": int(time.time() * 1000)}
            channel.basic_publish("", queue, json.dumps(body).encode(),
                                  pika.BasicProperties(delivery_mode=2, priority=0))
    finally:
        connection.close()
    port = service_env["METRICS_PORT"]
    wait_for(lambda: UNKNOWN in labels_exported(port), "the unknown actors counted under one label", timeout=60,
             ignore=(httpx.HTTPError,))
    exported = labels_exported(port)
    assert [n for n in names if n in exported] == []


def test_only_declared_actors_and_queues_keep_their_names(stub_broker):
    import dramatiq

    @dramatiq.actor(broker=stub_broker, queue_name="reports")
    def declared() -> None:
        pass

    assert actor_label(stub_broker, "declared") == "declared"
    assert actor_label(stub_broker, "nobody_declared_this") == UNKNOWN
    assert queue_label(stub_broker, "reports") == "reports"
    assert queue_label(stub_broker, "reports.DQ") == "reports.DQ"
    assert queue_label(stub_broker, "made-up-queue") == UNKNOWN

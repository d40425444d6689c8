"""`broker-jobs serve` as operators run it: health probes, queues, sync triggers, /metrics (no worker)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import bearer

pytestmark = pytest.mark.rabbitmq


def ready_in(service_env: dict[str, str], queue: str) -> int:
    """Messages ready in ``queue``, exactly and now (a passive declare, not the lagging management API)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(service_env["RABBITMQ_URL"]))
    try:
        return conn.channel().queue_declare(queue=queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def test_health_reports_status_schedules_and_each_dependency(server):
    response = httpx.get(server + "/health", timeout=5)
    report = response.json()
    assert response.status_code == 200
    assert set(report) >= {"healthy", "status", "timestamp", "schedulers", "details", "broker", "database",
                           "redis"}
    assert report["status"] in ("healthy", "degraded") and report["healthy"] == (report["status"] == "healthy")
    assert report["broker"]["ok"] and report["broker"]["detail"].startswith("RabbitMQ")
    assert report["database"]["ok"]
    assert set(report["schedulers"]) == {"total", "running", "errors"}
    for job in report["details"].values():
        assert set(job) == {"status", "healthy", "lastSuccess"}


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_kubernetes_probes_answer_200_when_broker_and_database_are_up(server, path):
    assert httpx.get(server + path, timeout=5).status_code == 200


def test_an_unauthenticated_sync_is_refused_and_enqueues_nothing_while_an_operator_one_enqueues(
        server, service_env):
    refused = httpx.post(server + "/api/v1/sync/all", timeout=10)
    assert refused.status_code == 401
    refused = httpx.post(server + "/api/v1/sync/service/7", headers=bearer("read"), timeout=10)
    assert refused.status_code == 403
    assert ready_in(service_env, "sync") == 0

    accepted = httpx.post(server + "/api/v1/sync/service/7", headers=bearer("operate"), timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["actor"] == "sync_service" and accepted.json()["queue"] == "sync"
    assert ready_in(service_env, "sync") == 1


def test_queues_lists_waiting_active_delayed_failed_and_completed(server):
    response = httpx.get(server + "/api/v1/queues", headers=bearer("read"), timeout=10)
    assert response.status_code == 200
    rows = {row["queue"]: row for row in response.json()}
    assert {"etl", "sync", "maintenance", "default"} <= set(rows)
    assert set(rows["etl"]) >= {"waiting", "active", "delayed", "failed", "completed"}


def test_the_web_metrics_export_queue_depths_and_history_counts(server):
    from tests.api.conftest import wait_until

    httpx.post(server + "/api/v1/sync/service/8", headers=bearer("operate"), timeout=10).raise_for_status()
    text = wait_until(lambda: (t := httpx.get(server + "/metrics", timeout=10).text)
                      and 'broker_jobs_queue_messages{queue="sync",state="ready"} 0.0' not in t and t,
                      timeout=10, what="the sync queue's depth in /metrics")
    assert 'broker_jobs_collector_up{source="rabbitmq"} 1.0' in text
    assert 'broker_jobs_collector_up{source="database"} 1.0' in text
    assert 'broker_jobs_history_runs{status="succeeded"}' in text
    assert 'broker_jobs_dead_letter_oldest_age_seconds{queue="sync"}' in text

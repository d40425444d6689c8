"""`broker-jobs serve` as operators run it: health probes, queues, sync triggers, /metrics (no worker)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import UNREACHABLE, bearer, queue_depth, wait_for

pytestmark = pytest.mark.rabbitmq


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
    assert queue_depth(service_env["RABBITMQ_URL"], "sync") == 0

    accepted = httpx.post(server + "/api/v1/sync/service/7", headers=bearer("operate"), timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["actor"] == "sync_service" and accepted.json()["queue"] == "sync"
    assert queue_depth(service_env["RABBITMQ_URL"], "sync") == 1


def test_queues_lists_waiting_active_delayed_failed_and_completed(server):
    response = httpx.get(server + "/api/v1/queues", headers=bearer("read"), timeout=10)
    assert response.status_code == 200
    rows = {row["queue"]: row for row in response.json()}
    assert {"etl", "sync", "maintenance", "default"} <= set(rows)
    assert set(rows["etl"]) >= {"waiting", "active", "delayed", "failed", "completed"}


def test_the_web_metrics_export_queue_depths_and_history_counts(server):
    httpx.post(server + "/api/v1/sync/service/8", headers=bearer("operate"), timeout=10).raise_for_status()
    text = wait_for(lambda: (t := httpx.get(server + "/metrics", timeout=10).text)
                    and 'broker_jobs_queue_messages{queue="sync",state="ready"} 0.0' not in t and t,
                    "the sync queue's depth in /metrics", timeout=10, every=0.1, ignore=UNREACHABLE)
    assert 'broker_jobs_collector_up{source="rabbitmq"} 1.0' in text
    assert 'broker_jobs_collector_up{source="database"} 1.0' in text
    assert 'broker_jobs_history_runs{status="succeeded"}' in text
    assert 'broker_jobs_dead_letter_oldest_age_seconds{queue="sync"}' in text


def test_an_operator_pauses_with_a_note_and_resumes_a_schedule(server):
    job = "/api/v1/jobs/nightly-diagnostics"
    paused = httpx.post(server + job + "/pause", headers=bearer("operate"), json={"note": "vendor outage"},
                        timeout=10)
    assert paused.status_code == 200, paused.text
    [row] = [j for j in httpx.get(server + "/api/v1/jobs", headers=bearer("read"), timeout=10).json()
             if j["id"] == "nightly-diagnostics"]
    assert row["paused"] is True and row["note"] == "vendor outage"
    assert httpx.post(server + job + "/resume", headers=bearer("operate"), timeout=10).status_code == 200
    shown = httpx.get(server + job, headers=bearer("read"), params={"preview": 3}, timeout=10).json()
    assert shown["paused"] is False and shown["actor"] == "diagnostics"
    assert [slot[:10] for slot in shown["upcoming"]][:1] and all("-02-29" in s for s in shown["upcoming"])


def test_an_unknown_schedule_is_a_404_naming_it(server):
    response = httpx.post(server + "/api/v1/jobs/no-such-job/run", headers=bearer("operate"), json={}, timeout=10)
    assert response.status_code == 404
    assert "no-such-job" in response.json()["detail"]


def test_a_backfill_publishes_each_slot_in_the_range(server):
    response = httpx.post(server + "/api/v1/jobs/nightly-diagnostics/backfill", headers=bearer("operate"),
                          json={"start": "2020-01-01T00:00:00Z", "end": "2028-12-31T00:00:00Z"}, timeout=20)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["slots"] == 3  # 29 February 2020, 2024 and 2028 at 03:00
    assert body["published"] + body["skipped_overlap"] == 3


def test_serve_with_print_token_prints_a_working_dashboard_link(server, service_env):
    import re

    from tests.framework.api.conftest import server_log

    [link] = re.findall(r"dashboard \(operate token valid \d+ min\): (\S+)", server_log(service_env).read_text())
    assert link.startswith(server + "/?token=")
    token = link.split("token=", 1)[1]
    response = httpx.get(server + "/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200


def test_serve_refuses_to_start_in_production_without_a_secret():
    from tests.support import run_cli

    result = run_cli("serve", "--port", "1", env={"APP_ENV": "production", "API_JWT_SECRET": ""})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "API_JWT_SECRET" in result.stderr

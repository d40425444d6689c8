"""Seed 002's service sync: its per-environment trigger as shipped, and ``GET /api/v1/sync/status`` in its shape.

The seed's calls as written: ``POST /api/v1/sync/all`` and ``GET /api/v1/sync/status`` with
``Authorization: Bearer <token>``, against a real ``broker-jobs serve``, RabbitMQ and database (no worker:
what is sent stays waiting).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from broker_jobs.scheduling.config import load_config
from broker_jobs.settings import Settings
from tests.support import ROOT, bearer, wait_for

pytestmark = pytest.mark.rabbitmq

NOW = datetime.now(UTC)


@pytest.mark.parametrize(("app_env", "cron"), [("production", "30 6 * * *"), ("development", "*/5 * * * *")])
def test_the_shipped_service_sync_runs_daily_at_6_30_in_production_and_every_5_minutes_in_development(
        app_env: str, cron: str):
    # Seed 002: "Production: `30 6 * * *` (Daily at 6:30 AM UTC); Development: `*/5 * * * *` (Every 5 minutes)".
    config = load_config(ROOT / "config" / "jobs.yaml", Settings(app_env=app_env))  # type: ignore[call-arg]
    [job] = [j for j in config.jobs if j.actor == "sync_all_services"]
    assert job.kind == "cron" and job.trigger.expression == cron


def _insert_runs(database_url: str) -> None:
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.models import job_runs

    rows = [dict(message_id=f"ok-{i}", actor="sync_service", queue="sync", status="succeeded",
                 finished_at=NOW - timedelta(minutes=10 + i)) for i in range(3)]
    rows += [dict(message_id="bad-1", actor="sync_service", queue="sync", status="failed",
                  finished_at=NOW - timedelta(minutes=20), error="HttpError: 502"),
             dict(message_id="bad-2", actor="sync_service", queue="sync", status="dead",
                  finished_at=NOW - timedelta(minutes=21), error="HttpError: 502"),
             dict(message_id="other-queue", actor="etl_sync", queue="etl", status="succeeded", finished_at=NOW),
             dict(message_id="all-1", actor="sync_all_services", queue="sync", status="succeeded",
                  started_at=NOW - timedelta(minutes=9), finished_at=NOW - timedelta(minutes=8))]
    with get_engine(database_url).begin() as conn:
        conn.execute(job_runs.insert(), rows)


def test_sync_status_answers_waiting_active_completed_and_failed_as_the_seed_lists(server, service_env):
    status = "/api/v1/sync/status"
    assert httpx.get(server + status, timeout=10).status_code == 401
    empty = httpx.get(server + status, headers=bearer("read"), timeout=10)
    assert empty.status_code == 200, empty.text
    assert empty.json()["waiting"] == 0 and empty.json()["last_sync"] is None

    _insert_runs(service_env["DATABASE_URL"])
    for _ in range(2):  # the seed's manual sync, as written
        sent = httpx.post(server + "/api/v1/sync/all", headers=bearer("operate"), timeout=10)
        assert sent.status_code == 200, sent.text
    # The management API's counts lag RabbitMQ by a few seconds.
    answer = wait_for(lambda: (a := httpx.get(server + status, headers=bearer("read"), timeout=10).json())
                      and a["waiting"] == 2 and a, "two syncs waiting", timeout=30, every=0.5)
    assert set(answer) == {"queue", "waiting", "active", "delayed", "completed", "failed", "dead_lettered",
                           "last_sync", "schedules"}
    assert answer["queue"] == "sync"
    assert (answer["waiting"], answer["active"], answer["delayed"]) == (2, 0, 0)
    # Completed: the 3 sync_service runs and the sync_all_services one; not the etl run.
    assert (answer["completed"], answer["failed"], answer["dead_lettered"]) == (4, 2, 0)
    assert answer["last_sync"]["message_id"] == "all-1" and answer["last_sync"]["status"] == "succeeded"
    assert answer["schedules"] == []  # this server's jobs file schedules no sync


def test_sync_status_is_in_the_openapi_document(server):
    spec = httpx.get(server + "/openapi.json", timeout=10).json()
    operation = spec["paths"]["/api/v1/sync/status"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SyncStatus")
    fields = spec["components"]["schemas"]["SyncStatus"]["properties"]
    assert {"waiting", "active", "completed", "failed"} <= set(fields)

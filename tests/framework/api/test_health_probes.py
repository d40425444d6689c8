"""Health probes stay answerable when a dependency hangs (in-process app, a broker that never answers)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker_jobs.api.app import create_app
from broker_jobs.api.health import HealthMonitor, build_report
from broker_jobs.health import Check
from broker_jobs.settings import Settings
from tests.support import SECRET


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung RabbitMQ)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def client(black_hole: int, tmp_path: Path) -> Iterator[tuple[TestClient, HealthMonitor]]:
    settings = Settings(api_jwt_secret=SECRET, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{black_hole}/%2F",
                        database_url=f"sqlite:///{tmp_path}/jobs.sqlite3", jobs_config=tmp_path / "none.yaml")
    from broker_jobs.store.db import get_engine

    get_engine(settings.database_url)  # the schema exists, as after `broker-jobs setup`
    monitor = HealthMonitor(settings, interval=3600, timeout=0.5)
    with TestClient(create_app(settings, monitor=monitor, load_jobs=False)) as c:
        yield c, monitor
    monitor.stop()


def test_a_hung_broker_makes_ready_fail_fast_while_live_stays_up(client):
    http, _ = client
    ready = http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["broker"]["ok"] is False
    assert ready.json()["database"]["ok"] is True
    assert http.get("/health/live").status_code == 200
    report = http.get("/health")
    assert report.status_code == 503
    assert report.json()["status"] == "unhealthy" and report.json()["healthy"] is False


def test_a_check_still_hanging_is_not_started_again(client):
    http, monitor = client
    http.get("/health/ready")
    hung = monitor._pending["broker"]
    monitor.refresh()
    assert monitor._pending["broker"] is hung or hung.done()


#: The schedules' check with one scheduler instance alive out of two heard from today.
ONE_ALIVE = {"jobs": [], "scheduler": {"instances": [{"instance_id": "h:1"}, {"instance_id": "h:2"}], "alive": 1}}
NONE_ALIVE = {"jobs": [], "scheduler": {"instances": [{"instance_id": "h:1"}], "alive": 0}}


@pytest.mark.parametrize("results,status", [
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1), "jobs": ONE_ALIVE}, "healthy"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1), "jobs": NONE_ALIVE}, "degraded"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1)}, "degraded"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1),
      "jobs": {**ONE_ALIVE, "scheduler": {"error": "no such table"}}}, "degraded"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1), "jobs": ONE_ALIVE,
      "redis": Check("redis", False, 1, "refused")}, "degraded"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1),
      "jobs": {**ONE_ALIVE, "jobs": [{"id": "etl", "enabled": True, "paused": False, "last_outcome": "missed"}]}},
     "degraded"),
    ({"broker": Check("rabbitmq", True, 1), "database": Check("database", False, 1, "down")}, "unhealthy"),
    ({"broker": Check("rabbitmq", False, 1, "down"), "database": Check("database", True, 1)}, "unhealthy"),
])
def test_the_overall_status_follows_the_worst_dependency(results, status):
    assert build_report(results, 0.0)["status"] == status


def test_each_schedule_reports_status_health_and_last_success():
    jobs = {"jobs": [
        {"id": "a", "enabled": True, "paused": False, "last_outcome": "fired"},
        {"id": "b", "enabled": True, "paused": True, "last_outcome": "fired"},
        {"id": "c", "enabled": False, "paused": False, "last_outcome": None},
        {"id": "d", "enabled": True, "paused": False, "last_outcome": "fired"},
    ], "scheduler": ONE_ALIVE["scheduler"],
        "last_success": {"a": {"lastSuccess": "2026-01-01T10:05:00+00:00", "lastStatus": "succeeded"},
                         "d": {"lastSuccess": None, "lastStatus": "dead"}}}
    report = build_report({"broker": Check("rabbitmq", True, 1), "database": Check("database", True, 1),
                           "jobs": jobs}, 0.0)
    assert report["details"] == {
        "a": {"status": "scheduled", "healthy": True, "lastSuccess": "2026-01-01T10:05:00+00:00"},
        "b": {"status": "paused", "healthy": True, "lastSuccess": None},
        "c": {"status": "disabled", "healthy": True, "lastSuccess": None},
        "d": {"status": "failing", "healthy": False, "lastSuccess": None},
    }
    # Instances heard from today and alive now; schedules failing (the unhealthy details).
    assert report["schedulers"] == {"total": 2, "running": 1, "errors": 1}

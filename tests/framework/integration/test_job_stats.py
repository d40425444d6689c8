"""``jobs stats``: executed, failed, missed and the last error per schedule, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from broker_jobs.store import queries
from broker_jobs.store.db import get_engine
from broker_jobs.store.models import job_runs
from broker_jobs.store.scheduler_state import SchedulerStore

NOW = datetime.now(UTC).replace(microsecond=0)


def run(fire_id: str | None, status: str, error: str | None = None, ago: int = 0) -> dict:
    return dict(message_id=str(uuid.uuid4()), actor="etl_pipeline", queue="etl", priority="medium", status=status,
                attempt=1, seq=1, started_at=NOW - timedelta(seconds=ago + 1),
                finished_at=NOW - timedelta(seconds=ago), duration_ms=5.0, fire_id=fire_id, error=error)


def audit(job_id: str, outcome: str, detail: str | None = None) -> dict:
    return {"job_id": job_id, "slot": NOW, "outcome": outcome, "fire_id": None, "message_id": None, "lag_ms": None,
            "detail": detail, "token": None, "recorded_at": NOW}


def test_stats_count_per_schedule_with_the_latest_error(database_url):
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(job_runs), [
            run("daily@2026-01-01T02:00:00Z", "succeeded"), run("daily@2026-01-02T02:00:00Z", "succeeded"),
            run("daily@2026-01-03T02:00:00Z", "failed", "older boom", ago=60),
            run("daily@manual:2026-01-03T05:00:00Z", "dead", "newest boom", ago=5),
            run("hourly@2026-01-03T05:00:00Z", "skipped"), run("hourly@2026-01-03T06:00:00Z", "running"),
            run(None, "failed", "not a schedule's"),
        ])
    SchedulerStore(engine).commit(token=None, states=[], fires=[], audit=[
        audit("hourly", "missed"), audit("hourly", "missed", "3 slot(s) from 2026-01-01T00:00:00Z to ..."),
        audit("daily", "fired")])
    stats = queries.job_stats(engine)
    assert set(stats) == {"daily", "hourly"}
    assert {k: stats["daily"][k] for k in ("executed", "failed", "missed")} == {"executed": 2, "failed": 2,
                                                                                "missed": 0}
    assert stats["daily"]["last_error"]["error"] == "newest boom"
    assert stats["daily"]["last_error"]["at"] == NOW - timedelta(seconds=5)
    assert stats["hourly"] == {"executed": 0, "failed": 0, "missed": 4, "last_error": None}

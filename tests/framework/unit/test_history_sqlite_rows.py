"""On SQLite the history writer hands rows to the driver itself: they read back as SQLAlchemy wrote them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from broker_jobs.store.db import get_engine
from broker_jobs.store.history import HistoryWriter
from broker_jobs.store.models import job_runs
from broker_jobs.store.queries import query_runs
from broker_jobs.store.runs import _sqlite_time

MOMENTS = [
    datetime(2026, 11, 23, 11, 47, 2, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, 0, 0, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, 500000, tzinfo=UTC),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_time_is_stored_in_the_text_sqlalchemy_stores_for_a_datetime(moment: datetime, tmp_path: Path):
    engine = get_engine(f"sqlite:///{tmp_path}/h.sqlite3")
    with engine.begin() as conn:
        conn.execute(insert(job_runs), [{"message_id": "m", "actor": "a", "queue": "q", "status": "succeeded",
                                       "started_at": moment}])
        stored = conn.execute(text("select started_at from job_runs")).scalar_one()
    assert _sqlite_time(moment) == stored
    assert _sqlite_time(moment.timestamp()) == stored
    assert _sqlite_time(None) is None


def test_rows_written_through_the_driver_read_back_whole(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    writer = HistoryWriter(url)
    started = MOMENTS[0].timestamp()
    writer.put({"message_id": "m1", "actor": "etl", "queue": "etl", "priority": "high", "status": "succeeded",
                "attempt": 2, "seq": 1_000_002, "enqueued_at": started - 1, "started_at": started,
                "finished_at": started + 0.25, "duration_ms": 250.0, "error": None, "worker": "host:1",
                "fire_id": "nightly@2026-11-23T11:47:00Z", "report": {"rows": 3}})
    writer.record("m2", actor="sync", queue="sync", priority="low", status="running", seq=1)  # attempt defaults to 1
    assert writer.flush()
    runs = {run.message_id: run for run in query_runs(get_engine(url))}
    first = runs["m1"]
    assert (first.actor, first.priority, first.status, first.attempt) == ("etl", "high", "succeeded", 2)
    assert first.started_at.replace(tzinfo=UTC) == MOMENTS[0]
    assert first.finished_at.replace(tzinfo=UTC) == datetime(2026, 11, 23, 11, 47, 2, 373456, tzinfo=UTC)
    assert first.report == {"rows": 3} and first.fire_id == "nightly@2026-11-23T11:47:00Z"
    assert (runs["m2"].status, runs["m2"].attempt, runs["m2"].started_at) == ("running", 1, None)

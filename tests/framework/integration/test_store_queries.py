"""The store's reads for the API, the dashboard and the metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from broker_jobs.store import queries
from broker_jobs.store.db import get_engine
from broker_jobs.store.models import dead_letters, job_runs

NOW = datetime.now(UTC).replace(microsecond=0)


def run(status: str, queue: str = "etl", fire_id: str | None = None, finished: datetime | None = NOW) -> dict:
    return dict(message_id=str(uuid.uuid4()), actor="etl_sync", queue=queue, priority="high", status=status,
                attempt=1, seq=1, started_at=NOW - timedelta(seconds=2), finished_at=finished, duration_ms=5.0,
                fire_id=fire_id)


def letter(queue: str, dead_at: datetime, state: str = "dead") -> dict:
    return dict(message_id=str(uuid.uuid4()), actor="etl_sync", queue=queue, reason="boom", attempts=3,
                dead_at=dead_at, state=state)


def test_every_time_the_store_reads_back_is_aware_utc_on_both_databases(database_url):
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(job_runs), [run("succeeded", fire_id="nightly@2026-06-01T00:00:00Z")])
        conn.execute(insert(dead_letters), [letter("etl", NOW - timedelta(minutes=5))])
    [scheduled] = queries.scheduled_runs(engine)
    assert scheduled.schedule_id == "nightly"
    assert scheduled.finished_at == NOW and scheduled.finished_at.tzinfo is not None
    assert scheduled.started_at is not None and scheduled.started_at.utcoffset() == timedelta(0)
    [(queue, finished)] = queries.finished_since(engine, NOW - timedelta(minutes=1))
    assert (queue, finished) == ("etl", NOW) and finished.tzinfo is not None
    assert queries.oldest_dead(engine) == {"etl": NOW - timedelta(minutes=5)}
    [dead] = queries.recent_dead(engine)
    assert dead["dead_at"] == NOW - timedelta(minutes=5) and dead["dead_at"].tzinfo is not None


def test_counts_group_runs_by_status_or_by_queue_of_one_status(database_url):
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(job_runs), [run("succeeded"), run("succeeded", queue="sync"), run("failed"),
                                      run("running", finished=None)])
    assert queries.run_counts(engine, by="status") == {"succeeded": 2, "failed": 1, "running": 1}
    assert queries.run_counts(engine, by="queue", status="succeeded") == {"etl": 1, "sync": 1}


def test_scheduled_runs_are_newest_first_and_filtered_by_status(database_url):
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(job_runs), [run("succeeded", fire_id="a@1"), run("failed", fire_id="a@2"),
                                      run("running", fire_id="b@1"), run("succeeded")])
    assert [(r.schedule_id, r.status) for r in queries.scheduled_runs(engine)] == [
        ("b", "running"), ("a", "failed"), ("a", "succeeded")]
    assert [r.status for r in queries.scheduled_runs(engine, statuses=("succeeded",))] == ["succeeded"]


def test_marking_archived_letters_moves_only_those_still_dead(database_url):
    engine = get_engine(database_url)
    rows = [letter("etl", NOW), letter("etl", NOW, state="purged"), letter("sync", NOW)]
    with engine.begin() as conn:
        conn.execute(insert(dead_letters), rows)
    ids = [r["message_id"] for r in rows]
    queries.mark_archived(engine, ids[:2], "replayed")
    found = queries.archived_letters(engine, ids)
    assert [found[i].state for i in ids] == ["replayed", "purged", "dead"]
    assert queries.archived_letters(engine, []) == {}
    assert [d["queue"] for d in queries.recent_dead(engine)] == ["sync"]

"""History, retention and coordination on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from broker_jobs.coordination import DatabaseClaims, MemoryClaims, RedisClaims
from broker_jobs.store.db import SQLITE_MMAP_BYTES, get_engine
from broker_jobs.store.history import HistoryWriter
from broker_jobs.store.models import job_runs
from broker_jobs.store.queries import query_runs
from broker_jobs.store.runs import prune

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(status: str, seq: int, **extra):
    return dict(actor="etl_sync", queue="etl", priority="high", status=status, seq=seq, attempt=1, **extra)


def test_a_late_running_event_never_overwrites_the_final_status(database_url):
    mid = str(uuid.uuid4())
    writer = HistoryWriter(database_url)
    writer.record(mid, **event("succeeded", 2, finished_at=NOW, duration_ms=12.0))
    assert writer.flush()
    writer.record(mid, **event("running", 1, started_at=NOW - timedelta(seconds=1)))
    assert writer.flush()
    [run] = query_runs(get_engine(database_url), actor="etl_sync")
    assert run.status == "succeeded" and run.duration_ms == 12.0
    writer.close()


def test_a_retry_attempt_moves_the_entry_forward(database_url):
    mid = str(uuid.uuid4())
    writer = HistoryWriter(database_url)
    writer.record(mid, **event("running", 1, started_at=NOW))
    writer.record(mid, **event("retrying", 2, error="RuntimeError: blip"))
    writer.flush()
    writer.record(mid, **{**event("running", 1_000_001), "attempt": 2})
    writer.flush()
    writer.record(mid, **{**event("succeeded", 1_000_002, finished_at=NOW), "attempt": 2, "error": None})
    writer.flush()
    [run] = query_runs(get_engine(database_url), actor="etl_sync")
    assert (run.status, run.attempt, run.error) == ("succeeded", 2, None)
    assert run.started_at is not None
    writer.close()


def test_events_wait_while_the_database_is_down_and_catch_up(tmp_path):
    broken = HistoryWriter(f"sqlite:///{tmp_path}/missing/dir/\0bad.sqlite3")
    broken.record("m1", **event("succeeded", 2, finished_at=NOW))
    assert broken.flush() is False
    assert broken.healthy is False
    # The same pending events reach a working database once it is back.
    broken.database_url = f"sqlite:///{tmp_path}/ok.sqlite3"
    assert broken.flush() is True
    assert [r.message_id for r in query_runs(get_engine(broken.database_url))] == ["m1"]


def test_retention_keeps_recent_completed_runs_per_job_and_failed_ones_longer(database_url):
    engine = get_engine(database_url)
    rows = []
    for i in range(5):  # 5 recent successes of one job: only 3 kept
        rows.append(dict(message_id=f"ok-{i}", actor="a", queue="q", status="succeeded",
                           finished_at=NOW - timedelta(minutes=i)))
    rows.append(dict(message_id="old-ok", actor="b", queue="q", status="succeeded",
                       finished_at=NOW - timedelta(hours=2)))
    rows.append(dict(message_id="recent-dead", actor="b", queue="q", status="dead",
                       finished_at=NOW - timedelta(hours=2)))
    rows.append(dict(message_id="old-dead", actor="b", queue="q", status="dead",
                       finished_at=NOW - timedelta(hours=30)))
    with engine.begin() as conn:
        conn.execute(job_runs.insert(), rows)
    deleted = prune(engine, keep_completed=3, completed_ttl=3600, failed_ttl=86400, now=NOW)
    with engine.connect() as conn:
        left = set(conn.scalars(select(job_runs.c.message_id)))
    assert left == {"ok-0", "ok-1", "ok-2", "recent-dead"}
    assert deleted == 4


def test_retention_by_count_keeps_the_newest_failed_runs_of_each_job_as_seed_002_does(database_url):
    # Seed 002: "Cleanup: Keep last 10 completed jobs, 5 failed jobs": the defaults are HISTORY_KEEP_FAILED=5.
    from broker_jobs.settings import Settings

    keep_failed = Settings.model_fields["history_keep_failed"].default
    assert keep_failed == 5
    engine = get_engine(database_url)
    rows = [dict(message_id=f"a-{i}", actor="a", queue="q", status="failed" if i % 2 else "dead",
                 finished_at=NOW - timedelta(minutes=i)) for i in range(8)]
    rows += [dict(message_id=f"b-{i}", actor="b", queue="q", status="failed",
                  finished_at=NOW - timedelta(minutes=i)) for i in range(3)]
    rows += [dict(message_id=f"ok-{i}", actor="a", queue="q", status="succeeded",
                  finished_at=NOW - timedelta(minutes=i)) for i in range(4)]
    with engine.begin() as conn:
        conn.execute(job_runs.insert(), rows)
    deleted = prune(engine, keep_completed=10, completed_ttl=3600, failed_ttl=86400, keep_failed=keep_failed,
                    now=NOW)
    with engine.connect() as conn:
        left = set(conn.scalars(select(job_runs.c.message_id)))
    assert left == {f"a-{i}" for i in range(5)} | {"b-0", "b-1", "b-2"} | {f"ok-{i}" for i in range(4)}
    assert deleted == 3


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def claims(request, tmp_path):
    if request.param == "memory":
        return MemoryClaims()
    if request.param == "sqlite":
        return DatabaseClaims(f"sqlite:///{tmp_path}/claims.sqlite3")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        from broker_jobs.store.models import claims as claims_table

        with get_engine(url).begin() as conn:
            conn.execute(claims_table.delete())
        return DatabaseClaims(url)
    return RedisClaims(request.getfixturevalue("redis_url"), prefix=f"test:{uuid.uuid4().hex}:")


def test_a_key_has_exactly_one_owner_until_it_expires_or_is_released(claims):
    assert claims.claim("fire:job@1", "msg-1", ttl=30) == "msg-1"
    assert claims.claim("fire:job@1", "msg-2", ttl=30) == "msg-1"
    assert claims.claim("fire:job@1", "msg-1", ttl=30) == "msg-1"
    claims.release("fire:job@1", "msg-2")  # not the owner: no effect
    assert claims.claim("fire:job@1", "msg-2", ttl=30) == "msg-1"
    claims.release("fire:job@1", "msg-1")
    assert claims.claim("fire:job@1", "msg-2", ttl=30) == "msg-2"


def test_an_expired_claim_can_be_taken_over(claims):
    assert claims.claim("lock", "a", ttl=0.05) == "a"
    import time

    time.sleep(0.1)  # not a wait: the claim running out with time, unreleased, is what is tested
    assert claims.claim("lock", "b", ttl=30) == "b"


def test_concurrent_claims_have_one_winner(claims):
    winners = []
    barrier = threading.Barrier(8)

    def contend(owner: str) -> None:
        barrier.wait()
        if claims.claim("contended", owner, ttl=30) == owner:
            winners.append(owner)

    threads = [threading.Thread(target=contend, args=(f"o{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_a_malformed_event_is_dropped_without_holding_back_the_others(tmp_path):
    writer = HistoryWriter(f"sqlite:///{tmp_path}/h.sqlite3")
    writer.record("good", **event("succeeded", 2, finished_at=NOW))
    writer.record("bad", **{**event("succeeded", 2), "actor": None})  # actor is required
    assert writer.flush() is True
    assert [r.message_id for r in query_runs(get_engine(writer.database_url))] == ["good"]
    assert writer.dropped == 1


def test_every_sqlite_connection_reads_through_the_shared_memory_map(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path}/mapped.sqlite3")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA mmap_size")).scalar() == SQLITE_MMAP_BYTES
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"

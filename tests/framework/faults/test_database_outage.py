"""Fault 5: the database unreachable or locked: jobs retry with backoff, the history catches up,
nothing is dead-lettered for a transient outage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import sqlalchemy

from tests.support import TEST_POSTGRES_URL, Producer, dead_keys, effects, fault_message, tally, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

BEFORE, DURING = 40, 120


@contextmanager
def unreachable(url: str) -> Iterator[None]:
    """Refuse every connection to the test's database and cut the open ones (the server keeps running)."""
    name = urlsplit(url).path.lstrip("/")
    admin = sqlalchemy.create_engine(TEST_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


@contextmanager
def locked(url: str) -> Iterator[None]:
    """Hold ACCESS EXCLUSIVE locks on the effects and history tables."""
    engine = sqlalchemy.create_engine(url)
    conn = engine.connect()
    transaction = conn.begin()
    conn.exec_driver_sql("LOCK TABLE fault_effects, job_runs, dead_letters IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        transaction.rollback()
        conn.close()
        engine.dispose()


def runs_by_status(url: str) -> dict[str, int]:
    """``status -> count`` of the history rows, plus ``max_attempt`` (empty before the first write)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = list(conn.exec_driver_sql("SELECT status, count(*), max(attempt) FROM job_runs "
                                             "WHERE actor = 'record_effect' GROUP BY status"))
    except sqlalchemy.exc.ProgrammingError:  # the workers create the table on their first write
        return {}
    finally:
        engine.dispose()
    return {status: count for status, count, _ in rows} | {"max_attempt": max((a for *_, a in rows), default=0)}


@pytest.mark.parametrize(("outage", "seconds"), [(unreachable, 30), (locked, 10)], ids=["unreachable", "locked"])
def test_a_database_outage_is_retried_with_backoff_and_the_history_catches_up(
        outage, seconds, workers, producer_broker, fault_db, vhost_url):
    group = workers(processes=1, threads=4)
    producer = Producer(producer_broker)
    keys = [f"db-{i}" for i in range(BEFORE + DURING)]
    for key in keys[:BEFORE]:
        producer.send(fault_message("record_effect", key))
    wait_for(lambda: len(effects(fault_db)) == BEFORE, "the jobs sent before the outage")
    wait_for(lambda: runs_by_status(fault_db).get("succeeded") == BEFORE, "their history")

    with outage(fault_db):
        for key in keys[BEFORE:]:
            producer.send(fault_message("record_effect", key))
        time.sleep(seconds)  # not a wait: the outage lasting ``seconds`` is the fault under test

    wait_for(lambda: len(effects(fault_db)) == len(keys), "every job to succeed after the outage", timeout=120)
    wait_for(lambda: runs_by_status(fault_db).get("succeeded") == len(keys), "the history to catch up",
             timeout=60)
    history = runs_by_status(fault_db)
    result = tally(f"database {outage.__name__} {seconds} s", keys, effects(fault_db),
                   dead_keys(vhost_url), reported=producer.reported, max_attempt=history["max_attempt"])
    assert (result.lost, result.dead_lettered, result.executed) == (0, 0, len(keys))
    assert history.get("dead", 0) == 0 and history.get("retrying", 0) == 0
    assert history["max_attempt"] > 1  # the jobs sent during the outage were retried, not failed
    if outage is unreachable:
        log = group.text()
        assert "[history] database unavailable" in log
        assert "[history] database back, history caught up" in log

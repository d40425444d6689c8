"""The lease and the fence on real Redis and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest

from broker_jobs.scheduling import lease_keeper
from broker_jobs.scheduling.lease import DatabaseLease, RedisLease
from broker_jobs.store.models import fences, leases
from broker_jobs.store.scheduler_state import FencedOut, open_scheduler_store
from tests.support.scheduling import Clock, jobs_file, make_scheduler


def fresh_store(request, tmp_path, kind):
    """A scheduler store on a clean SQLite file or on the session's PostgreSQL database."""
    url = f"sqlite:///{tmp_path}/lease.sqlite3" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_scheduler_store(url)
    with store.engine.begin() as conn:
        for table in (leases, fences):
            conn.execute(table.delete())
    return store


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def lease(request, tmp_path):
    if request.param == "redis":
        return RedisLease(request.getfixturevalue("redis_url"), prefix="bj-test:scheduler:")
    return DatabaseLease(fresh_store(request, tmp_path, request.param).engine)


def test_one_holder_at_a_time_and_every_new_holder_gets_a_higher_token(lease):
    first = lease.acquire("a", 5)
    assert first is not None
    assert lease.acquire("b", 5) is None
    assert lease.acquire("a", 5) == first  # renewal keeps the token
    assert lease.holder().owner == "a" and lease.holder().token == first
    lease.release("b")  # not the holder: no effect
    assert lease.acquire("b", 5) is None
    lease.release("a")
    second = lease.acquire("b", 5)
    assert second is not None and second > first


def test_an_expired_lease_is_taken_over(lease):
    first = lease.acquire("a", 0.3)
    time.sleep(0.4)  # not a wait: the lease running out with time, unrenewed and unreleased, is what is tested
    assert lease.holder() is None
    second = lease.acquire("b", 5)
    assert second is not None and second > first
    assert lease.acquire("a", 5) is None


def test_a_new_token_is_above_the_fence_even_if_the_counter_was_lost(lease):
    assert lease.acquire("a", 5, min_token=41) == 42


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_stale_token_cannot_write(request, tmp_path, kind):
    store = fresh_store(request, tmp_path, kind)
    store.raise_fence(7)
    store.commit(token=7, states=[], audit=[], fires=[])
    store.raise_fence(8)
    with pytest.raises(FencedOut):
        store.commit(token=7, states=[], audit=[], fires=[])
    store.raise_fence(5)  # the fence never goes down
    assert store.fence() == 8


@pytest.mark.parametrize("backend", ["redis", "database"])
def test_a_silent_leader_is_replaced_once_its_lease_expires(request, tmp_path, stub_broker, monkeypatch, backend):
    from broker_jobs import job

    @job(queue="default", broker=stub_broker)
    def sched_lease_probe() -> None: ...

    monkeypatch.setattr(lease_keeper, "LEASE_TTL", 1.0)
    path = jobs_file(tmp_path, "jobs:\n  - {id: p, actor: sched_lease_probe, interval: 10}\n")
    clock = Clock()
    leader = make_scheduler(path, stub_broker, clock)
    follower = make_scheduler(path, stub_broker, clock)
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        leader.lease, follower.lease = RedisLease(url), RedisLease(url)
    assert leader.step_lease() and not follower.step_lease()
    # Not a wait: the leader is "killed" (no renewal) and its lease runs out with time, which is what is tested.
    time.sleep(1.1)
    assert follower.step_lease()
    assert follower.token > leader.token
    assert follower.store.fence() == follower.token
    assert not leader.step_lease() and leader.token is None  # it wakes up and finds out

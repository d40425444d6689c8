"""Multi-host mode: with REDIS_URL, dedup keys and rate limits are shared by every worker."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from dramatiq import Worker

from broker_jobs import job
from broker_jobs.broker import build_broker
from broker_jobs.coordination import RedisClaims, get_claims, set_claims
from broker_jobs.middleware import RateLimit
from broker_jobs.settings import get_settings
from tests.support import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]


@pytest.fixture
def redis_mode(settings_env, redis_url, rabbitmq_url):
    settings_env.setenv("REDIS_URL", redis_url)
    settings_env.setenv("RABBITMQ_URL", rabbitmq_url)
    set_claims(None)
    yield get_settings()
    set_claims(None)


class _Recording:
    """A rate-limiter backend that notes the bucket of every granted acquisition."""

    def __init__(self, backend, granted: list[int], lock: threading.Lock) -> None:
        self.backend, self.granted, self.lock = backend, granted, lock

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def incr_and_sum(self, key, keys, amount, maximum, ttl):
        ok = self.backend.incr_and_sum(key, keys, amount, maximum, ttl)
        if ok:
            with self.lock:
                self.granted.append(int(key.rsplit("@", 1)[1]))
        return ok


def test_redis_url_switches_coordination_to_redis(redis_mode):
    assert isinstance(get_claims(), RedisClaims)
    broker = build_broker(redis_mode)
    [limiter] = [m for m in broker.middleware if isinstance(m, RateLimit)]
    assert type(limiter.backend).__name__ == "RedisBackend"


def test_two_workers_share_fire_dedup_and_a_global_rate_limit(redis_mode):
    queue = f"multi_{uuid.uuid4().hex[:8]}"
    name = f"shared_{uuid.uuid4().hex[:8]}"
    runs: list[tuple[str, float]] = []
    granted: list[int] = []  # the limiter's one-second bucket of every acquisition, both hosts
    lock = threading.Lock()
    brokers, workers = [], []
    for host in ("host-a", "host-b"):
        broker = build_broker(redis_mode)
        [limit] = [m for m in broker.middleware if isinstance(m, RateLimit)]
        limit.backend = _Recording(limit.backend, granted, lock)

        def body(i: int, fire: str = "", _host: str = host) -> None:
            with lock:
                runs.append((_host, time.time()))

        job(name=name, queue=queue, broker=broker, rate_limit="5/2s")(body)
        brokers.append(broker)
    try:
        sender = brokers[0].get_actor(name)
        # Two messages of one schedule slot: only one may run, whichever host gets it.
        sender.send_with_options(args=(0,), fire_id=f"{name}@slot-1")
        sender.send_with_options(args=(1,), fire_id=f"{name}@slot-1")
        for i in range(2, 12):
            sender.send(i)
        for broker in brokers:
            worker = Worker(broker, queues={queue}, worker_threads=2, worker_timeout=100)
            worker.start()
            workers.append(worker)
        wait_for(lambda: len(runs) >= 11, "eleven runs", timeout=40, every=0.05)
        for broker in brokers:  # every message handled, the duplicate fire included: a second run would be in
            broker.join(queue, timeout=40_000)
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            worker.stop()
        for broker in brokers:
            for q in broker.get_declared_queues():
                broker.flush(q)
            broker.close()
    assert len(runs) == 11
    assert len(granted) == 11  # every run acquired the limiter once; the duplicate fire never did
    # The limiter counts in whole-second buckets: any 2 consecutive buckets hold at most 5
    # acquisitions across both hosts (the limit is global; per host it would allow 10).
    # Run start times are not used: a run acquired at x.999 s starts in the next second.
    worst = max(sum(1 for s in granted if start - 1 <= s <= start) for start in granted)
    assert worst <= 5
    assert {host for host, _ in runs} == {"host-a", "host-b"}

"""A job on the ETL queue for the fleet rate-limit test, and a tap on the limiter's backend.

Imported by each worker process (the test's jobs file lists it under ``modules:``): it wraps
the rate limiter's backend so that every acquisition the limiter grants on the ETL queue's key
is counted in Redis (``SCALEOUT_REDIS_URL``) with its one-second bucket and the process id,
and each run records its start and how often it was deferred first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import CurrentMessage

from broker_jobs import job
from broker_jobs.broker import get_broker
from broker_jobs.middleware import RateLimit
from broker_jobs.protocol import DEFERRALS
from tests.framework.scaleout.counting import client


class CountingBackend:
    """The worker's own backend (Redis), noting every acquisition it grants on ``bj-rate:queue:etl``."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def incr_and_sum(self, key: str, keys: Callable[[], list[str]], amount: int, maximum: int, ttl: int) -> bool:
        granted = bool(self.backend.incr_and_sum(key, keys, amount, maximum, ttl))
        if granted and key.startswith("bj-rate:queue:etl@"):
            client().rpush(f"{os.environ['SCALEOUT_RUN']}:grants", f"{key.rsplit('@', 1)[1]} {os.getpid()}")
        return granted


for middleware in get_broker().middleware:
    if isinstance(middleware, RateLimit) and not isinstance(middleware.backend, CountingBackend):
        middleware.backend = CountingBackend(middleware.backend)
        middleware._limiters.clear()


@job(queue="etl", max_retries=0)
def fleet_etl(i: int) -> None:
    """One ETL-queue job: records its start, process and deferrals."""
    message = CurrentMessage.get_current_message()
    deferrals = message.options.get(DEFERRALS, 0) if message else 0
    client().rpush(f"{os.environ['SCALEOUT_RUN']}:runs",
                   f"{message.message_id if message else '?'} {os.getpid()} {deferrals} {time.time():.3f}")

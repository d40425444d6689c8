"""Jobs the scale-out test runs in real worker processes.

Each execution is counted in Redis (``SCALEOUT_REDIS_URL``) under the test's run id:
per message id (to prove exactly once) and per worker pid (to see the load spread).
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis
from dramatiq.middleware import CurrentMessage

from broker_jobs import job


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["SCALEOUT_REDIS_URL"])


def _count(kind: str) -> None:
    run = os.environ["SCALEOUT_RUN"]
    message = CurrentMessage.get_current_message()
    pipe = client().pipeline(transaction=False)
    pipe.hincrby(f"{run}:{kind}:ids", message.message_id if message else "?", 1)
    pipe.hincrby(f"{run}:{kind}:pids", str(os.getpid()), 1)
    pipe.rpush(f"{run}:{kind}:times", repr(time.time()))
    pipe.execute()


@job(queue="scaleout", max_retries=3, min_backoff=0.1)
def scale_noop(i: int) -> None:
    """One unit of work."""
    time.sleep(0.001)
    _count("noop")


@job(queue="scaleout", rate_limit="4/2s")
def scale_limited(i: int) -> None:
    """Rate limited across every worker."""
    _count("limited")

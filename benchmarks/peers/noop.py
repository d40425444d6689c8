"""The no-op job every peer runs: bump one Redis counter.

The job that brings the counter to 1 stamps ``<key>:first``, the one that
brings it to ``total`` stamps ``<key>:last``: the consumer rate is measured
between them, so worker start-up is excluded.  With ``sent_at`` set the job
also records its send-to-start latency in the list ``<key>:lat``.
"""

from __future__ import annotations

import os
import time
from typing import Any

_client: Any = None


def client() -> Any:
    """This process's Redis client (redis-py reconnects by itself after a fork)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=10)
    return _client


def bump(key: str, total: int, sent_at: float = 0.0) -> None:
    """Increment ``key``; stamp the first and the last increments; record latency if ``sent_at``."""
    started = time.time()
    redis = client()
    if sent_at:
        redis.rpush(key + ":lat", started - sent_at)
    count = redis.incr(key)
    if count == 1:
        redis.set(key + ":first", time.time())
    if count == total:
        redis.set(key + ":last", time.time())

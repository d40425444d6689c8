"""The one Redis client of a scale-out worker process, where its jobs count their executions.

Made once, under a lock.  ``functools.cache`` would let the first worker threads each make
a client and keep one: a dropped client, finalized later by the garbage collector in any
thread, closes its pool's connections, even one a job is reading its counts' reply from.
That job then fails after its counts landed, is retried and counted twice.
"""

from __future__ import annotations

import os
import threading

import redis

_client: redis.Redis | None = None
_lock = threading.Lock()


def client() -> redis.Redis:
    """This process's client of ``SCALEOUT_REDIS_URL``."""
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(os.environ["SCALEOUT_REDIS_URL"])
        return _client

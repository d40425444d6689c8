"""The rate limiter's counts without Redis: one SQLite file shared by every process of a host.

Dramatiq's own backends without Redis or Memcached keep the counts in one process
(``StubBackend``): a limit of 10 a minute would allow 10 per worker process.  This
backend keeps them in ``RATE_LIMIT_FILE`` instead, so every worker process on the
host (same file system) shares each limit; each acquisition is one short
``BEGIN IMMEDIATE`` transaction.  Hosts do not share it: for several hosts set ``REDIS_URL``.

Only what Dramatiq's ``WindowRateLimiter`` and ``BucketRateLimiter`` use is here
(``add``, ``incr``, ``decr``, ``incr_and_sum``); barriers (``wait``) need Redis.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dramatiq.rate_limits import RateLimiterBackend

_SCHEMA = "CREATE TABLE IF NOT EXISTS counts (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL)"


class HostBackend(RateLimiterBackend):
    """Rate-limiter counts in a SQLite file (created with its directory at first use).

    Parameters:
      path: The file (``RATE_LIMIT_FILE``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # one writer at a time across processes: the read and the write are atomic
        try:
            conn.execute("DELETE FROM counts WHERE expires <= ?", (time.time(),))
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _get(conn: sqlite3.Connection, key: str) -> int | None:
        row = conn.execute("SELECT value FROM counts WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _put(conn: sqlite3.Connection, key: str, value: int, ttl: int) -> None:
        conn.execute("INSERT OR REPLACE INTO counts (key, value, expires) VALUES (?, ?, ?)",
                     (key, value, time.time() + ttl / 1000))

    def add(self, key: str, value: int, ttl: int) -> bool:
        """Set ``key`` to ``value`` unless it exists."""
        with self._transaction() as conn:
            if self._get(conn, key) is not None:
                return False
            self._put(conn, key, value, ttl)
            return True

    def incr(self, key: str, amount: int, maximum: int, ttl: int) -> bool:
        """Add ``amount`` unless that goes over ``maximum``."""
        with self._transaction() as conn:
            value = (self._get(conn, key) or 0) + amount
            if value > maximum:
                return False
            self._put(conn, key, value, ttl)
            return True

    def decr(self, key: str, amount: int, minimum: int, ttl: int) -> bool:
        """Take ``amount`` away unless that goes under ``minimum``."""
        with self._transaction() as conn:
            value = (self._get(conn, key) or 0) - amount
            if value < minimum:
                return False
            self._put(conn, key, value, ttl)
            return True

    def incr_and_sum(self, key: str, keys: Callable[[], list[str]], amount: int, maximum: int, ttl: int) -> bool:
        """Add ``amount`` to ``key`` unless the sum over ``keys()`` would go over ``maximum`` (the window limiter)."""
        with self._transaction() as conn:
            value = (self._get(conn, key) or 0) + amount
            total = amount + sum(self._get(conn, k) or 0 for k in keys())
            if value > maximum or total > maximum:
                return False
            self._put(conn, key, value, ttl)
            return True

    def wait(self, key: str, timeout: int) -> bool:
        """Not kept per host: Dramatiq's barriers need ``REDIS_URL``."""
        raise NotImplementedError("barriers need REDIS_URL (the host backend keeps counts only)")

    def wait_notify(self, key: str, ttl: int) -> None:
        """Not kept per host: Dramatiq's barriers need ``REDIS_URL``."""
        raise NotImplementedError("barriers need REDIS_URL (the host backend keeps counts only)")

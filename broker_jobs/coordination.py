"""Keys shared by every process: Redis when ``REDIS_URL`` is set, the database otherwise.

One small interface, :class:`Claims`, with a Redis and a database
implementation, and an in-memory one for unit tests.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from .settings import get_settings


class Claims(Protocol):
    """Claims a key for an owner until it expires."""

    def claim(self, key: str, owner: str, ttl: float) -> str:
        """Claim ``key`` for ``owner`` unless another owner holds it.

        Returns:
          The owner now holding the key: ``owner`` when the claim succeeded.
        """
        ...

    def release(self, key: str, owner: str) -> None:
        """Drop ``key`` if ``owner`` holds it."""
        ...


class MemoryClaims:
    """Claims kept in this process only (unit tests)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, owner: str, ttl: float) -> str:
        now = time.time()
        with self._lock:
            held = self._keys.get(key)
            if held is None or held[1] <= now:
                self._keys[key] = (owner, now + ttl)
                return owner
            return held[0]

    def release(self, key: str, owner: str) -> None:
        with self._lock:
            if self._keys.get(key, ("", 0))[0] == owner:
                del self._keys[key]


class RedisClaims:
    """Claims in Redis: ``SET key owner NX PX ttl``.

    Parameters:
      url: The Redis URL.
      prefix: Prepended to every key.
    """

    def __init__(self, url: str, prefix: str = "broker_jobs:claim:") -> None:
        import redis  # deferred: redis-py, only in multi-host mode (REDIS_URL set)

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def claim(self, key: str, owner: str, ttl: float) -> str:
        name = self.prefix + key
        if self.client.set(name, owner, nx=True, px=max(1, int(ttl * 1000))):
            return owner
        held = self.client.get(name)
        if held is None:  # expired between the two calls
            return self.claim(key, owner, ttl)
        return held.decode() if isinstance(held, bytes) else str(held)

    def release(self, key: str, owner: str) -> None:
        name = self.prefix + key
        script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
        self.client.eval(script, 1, name, owner)


class DatabaseClaims:
    """Claims in the ``claims`` table (single-host mode, shared by all local processes).

    Parameters:
      database_url: Default ``DATABASE_URL``.
    """

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def claim(self, key: str, owner: str, ttl: float) -> str:
        from .store import claims  # deferred: SQLAlchemy
        from .store.db import get_engine  # deferred: SQLAlchemy

        return claims.claim(get_engine(self.database_url), key, owner, ttl, time.time())

    def release(self, key: str, owner: str) -> None:
        from .store import claims  # deferred: SQLAlchemy
        from .store.db import get_engine  # deferred: SQLAlchemy

        claims.release(get_engine(self.database_url), key, owner)


_claims: Claims | None = None
_claims_lock = threading.Lock()


def get_claims() -> Claims:
    """The process's claims backend, chosen by ``REDIS_URL`` (made once, whichever worker thread asks first)."""
    global _claims
    claims = _claims
    if claims is None:
        with _claims_lock:
            if _claims is None:
                url = get_settings().redis_url
                _claims = RedisClaims(url) if url else DatabaseClaims()
            claims = _claims
    return claims


def set_claims(claims: Claims | None) -> None:
    """Replace the claims backend (tests)."""
    global _claims
    _claims = claims

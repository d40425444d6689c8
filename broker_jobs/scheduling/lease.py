"""The scheduler lease: one leader at a time, each leadership with a higher fencing token.

Redis when ``REDIS_URL`` is set (``SET NX PX`` and ``INCR`` in one script), the
database otherwise (a row updated with compare-and-set on owner, token and
expiry).  The token only ever grows; the leader shows it on every state write
(:meth:`~broker_jobs.store.scheduler_state.SchedulerStore.commit`), so a leader that
was paused past its lease and wakes up cannot overwrite its successor's work.

Expiry in the database lease is read from each host's clock: keep the hosts'
clocks in sync (NTP), as for any lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, select, update

from ..settings import Settings
from ..store.db import upsert_insert
from ..store.models import fences, leases

NAME = "scheduler"


@dataclass(frozen=True)
class Holder:
    """Who holds the lease: owner, token and seconds left."""

    owner: str
    token: int
    expires_in: float


class Lease(Protocol):
    """A lease with a fencing token."""

    def acquire(self, owner: str, ttl: float, min_token: int = 0) -> int | None:
        """Take the lease or extend it if ``owner`` holds it.

        Parameters:
          owner: This instance's id.
          ttl: Seconds the lease lasts without renewal.
          min_token: A new token is above this (the database fence).

        Returns:
          The fencing token while ``owner`` holds the lease (the same token on
          renewal), None when someone else holds it.
        """
        ...

    def release(self, owner: str) -> None:
        """Give the lease up at once if ``owner`` holds it."""
        ...

    def holder(self) -> Holder | None:
        """The current holder, None when the lease is free."""
        ...


_ACQUIRE = """
local current = redis.call('get', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if string.sub(current, 1, sep - 1) == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return tonumber(string.sub(current, sep + 1))
  end
  return -1
end
local token = redis.call('incr', KEYS[2])
if token <= tonumber(ARGV[3]) then
  token = tonumber(ARGV[3]) + 1
  redis.call('set', KEYS[2], token)
end
redis.call('set', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

_RELEASE = """
local current = redis.call('get', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """The lease in Redis.

    Parameters:
      url: The Redis URL.
      prefix: Key prefix (the lease and its token counter).
    """

    def __init__(self, url: str, prefix: str = "broker_jobs:scheduler:") -> None:
        import redis  # deferred: redis-py, only in multi-host mode (REDIS_URL set)

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.key, self.counter = prefix + "lease", prefix + "token"

    def acquire(self, owner: str, ttl: float, min_token: int = 0) -> int | None:
        token = int(self.client.eval(_ACQUIRE, 2, self.key, self.counter, owner, int(ttl * 1000),  # type: ignore[arg-type]  # redis-py: sync or async reply
                                     min_token))
        return token if token >= 0 else None

    def release(self, owner: str) -> None:
        self.client.eval(_RELEASE, 1, self.key, owner)

    def holder(self) -> Holder | None:
        pipe = self.client.pipeline()
        pipe.get(self.key)
        pipe.pttl(self.key)
        value, pttl = pipe.execute()
        if not value:
            return None
        owner, _, token = value.decode().rpartition("|")
        return Holder(owner, int(token), max(0, int(pttl)) / 1000)


class DatabaseLease:
    """The lease as a row of ``sched_leases``.

    Parameters:
      engine: The shared database.
      clock: Seconds since the epoch (tests pass a fake one).
      name: The lease's row (``scheduler``, or ``scheduler:GROUP`` for a group's own scheduler).
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, name: str = NAME) -> None:
        self.engine = engine
        self.clock = clock
        self.name = name

    def _now(self) -> float:
        return float(self.clock())

    def acquire(self, owner: str, ttl: float, min_token: int = 0) -> int | None:
        now = self._now()
        with self.engine.begin() as conn:
            row = conn.execute(select(leases.c.owner, leases.c.token, leases.c.expires_at)
                               .where(leases.c.name == self.name)).first()
            if row is None:
                fence = conn.scalar(select(fences.c.token).where(fences.c.name == self.name)) or 0
                token = max(min_token, int(fence)) + 1
                created = conn.execute(upsert_insert(self.engine, leases).values(
                    name=self.name, owner=owner, token=token, expires_at=now + ttl)
                    .on_conflict_do_nothing(index_elements=["name"])).rowcount
                return token if created else None
            if row.owner == owner and row.expires_at > now:
                held = conn.execute(update(leases).where(
                    leases.c.name == self.name, leases.c.owner == owner, leases.c.token == row.token)
                    .values(expires_at=now + ttl)).rowcount
                return int(row.token) if held else None
            if row.expires_at > now:
                return None
            token = max(int(row.token), min_token) + 1
            # Compare-and-set: only one of the instances that saw it expired wins.
            won = conn.execute(update(leases).where(
                leases.c.name == self.name, leases.c.token == row.token, leases.c.expires_at <= now)
                .values(owner=owner, token=token, expires_at=now + ttl)).rowcount
            return token if won else None

    def release(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(leases).where(leases.c.name == self.name, leases.c.owner == owner)
                         .values(expires_at=0.0))

    def holder(self) -> Holder | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(leases.c.owner, leases.c.token, leases.c.expires_at)
                               .where(leases.c.name == self.name)).first()
        if row is None or row.expires_at <= self._now():
            return None
        return Holder(row.owner, int(row.token), row.expires_at - self._now())


def lease_name(group: str | None) -> str:
    """The lease (and fence) of the scheduler of every job (``group`` None), or of one group's own scheduler."""
    return NAME if group is None else f"{NAME}:{group}"


def build_lease(settings: Settings, engine: Engine, group: str | None = None) -> Lease:
    """Redis when ``REDIS_URL`` is set, the database otherwise; one lease per group, so groups fail apart."""
    name = lease_name(group)
    if settings.redis_url:
        return RedisLease(settings.redis_url, prefix=f"broker_jobs:{name}:")
    return DatabaseLease(engine, name=name)

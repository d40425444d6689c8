"""Keeping the lease: take or renew it, raise the database fence, notice leadership changes.

The lease itself (Redis or the database) is :mod:`.lease`; this part holds what
one scheduler instance knows about it: its fencing token while it leads, until
when its lease is surely valid, and when the lease store last answered (the
readiness probe).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from .lease import Lease

logger = logging.getLogger("broker_jobs.scheduling.scheduler")

#: Seconds a lease lasts without renewal.
LEASE_TTL = 7.0
#: Seconds between the leader's lease renewals, and between two refreshes of every scheduler
#: (pauses, runtime jobs, its heartbeat row: one older than ``3 * REFRESH`` is a dead instance's).
RENEW, REFRESH = 2.0, 5.0


class Fencing(Protocol):
    """Where the fence lives: the highest token that ever wrote (the scheduler state)."""

    def fence(self) -> int:
        """The current fence."""
        ...

    def raise_fence(self, token: int) -> None:
        """Raise the fence to ``token``: older leaders' writes are refused from now on."""
        ...


class LeaseKeeper:
    """Takes and renews one instance's lease, and tells the scheduler when it leads or stops.

    Parameters:
      lease: The lease (Redis or the database).
      fencing: The database fence, raised to each new token.
      instance_id: This instance's id (the lease owner).
      on_lead: Called with the new token when this instance becomes leader (the token is set).
      on_lose: Called with the reason when it stops leading (the token is cleared).
      report: Called with a line when the lease store does not answer.
    """

    def __init__(self, lease: Lease, fencing: Fencing, instance_id: str, *, on_lead: Callable[[int], None],
                 on_lose: Callable[[str], None], report: Callable[[str], None]) -> None:
        self.lease, self.fencing, self.instance_id = lease, fencing, instance_id
        self._on_lead, self._on_lose, self._report = on_lead, on_lose, report
        self.token: int | None = None
        #: Monotonic time until which the lease is surely held (renewed before it).
        self.valid_until = 0.0
        #: Monotonic time the lease store last answered, None before it ever did.
        self.seen_at: float | None = None

    def step(self) -> bool:
        """Take or renew the lease; True while this instance leads."""
        started = time.monotonic()
        try:
            fence = 0 if self.token is not None else self.fencing.fence()
            token = self.lease.acquire(self.instance_id, LEASE_TTL, min_token=fence)
        except Exception as exc:  # noqa: BLE001 - Redis or the database down: keep trying
            self._report(f"lease unavailable: {exc!r}")
            if self.token is not None and time.monotonic() > self.valid_until:
                self.step_down("lease expired while its store was unreachable")
            return self.token is not None
        self.seen_at = time.monotonic()
        if token is None:
            if self.token is not None:
                self.step_down("lease taken by another instance")
            return False
        if token != self.token:
            self.fencing.raise_fence(token)
            self.token = token
            self._on_lead(token)
        self.valid_until = started + LEASE_TTL - 1.0
        return True

    def expired(self) -> bool:
        """True when the lease may have run out since the last renewal."""
        return time.monotonic() > self.valid_until

    def step_down(self, reason: str) -> None:
        """Stop acting as leader (the lease is lost or a newer leader wrote)."""
        if self.token is None:
            return
        logger.warning("[scheduler] instance %s stops leading: %s", self.instance_id, reason)
        self.token = None
        self._on_lose(reason)

    def release(self) -> None:
        """Give the lease up at once (shutdown)."""
        held = self.token is not None
        self.token = None
        try:
            self.lease.release(self.instance_id)
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires
            logger.warning("[scheduler] could not release the lease: %r", exc)
        if held:
            logger.info("[scheduler] instance %s released the lease", self.instance_id)

"""Rate limits that delay a job instead of failing it.

Dramatiq's rate limiters raise ``RateLimitExceeded``, which burns a retry and
ends in the dead-letter queue.  Here a job over its limit is re-enqueued with
a delay and its current delivery acknowledged, so nothing is lost or retried.
"""

from __future__ import annotations

import logging
import random
import re
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage
from dramatiq.rate_limits import RateLimiterBackend, WindowRateLimiter

from ..protocol import BJ_OUTCOME, DEFERRAL_DROPS, DEFERRALS, DeliveryOutcome

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


def parse_rate(spec: str) -> tuple[int, int]:
    """Parse ``"10/m"`` or ``"100/30s"`` into (limit, window in seconds).

    Raises:
      ValueError: naming the accepted form.
    """
    match = _SPEC.match(spec)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"invalid rate limit {spec!r}: use N/s, N/m, N/h, N/d or N/<k><unit>")
    count = int(match.group(2) or 1)
    return int(match.group(1)), count * _UNITS[match.group(3)]


class RateLimit(dramatiq.Middleware):
    """Applies the actor option ``rate_limit="10/m"`` across every worker sharing ``backend``.

    Parameters:
      backend: A Dramatiq rate-limiter backend (Redis for many hosts).
    """

    def __init__(self, backend: RateLimiterBackend) -> None:
        self.backend = backend
        self._limiters: dict[str, WindowRateLimiter] = {}
        self.deferred = 0

    @property
    def actor_options(self) -> set[str]:
        return {"rate_limit"}

    def _limiter(self, actor: dramatiq.Actor[..., Any]) -> WindowRateLimiter | None:
        spec = actor.options.get("rate_limit")
        if not spec:
            return None
        limiter = self._limiters.get(actor.actor_name)
        if limiter is None:
            limit, window = parse_rate(spec)
            limiter = WindowRateLimiter(self.backend, "bj-rate:" + actor.actor_name, limit=limit, window=window)
            self._limiters[actor.actor_name] = limiter
        return limiter

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.failed:
            return
        actor = broker.actors.get(message.actor_name)
        limiter = self._limiter(actor) if actor is not None else None
        if actor is None or limiter is None:
            return
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                return
        _, window = parse_rate(actor.options["rate_limit"])
        delay = int(window * 1000 * random.uniform(0.1, 0.5))
        options = dict(message.options)
        options[DEFERRALS] = options.get(DEFERRALS, 0) + 1
        for transient in DEFERRAL_DROPS:
            options.pop(transient, None)
        broker.enqueue(message.copy(queue_name=actor.queue_name, options=options), delay=delay)
        self.deferred += 1
        logger.info("[worker] job %s message %s rate limited, deferred %d ms",
                    message.actor_name, message.message_id, delay)
        message.options[BJ_OUTCOME] = DeliveryOutcome.DEFERRED.value
        raise SkipMessage("rate limited")

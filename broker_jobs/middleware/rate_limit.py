"""Rate limits that delay a job instead of failing it: per job, per queue, per named group.

Dramatiq's rate limiters raise ``RateLimitExceeded``, which burns a retry and
ends in the dead-letter queue.  Here a job over its limit is re-enqueued with
a delay and its current delivery acknowledged, so nothing is lost or retried.

Two sources of limits, both on Dramatiq's ``WindowRateLimiter`` over one backend
(Redis with ``REDIS_URL``: every worker on every host shares the counts; else
:class:`~broker_jobs.host_limits.HostBackend`, every process of one host):

* a job's own ``@job(rate_limit="10/m")`` (key ``bj-rate:<actor>``);
* the jobs file's ``rate_limits:`` (:mod:`broker_jobs.fleet_limits`), per queue
  (``bj-rate:queue:<queue>``) or per named group of jobs (``bj-rate:group:<name>``),
  read by each worker process at boot.

A message under several limits must be granted by each, in that order (queue and
group first, then the job's own); a refusal after a grant leaves that grant
used (Dramatiq's window limiter has no release), which only ever makes the
later limit stricter, never looser.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.middleware import SkipMessage
from dramatiq.rate_limits import RateLimiterBackend, WindowRateLimiter

from ..errors import ConfigError
from ..fleet_limits import FleetLimit, parse_rate, read_limits
from ..protocol import BJ_OUTCOME, DEFERRAL_DROPS, DEFERRALS, DeliveryOutcome

__all__ = ["RateLimit", "parse_rate"]

logger = logging.getLogger(__name__)

#: A limiter and its window in seconds.
_Limiter = tuple[WindowRateLimiter, int]


class RateLimit(dramatiq.Middleware):
    """Applies the actor option ``rate_limit="10/m"`` and the jobs file's ``rate_limits:`` across every
    worker sharing ``backend``.

    Parameters:
      backend: A Dramatiq rate-limiter backend (Redis for many hosts).
      limits: The fleet limits; None reads the jobs file (``JOBS_CONFIG``) when the worker boots.
    """

    def __init__(self, backend: RateLimiterBackend, limits: Sequence[FleetLimit] | None = None) -> None:
        self.backend = backend
        self.limits: tuple[FleetLimit, ...] | None = tuple(limits) if limits is not None else None
        self._limiters: dict[tuple[str, str], list[_Limiter]] = {}
        self.deferred = 0

    @property
    def actor_options(self) -> set[str]:
        return {"rate_limit"}

    def load_limits(self) -> tuple[FleetLimit, ...]:
        """Read the jobs file's limits for this ``APP_ENV`` (once).

        Raises:
          ConfigError: the file's line and field.
        """
        if self.limits is None:
            from ..settings import get_settings  # deferred: pydantic-settings, only when a worker boots

            settings = get_settings()
            self.limits = tuple(read_limits(settings.jobs_config, settings.app_env))
            self._limiters.clear()
            for limit in self.limits:
                logger.info("Fleet rate limit %s (key bj-rate:%s)", limit.describe(), limit.key)
        return self.limits

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        try:
            self.load_limits()
        except ConfigError as exc:  # a user mistake: one line, exit 2, no traceback
            print(f"broker-jobs: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(exc.exit_code) from None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.load_limits()

    def _window(self, key: str, spec: str) -> _Limiter:
        limit, window = parse_rate(spec)
        return WindowRateLimiter(self.backend, "bj-rate:" + key, limit=limit, window=window), window

    def _limiters_for(self, actor: dramatiq.Actor[..., Any], queue: str) -> list[_Limiter]:
        cached = self._limiters.get((actor.actor_name, queue))
        if cached is None:
            cached = [self._window(limit.key, limit.rate) for limit in self.limits or ()
                      if limit.covers(queue, actor.actor_name)]
            spec = actor.options.get("rate_limit")
            if spec:
                cached.append(self._window(actor.actor_name, spec))
            self._limiters[(actor.actor_name, queue)] = cached
        return cached

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.failed:
            return
        actor = broker.actors.get(message.actor_name)
        if actor is None:
            return
        for limiter, window in self._limiters_for(actor, q_name(message.queue_name)):
            with limiter.acquire(raise_on_failure=False) as acquired:
                pass
            if not acquired:
                self._defer(broker, message, actor, window)

    def _defer(self, broker: dramatiq.Broker, message: MessageProxy, actor: dramatiq.Actor[..., Any],
               window: int) -> None:
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

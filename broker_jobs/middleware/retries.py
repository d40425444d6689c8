"""Dramatiq's Retries with our policy on top.

* Permanent errors (:class:`~broker_jobs.errors.PermanentJobError`, including
  invalid arguments) are dead-lettered at once, never retried.
* A message for an actor no worker declares is dead-lettered with the reason
  kept, instead of crashing the middleware chain and being acked away.
* The backoff never exceeds the broker's consumer timeout (see settings).
* A retry that would be over ``MAX_MESSAGE_BYTES`` is dead-lettered with that
  reason, instead of being acknowledged away when its enqueue is refused.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Retries

from ..errors import MessageTooLarge, PermanentJobError, UnknownActor
from ..protocol import BJ_ERROR


class JobRetries(Retries):
    """Exponential backoff from ``min_backoff`` (2, 4, 8 s, jittered up to 2x)."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.actor_name not in broker.actors:
            error = UnknownActor(f"unknown actor {message.actor_name!r} on queue {message.queue_name!r}")
            message.stuff_exception(error)
            message.options[BJ_ERROR] = str(error)
            message.fail()

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if message.actor_name not in broker.actors:
            return
        if isinstance(exception, PermanentJobError):
            message.options[BJ_ERROR] = f"{type(exception).__name__}: {exception}"
            message.fail()
            return
        try:
            super().after_process_message(  # type: ignore[no-untyped-call]  # Dramatiq's Retries is unannotated
                broker, message, result=result, exception=exception)
        except MessageTooLarge as refused:
            message.options[BJ_ERROR] = f"{type(exception).__name__}: {exception}; retry not enqueued: {refused}"
            message.fail()

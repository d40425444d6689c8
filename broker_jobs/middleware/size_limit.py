"""One size limit, ``MAX_MESSAGE_BYTES``, for every path that publishes a message.

RabbitMQ's own ``max_message_size`` closes the publishing channel with a 406,
which Dramatiq turns into a retried, then failed, "connection closed".  A job
argument that large is a mistake (pass a file path, a URL or a row id), so the
sender gets one clear error naming the job and the limit instead.

:func:`broker_jobs.publishing.check_size` is the one check: this middleware calls
it for everything Dramatiq enqueues (``send``, delays and each of their hops
through ``Q.DQ``, retries, rate-limit deferrals, pipelines), the scheduler's
publisher and the dead-letter replay call it on the bodies they publish
themselves, and workers refuse a larger delivery (:mod:`broker_jobs.wire`).
A retry carries the previous attempt's traceback: its head is cut, so a
retry only fails the limit if its arguments alone do.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from ..publishing import TRACEBACK_KEPT, check_body, check_size

__all__ = ["TRACEBACK_KEPT", "MessageSizeLimit", "check_body", "check_size"]


class MessageSizeLimit(dramatiq.Middleware):
    """Raises :class:`~broker_jobs.errors.MessageTooLarge` on enqueue past ``max_bytes``.

    Parameters:
      max_bytes: The largest encoded message accepted.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        check_size(message, self.max_bytes)

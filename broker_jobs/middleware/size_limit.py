"""Refuses a message larger than ``MAX_MESSAGE_BYTES`` before it is published.

RabbitMQ's own ``max_message_size`` closes the publishing channel with a 406,
which Dramatiq turns into a retried, then failed, "connection closed".  A job
argument that large is a mistake (pass a file path, a URL or a row id), so the
sender gets one clear error naming the job and the limit instead.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from ..errors import MessageTooLarge

#: Options present only on a message that was already enqueued once (a retry,
#: a rate-limit deferral, a delay hop): it passed the check then and must not
#: be refused by a worker mid-flight because a traceback made it grow.
_REENQUEUED = ("retries", "deferrals", "bj_eta")


class MessageSizeLimit(dramatiq.Middleware):
    """Raises :class:`~broker_jobs.errors.MessageTooLarge` on enqueue past ``max_bytes``.

    Parameters:
      max_bytes: The largest encoded message accepted.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        if any(key in message.options for key in _REENQUEUED):
            return
        size = len(message.encode())
        if size > self.max_bytes:
            raise MessageTooLarge(
                f"message for job {message.actor_name!r} is {size} bytes, over MAX_MESSAGE_BYTES="
                f"{self.max_bytes}: pass a reference (file path, URL, row id) instead of the data"
            )

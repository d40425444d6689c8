"""One size limit, ``MAX_MESSAGE_BYTES``, for every path that publishes a message.

RabbitMQ's own ``max_message_size`` closes the publishing channel with a 406,
which Dramatiq turns into a retried, then failed, "connection closed".  A job
argument that large is a mistake (pass a file path, a URL or a row id), so the
sender gets one clear error naming the job and the limit instead.

:func:`check_size` is the one check: the ``MessageSizeLimit`` middleware calls
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

from ..errors import MessageTooLarge

#: Characters of a retry's traceback kept when the message would not fit (the end: the error).
TRACEBACK_KEPT = 2000


def _refuse(actor: object, size: int, max_bytes: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"message for job {actor!r} is {size} bytes, over MAX_MESSAGE_BYTES={max_bytes}: "
        "pass a reference (file path, URL, row id) instead of the data"
    )


def check_size(message: Any, max_bytes: int) -> None:
    """Raise :class:`~broker_jobs.errors.MessageTooLarge` if ``message`` encodes past ``max_bytes``.

    A traceback option (a retry's) is first cut to its last ``TRACEBACK_KEPT``
    characters, in place.

    Parameters:
      message: A Dramatiq message (or proxy): its ``options`` dict may be changed.
      max_bytes: The largest encoded message accepted.
    """
    size = len(message.encode())
    if size <= max_bytes:
        return
    traceback = message.options.get("traceback")
    if isinstance(traceback, str) and len(traceback) > TRACEBACK_KEPT:
        message.options["traceback"] = "...\n" + traceback[-TRACEBACK_KEPT:]
        size = len(message.encode())
        if size <= max_bytes:
            return
    raise _refuse(message.actor_name, size, max_bytes)


def check_body(body: bytes, actor: object, max_bytes: int) -> None:
    """:func:`check_size` for a body encoded by its publisher (scheduler, replay)."""
    if len(body) > max_bytes:
        raise _refuse(actor, len(body), max_bytes)


class MessageSizeLimit(dramatiq.Middleware):
    """Raises :class:`~broker_jobs.errors.MessageTooLarge` on enqueue past ``max_bytes``.

    Parameters:
      max_bytes: The largest encoded message accepted.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        check_size(message, self.max_bytes)

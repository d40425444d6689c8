"""The one way a message goes onto RabbitMQ: properties, size limit, confirms.

Every path that publishes builds its AMQP properties with :func:`properties`
and checks its body with :func:`check_body` or :func:`check_size`: the
broker's enqueue (``send``, the CLI's send, delays and each of their hops
through ``Q.DQ``, retries, rate-limit deferrals, pipelines), the scheduler's
batch publisher and the dead-letter replay.  So every message is durable
(delivery mode 2), carries its level as an AMQP priority, and is refused past
``MAX_MESSAGE_BYTES`` with one clear error instead of RabbitMQ's 406, which
closes the channel.

Confirms: the broker publishes with publisher confirms (``confirm_delivery``)
and ``mandatory`` set, the replay with confirms on its own channel, the
scheduler inside one AMQP transaction per batch (one round trip for the whole
batch): each path says when RabbitMQ has the message.

The message id lives in the body (Dramatiq's ``message_id``), not in the AMQP
properties, so one properties object per priority serves every message: pika
only reads them, and building one per message costs the hot path.
"""

from __future__ import annotations

from typing import Any

import pika

from .errors import MessageTooLarge
from .protocol import BROKER_PRIORITY, TRACEBACK

#: RabbitMQ's persistent delivery mode: the message survives a broker restart.
PERSISTENT = 2
#: Characters of a retry's traceback kept when the message would not fit (the end: the error).
TRACEBACK_KEPT = 2000

_PROPERTIES: dict[int | None, pika.BasicProperties] = {}


def properties(priority: int | None) -> pika.BasicProperties:
    """The AMQP properties of a message with AMQP ``priority`` (``None``: none), shared per priority."""
    props = _PROPERTIES.get(priority)
    if props is None:
        props = _PROPERTIES[priority] = pika.BasicProperties(delivery_mode=PERSISTENT, priority=priority)
    return props


def properties_for(options: dict[str, Any]) -> pika.BasicProperties:
    """The AMQP properties of a message with these ``options`` (its ``broker_priority``)."""
    return properties(options.get(BROKER_PRIORITY))


def _refuse(actor: object, size: int, max_bytes: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"message for job {actor!r} is {size} bytes, over MAX_MESSAGE_BYTES={max_bytes}: "
        "pass a reference (file path, URL, row id) instead of the data"
    )


def check_size(message: Any, max_bytes: int) -> None:
    """Raise :class:`~broker_jobs.errors.MessageTooLarge` if ``message`` encodes past ``max_bytes``.

    A traceback option (a retry's) is first cut to its last ``TRACEBACK_KEPT``
    characters, in place, so a retry only fails the limit if its arguments alone do.

    Parameters:
      message: A Dramatiq message (or proxy): its ``options`` dict may be changed.
      max_bytes: The largest encoded message accepted.
    """
    size = len(message.encode())
    if size <= max_bytes:
        return
    traceback = message.options.get(TRACEBACK)
    if isinstance(traceback, str) and len(traceback) > TRACEBACK_KEPT:
        message.options[TRACEBACK] = "...\n" + traceback[-TRACEBACK_KEPT:]
        size = len(message.encode())
        if size <= max_bytes:
            return
    raise _refuse(message.actor_name, size, max_bytes)


def check_body(body: bytes, actor: object, max_bytes: int | None) -> None:
    """:func:`check_size` for a body already encoded (scheduler, replay); ``None`` checks nothing."""
    if max_bytes is not None and len(body) > max_bytes:
        raise _refuse(actor, len(body), max_bytes)


def publish(channel: Any, queue: str, body: bytes, priority: int | None, *, actor: object,
            max_bytes: int | None, mandatory: bool = False) -> None:
    """Check ``body`` against the size limit, then publish it on ``queue`` with our properties.

    Parameters:
      channel: A pika channel (its confirm or transaction mode is the caller's).
      queue: The routing key (default exchange: the queue itself).
      body: The encoded message.
      priority: Its AMQP priority (``broker_priority``).
      actor: The job, named in a size refusal.
      max_bytes: ``MAX_MESSAGE_BYTES`` (``None`` skips the check).
      mandatory: Whether an unroutable message is returned as an error (with confirms).

    Raises:
      MessageTooLarge: nothing was published.
    """
    check_body(body, actor, max_bytes)
    channel.basic_publish(exchange="", routing_key=queue, body=body, properties=properties(priority),
                          mandatory=mandatory)

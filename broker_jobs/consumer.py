"""The RabbitMQ consumer that checks every body before the worker sees it.

Dramatiq decodes a delivery in the consumer thread, before any middleware
runs, and only refuses bodies that are not JSON objects with the right keys.
:class:`CheckingConsumer` decodes with :func:`broker_jobs.wire.parse`
instead: a malformed body is archived (reason naming the field, raw body)
and then rejected into the queue's ``.XQ``, in the consumer thread, so it
never reaches a worker thread and never holds up the messages behind it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pika
from dramatiq.brokers.rabbitmq import _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import q_name
from dramatiq.errors import ConnectionClosed

from . import wire
from .store.history import writer

logger = logging.getLogger(__name__)

#: The archive keeps this much of a malformed body (the ``.XQ`` keeps all of it).
BODY_KEPT = 65_536


def archive_malformed(queue: str, body: bytes, malformed: wire.Malformed) -> bool:
    """Write the archive row of a malformed delivery now; False if it had to wait in memory."""
    return writer.dead_letter_now(
        message_id=malformed.id, actor=(malformed.actor or "")[: wire.MAX_NAME], queue=queue,
        reason=malformed.reason, traceback=None, attempts=1, dead_at=datetime.now(UTC), state="dead",
        body=body[:BODY_KEPT].decode("utf-8", "replace"),
    )


class CheckingConsumer(_RabbitmqConsumer):
    """Dramatiq's RabbitMQ consumer (2.x), decoding through :func:`broker_jobs.wire.parse`.

    ``__next__`` is Dramatiq 2.2's, with the decode replaced; :mod:`broker_jobs.compat`
    refuses another major version of Dramatiq.
    """

    def __next__(self) -> Any:
        try:
            method, _properties, body = next(self.iterator)
            if method is None:
                return None
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None

        parsed = wire.parse(body, self.queue_name, getattr(self.broker, "max_message_bytes", None))
        if isinstance(parsed, wire.Malformed):
            archived = archive_malformed(self.queue_name, body, parsed)
            logger.warning("[worker] message %s on %s dead-lettered%s: %s", parsed.id, self.queue_name,
                           "" if archived else " (archive row pending: database unavailable)", parsed.reason)
            self._nack(method.delivery_tag)  # type: ignore[no-untyped-call]  # Dramatiq's consumer is unannotated
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, parsed)

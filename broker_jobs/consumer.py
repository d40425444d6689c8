"""The RabbitMQ consumer that checks every body before the worker sees it.

Dramatiq decodes a delivery in the consumer thread, before any middleware
runs, and only refuses bodies that are not JSON objects with the right keys.
:class:`CheckingConsumer` decodes with :func:`broker_jobs.wire.parse`
instead: a malformed body is archived (reason naming the field, raw body)
and then rejected into the queue's ``.XQ``, in the consumer thread, so it
never reaches a worker thread and never holds up the messages behind it.

It also settles deliveries in batches (:mod:`broker_jobs.acks`): the worker
threads record their acks and nacks and wake the connection's thread once for
all that finished meanwhile, which sends one ``multiple`` ack where it may.
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
from .acks import Settlements
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

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]  # unannotated
        self._settlements = Settlements()

    def ack(self, message: Any) -> None:
        """Settle ``message`` as done (sent with the next batch)."""
        self._settle(message, ack=True)

    def nack(self, message: Any) -> None:
        """Settle ``message`` as failed: RabbitMQ dead-letters it into the ``.XQ``."""
        self._settle(message, ack=False)

    def _settle(self, message: Any, ack: bool) -> None:
        try:
            self.known_tags.remove(message._tag)
        except KeyError:  # delivered on a connection that has since been replaced: RabbitMQ redelivers it
            logger.warning("Failed to %s message %s: not in known tags.", "ack" if ack else "nack",
                           message.message_id)
            return
        self._schedule(message._tag, ack)

    def _nack(self, tag: int) -> None:
        """Dead-letter a delivery that never became a message (Dramatiq's name for it)."""
        self._schedule(tag, False)

    def _schedule(self, tag: int, ack: bool) -> None:
        if not self._settlements.settle(tag, ack):
            return  # a flush is already due and will send this one too
        try:
            self.connection.add_callback_threadsafe(self._flush_settlements)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            raise ConnectionClosed(e) from None

    def _flush_settlements(self) -> None:
        # In the connection's thread (pika runs thread-safe callbacks there, in order).
        for frame in self._settlements.frames():
            if frame.ack:
                self.channel.basic_ack(frame.tag, multiple=frame.multiple)
            else:
                self.channel.basic_nack(frame.tag, requeue=False)

    def __next__(self) -> Any:
        try:
            method, _properties, body = next(self.iterator)
            if method is None:
                return None
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None
        self._settlements.delivered(method.delivery_tag)

        parsed = wire.parse(body, self.queue_name, getattr(self.broker, "max_message_bytes", None))
        if isinstance(parsed, wire.Malformed):
            archived = archive_malformed(self.queue_name, body, parsed)
            logger.warning("[worker] message %s on %s dead-lettered%s: %s", parsed.id, self.queue_name,
                           "" if archived else " (archive row pending: database unavailable)", parsed.reason)
            self._nack(method.delivery_tag)
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, parsed)

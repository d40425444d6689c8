"""Confirmed batch publishing of scheduled messages.

Per-message publisher confirms on a blocking channel cost a round trip each
(about 2 ms here, 2 s for 1,000 messages); one AMQP transaction around the
whole batch is confirmed once (about 200 ms for 1,000 durable messages).  When
``tx_commit`` returns, RabbitMQ has taken every message of the batch; when it
fails, the scheduler publishes the batch again under new message ids, and the
workers' fire-id dedup drops whichever copy comes second.

Messages are Dramatiq messages with the options our middleware reads
(``priority``, ``broker_priority``, ``fire_id``, ``job_id``, ``slot``); a
jittered one goes to the delay queue ``Q.DQ`` with an ``eta``, exactly as
``send_with_options(delay=...)`` does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
import pika
from dramatiq.common import dq_name

from .. import publishing
from ..connection import connection_urls
from ..errors import BrokerUnavailableError
from ..priorities import Priority, amqp_priority
from ..protocol import BROKER_PRIORITY, ETA, FIRE_ID, JOB_ID, PRIORITY, SLOT, FireId, iso_slot
from ..settings import Settings
from ..topology import CLASSIC, QUORUM, band_queue

logger = logging.getLogger(__name__)


#: A slot as it appears in fire ids (kept under its old name for the scheduler's modules).
iso = iso_slot


def fire_id(job_id: str, slot: datetime) -> str:
    """The deterministic id of one slot of one job: ``job_id@slotISO`` (:class:`~broker_jobs.protocol.FireId`)."""
    return str(FireId.make(job_id, slot))


@dataclass
class Outgoing:
    """One message to publish.

    Parameters:
      queue: The job's queue.
      actor: The actor name.
      fire_id: ``job_id@slot`` (or ``job_id@manual:...`` for run-now).
      delay_ms: Jitter; the message waits in ``Q.DQ`` that long.
    """

    job_id: str
    actor: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: Priority
    fire_id: str
    slot: datetime | None
    delay_ms: int = 0
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def fields(self, now_ms: int, queue_type: str = CLASSIC) -> dict[str, Any]:
        """The Dramatiq message as a dict, in ``Message.asdict()`` order (the body's JSON).

        With quorum queues the message goes to its family's band by priority (:mod:`broker_jobs.topology`).
        """
        options: dict[str, Any] = {
            PRIORITY: self.priority.label,
            BROKER_PRIORITY: amqp_priority(self.priority),
            FIRE_ID: self.fire_id,
            JOB_ID: self.job_id,
        }
        if self.slot is not None:
            options[SLOT] = iso_slot(self.slot)
        queue = self.queue
        if self.delay_ms > 0:
            queue = dq_name(self.queue)
            options[ETA] = now_ms + self.delay_ms
        elif queue_type == QUORUM:
            queue = band_queue(self.queue, options[BROKER_PRIORITY])
        return {"queue_name": queue, "actor_name": self.actor, "args": tuple(self.args), "kwargs": self.kwargs,
                "options": options, "message_id": self.message_id, "message_timestamp": now_ms}

    def message(self, now_ms: int) -> dramatiq.Message[Any]:
        """The Dramatiq message (a fresh message id is drawn by :meth:`renew`)."""
        return dramatiq.Message(**self.fields(now_ms))

    def encoded(self, now_ms: int, queue_type: str = CLASSIC) -> tuple[str, bytes, int]:
        """(queue, body, AMQP priority): what :meth:`message` encodes to, without building it."""
        fields = self.fields(now_ms, queue_type)
        return fields["queue_name"], dramatiq.get_encoder().encode(fields), fields["options"][BROKER_PRIORITY]

    def renew(self) -> None:
        """Draw a new message id (before publishing again after a failed commit)."""
        self.message_id = str(uuid.uuid4())


class Publisher:
    """Publishes batches in one AMQP transaction over a connection of its own.

    RabbitMQ answers ``tx.commit`` only once every queue the batch went to has
    confirmed it (quorum queues: a majority of their nodes), so a commit is a
    confirm for the whole batch.

    Parameters:
      url: ``RABBITMQ_URL``, or the cluster's nodes in order (heartbeat and
        blocked-connection timeout are added); a dead node is skipped.
      timeout: Seconds a publish may block (memory or disk alarm).
      max_bytes: ``MAX_MESSAGE_BYTES``: a batch with a larger body is refused whole, before
        anything is published (the jobs file check makes that impossible for its own jobs).
      queue_type: ``QUEUE_TYPE`` (quorum: each message goes to its priority band).
    """

    def __init__(self, url: str | Sequence[str], timeout: float = 10.0, max_bytes: int | None = None,
                 queue_type: str = CLASSIC) -> None:
        self.urls = connection_urls(url, blocked_connection_timeout=str(timeout))
        self.url = self.urls[0]
        self.max_bytes = max_bytes
        self.queue_type = queue_type
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Publisher:
        """A publisher to the nodes, with the timeout, size limit and queue type of ``settings``."""
        return cls(settings.amqp_urls, settings.publish_timeout, settings.max_message_bytes, settings.queue_type)

    def _open(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = pika.BlockingConnection([pika.URLParameters(url) for url in self.urls])
            self._channel = self._connection.channel()
            self._channel.tx_select()
        return self._channel

    def publish(self, batch: list[Outgoing], now_ms: int) -> None:
        """Publish ``batch`` and wait for RabbitMQ to take all of it.

        Raises:
          BrokerUnavailableError: nothing of the batch can be counted on;
            publish it again (after :meth:`Outgoing.renew`).
        """
        if not batch:
            return
        encoded = [item.encoded(now_ms, self.queue_type) for item in batch]
        # The size limit and the properties of the one publish path (broker_jobs.publishing);
        # the whole batch is checked before anything of it is published.
        for item, (_queue, body, _priority) in zip(batch, encoded, strict=True):
            publishing.check_body(body, item.actor, self.max_bytes)
        try:
            channel = self._open()
            # The blocking channel flushes and polls after every publish (about 0.5 ms each);
            # its underlying channel only buffers, and tx_commit sends and waits once.
            publish = getattr(channel, "_impl", channel).basic_publish
            properties = publishing.properties
            for queue, body, priority in encoded:
                publish(exchange="", routing_key=queue, body=body, properties=properties(priority))
            channel.tx_commit()
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise BrokerUnavailableError(f"publish of {len(batch)} message(s) not confirmed: {exc!r}") from exc

    @property
    def connected(self) -> bool:
        """Whether the channel was open at the last publish or keepalive (the scheduler's readiness)."""
        return self._channel is not None and self._channel.is_open

    def keepalive(self) -> None:
        """Connect if needed and serve heartbeats (a blocking connection only does it inside pika calls).

        Connecting ahead of the first slot keeps the 100 ms handshake out of the slot's lag;
        a failure here is only logged by the next publish.
        """
        try:
            self._open()
            assert self._connection is not None
            self._connection.process_data_events(0)
        except (pika.exceptions.AMQPError, OSError):
            self.close()

    def close(self) -> None:
        """Close the connection (reopened on the next publish)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass


class StubPublisher:
    """Enqueues on a (stub) Dramatiq broker, for unit tests; ``fail`` makes the next publish fail."""

    connected = True

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.fail = 0
        self.published: list[dramatiq.Message[Any]] = []

    def publish(self, batch: list[Outgoing], now_ms: int) -> None:
        if self.fail:
            self.fail -= 1
            raise BrokerUnavailableError("stub publish failure")
        for item in batch:
            message = item.message(now_ms)
            self.published.append(message)
            canonical = item.queue
            self.broker.declare_queue(canonical)
            if item.delay_ms:
                self.broker.enqueue(message.copy(queue_name=canonical), delay=item.delay_ms)
            else:
                self.broker.enqueue(message)

    def keepalive(self) -> None:
        pass

    def close(self) -> None:
        pass

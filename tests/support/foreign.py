"""What a foreign service does on the wire, built by hand: no broker_jobs import, only pika and json."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika


def dramatiq_body(actor: str, queue: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
                  options: dict[str, Any] | None = None) -> tuple[str, bytes]:
    """(message id, JSON body) of a Dramatiq message, field by field as the README documents it."""
    message_id = str(uuid.uuid4())
    body = {"queue_name": queue, "actor_name": actor, "args": args or [], "kwargs": kwargs or {},
            "options": options or {}, "message_id": message_id, "message_timestamp": int(time.time() * 1000)}
    return message_id, json.dumps(body).encode()


def publish(url: str, queue: str, bodies: list[bytes], priority: int | None = None) -> None:
    """Publish ``bodies`` to ``queue`` through the default exchange, persistent, each confirmed."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(
                delivery_mode=2, priority=priority, content_type="application/json",
                message_id=json.loads(body)["message_id"]), mandatory=True)
    finally:
        connection.close()


def declare_like_plain_dramatiq(url: str, queue: str) -> None:
    """Declare ``queue`` and ``queue.DQ`` as a plain ``RabbitmqBroker()`` does: dead-lettering, no priorities."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ"):
            channel.queue_declare(name, durable=True, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue}.XQ"})
    finally:
        connection.close()


def message_ids_in(url: str, queue: str) -> list[str]:
    """The message ids of every ready message of ``queue``, in queue order; the messages stay there."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    ids = []
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            ids.append(json.loads(body)["message_id"])
        channel.close()  # unacked: RabbitMQ puts them all back, in order
    finally:
        connection.close()
    return ids

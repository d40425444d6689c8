"""The shared RabbitMQ as tests use it: vhosts of their own, exact queue depths, messages published as any
other service would (confirmed, mandatory), queues purged."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .environment import RABBITMQ_URL


def management(method: str, path: str, **kwargs: Any) -> int:
    """One call to the shared RabbitMQ's management API as ``RABBITMQ_URL``'s user: the status, 0 if unreachable."""
    import httpx

    parts = urlsplit(RABBITMQ_URL)
    try:
        return httpx.request(method, f"http://{parts.hostname}:15672/api{path}", timeout=5,
                             auth=(parts.username or "guest", parts.password or "guest"), **kwargs).status_code
    except httpx.HTTPError:
        return 0


def _rabbitmqctl(*args: str) -> bool:
    try:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True).returncode == 0
    except OSError:
        return False


@contextmanager
def vhost(prefix: str) -> Iterator[str | None]:
    """A vhost of its own on the shared RabbitMQ (management API, else ``rabbitmqctl``), deleted afterwards.

    Yields its AMQP URL (``RABBITMQ_URL``'s user may do anything on it), or None when it could not be made.
    """
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    quoted = quote(name, safe="")
    user = urlsplit(RABBITMQ_URL).username or "guest"
    created = management("PUT", f"/vhosts/{quoted}") in (201, 204)
    if created:
        management("PUT", f"/permissions/{quoted}/{user}", json={"configure": ".*", "write": ".*", "read": ".*"})
    elif _rabbitmqctl("add_vhost", name):
        created = True
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    if not created:
        yield None
        return
    try:
        yield urlunsplit(urlsplit(RABBITMQ_URL)._replace(path="/" + quoted))
    finally:
        if management("DELETE", f"/vhosts/{quoted}") not in (200, 204):
            _rabbitmqctl("delete_vhost", name)


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue``, exactly and now (a passive declare, not the lagging management API); 0 when
    the queue does not exist."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        try:
            return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        if connection.is_open:
            connection.close()


def publish(url: str, queue: str, actor: str, calls: Iterable[Sequence[Any]]) -> list[str]:
    """Publish one Dramatiq message per argument list, confirmed and mandatory, as any other service would.

    Returns the message ids in order.  An unroutable message (queue not declared
    yet) raises instead of vanishing.
    """
    import pika
    from dramatiq.message import Message

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        ids = []
        for args in calls:
            message = Message(queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={})
            channel.basic_publish("", queue, message.encode(), pika.BasicProperties(delivery_mode=2),
                                  mandatory=True)
            ids.append(message.message_id)
        return ids
    finally:
        connection.close()


def purge(url: str, queue: str) -> None:
    """Drop every ready message of ``queue``, if it exists."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(queue)
    except pika.exceptions.ChannelClosedByBroker:
        pass
    finally:
        connection.close()

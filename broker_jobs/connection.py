"""What every connection to RabbitMQ shares: the built-in queues, the connection URL's defaults, the nodes.

Apart from :mod:`broker_jobs.broker` so that the modules the broker itself uses
(:mod:`broker_jobs.topology`) and the short-lived connections (health checks,
queue stats, dead letters, repair, the scheduler's publisher) reach them without
loading the broker and its middleware stack.

A cluster is given as several URLs (``RABBITMQ_URLS``): pika tries them in
order, each once per round, ``connection_attempts`` rounds ``retry_delay``
seconds apart, so a dead node (connection refused) costs nothing and a
silent one (no answer) costs ``socket_timeout``.  Every client reconnects
through the same list when its node dies: Dramatiq's consumers restart
after a second, its producer retries a publish on a fresh connection, the
short-lived connections open a new one each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika

#: The built-in queues; each also has ``Q.DQ`` (delays) and ``Q.XQ`` (dead letters).
QUEUES = ("etl", "sync", "maintenance", "default")

_CONNECTION_DEFAULTS = {
    "heartbeat": "30",
    "blocked_connection_timeout": "30",
    "connection_attempts": "3",
    "retry_delay": "1",
    "socket_timeout": "5",
}


def connection_url(url: str, **overrides: str) -> str:
    """``url`` with heartbeat, blocked-connection timeout and retry defaults added.

    Without a blocked-connection timeout a publisher hangs forever during a
    RabbitMQ memory or disk alarm.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in {**_CONNECTION_DEFAULTS, **overrides}.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def connection_urls(urls: str | Sequence[str], **overrides: str) -> list[str]:
    """:func:`connection_url` of each node's URL (one URL given as a string is a list of one)."""
    return [connection_url(url, **overrides) for url in ([urls] if isinstance(urls, str) else urls)]


def parameters(urls: str | Sequence[str], *, stack_timeout: float | None = None,
               **overrides: str) -> list[pika.URLParameters]:
    """pika's parameters for each node, in order, with our defaults (and ``stack_timeout``, if given)."""
    params = [pika.URLParameters(url) for url in connection_urls(urls, **overrides)]
    if stack_timeout is not None:
        for param in params:
            param.stack_timeout = stack_timeout
    return params


def connect(urls: str | Sequence[str], *, stack_timeout: float | None = None,
            **overrides: str) -> pika.BlockingConnection:
    """A blocking connection to the first node of ``urls`` that answers.

    Raises:
      pika.exceptions.AMQPConnectionError: no node answered.
    """
    return pika.BlockingConnection(parameters(urls, stack_timeout=stack_timeout, **overrides))

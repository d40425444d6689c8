"""What every connection to RabbitMQ shares: the built-in queues and the connection URL's defaults.

Apart from :mod:`broker_jobs.broker` so that the modules the broker itself uses
(:mod:`broker_jobs.topology`) and the short-lived connections (health checks,
queue stats, dead letters, repair, the scheduler's publisher) reach them without
loading the broker and its middleware stack.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

"""Queue depths: ready, unacked, delayed, dead and consumers per queue.

Read from the RabbitMQ management API when it answers (it knows unacked
counts), else from passive declares (ready, dead and consumers only): then
``unacked`` and ``delayed`` are None, unknown, never a made-up 0.  Delayed
messages are held unacked by the workers' delay consumers, so a passive
declare of the ``.DQ`` queue sees only some of them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pika

from . import registry, topology
from .clock import utc_now
from .connection import QUEUES, connect
from .errors import BrokerUnavailableError
from .settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class QueueStats:
    """Depths of one queue and its ``.DQ`` and ``.XQ``."""

    queue: str
    ready: int
    unacked: int | None
    delayed: int | None
    dead: int
    consumers: int
    oldest_dead_age_s: float | None = None

    def asdict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def management_url(settings: Settings) -> tuple[str, str, tuple[str, str]]:
    """(base URL, vhost, credentials) of the management API beside ``RABBITMQ_URL``."""
    parts = urlsplit(settings.rabbitmq_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    base = settings.rabbitmq_management_url or f"http://{parts.hostname or '127.0.0.1'}:15672"
    return base.rstrip("/"), vhost, (unquote(parts.username or "guest"), unquote(parts.password or "guest"))


def _from_management(settings: Settings, names: list[str]) -> list[QueueStats] | None:
    base, vhost, auth = management_url(settings)
    try:
        response = httpx.get(f"{base}/api/queues/{quote(vhost, safe='')}", auth=auth, timeout=2.0,
                             params={"columns": "name,messages_ready,messages_unacknowledged,consumers"})
        if response.status_code != 200:
            return None
        rows = {row["name"]: row for row in response.json()}
    except (httpx.HTTPError, ValueError):
        return None

    def one(name: str, field: str) -> int:
        return int(rows.get(name, {}).get(field) or 0)

    def get(name: str, field: str) -> int:
        # Quorum queues: a family's jobs are in its three priority bands.
        if settings.queue_type == topology.QUORUM and not name.endswith((".DQ", ".XQ")):
            return sum(one(band, field) for band in topology.bands(name))
        return one(name, field)

    return [
        QueueStats(
            queue=name,
            ready=get(name, "messages_ready"),
            unacked=get(name, "messages_unacknowledged"),
            delayed=get(name + ".DQ", "messages_ready") + get(name + ".DQ", "messages_unacknowledged"),
            dead=get(name + ".XQ", "messages_ready"),
            consumers=get(name, "consumers"),
        )
        for name in names
    ]


def _from_declares(settings: Settings, names: list[str]) -> list[QueueStats]:
    try:
        conn = connect(settings.amqp_urls)
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailableError(f"cannot reach RabbitMQ at RABBITMQ_URL: {exc!r}") from None
    stats = []
    try:
        for name in names:
            counts = {}
            for suffix in ("", ".DQ", ".XQ", topology.HIGH_BAND, topology.LOW_BAND):
                channel = conn.channel()
                try:
                    ok = channel.queue_declare(queue=name + suffix, passive=True)
                    counts[suffix] = (ok.method.message_count, ok.method.consumer_count)
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    counts[suffix] = (0, 0)
            ready, consumers = counts[""]
            if settings.queue_type == topology.QUORUM:
                for band in (topology.HIGH_BAND, topology.LOW_BAND):
                    ready, consumers = ready + counts[band][0], consumers + counts[band][1]
            stats.append(QueueStats(name, ready, None, None, counts[".XQ"][0], consumers))
    finally:
        conn.close()
    return stats


def oldest_dead_ages(settings: Settings) -> dict[str, float]:
    """Age in seconds of the oldest dead letter still archived as dead, by queue (the dead-letter archive)."""
    from .store.db import get_engine  # deferred: SQLAlchemy, only when ages are asked for
    from .store.queries import oldest_dead  # deferred: SQLAlchemy, only when ages are asked for

    now = utc_now()
    return {queue: max(0.0, (now - oldest).total_seconds())
            for queue, oldest in oldest_dead(get_engine(settings.database_url)).items()}


def queue_stats(settings: Settings, names: list[str] | None = None, *, ages: bool = False) -> list[QueueStats]:
    """Depths of ``names`` (default: the built-in queues and every job's queue).

    Parameters:
      ages: Also fill ``oldest_dead_age_s`` from the dead-letter archive (left None when the database
        cannot be read: the depths still come back).
    """
    if names is None:
        names = sorted({*QUEUES, *(spec.queue for spec in registry.list())})
    stats = _from_management(settings, names) or _from_declares(settings, names)
    if ages and any(s.dead for s in stats):
        try:
            oldest = oldest_dead_ages(settings)
        except Exception as exc:  # noqa: BLE001 - the depths matter more than the ages
            logger.warning("[queues] dead-letter ages unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
            oldest = {}
        for s in stats:
            age = oldest.get(s.queue)
            s.oldest_dead_age_s = round(age, 1) if s.dead and age is not None else None
    return stats

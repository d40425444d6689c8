"""Checks of the components a job system depends on, each bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .connection import connect
from .redaction import redact
from .settings import Settings


@dataclass
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def asdict(self) -> dict[str, Any]:
        """The check as a JSON-ready dict."""
        return asdict(self)


def _timed(name: str, fn: Callable[[], object]) -> Check:
    start = time.perf_counter()
    try:
        detail = fn() or ""
        ok = True
    except Exception as exc:  # a health check reports, it does not raise
        detail, ok = (str(exc).splitlines() or [type(exc).__name__])[0], False
    return Check(name, ok, round((time.perf_counter() - start) * 1000, 2), redact(str(detail)))


def check_rabbitmq(settings: Settings, timeout: float = 1.0) -> Check:
    """Open and close a connection to ``RABBITMQ_URL`` (or the first live node of ``RABBITMQ_URLS``)."""

    def probe() -> str:
        conn = connect(settings.amqp_urls, stack_timeout=timeout, connection_attempts="1",
                       socket_timeout=str(timeout), blocked_connection_timeout=str(timeout))
        version = conn._impl.server_properties.get("version", b"?")
        conn.close()
        return "RabbitMQ " + (version.decode() if isinstance(version, bytes) else str(version))

    return _timed("rabbitmq", probe)


def check_database(settings: Settings) -> Check:
    """Run ``SELECT 1`` on ``DATABASE_URL``."""
    from .store.db import ping  # deferred: SQLAlchemy

    def probe() -> str:
        return ping(settings.database_url)

    return _timed("database", probe)


def check_redis(settings: Settings, timeout: float = 1.0) -> Check | None:
    """PING ``REDIS_URL``; ``None`` in single-host mode."""
    if not settings.redis_url:
        return None

    def probe() -> str:
        import redis  # deferred: redis-py, only in multi-host mode (REDIS_URL set)

        client = redis.Redis.from_url(settings.redis_url or "", socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        client.ping()
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # redis-py types sync and async replies alike
        return "redis " + str(info.get("redis_version", "?"))

    return _timed("redis", probe)


def check_all(settings: Settings) -> list[Check]:
    """Every dependency's check."""
    checks = [check_rabbitmq(settings), check_database(settings)]
    redis_check = check_redis(settings)
    if redis_check is not None:
        checks.append(redis_check)
    return checks

"""Fixtures shared by every test: stub and real brokers, databases, Redis.

Real-service fixtures skip when the service is missing locally and FAIL when
``CI`` is set, so CI can never pass by skipping what it must exercise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker_jobs.app.main  # noqa: F401  (registers the built-in jobs' loader, as the console script does)
from tests.support import (
    IN_CI,
    RABBITMQ_URL,
    ROOT,
    TEST_POSTGRES_URL,
    TEST_REDIS_URL,
    database,
    port_open,
    run_cli,
    unavailable,
    vhost,
)

__all__ = ["IN_CI", "RABBITMQ_URL", "ROOT", "TEST_POSTGRES_URL", "TEST_REDIS_URL", "port_open", "run_cli",
           "unavailable"]  # still importable from here while other branches do; new code imports tests.support

_TMP = Path(tempfile.mkdtemp(prefix="broker-jobs-tests-"))

# Before broker_jobs reads its settings: a private SQLite file, the repo's jobs file.
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/history.sqlite3")
os.environ.setdefault("JOBS_CONFIG", str(ROOT / "config" / "jobs.yaml"))
os.environ.setdefault("DATA_DIR", str(_TMP / "data"))
os.environ.setdefault("QDRANT_PATH", str(_TMP / "qdrant"))
os.environ.setdefault("EXPORT_DIR", str(_TMP / "exports"))
os.environ.setdefault("RATE_LIMIT_FILE", str(_TMP / "rate_limits.sqlite3"))
os.environ.setdefault("RETRY_MIN_BACKOFF", "0.05")
# Worker processes started by tests export metrics from a directory and port of their own.
os.environ.setdefault("METRICS_DIR", str(_TMP / "metrics"))
os.environ.setdefault("METRICS_PORT", str(19000 + os.getpid() % 1000))
os.environ.pop("REDIS_URL", None)  # single-host mode unless a test asks for Redis



@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A RabbitMQ URL on a vhost of its own, deleted after the session."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-test") as url:
        yield url or RABBITMQ_URL


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment variables for a test; the settings cache is cleared around it."""
    from broker_jobs.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def stub_broker() -> Iterator[object]:
    """A StubBroker with the full middleware stack, installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.coordination import MemoryClaims, set_claims

    previous = dramatiq.broker.global_broker
    set_claims(MemoryClaims())
    broker = use_broker(build_broker(stub=True))
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()
    set_claims(None)
    if previous is not None:
        use_broker(previous)


@pytest.fixture
def stub_worker(stub_broker: object) -> Iterator[object]:
    """A worker consuming from ``stub_broker``."""
    from dramatiq import Worker

    worker = Worker(stub_broker, worker_timeout=50, worker_threads=2)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def rabbit_broker(rabbitmq_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """A real RabbitMQ broker (test vhost) with the full stack, installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.settings import get_settings

    settings_env.setenv("RABBITMQ_URL", rabbitmq_url)
    previous = dramatiq.broker.global_broker
    broker = use_broker(build_broker(get_settings()))
    broker.emit_after("process_boot")
    yield broker
    try:
        for queue in list(broker.get_declared_queues()):
            broker.flush(queue)
    finally:
        broker.close()
        if previous is not None:
            use_broker(previous)


@pytest.fixture
def redis_url() -> str:
    """A real Redis database (db 15 by default), flushed before the test."""
    if not port_open(TEST_REDIS_URL, 6379):
        unavailable(f"Redis at {TEST_REDIS_URL}")
    import redis

    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped after the session."""
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with database(TEST_POSTGRES_URL, "bj_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.models import metadata

    engine = get_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return url

"""Fixtures of the job tests: private stores, the sample data, local fake APIs, jobs on a test broker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, FakeApis, wait_for

JOB_MODULES = ("broker_jobs.app.jobs.etl", "broker_jobs.app.jobs.sync", "broker_jobs.app.jobs.vault",
               "broker_jobs.app.jobs.maintenance", "broker_jobs.app.jobs.ondemand")


@dataclass
class JobsEnv:
    """Where one test's data lives."""

    root: Path
    database_url: str
    vault: Path
    qdrant: Path
    exports: Path
    companies: Path
    apis: FakeApis | None = None


@pytest.fixture
def apis() -> Iterator[FakeApis]:
    """The fake GitHub, Spotify, status and CSV servers."""
    server = FakeApis()
    yield server
    server.close()


def _environment(settings_env: pytest.MonkeyPatch, tmp_path: Path, database_url: str,
                 apis: FakeApis | None) -> JobsEnv:
    from broker_jobs.app.connectors import http, spotify
    from broker_jobs.app.vectors import embedders

    vault = tmp_path / "vault"
    shutil.copytree(ROOT / "examples" / "vault", vault)
    shutil.copytree(ROOT / "examples" / "csv", tmp_path / "csv")
    shutil.copy(ROOT / "examples" / "companies.csv", tmp_path / "companies.csv")
    env = JobsEnv(tmp_path, database_url, vault, tmp_path / "qdrant", tmp_path / "exports",
                  tmp_path / "companies.csv", apis)
    values = {
        "DATABASE_URL": database_url, "QDRANT_PATH": str(env.qdrant), "VAULT_PATH": str(vault),
        "EXPORT_DIR": str(env.exports), "COMPANIES_FILE": str(env.companies),
        "ENTITIES_CONFIG": str(tmp_path / "entities.yaml"), "ETL_BATCH_SIZE": "3", "ETL_OVERLAP": "0",
        "HTTP_BACKOFF": "0.01", "HTTP_MAX_RETRIES": "3", "HTTP_MAX_WAIT": "5", "SERVICE_SYNC_MAX_DELAY": "0",
        "BREAKER_FAIL_MAX": "5", "BREAKER_RESET_TIMEOUT": "60",
        # The shipped jobs file limits the etl queue to 10 a minute across the host's workers: each test counts
        # its own grants, not those of the tests before it.
        "RATE_LIMIT_FILE": str(tmp_path / "rate_limits.sqlite3"),
    }
    if apis is not None:
        values.update({
            "GITHUB_TOKEN": apis.state.github_token, "GITHUB_OWNERS": "octo-org", "GITHUB_API_URL": apis.url,
            "SPOTIFY_CLIENT_ID": apis.state.client_id, "SPOTIFY_CLIENT_SECRET": apis.state.client_secret,
            "SPOTIFY_REFRESH_TOKEN": apis.state.refresh_token, "SPOTIFY_API_URL": f"{apis.url}/v1",
            "SPOTIFY_ACCOUNTS_URL": apis.url,
        })
    for name, value in values.items():
        settings_env.setenv(name, value)
    for name in ("GITHUB_TOKEN", "GITHUB_OWNERS", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET",
                 "SPOTIFY_REFRESH_TOKEN"):
        if name not in values:
            settings_env.delenv(name, raising=False)
    embedders.get_embedder.cache_clear()
    http.reset_breakers()
    spotify._tokens.clear()
    return env


@pytest.fixture
def jobs_env(settings_env: pytest.MonkeyPatch, tmp_path: Path, apis: FakeApis) -> JobsEnv:
    """Private SQLite database, vector store, vault copy, exports; credentials for the fake APIs."""
    return _environment(settings_env, tmp_path, f"sqlite:///{tmp_path}/jobs.sqlite3", apis)


@pytest.fixture
def jobs_env_any_db(settings_env: pytest.MonkeyPatch, tmp_path: Path, apis: FakeApis,
                    database_url: str) -> JobsEnv:
    """As ``jobs_env``, once on SQLite and once on PostgreSQL."""
    return _environment(settings_env, tmp_path, database_url, apis)


def bind_jobs(broker: Any) -> dict[Any, Any]:
    """Declare the built-in jobs on ``broker``; returns their previous brokers."""
    import importlib

    from broker_jobs import registry

    for name in JOB_MODULES:
        importlib.import_module(name)
    previous = {}
    for spec in registry.list():
        if spec.actor.fn.__module__ in JOB_MODULES or spec.actor.fn.__module__.startswith("broker_jobs.actors"):
            previous[spec.actor] = spec.actor.broker
            spec.actor.broker = broker
            broker.declare_actor(spec.actor)
    return previous


@pytest.fixture(autouse=True)
def jobs_never_reach_a_shared_broker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Bind the jobs to a private stub broker unless the test brings its own.

    A job that enqueues another (vault_sync -> etl_sync) would otherwise publish
    to the process's default broker: the real RabbitMQ vhost everyone shares.
    """
    if {"jobs_broker", "rabbit_broker", "stub_broker"} & set(request.fixturenames):
        yield
        return
    from dramatiq.brokers.stub import StubBroker

    sink = StubBroker()
    previous = bind_jobs(sink)
    yield
    for actor, broker in previous.items():
        actor.broker = broker
    sink.close()


@pytest.fixture
def jobs_broker(stub_broker: Any) -> Iterator[Any]:
    """The stub broker with the built-in jobs declared on it."""
    previous = bind_jobs(stub_broker)
    yield stub_broker
    for actor, broker in previous.items():
        actor.broker = broker


def run_job(broker: Any, worker: Any, actor: Any, *args: Any, queues: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """Send ``actor`` and wait for it and anything it enqueued on ``queues``; returns its history row."""
    message = actor.send(*args, **kwargs)
    for queue in (actor.queue_name, *queues, actor.queue_name):
        broker.join(queue)
    worker.join()
    return run_of(message.message_id)


def run_of(message_id: str, timeout: float = 10) -> Any:
    """The finished history row of ``message_id`` (waits for the writer)."""
    from sqlalchemy import select

    from broker_jobs.store.db import get_engine
    from broker_jobs.store.history import writer
    from broker_jobs.store.models import job_runs

    def finished() -> Any:
        writer.flush()
        with get_engine().connect() as conn:
            run = conn.execute(select(job_runs).where(job_runs.c.message_id == message_id)).first()
        return run if run is not None and run.status not in ("running", "retrying", "enqueued") else None

    return wait_for(finished, f"message {message_id} to finish", timeout, every=0.05)


#: Columns that record when a job last looked, not what the data is.
VOLATILE = {"last_imported_at", "last_synced_at", "changed_at", "fetched_at", "exported_at"}
DATA_TABLES = ("documents", "document_links", "github_repositories", "spotify_tracks", "spotify_artists",
               "spotify_playlists", "spotify_albums", "companies", "company_records", "services", "service_logs",
               "etl_watermarks", "http_cache", "merge_proposals")


def snapshot_db() -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows (volatile columns left out), sorted."""
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.models import metadata

    engine = get_engine()
    found = {}
    with engine.connect() as conn:
        for name in DATA_TABLES:
            table = metadata.tables[name]
            cols = [c for c in table.c if c.name not in VOLATILE]
            rows = conn.execute(table.select().with_only_columns(*cols)).all()
            found[name] = sorted(tuple(repr(v) for v in row) for row in rows)
    return found


def snapshot_vectors() -> dict[str, dict[str, Any]]:
    """Every collection's points: id -> (payload, vector rounded)."""
    from broker_jobs.app.vectors import open_store

    found: dict[str, dict[str, Any]] = {}
    with open_store() as store:
        for kind in store.kinds():
            found[kind] = {str(p.id): (sorted(p.payload.items()), [round(x, 5) for x in p.vector])
                           for p in store.scan(kind, with_vectors=True)}
    return found

"""Building blocks for the scheduler tests: a jobs file, a scheduler on a stub broker, a fake clock."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from broker_jobs.scheduling.lease import DatabaseLease
from broker_jobs.scheduling.publisher import StubPublisher
from broker_jobs.scheduling.scheduler import Scheduler
from broker_jobs.settings import Settings
from broker_jobs.store.scheduler_state import open_scheduler_store

T0 = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)


def jobs_file(tmp_path: Path, body: str, name: str = "jobs.yaml") -> Path:
    """Write a jobs file (dedented) and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def fake_settings(path: Path, **overrides: Any) -> SimpleNamespace:
    """The few settings the scheduler reads (a publish also reads ``amqp_urls``, which a test sets)."""
    defaults = Settings.model_fields
    values = {"app_env": "development", "scheduler_timezone": "UTC", "jobs_config": path, "redis_url": None,
              "database_url": f"sqlite:///{path.parent}/scheduler.sqlite3",
              **{name: defaults[name].default for name in ("publish_timeout", "max_message_bytes", "queue_type")}}
    values.update(overrides)
    return SimpleNamespace(**values)


@dataclass
class Clock:
    """A fake clock the test moves by hand."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_scheduler(path: Path, broker: Any, clock: Clock, **settings: Any) -> Scheduler:
    """A scheduler on the jobs file's own SQLite database, publishing to the stub ``broker``, loaded."""
    values = fake_settings(path, **settings)
    store = open_scheduler_store(values.database_url)
    scheduler = Scheduler(values, store=store, lease=DatabaseLease(store.engine), publisher=StubPublisher(broker),
                          clock=clock)
    scheduler.load()
    return scheduler

"""The ``diagnostics`` job: checks RabbitMQ, the database and Redis, records a report."""

from __future__ import annotations

from typing import Any

from broker_jobs.app.settings import get_app_settings
from broker_jobs.errors import TransientJobError
from broker_jobs.health import check_all
from broker_jobs.job import job


@job(queue="default", priority="high", time_limit=60, max_retries=2)
def diagnostics() -> dict[str, Any]:
    """Check every dependency and record what was found."""
    checks = check_all(get_app_settings())
    report = {"checks": [c.asdict() for c in checks], "ok": all(c.ok for c in checks)}
    failing = [c for c in checks if not c.ok and c.name != "rabbitmq"]
    if failing:
        raise TransientJobError("; ".join(f"{c.name}: {c.detail}" for c in failing))
    return report

"""The broker-jobs scheduler under test: a jobs file of N cron jobs due in the same second.

Each entry fires ``bench_noop`` (from :mod:`benchmarks.peers.bj_jobs`) on the
``default`` queue; the scheduler publishes every batch in one confirmed AMQP
transaction.  State, lease and audit go to a SQLite file of the burst's own.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from ..common import BIN, Run


def available() -> bool:
    """Whether ``broker-jobs scheduler`` exists in this checkout."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("broker_jobs.scheduling.scheduler", "broker_jobs.scheduling.commands"))


def prepare(run: Run, workdir: Path, n: int, slot: float) -> Path:
    """Write ``workdir/jobs.yaml``: ``n`` jobs with cron ``S M H * * *`` (UTC) at ``slot``."""
    at = time.gmtime(slot)
    cron = f"{at.tm_sec} {at.tm_min} {at.tm_hour} * * *"
    key = run.key("broker_jobs", "sched", str(n))
    lines = ["modules: [benchmarks.peers.bj_jobs]", "jobs:"]
    for i in range(n):
        lines.append(f'  - {{id: bench-{i}, actor: bench_noop, cron: "{cron}", args: ["{key}", {n}]}}')
    path = workdir / "jobs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def environment(workdir: Path) -> dict[str, str]:
    """The scheduler's own jobs file and database."""
    return {"JOBS_CONFIG": str(workdir / "jobs.yaml"),
            "DATABASE_URL": f"sqlite:///{workdir}/scheduler.sqlite3",
            "SCHEDULER_TIMEZONE": "UTC"}


def command(workdir: Path) -> list[str]:
    """``broker-jobs scheduler``."""
    return [str(BIN / "broker-jobs"), "scheduler"]

"""``JOB_REPORT_DIR``: one ``job_report_{job_id}_{timestamp}.json`` per finished run, written by a real worker,
pruned with the history's retention."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from broker_jobs.report_files import prune_reports, report_name, write_report
from tests.support import run_cli, start, stop, wait_for


@pytest.mark.rabbitmq
def test_a_worker_writes_one_report_file_per_finished_run(rabbitmq_url, tmp_path: Path):
    reports = tmp_path / "reports"
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3",
           "JOB_REPORT_DIR": str(reports), "PYTHONUNBUFFERED": "1", "RETRY_MIN_BACKOFF": "0.1"}
    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], env,
                   tmp_path / "worker.log")
    try:
        good = run_cli("send", "diagnostics", env=env).stdout.strip()
        bad = run_cli("send", "diagnostics", "--args", "[1]", env=env).stdout.strip()
        files = wait_for(lambda: len(list(reports.glob("job_report_diagnostics_*.json"))) == 2
                         and list(reports.glob("job_report_*.json")), "two report files", 60)
    finally:
        stop(worker, timeout=20)
    bodies = {body["message_id"]: body for body in (json.loads(p.read_text()) for p in files)}
    assert bodies[good]["status"] == "succeeded" and bodies[good]["report"]["ok"] in (True, False)
    assert bodies[good]["job_id"] == "diagnostics" and bodies[good]["finished_at"].endswith("+00:00")
    assert bodies[bad]["status"] == "dead" and "too many positional arguments" in bodies[bad]["error"]


def row(status: str, fire_id: str | None, finished: float) -> dict:
    return {"actor": "etl_pipeline", "fire_id": fire_id, "message_id": f"m{finished}", "queue": "etl",
            "priority": "medium", "status": status, "attempt": 1, "started_at": finished - 1,
            "finished_at": finished, "duration_ms": 1000.0, "error": None, "report": {}, "worker": "w"}


def test_reports_are_named_by_schedule_and_pruned_like_the_history(tmp_path: Path):
    now = time.time()
    path = write_report(tmp_path, row("succeeded", "daily_update@2026-01-01T02:00:00Z", now))
    assert path.name == report_name("daily_update", now) and path.name.startswith("job_report_daily_update_2")
    for age in (10, 20, 30):
        write_report(tmp_path, row("succeeded", "daily_update@x", now - age))
    write_report(tmp_path, row("dead", "daily_update@y", now - 500))
    write_report(tmp_path, row("succeeded", None, now - 5000))  # a sent run: its actor's file
    deleted = prune_reports(tmp_path, keep_completed=3, completed_ttl=3600, failed_ttl=1000, now=now)
    assert deleted == 2  # the 4th newest success of daily_update, and etl_pipeline's past the TTL
    left = sorted(p.name for p in tmp_path.glob("job_report_*.json"))
    assert len(left) == 4 and not any(n.startswith("job_report_etl_pipeline_") for n in left)
    assert prune_reports(tmp_path, keep_completed=3, completed_ttl=3600, failed_ttl=100, now=now) == 1  # the dead one

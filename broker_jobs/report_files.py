"""One JSON report file per finished run, ``job_report_{job_id}_{timestamp}.json`` in ``JOB_REPORT_DIR``.

Written by the worker's history middleware when a run ends (succeeded, dead or failed; not a retry or a
skipped duplicate) with what the history row holds: the job, its fire id, status, times, error and the job's
returned report.  ``job_id`` is the schedule's id for a scheduled run, else the actor.  Pruned with the
history (``prune_history``): a succeeded run's file after ``HISTORY_COMPLETED_TTL`` or beyond the
``HISTORY_KEEP_COMPLETED`` newest of its job, a failed one's after ``HISTORY_FAILED_TTL``.
Files are written atomically without following links (:func:`broker_jobs.safe_files.write_file`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .protocol import job_id_of
from .safe_files import open_root, write_file

logger = logging.getLogger(__name__)

PATTERN = re.compile(r"^job_report_(?P<job>.+)_(?P<stamp>\d{8}T\d{6}\.\d{6}Z)\.json$")
#: The statuses a report file is written for.
FINAL = ("succeeded", "dead", "failed")


def report_name(job_id: str, finished: float) -> str:
    """``job_report_{job_id}_{timestamp}.json`` (UTC, microseconds: two runs of a second do not collide)."""
    stamp = datetime.fromtimestamp(finished, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"job_report_{job_id.replace('/', '_')}_{stamp}.json"


def write_report(directory: Path, row: dict[str, Any]) -> Path:
    """Write the report file of a finished run (``row``: the history row, times in epoch seconds)."""
    job_id = job_id_of(row.get("fire_id")) or str(row["actor"])
    finished = float(row.get("finished_at") or time.time())

    def iso(value: Any) -> str | None:
        return datetime.fromtimestamp(float(value), UTC).isoformat() if value else None

    body = {"job_id": job_id, "actor": row["actor"], "fire_id": row.get("fire_id"),
            "message_id": row["message_id"], "queue": row["queue"], "priority": row["priority"],
            "status": row["status"], "attempt": row["attempt"], "started_at": iso(row.get("started_at")),
            "finished_at": iso(finished), "duration_ms": row.get("duration_ms"), "error": row.get("error"),
            "report": row.get("report"), "worker": row.get("worker")}
    directory.mkdir(parents=True, exist_ok=True)
    name = report_name(job_id, finished)
    root = open_root(directory)
    try:
        write_file(root, name, json.dumps(body, indent=2, default=str).encode())
    finally:
        os.close(root)
    return directory / name


def prune_reports(directory: Path, *, keep_completed: int, completed_ttl: float, failed_ttl: float,
                  now: float | None = None) -> int:
    """Delete report files past the history's retention; returns how many."""
    if not directory.is_dir():
        return 0
    now = time.time() if now is None else now
    by_job: dict[str, list[tuple[float, Path, bool]]] = {}
    for path in directory.iterdir():
        match = PATTERN.match(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        finished = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC).timestamp()
        try:
            ok = json.loads(path.read_text(encoding="utf-8")).get("status") == "succeeded"
        except (OSError, ValueError, AttributeError):
            ok = False
        by_job.setdefault(match["job"], []).append((finished, path, ok))
    deleted = 0
    for files in by_job.values():
        files.sort(reverse=True)
        kept_ok = 0
        for finished, path, ok in files:
            age = now - finished
            if ok:
                kept_ok += 1
                expired = age > completed_ttl or kept_ok > keep_completed
            else:
                expired = age > failed_ttl
            if expired:
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted

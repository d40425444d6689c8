"""Idempotent writes of ingested rows: upsert by natural key, skip what did not change."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.report import Report
from broker_jobs.clock import utc_now


def content_hash(fields: dict[str, Any]) -> str:
    """A stable hash of ``fields`` (keys sorted, JSON)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def upsert_rows(session: Session, model: Any, rows: list[dict[str, Any]], report: Report) -> None:
    """Insert new rows, update changed ones (``updated_at`` moves), skip identical ones.

    Each row holds the primary key ``id`` and the mapped columns; a row flagged
    deleted before comes back to life when it reappears.
    """
    unique = {fields["id"]: fields for fields in rows}  # an id twice in one page: the last wins
    report.skipped += len(rows) - len(unique)
    for fields in unique.values():
        digest = content_hash(fields)
        existing = session.get(model, fields["id"])
        if existing is None:
            session.add(model(**fields, content_hash=digest, updated_at=utc_now(), deleted=False))
            report.inserted += 1
        elif existing.content_hash == digest and not existing.deleted:
            report.skipped += 1
        else:
            for name, value in fields.items():
                setattr(existing, name, value)
            existing.content_hash, existing.updated_at, existing.deleted = digest, utc_now(), False
            report.updated += 1


def soft_delete_missing(session: Session, model: Any, keep: set[Any], *where: Any) -> int:
    """Flag deleted the live rows (matching ``where``) whose id is not in ``keep``."""
    query = select(model).where(model.deleted.is_(False), *where)
    count = 0
    for row in session.scalars(query):
        if row.id not in keep:
            row.deleted, row.updated_at = True, utc_now()
            count += 1
    return count

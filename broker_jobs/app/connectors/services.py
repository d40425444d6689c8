"""Service status sync: each active service's status API -> new ``service_logs`` records.

The status API answers ``GET {status_url}?after=CURSOR`` with::

    {"status": "operational",
     "records": [{"id": "r-1", "level": "info", "message": "...", "timestamp": "..."}],
     "next": "https://.../status?after=r-50"}      # or null on the last page

Records are keyed by ``(service, id)``: a record seen twice is stored once.
The cursor advances with each committed page, so a crash resumes where it stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.http import ApiClient
from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.settings import AppSettings
from broker_jobs.app.tables import Service, ServiceLog
from broker_jobs.clock import utc_now
from broker_jobs.errors import PermanentJobError, SkipJob

logger = logging.getLogger(__name__)


def add_service(engine: Engine, name: str, status_url: str, active: bool = True) -> int:
    """Create or update the service ``name``; returns its id."""
    with Session(engine) as session, session.begin():
        service = session.scalar(select(Service).where(Service.name == name))
        if service is None:
            service = Service(name=name, status_url=status_url, active=active)
            session.add(service)
        else:
            service.status_url, service.active = status_url, active
        session.flush()
        return service.id


def active_services(engine: Engine) -> list[int]:
    """Ids of the active services."""
    with Session(engine) as session:
        return list(session.scalars(select(Service.id).where(Service.active.is_(True)).order_by(Service.id)))


def sync(settings: AppSettings, engine: Engine, service_id: int) -> Report:
    """Fetch the service's new records page by page and insert them."""
    report = Report()
    with Session(engine) as session:
        service = session.get(Service, service_id)
        if service is None:
            raise PermanentJobError(f"service {service_id} does not exist")
        if not service.active:  # deactivated after the fan-out was sent
            raise SkipJob(f"service {service.name!r} is inactive")
        name, url, cursor = service.name, service.status_url, service.cursor
    status = None
    with ApiClient(f"service:{name}", settings) as api:
        params: dict[str, Any] | None = {"after": cursor} if cursor else None
        next_url: str | None = url
        while next_url:
            with report.timed("fetch"):
                body = api.get_json(next_url, params=params)
            params = None  # a next URL carries its own query
            records = body.get("records") or []
            status = body.get("status", status)
            report.fetched += len(records)
            with report.timed("store"), Session(engine) as session, session.begin():
                ids = [str(r["id"]) for r in records]
                known = set(session.scalars(select(ServiceLog.external_id).where(
                    ServiceLog.service_id == service_id, ServiceLog.external_id.in_(ids))))
                for record in records:
                    rid = str(record["id"])
                    if rid in known:
                        report.skipped += 1
                        continue
                    known.add(rid)
                    session.add(ServiceLog(service_id=service_id, external_id=rid, level=record.get("level"),
                                           message=str(record.get("message", "")), updated_at=utc_now(),
                                           logged_at=record.get("timestamp"), deleted=False))
                    report.inserted += 1
                service = session.get(Service, service_id)
                assert service is not None
                if ids:
                    service.cursor = ids[-1]
                service.last_status, service.last_synced_at = status, utc_now()
            next_url = body.get("next")
    report.extra.update(service=name, status=status)
    logger.info("[services] %s: %s, status %s%s", name, report.counts(), status, message_tag())
    return report

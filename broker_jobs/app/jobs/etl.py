"""ETL jobs: relational rows -> text -> embeddings -> the vector store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from broker_jobs.app.entities import all_entities, get_entity
from broker_jobs.app.entities.report import Report
from broker_jobs.app.settings import get_app_settings
from broker_jobs.errors import BrokerJobsError, PermanentJobError
from broker_jobs.job import job

# qdrant-client and numpy are imported inside the jobs: importing the actors
# (every worker, scheduler and `broker-jobs send`) stays fast.

logger = logging.getLogger(__name__)

#: Tests set this to crash after a given batch (resumability); None in production.
batch_hook: Callable[[int], None] | None = None


def run_etl(entities: list[str] | None = None) -> dict[str, Any]:
    """Sync the named entities (all when None) and return the combined report.

    An entity that fails (a missing table, a bad template) is counted in
    ``failed`` and named in ``errors``; the others still run.
    """
    from broker_jobs.app.entities.pipeline import sync_entity  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.vectors import (  # deferred: numpy and qdrant-client, only when this runs
        get_embedder,
        open_store,
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings = get_app_settings()
    errors: dict[str, str] = {}
    if entities is None:
        chosen = all_entities()
    else:
        known = {e.kind: e for e in all_entities()}
        chosen = [known[kind] for kind in entities if kind in known]
        for kind in entities:
            if kind not in known:
                errors[kind] = f"unknown entity {kind!r} (known: {', '.join(sorted(known))})"
        if not chosen:
            raise PermanentJobError("; ".join(errors.values()))
    engine, embedder = get_engine(), get_embedder()
    total, per_entity = Report(), {}
    total.failed = len(errors)
    with open_store(settings) as store:
        for entity in chosen:
            try:
                part = sync_entity(engine, store, entity, embedder, batch_size=settings.etl_batch_size,
                                   on_batch=batch_hook, overlap=settings.etl_overlap)
            except BrokerJobsError as exc:
                logger.warning("[etl] %s failed: %s", entity.kind, exc)
                errors[entity.kind] = str(exc)
                total.failed += 1
                continue
            total.add(part)
            if any(part.counts().values()):
                per_entity[entity.kind] = part.counts()
    total.extra.update(entities=per_entity, embedder=f"{embedder.name}/{embedder.version}")
    if errors:
        total.extra["errors"] = errors
    return total.asdict()


@job(queue="etl", priority="medium", time_limit=540)
def etl_sync(entities: list[str] | None = None) -> dict[str, Any]:
    """Embed rows changed since each entity's watermark into its collection."""
    return run_etl(entities)


@job(queue="etl", priority="high", time_limit=300)
def reprocess_documents(document_ids: list[int]) -> dict[str, Any]:
    """Re-embed the given vault documents now, whatever their watermark says."""
    from sqlalchemy import (
        select,  # deferred: SQLAlchemy, when the job runs
    )

    from broker_jobs.app.entities.pipeline import embed_rows  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.entities.tables import table_of  # deferred: SQLAlchemy, only when this runs
    from broker_jobs.app.vectors import (  # deferred: numpy and qdrant-client, only when this runs
        get_embedder,
        open_store,
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings = get_app_settings()
    entity = get_entity("vault_documents")
    engine, embedder = get_engine(), get_embedder()
    table = table_of(engine, entity)
    report = Report()
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).where(table.c.id.in_(document_ids)))]
    report.fetched = len(rows)
    missing = sorted(set(document_ids) - {r["id"] for r in rows})
    with open_store(settings) as store:
        collection = store.ensure(entity.kind, embedder.dim)
        store.check_embedder(entity.kind, embedder.name, embedder.version)
        for start in range(0, len(rows), settings.etl_batch_size):
            embed_rows(store, collection, entity, rows[start:start + settings.etl_batch_size], embedder,
                       report, force=True)
    report.failed = len(missing)
    if missing:
        report.extra["missing_ids"] = missing
    return report.asdict()

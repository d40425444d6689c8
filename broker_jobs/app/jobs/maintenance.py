"""Maintenance jobs: retention, database upkeep, vector hygiene, rebuilds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from broker_jobs.app.entities import all_entities
from broker_jobs.app.entities.report import Report
from broker_jobs.app.settings import AppSettings, get_app_settings
from broker_jobs.job import job
from broker_jobs.report_files import prune_reports

if TYPE_CHECKING:
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

#: Table names the scheduler's slot audit may have, most likely first.
_AUDIT_TABLES = ("sched_audit", "slot_audit", "schedule_slots", "slot_audits", "scheduler_audit", "fire_audit")
_AUDIT_TIME = ("recorded_at", "fired_at", "slot_at", "created_at", "at")


@job(queue="maintenance", priority="low", time_limit=600)
def prune_history() -> dict[str, Any]:
    """Delete history past its retention (completed and failed: count per job and age)."""
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )
    from broker_jobs.store.runs import (
        prune,  # deferred: SQLAlchemy, when the job runs
    )

    settings, report = get_app_settings(), Report()
    with report.timed("history"):
        report.deleted = prune(
            get_engine(),
            keep_completed=settings.history_keep_completed,
            completed_ttl=settings.history_completed_ttl,
            failed_ttl=settings.history_failed_ttl,
            keep_failed=settings.history_keep_failed,
        )
    files = prune_report_files(settings)
    if files is not None:
        report.deleted += files
        report.extra["report_files_deleted"] = files
    return report.asdict()


def prune_report_files(settings: AppSettings) -> int | None:
    """Delete ``JOB_REPORT_DIR``'s report files past the history's retention; None when there is no such folder."""
    if settings.job_report_dir is None:
        return None
    return prune_reports(settings.job_report_dir, keep_completed=settings.history_keep_completed,
                         completed_ttl=settings.history_completed_ttl, failed_ttl=settings.history_failed_ttl)


def prune_slot_audit(engine: Engine, settings: AppSettings, now: datetime) -> int | None:
    """Delete slot-audit rows past ``SLOT_AUDIT_TTL`` (default 30 days); None when there is no such table."""
    from sqlalchemy import (  # deferred: SQLAlchemy, when the job runs
        DateTime,
        MetaData,
        Table,
        delete,
        inspect,
    )

    names = set(inspect(engine).get_table_names())
    name = next((n for n in _AUDIT_TABLES if n in names), None)
    if name is None:
        return None
    table = Table(name, MetaData(), autoload_with=engine)
    columns = [table.c[c] for c in _AUDIT_TIME if c in table.c]
    columns += [c for c in table.c if isinstance(c.type, DateTime)]
    if not columns:
        return None
    ttl = settings.slot_audit_ttl
    with engine.begin() as conn:
        return conn.execute(delete(table).where(columns[0] < now - timedelta(seconds=ttl))).rowcount


def prune_dead_letters(engine: Engine, settings: AppSettings, now: datetime) -> int:
    """Delete archived dead letters older than ``DEAD_LETTER_TTL`` (RabbitMQ drops the messages then too)."""
    from sqlalchemy import (
        delete,  # deferred: SQLAlchemy, when the job runs
    )

    from broker_jobs.store.models import dead_letters  # deferred: SQLAlchemy, when the job runs

    with engine.begin() as conn:
        cutoff = now - timedelta(seconds=settings.dead_letter_ttl)
        return conn.execute(delete(dead_letters).where(dead_letters.c.dead_at < cutoff)).rowcount


def vacuum(engine: Engine) -> str:
    """VACUUM and ANALYZE the database (outside a transaction, as both databases require)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM (ANALYZE)")
        else:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("ANALYZE")
    return engine.dialect.name


def run_system_maintenance() -> dict[str, Any]:
    """Retention of history, slot audit and dead letters, VACUUM/ANALYZE, health and vector counts."""
    from sqlalchemy.exc import (
        OperationalError,  # deferred: SQLAlchemy, when the job runs
    )

    from broker_jobs.app.vectors import open_store  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.health import check_all  # deferred: the health checks' clients, only when this job runs
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )
    from broker_jobs.store.runs import (
        prune,  # deferred: SQLAlchemy, when the job runs
    )

    settings, engine, report = get_app_settings(), get_engine(), Report()
    now = datetime.now(UTC)
    with report.timed("history"):
        history = prune(engine, keep_completed=settings.history_keep_completed,
                        completed_ttl=settings.history_completed_ttl, failed_ttl=settings.history_failed_ttl,
                        keep_failed=settings.history_keep_failed)
    with report.timed("slot_audit"):
        audit = prune_slot_audit(engine, settings, now)
    with report.timed("dead_letters"):
        dead = prune_dead_letters(engine, settings, now)
    files = prune_report_files(settings)
    report.deleted = history + (audit or 0) + dead + (files or 0)
    with report.timed("vacuum"):
        try:
            vacuumed = vacuum(engine)
        except OperationalError as exc:  # SQLite: another process held a write lock for busy_timeout
            vacuumed = f"skipped: {str(exc.orig).splitlines()[0]}"
            logger.warning("[maintenance] VACUUM %s", vacuumed)
    with report.timed("health"):
        checks = [c.asdict() for c in check_all(settings)]
    with report.timed("vectors"), open_store(settings) as store:
        vectors = {kind: store.count(kind) for kind in store.kinds()}
    report.extra.update(pruned={"history": history, "slot_audit": audit, "dead_letters": dead, "report_files": files},
                        vacuum=vacuumed,
                        healthy=all(c["ok"] for c in checks), checks=checks, vectors=vectors)
    return report.asdict()


@job(queue="maintenance", priority="low", time_limit=600)
def system_maintenance() -> dict[str, Any]:
    """Prune history, slot audit and dead-letter archive; VACUUM/ANALYZE; check health."""
    return run_system_maintenance()


def run_concept_hygiene(dry_run: bool | None = None) -> dict[str, Any]:
    """Orphan vectors removed, near-duplicate pairs proposed and the confident ones (``MERGE_THRESHOLD``)
    merged, for every entity kind; ``dry_run`` (default ``HYGIENE_DRY_RUN``) only proposes."""
    from broker_jobs.app.vectors import open_store  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.vectors.hygiene import clean_kind  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings, engine, total = get_app_settings(), get_engine(), Report()
    dry = settings.hygiene_dry_run if dry_run is None else dry_run
    kinds: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with open_store(settings) as store:
        for entity in all_entities():
            try:
                part = clean_kind(engine, store, entity, settings.duplicate_threshold,
                                  merge_threshold=settings.merge_threshold, dry_run=dry)
            except Exception as exc:  # noqa: BLE001 - one broken entity must not stop the others
                errors[entity.kind] = str(exc)
                total.failed += 1
                continue
            total.add(part)
            if part.fetched:
                kinds[entity.kind] = {**part.counts(), "pairs": part.extra.get("pairs", 0),
                                      **{k: part.extra[k] for k in ("merged", "would_merge") if k in part.extra}}
    total.extra.update(kinds=kinds, threshold=settings.duplicate_threshold, merge_threshold=settings.merge_threshold,
                       dry_run=dry, merged=sum(len(k.get("merged", [])) for k in kinds.values()))
    if errors:
        total.extra["errors"] = errors
    return total.asdict()


@job(queue="maintenance", priority="low", time_limit=600)
def concept_hygiene(dry_run: bool | None = None) -> dict[str, Any]:
    """Drop vectors whose rows are gone; propose near-duplicate merges, apply the confident ones (unless dry run)."""
    return run_concept_hygiene(dry_run)


def run_batch_reprocess(entities: list[str] | None = None) -> dict[str, Any]:
    """Rebuild every entity's collection (or the named ones) and switch the aliases."""
    from broker_jobs.app.entities import get_entity  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.vectors import (  # deferred: numpy and qdrant-client, only when this runs
        get_embedder,
        open_store,
    )
    from broker_jobs.app.vectors.rebuild import rebuild  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings, engine, embedder, total = get_app_settings(), get_engine(), get_embedder(), Report()
    chosen = [get_entity(k) for k in entities] if entities else all_entities()
    collections: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with open_store(settings) as store:
        for entity in chosen:
            try:
                part = rebuild(engine, store, entity, embedder, settings.etl_batch_size)
            except Exception as exc:  # noqa: BLE001 - one broken entity must not stop the others
                errors[entity.kind] = str(exc)
                total.failed += 1
                continue
            total.add(part)
            collections[entity.kind] = part.extra["collection"]
    total.extra.update(collections=collections, embedder=f"{embedder.name}/{embedder.version}")
    if errors:
        total.extra["errors"] = errors
    return total.asdict()


@job(queue="maintenance", priority="low", time_limit=600)
def batch_reprocess() -> dict[str, Any]:
    """Re-embed everything into fresh collections and switch aliases atomically."""
    return run_batch_reprocess()

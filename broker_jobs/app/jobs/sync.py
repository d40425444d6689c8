"""Ingest jobs: external APIs and files -> the relational store; ETL follows on its schedule."""

from __future__ import annotations

import logging
import random
from typing import Any

from broker_jobs.app.entities.report import Report
from broker_jobs.app.settings import get_app_settings
from broker_jobs.job import job

logger = logging.getLogger(__name__)


def _then_etl(report: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    """Enqueue ETL of ``kinds`` when the ingest changed rows."""
    if report["inserted"] or report["updated"] or report["deleted"]:
        from broker_jobs.app.jobs.etl import (
            etl_sync,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
        )

        etl_sync.send(kinds)
        report["etl_enqueued"] = kinds
    return report


def fan_out_services() -> dict[str, Any]:
    """Send one ``sync_service`` per active service, each delayed at random up to ``SERVICE_SYNC_MAX_DELAY``."""
    from broker_jobs.app.connectors import (
        services,  # deferred: httpx and SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings, report = get_app_settings(), Report()
    ids = services.active_services(get_engine())
    report.fetched = len(ids)
    with report.timed("enqueue"):
        for service_id in ids:
            # Spreads the calls so a hundred services do not hit the network (or one worker) at once.
            delay_ms = int(random.uniform(0, settings.service_sync_max_delay) * 1000)
            sync_service.send_with_options(args=(service_id,), delay=delay_ms or None)
    logger.info("[services] fanned out %d service syncs", len(ids))
    report.extra.update(enqueued=len(ids), service_ids=ids)
    return report.asdict()


@job(queue="sync", priority="medium", time_limit=60)
def sync_all_services() -> dict[str, Any]:
    """Fan out one ``sync_service`` message per active service."""
    return fan_out_services()


@job(queue="sync", priority="medium", time_limit=300)
def sync_service(service_id: int) -> dict[str, Any]:
    """Fetch one service's status API and insert its new log records."""
    from broker_jobs.app.connectors import (
        services,  # deferred: httpx and SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    report = services.sync(get_app_settings(), get_engine(), service_id).asdict()
    return _then_etl(report, ["service_logs"])


@job(queue="sync", priority="medium", time_limit=540)
def github_ingest() -> dict[str, Any]:
    """Ingest the repositories of ``GITHUB_OWNERS``."""
    from broker_jobs.app.connectors import (
        github,  # deferred: httpx and SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    report = github.ingest(get_app_settings(), get_engine()).asdict()
    return _then_etl(report, ["github_repositories"])


@job(queue="sync", priority="medium", time_limit=540)
def spotify_ingest() -> dict[str, Any]:
    """Ingest the user's Spotify tracks, artists, playlists and albums."""
    from broker_jobs.app.connectors import (
        spotify,  # deferred: httpx and SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    report = spotify.ingest(get_app_settings(), get_engine()).asdict()
    return _then_etl(report, ["spotify_tracks", "spotify_artists", "spotify_playlists", "spotify_albums"])


@job(queue="sync", priority="medium", time_limit=540)
def csv_import() -> dict[str, Any]:
    """Import every company's CSV source (``COMPANIES_FILE`` lists them)."""
    from broker_jobs.app.connectors import (
        csv_import as csv_source,  # deferred: httpx and SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    report = csv_source.import_all(get_app_settings(), get_engine()).asdict()
    return _then_etl(report, ["company_records"])

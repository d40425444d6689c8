"""The vault sync job: Markdown notes -> the documents table, then ETL of what changed."""

from __future__ import annotations

import logging
from typing import Any

from broker_jobs.app.settings import get_app_settings
from broker_jobs.errors import SkipJob
from broker_jobs.job import job

logger = logging.getLogger(__name__)


def run_vault_sync() -> dict[str, Any]:
    """Reconcile ``VAULT_PATH`` and enqueue ``etl_sync(["vault_documents"])`` when something changed."""
    from broker_jobs.app.connectors.vault import (
        reconcile,  # deferred: SQLAlchemy, when the job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    settings = get_app_settings()
    if not settings.vault_path.is_dir():
        raise SkipJob(f"vault: VAULT_PATH={settings.vault_path} is not a directory")
    report, changed = reconcile(get_engine(), settings.vault_path, settings.etl_batch_size,
                                settings.vault_max_note_bytes)
    if changed:
        from broker_jobs.app.jobs.etl import (
            etl_sync,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
        )

        etl_sync.send(["vault_documents"])
    report.extra["etl_enqueued"] = bool(changed)
    return report.asdict()


@job(queue="sync", priority="medium", time_limit=300)
def vault_sync() -> dict[str, Any]:
    """Reconcile the documents table with the notes under ``VAULT_PATH``."""
    return run_vault_sync()
